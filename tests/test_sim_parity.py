"""One backtest path: the same request through REST and through the CLI gives the same numbers, on the
bundled market (REST's data, the CLI reading the same files), for a deadline and a fleet workload; and a
REST fleet request with a bad knob is refused naming it, storing nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from api.app import create_app
from api.cli import app as cli_app
from api.testing import LiveServer, bearer_headers, eventually, new_tenant, settings_for_test
from engine.traces import BUNDLED_AVAILABILITY, BUNDLED_PRICES

pytestmark = pytest.mark.ray
SOURCE_KEYS = ("trace", "prices", "availability")  # where the history came from: files, or the bundled copy


@pytest.fixture(scope="module")
def server(ray_session: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = settings_for_test(tmp_path_factory.mktemp("parity"), replay=False)
    with LiveServer(create_app(settings)) as live:
        yield live


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        _, key = await new_tenant(http)
        http.headers.update(bearer_headers(key))
        yield http


@pytest.fixture(scope="module")
def bundled_files() -> Iterator[tuple[Path, Path]]:
    data = resources.files("engine") / "data"
    with resources.as_file(data / BUNDLED_AVAILABILITY) as availability, \
            resources.as_file(data / BUNDLED_PRICES) as prices:
        yield availability, prices


async def rest_result(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    submitted = await client.post("/api/v1/simulations", json=body)
    assert submitted.status_code == 202, submitted.text

    async def status() -> dict[str, Any]:
        return dict((await client.get(f"/api/v1/simulations/{submitted.json()['id']}")).json())

    done = await eventually(status, lambda s: s["status"] in ("succeeded", "failed"), 300, every_s=0.5)
    assert done["status"] == "succeeded" and done["progress"] == 1.0, done
    return dict((await client.get(done["result_path"])).json())


def cli_report(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "report.json"
    result = CliRunner().invoke(cli_app, ["simulate", *args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    return dict(json.loads(out.read_text()))


def without_source(report: dict[str, Any]) -> dict[str, Any]:
    settings = {k: v for k, v in report["settings"].items() if k not in SOURCE_KEYS}
    return {**report, "settings": settings}


async def test_a_deadline_request_gives_the_same_result_through_rest_and_the_cli(
        client: httpx.AsyncClient, bundled_files: tuple[Path, Path], tmp_path: Path) -> None:
    policies = ["greedy", "uniform_progress", "risk_aware", "optimal"]
    body = {"workload": "deadline", "runs": 24, "seed": 7, "policies": policies, "risk_horizon_s": 3600,
            "job": {"job_hours": 6, "deadline_hours": 9, "restart_overhead_hours": 0.2,
                    "spot_usd_per_hour": 0.9731, "on_demand_usd_per_hour": 3.06}}
    availability, prices = bundled_files
    cli = cli_report(tmp_path, "deadline", "--trace", str(availability), "--prices", str(prices),
                     "--job-hours", "6", "--deadline-hours", "9", "--restart-overhead-hours", "0.2",
                     "--spot-price", "0.9731", "--on-demand-price", "3.06", "--runs", "24", "--seed", "7",
                     "--risk-horizon-minutes", "60", *(a for p in policies for a in ("--policy", p)))
    rest = await rest_result(client, body)
    assert rest["settings"]["risk_source"] == "risk model (engine.learning)"  # risk_aware saw the learned risk
    assert without_source(rest) == without_source(cli)
    assert rest["policies"]["risk_aware"]["mean_cost"] > 0


async def test_a_fleet_request_gives_the_same_result_through_rest_and_the_cli(
        client: httpx.AsyncClient, bundled_files: tuple[Path, Path], tmp_path: Path) -> None:
    policies = ["on_demand", "price_capacity_optimized", "risk_aware"]
    body = {"workload": "fleet", "policies": policies, "fleet_size": 4, "runs": 6, "hours": 24, "seed": 5,
            "restart_hours": 0.2, "decision_interval_s": 600, "instance_type": "p3.2xlarge",
            "schedule": "Mon-Fri 06:00-22:00 UTC"}
    availability, prices = bundled_files
    cli = cli_report(tmp_path, "fleet", "--availability", str(availability), "--prices", str(prices),
                     "--fleet-size", "4", "--runs", "6", "--hours", "24", "--seed", "5", "--restart-hours", "0.2",
                     "--decision-interval-minutes", "10", "--instance-type", "p3.2xlarge",
                     "--schedule", "Mon-Fri 06:00-22:00 UTC",
                     *(a for p in policies for a in ("--policy", p)))
    rest = await rest_result(client, body)
    assert rest["workload"] == "fleet" and rest["runs"] == 6 and set(rest["policies"]) == set(policies)
    assert rest["settings"]["schedule"] == "Mon-Fri 06:00-22:00 UTC"
    assert without_source(rest) == without_source(cli)
    od = rest["policies"]["on_demand"]
    # on demand, the schedule's stopped hours are not paid; their saving is a lower bound (hours before a first
    # placement are priced at the cheapest placement then)
    assert od["hibernated_hours"] > 0 and od["hibernation_saving"] > 0
    assert od["total_cost"] + od["hibernation_saving"] <= od["on_demand_cost"] + 0.01
    assert od["total_cost"] < od["on_demand_cost"]


@pytest.mark.parametrize(("change", "named"), [
    ({"fleet_size": 0}, "fleet_size"),
    ({"runs": 100_000}, "runs"),
    ({"policies": ["magic"]}, "policies"),
    ({"hours": 5000}, "body.hours: must be within the trace's"),
    ({"instance_type": "m5.large"}, "body.instance_type: no pool of the trace can run m5.large"),
    ({"instance_type": "P3 2XL"}, "instance_type"),
    ({"decision_interval_s": -1}, "decision_interval_s"),
    ({"schedule": "Mon-Fry 09:00-17:00 UTC"}, "body.schedule: window 1: unknown day 'Fry'"),
    ({"job": {"job_hours": 1, "deadline_hours": 2}}, "job"),
    ({"workload": "magic"}, "workload must be 'deadline' or 'fleet'"),
])
async def test_a_bad_fleet_request_is_a_422_naming_the_field_and_stores_nothing(
        client: httpx.AsyncClient, change: dict[str, Any], named: str) -> None:
    before = (await client.get("/api/v1/simulations")).json()["simulations"]
    response = await client.post("/api/v1/simulations", json={"workload": "fleet", **change})
    assert response.status_code == 422, response.text
    assert named in response.json()["detail"], response.json()
    assert (await client.get("/api/v1/simulations")).json()["simulations"] == before


async def test_a_deadline_job_with_a_negative_launch_delay_is_a_422_naming_it(client: httpx.AsyncClient) -> None:
    body = {"job": {"job_hours": 2, "deadline_hours": 3, "delay_ticks": -1}}
    response = await client.post("/api/v1/simulations", json=body)
    assert response.status_code == 422, response.text
    assert "job.delay_ticks" in response.json()["detail"]
