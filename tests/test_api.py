"""The API end to end on real Ray, a real SQLite store and the bundled real prices: one server per module."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import websockets
from typer.testing import CliRunner

from api.app import create_app
from api.cli import app as cli_app
from api.testing import ADMIN_KEY, LiveServer, bearer_headers, demo_key, eventually, new_tenant, settings_for_test

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def server(ray_session, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = settings_for_test(tmp_path_factory.mktemp("api"))
    with LiveServer(create_app(settings)) as live:
        yield live


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        http.headers.update(bearer_headers(await demo_key(http)))
        yield http


def base_of(server: LiveServer, region: str = "us-east-1") -> str:
    return f"/api/v1/accounts/{server.runtime.settings.account}/regions/{region}"


async def test_rest_routes_serve_prices_and_paginated_decisions(server: LiveServer, client: httpx.AsyncClient) -> None:
    account = server.runtime.settings.account
    base = base_of(server)
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    accounts = (await client.get("/api/v1/accounts")).json()["accounts"]
    assert [(a["account"], a["regions"]) for a in accounts] == [(account, ["us-east-1", "us-east-2", "us-west-2"])]

    async def prices() -> list[dict]:
        return (await client.get(f"{base}/prices")).json()["prices"]

    latest = await eventually(prices, bool, 30)
    assert {p["pool"] for p in latest} == {f"p3.2xlarge@us-east-1{z}" for z in "acdf"}
    assert all(0 < p["price_usd_per_hour"] < p["on_demand_usd_per_hour"] for p in latest)

    async def decisions() -> list[dict]:
        return (await client.get(f"{base}/decisions", params={"limit": 1000})).json()["decisions"]

    listed = await eventually(decisions, lambda d: len(d) >= 6)
    seqs = [d["seq"] for d in listed]
    assert len(seqs) >= 6 and seqs == sorted(seqs, reverse=True)
    page = (await client.get(f"{base}/decisions", params={"limit": 2})).json()
    assert len(page["decisions"]) == 2
    following = (await client.get(f"{base}/decisions", params={"limit": 2, "before": page["next_before"]})).json()
    assert all(d["seq"] < page["next_before"] for d in following["decisions"])
    assert {"instance_id", "action", "rule", "reason", "candidates", "numbers"} <= set(listed[0])

    instances = (await client.get(f"{base}/instances")).json()["instances"]
    assert len(instances) == server.runtime.settings.demo_fleet_size


async def test_decisions_filter_by_action_instance_and_time(server: LiveServer, client: httpx.AsyncClient) -> None:
    base = base_of(server)

    async def moves() -> list[dict]:
        params = {"limit": 1000, "action": "fallback_on_demand"}
        return (await client.get(f"{base}/decisions", params=params)).json()["decisions"]

    fallbacks = await eventually(moves, bool)
    assert fallbacks and {d["action"] for d in fallbacks} == {"fallback_on_demand"}
    one = fallbacks[-1]
    by_instance = (await client.get(f"{base}/decisions", params={"instance_id": one["instance_id"],
                                                                 "limit": 1000})).json()["decisions"]
    assert by_instance and {d["instance_id"] for d in by_instance} == {one["instance_id"]}
    window = {"since_s": one["decided_at_s"], "until_s": one["decided_at_s"] + 1, "limit": 1000}
    in_window = (await client.get(f"{base}/decisions", params=window)).json()["decisions"]
    assert one["seq"] in {d["seq"] for d in in_window}
    assert all(one["decided_at_s"] <= d["decided_at_s"] < one["decided_at_s"] + 1 for d in in_window)


async def test_forecasts_price_history_and_model_metrics(server: LiveServer, client: httpx.AsyncClient) -> None:
    base = base_of(server)

    async def history() -> dict:
        return (await client.get(f"{base}/prices/history", params={"limit": 50})).json()

    ticks = (await eventually(history, lambda h: h["count"] >= 2))["ticks"]
    assert [t["seq"] for t in ticks] == sorted(t["seq"] for t in ticks)
    assert all(p["pool"].endswith(tuple("acdf")) for t in ticks for p in t["prices"])
    since = ticks[-1]["at_s"]
    recent = (await client.get(f"{base}/prices/history", params={"since_s": since})).json()["ticks"]
    assert recent and all(t["at_s"] >= since for t in recent)

    forecasts = (await client.get(f"{base}/forecasts", params=[("horizon_s", 3600), ("horizon_s", 86400)])).json()
    assert {p["pool"] for p in forecasts["pools"]} == {f"p3.2xlarge@us-east-1{z}" for z in "acdf"}
    for pool in forecasts["pools"]:
        assert pool["risk"] is None or 0.0 <= pool["risk"] <= 1.0
        assert set(pool["forecast_usd_per_hour"]) == {"3600", "86400"}
    metrics = (await client.get(f"{base}/metrics")).json()
    assert metrics["actor"]["batches"] > 0 and "price" in metrics["models"] and "risk" in metrics["models"]
    assert (await client.get(f"{base}/forecasts", params={"horizon_s": -1})).status_code == 422


async def test_unknown_account_or_region_is_a_404_with_the_error_shape(server: LiveServer,
                                                                       client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/accounts/nobody/regions/us-east-1/prices", f"{base_of(server, 'eu-west-9')}/decisions"):
        response = await client.get(path)
        assert response.status_code == 404
        body = response.json()
        assert body["error"] == "not_found" and "unknown account" in body["detail"]
    assert (await client.get("/api/v1/nothing-here")).json()["error"] == "not_found"


async def test_bad_query_parameters_are_a_422_naming_the_field(server: LiveServer, client: httpx.AsyncClient) -> None:
    base = f"{base_of(server)}/decisions"
    for params, field in (({"limit": 0}, "limit"), ({"limit": "many"}, "limit"), ({"before": "x"}, "before"),
                          ({"action": "explode"}, "action"), ({"since_s": "soon"}, "since_s")):
        response = await client.get(base, params=params)
        assert response.status_code == 422
        assert response.json()["error"] == "validation_error"
        assert f"query.{field}" in response.json()["detail"]


async def test_accounts_are_registered_updated_and_removed(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        _, key = await new_tenant(http)
        http.headers.update(bearer_headers(key))
        name = f"acct-{time.monotonic_ns() % 10**9}"
        body = {"name": name, "regions": ["us-east-2"], "credentials_mode": "replay", "executor_mode": "dry_run",
                "policy": "lowest_price", "policy_params": {"min_saving_fraction": 0.2}}
        created = await http.post("/api/v1/accounts", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["policy_params"] == {"min_saving_fraction": 0.2}
        assert (await http.post("/api/v1/accounts", json=body)).status_code == 409

        async def prices() -> list[dict]:  # a replay account follows the replayed market at once
            return (await http.get(f"/api/v1/accounts/{name}/regions/us-east-2/prices")).json()["prices"]

        assert await eventually(prices, bool, 30)
        before = (await http.get(f"/api/v1/accounts/{name}/regions/us-east-2/metrics")).json()["actor"]
        patched = await http.patch(f"/api/v1/accounts/{name}", json={"policy": "risk_aware",
                                                                     "regions": ["us-east-2", "us-west-2"]})
        assert patched.status_code == 200, patched.text
        assert patched.json()["policy"] == "risk_aware" and patched.json()["regions"] == ["us-east-2", "us-west-2"]
        status = (await http.get(f"/api/v1/accounts/{name}/regions/us-west-2/metrics")).json()["actor"]
        assert status["policy"] == "risk_aware" and status["executor"] == "dry_run"
        kept = (await http.get(f"/api/v1/accounts/{name}/regions/us-east-2/metrics")).json()["actor"]
        assert kept["policy"] == "risk_aware"  # reconfigured in place, not restarted: its counters go on
        assert kept["batches"] >= before["batches"] > 0

        assert (await http.delete(f"/api/v1/accounts/{name}")).status_code == 204
        assert (await http.get(f"/api/v1/accounts/{name}")).status_code == 404
        assert (await http.get(f"/api/v1/accounts/{name}/regions/us-east-2/prices")).status_code == 404
        again = await http.post("/api/v1/accounts", json=body)
        assert again.status_code == 409  # a removed name is never handed out again


async def test_account_registration_names_the_bad_field(server: LiveServer, client: httpx.AsyncClient) -> None:
    cases = (
        ({"name": "bad name!", "regions": ["us-east-1"]}, "body.name"),
        ({"name": "ok-name", "regions": []}, "body.regions"),
        ({"name": "ok-name", "regions": ["eu-west-1"]}, "body.regions.0"),  # not replayed by this server
        ({"name": "ok-name", "regions": ["us-east-1", "us-east-1"]}, "body.regions.1"),
        ({"name": "ok-name", "regions": ["us-east-1"], "policy": "yolo"}, "body.policy"),
        ({"name": "ok-name", "regions": ["us-east-1"], "policy_params": {"max_pool_share": 2}},
         "body.policy_params.max_pool_share"),
        ({"name": "ok-name", "regions": ["us-east-1"], "credentials_mode": "aws_assume_role"},
         "body.credentials.role_arn"),
    )
    for body, field in cases:
        response = await client.post("/api/v1/accounts", json=body)
        assert response.status_code == 422, (body, response.text)
        assert field in response.json()["detail"], (field, response.json())


async def test_a_simulation_runs_on_ray_with_progress_and_a_result(client: httpx.AsyncClient) -> None:
    body = {"job": {"job_hours": 2, "deadline_hours": 3}, "policies": ["greedy", "on_demand"], "runs": 50}
    submitted = await client.post("/api/v1/simulations", json=body)
    assert submitted.status_code == 202, submitted.text
    simulation_id = submitted.json()["id"]

    async def status() -> dict:
        return (await client.get(f"/api/v1/simulations/{simulation_id}")).json()

    done = await eventually(status, lambda s: s["status"] in ("succeeded", "failed"), 120)
    assert done["status"] == "succeeded" and done["progress"] == 1.0, done
    result = (await client.get(done["result_path"])).json()
    assert result["runs"] == 50 and set(result["policies"]) == {"greedy", "on_demand"}
    assert result["policies"]["on_demand"]["deadline_misses"] == 0
    assert result["policies"]["greedy"]["mean_cost"] <= result["policies"]["on_demand"]["mean_cost"]
    listed = (await client.get("/api/v1/simulations")).json()["simulations"]
    assert simulation_id in {s["id"] for s in listed}

    impossible = {"job": {"job_hours": 5, "deadline_hours": 4}}
    response = await client.post("/api/v1/simulations", json=impossible)
    assert response.status_code == 422 and "impossible job" in response.json()["detail"]
    assert (await client.get("/api/v1/simulations/sim_nope")).status_code == 404


async def test_health_readiness_and_prometheus_metrics(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        ready = await eventually(lambda: http.get("/readyz"), lambda r: r.status_code == 200, 30)
        assert ready.json()["checks"]["ray"] and ready.json()["checks"]["store"]
        assert (await http.get("/metrics")).status_code == 401  # labels name accounts: admin only
        text = (await http.get("/metrics", headers=bearer_headers(ADMIN_KEY))).text
    for name in ("spot_decisions_total", "spot_tick_latency_seconds", "spot_feed_errors_total", "spot_ws_clients",
                 "spot_ws_queue_depth_max"):
        assert name in text
    assert f'account="{server.runtime.settings.account}"' in text


async def test_websocket_streams_decisions_over_a_real_socket(server: LiveServer, client: httpx.AsyncClient) -> None:
    token = (await client.post("/api/v1/ws-tokens")).json()["token"]
    account = server.runtime.settings.account
    received: list[dict] = []
    async with websockets.connect(f"{server.ws_url}?token={token}") as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert hello["type"] == "hello" and account in hello["accounts"]
        await ws.send(json.dumps({"type": "subscribe", "account": account}))
        deadline = time.monotonic() + 60
        while len(received) < 5 and time.monotonic() < deadline:
            message = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if message["type"] == "decision":
                received.append(message)
    assert len(received) >= 5
    by_stream: dict[str, list[int]] = {}
    for message in received:
        assert message["seq"] == message["data"]["seq"] and message["data"]["account"] == account
        by_stream.setdefault(message["stream"], []).append(message["seq"])
    for seqs in by_stream.values():
        assert seqs == sorted(set(seqs))  # strictly increasing within a stream, no duplicates


def test_serve_refuses_a_bad_prices_file_with_exit_code_2(tmp_path) -> None:
    bad = tmp_path / "prices.csv"
    bad.write_text("availability_zone,instance_type,product_description,spot_price,timestamp\n"
                   "us-east-1a,m5.large,Linux/UNIX,0.05,2024-01-01T00:00:00Z\n"
                   "us-east-1b,m5.large,Linux/UNIX,abc,2024-01-01T00:00:00Z\n")
    result = CliRunner().invoke(cli_app, ["serve", "--prices", str(bad)])
    assert result.exit_code == 2
    assert "prices.csv" in result.output and "line 3" in result.output and "spot_price" in result.output


def test_serve_refuses_an_unknown_policy() -> None:
    result = CliRunner().invoke(cli_app, ["serve", "--policy", "yolo"])
    assert result.exit_code == 2
    assert "risk_aware" in result.output
