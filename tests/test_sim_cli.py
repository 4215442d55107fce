"""`spot-optimizer simulate`: the CLI end to end on a real local Ray, and its input errors (exit 2)."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app

runner = CliRunner()
JOB = [
    "--job-hours",
    "2",
    "--deadline-hours",
    "3",
    "--restart-overhead-hours",
    "0.1",
    "--spot-price",
    "1",
    "--on-demand-price",
    "3",
]


def write_trace(path: Path, data: list[object], gap: object = 600, convention: str | None = None) -> Path:
    doc: dict[str, object] = {"metadata": {"gap_seconds": gap}, "data": data}
    if convention:
        doc["convention"] = convention
    path.write_text(json.dumps(doc))
    return path


def deadline(*args: str) -> object:
    return runner.invoke(app, ["simulate", "deadline", *args])


def test_impossible_job_is_a_clear_error(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "us-west-2a_v100_1.json", [1] * 100, convention="available")
    result = deadline(
        "--trace",
        str(trace),
        "--job-hours",
        "5",
        "--deadline-hours",
        "4",
        "--restart-overhead-hours",
        "0.1",
        "--spot-price",
        "1",
        "--on-demand-price",
        "3",
        "--json",
        str(tmp_path / "o.json"),
    )
    assert result.exit_code == 2
    assert "impossible job" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("data", "gap", "expected"),
    [
        ([1, 2, "x", 1], 600, r"data\[2\] = 'x' is not a number"),
        ([1, -1, 1], 600, r"data\[1\] = -1 is negative"),
        ([1, 1, 1], None, "gap_seconds"),
    ],
)
def test_bad_trace_names_the_file_and_position(tmp_path: Path, data: list[object], gap: object, expected: str) -> None:
    trace = write_trace(tmp_path / "us-west-2a_v100_1.json", data, gap=gap, convention="available")
    result = deadline("--trace", str(trace), *JOB, "--json", str(tmp_path / "o.json"))
    assert result.exit_code == 2
    assert "us-west-2a_v100_1.json" in result.output
    assert re.search(expected, " ".join(result.output.split()))


def test_trace_without_convention_asks_for_the_flag(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "us-west-2a_v100_1.json", [1] * 100)
    result = deadline("--trace", str(trace), *JOB, "--json", str(tmp_path / "o.json"))
    assert result.exit_code == 2
    assert "--convention" in result.output


def test_unknown_policy_is_rejected(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "us-west-2a_v100_1.json", [1] * 100, convention="available")
    result = deadline("--trace", str(trace), *JOB, "--policy", "magic", "--json", str(tmp_path / "o.json"))
    assert result.exit_code == 2
    assert "unknown deadline policy 'magic'" in result.output


@pytest.mark.ray
def test_deadline_cli_writes_the_report_and_plot(tmp_path: Path, ray_session: object) -> None:
    windows = {
        "convention": "preempted",
        "windows": [{"metadata": {"gap_seconds": 600}, "data": [0] * 10 + [1] * 5 + [0] * 30} for _ in range(3)],
    }
    bundle = tmp_path / "w.json.gz"
    with gzip.open(bundle, "wt") as fh:
        json.dump(windows, fh)
    out, png = tmp_path / "r.json", tmp_path / "r.png"
    result = deadline(
        "--trace",
        str(bundle),
        *JOB,
        "--policy",
        "on_demand",
        "--policy",
        "greedy",
        "--policy",
        "optimal",
        "--json",
        str(out),
        "--plot",
        str(png),
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["workload"] == "deadline"
    assert report["runs"] == 3
    assert set(report["policies"]) == {"on_demand", "greedy", "optimal"}
    od = report["policies"]["on_demand"]
    assert od["mean_cost"] == pytest.approx(13 * 3 / 6)  # 2 h + 0.1 h overhead -> 13 ticks of 10 min
    assert od["deadline_misses"] == 0
    assert report["policies"]["optimal"]["mean_cost"] <= report["policies"]["greedy"]["mean_cost"]
    assert png.stat().st_size > 1000


@pytest.mark.ray
def test_single_trace_runs_start_at_seeded_random_ticks(tmp_path: Path, ray_session: object) -> None:
    trace = write_trace(tmp_path / "us-west-2a_v100_1.json", ([1] * 7 + [0] * 3) * 20, convention="available")
    outs = []
    for _ in range(2):
        out = tmp_path / "r.json"
        result = deadline(
            "--trace",
            str(trace),
            *JOB,
            "--runs",
            "40",
            "--seed",
            "3",
            "--policy",
            "greedy",
            "--policy",
            "risk_aware",
            "--json",
            str(out),
        )
        assert result.exit_code == 0, result.output
        outs.append(json.loads(out.read_text()))
    assert outs[0] == outs[1]
    assert outs[0]["runs"] == 40
    assert outs[0]["policies"]["risk_aware"]["deadline_misses"] == 0


@pytest.mark.ray
def test_fleet_cli_writes_the_report(tmp_path: Path, ray_session: object) -> None:
    bundle = {
        "convention": "available",
        "traces": {
            "us-west-2a_v100_1.json": {"metadata": {"gap_seconds": 600}, "data": ([1] * 9 + [0]) * 10},
            "us-west-2b_v100_1.json": {"metadata": {"gap_seconds": 600}, "data": [1] * 100},
        },
    }
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    out = tmp_path / "f.json"
    result = runner.invoke(
        app,
        [
            "simulate",
            "fleet",
            "--availability",
            str(path),
            "--spot-price",
            "0.9",
            "--on-demand-price",
            "3.06",
            "--fleet-size",
            "2",
            "--runs",
            "3",
            "--hours",
            "5",
            "--policy",
            "on_demand",
            "--policy",
            "reactive",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["workload"] == "fleet"
    assert report["runs"] == 3
    od = report["policies"]["on_demand"]
    assert od["total_cost"] == pytest.approx(od["on_demand_cost"])
    assert od["on_demand_cost"] == pytest.approx(3 * 2 * 5 * 3.06)
    assert report["policies"]["reactive"]["savings_pct"] > 50


def test_fleet_without_prices_is_a_clear_error(tmp_path: Path) -> None:
    path = write_trace(tmp_path / "us-west-2a_v100_1.json", [1] * 50, convention="available")
    result = runner.invoke(
        app,
        [
            "simulate",
            "fleet",
            "--availability",
            str(path),
            "--on-demand-price",
            "3",
            "--json",
            str(tmp_path / "f.json"),
        ],
    )
    assert result.exit_code == 2
    assert "no spot prices" in " ".join(result.output.split())


def test_fleet_hours_beyond_the_trace_name_the_option(tmp_path: Path) -> None:
    path = write_trace(tmp_path / "us-west-2a_v100_1.json", [1] * 50, convention="available")
    result = runner.invoke(app, ["simulate", "fleet", "--availability", str(path), "--spot-price", "1",
                                 "--on-demand-price", "3", "--hours", "1000", "--json", str(tmp_path / "f.json")])
    assert result.exit_code == 2
    assert "--hours: must be within the trace's 8.3 h, got 1000.0" in " ".join(result.output.split())
