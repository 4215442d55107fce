"""The evaluation report, the `evaluate` command and the price forecaster's guard against persistence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from api.cli import app
from engine.learning.evaluate import evaluate, online_thresholds
from engine.learning.price import PriceForecaster
from engine.market import MarketTrace
from engine.traces import load_market
from engine.types import Pool

START_S = 1_700_000_000.0


def make_trace(n_ticks: int = 500, n_pools: int = 3, with_prices: bool = True, seed: int = 0) -> MarketTrace:
    rng = np.random.default_rng(seed)
    available = np.ones((n_ticks, n_pools), dtype=bool)
    for t in range(1, n_ticks):
        available[t] = available[t - 1] ^ (rng.random(n_pools) < 0.08)
    price = 0.9 + np.cumsum(rng.normal(0, 0.002, (n_ticks, n_pools)), axis=0) if with_prices else None
    pools = tuple(Pool("p3.2xlarge", f"us-west-2{chr(ord('a') + i)}") for i in range(n_pools))
    od = np.full(n_pools, 3.06) if with_prices else None
    return MarketTrace(pools, START_S, 600.0, available, price, od)


def test_report_has_every_field_the_issue_asks_for() -> None:
    report = evaluate(make_trace(), horizon_s=3600.0)
    assert report["horizon_minutes"] == 60
    risk = report["risk"]
    assert risk["pools"] == 3
    assert risk["samples"] > 0
    assert 0 < risk["base_rate"] < 1
    for name in ("model", "persistence", "recent_unavailability"):
        assert set(risk[name]) >= {"log_loss", "brier", "auc", "f1", "threshold"}
    assert set(risk["base_rate_model"]) == {"log_loss", "brier"}
    assert set(risk["per_pool"]) == {f"p3.2xlarge@us-west-2{z}" for z in "abc"}
    for horizon in ("1h", "24h", "168h"):
        assert set(report["price"][horizon]) >= {"mae", "persistence_mae", "skill"}
    json.dumps(report)  # JSON-ready: no numpy scalars, no NaN


def test_no_price_section_without_prices() -> None:
    assert "price" not in evaluate(make_trace(with_prices=False))


def test_online_threshold_uses_only_matured_pairs() -> None:
    p = np.tile(np.linspace(0.0, 1.0, 50)[:, None], (1, 2))
    y = (p > 0.5).astype(float)
    ok = np.ones_like(p, dtype=bool)
    thresholds = online_thresholds(p, y, ok, delay=5)
    assert np.all(thresholds[:5] == 0.5)  # nothing has matured yet
    assert thresholds[-1] == pytest.approx(0.51, abs=0.03)


def test_price_forecaster_serves_persistence_when_the_correction_has_not_proven_itself() -> None:
    forecaster = PriceForecaster(horizons_s=(3600.0,))
    for t in range(50):
        forecaster.observe(START_S + t * 600.0, {"a@us-east-1a": 1.0 + 0.001 * (t % 2)})
    assert forecaster.predict(START_S + 50 * 600.0, ["a@us-east-1a"], 3600.0)[0] == pytest.approx(
        1.001
    )  # the last price
    assert np.isnan(forecaster.predict(0.0, ["unknown@us-east-1a"], 3600.0)[0])
    with pytest.raises(ValueError, match="not one of"):
        forecaster.predict(0.0, ["a@us-east-1a"], 60.0)


def test_price_forecaster_learns_a_steady_trend_and_beats_persistence() -> None:
    forecaster = PriceForecaster(horizons_s=(3600.0,))
    for t in range(3000):
        forecaster.observe(START_S + t * 600.0, {"a@us-east-1a": float(np.exp(0.001 * t))})
    skill = forecaster.metrics()["1h"]["skill"]
    assert skill > 0.2


@pytest.mark.parametrize("seed", range(5))
def test_price_skill_is_never_negative_on_random_walks(seed: int) -> None:
    rng = np.random.default_rng(seed)
    forecaster = PriceForecaster(horizons_s=(3600.0, 6 * 3600.0))
    price = np.exp(np.cumsum(rng.normal(0, 0.01, (2000, 3)), axis=0))
    for t in range(2000):
        forecaster.observe(START_S + t * 600.0, {f"p{i}@us-east-1a": float(price[t, i]) for i in range(3)})
    for m in forecaster.metrics().values():
        assert m["skill"] >= -0.005


def test_cli_writes_the_report(tmp_path: Path, shared_data: Path) -> None:
    out = tmp_path / "report.json"
    result = CliRunner().invoke(
        app,
        ["evaluate", "--availability", str(shared_data / "traces/preemption_1-node.json.gz"),
         "--select", "gcp-04-30-2023/", "--horizon-minutes", "30", "--json", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["horizon_minutes"] == 30
    assert report["risk"]["pools"] == 4
    assert "persistence" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--availability", "/no/such/file.json"], "no such file"),
        (["--availability", "TRACES/preemption_1-node.json.gz"], "different gap_seconds"),
        (["--availability", "TRACES/availability_aws_2022-10-26.json.gz", "--horizon-minutes", "0"], "positive"),
        (["--availability", "TRACES/availability_aws_2022-10-26.json.gz", "--convention", "sideways"], "convention"),
    ],
)
def test_cli_bad_input_exits_2_with_a_message(tmp_path: Path, shared_data: Path, args: list[str], message: str) -> None:
    args = [a.replace("TRACES", str(shared_data / "traces")) for a in args]
    result = CliRunner().invoke(app, ["evaluate", *args, "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 2
    assert message in result.output.replace("\n", " ")
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_model_beats_calibrated_persistence_on_the_2023_set(shared_data: Path) -> None:
    traces = shared_data / "traces"
    trace = load_market(traces / "availability_aws_2023-02-15.json.gz", traces / "prices_p3.2xlarge_2023-02-15.json.gz")
    report = evaluate(trace)
    risk = report["risk"]
    model, persistence, recent = risk["model"], risk["persistence"], risk["recent_unavailability"]
    assert model["log_loss"] <= 0.95 * persistence["log_loss"]
    assert model["brier"] <= 0.95 * persistence["brier"]
    assert model["auc"] > persistence["auc"]
    assert model["f1"] > persistence["f1"]
    assert model["auc"] >= recent["auc"]
    assert report["price"]["1h"]["skill"] >= 0.0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("group", "log_loss_gain", "must_win_f1", "must_win_auc"),
    [
        # What the model honestly reaches on the preemption groups read as counts of available
        # instances (the source's convention): p3 and r5 beat persistence by >= 5% in log-loss and
        # Brier and in AUC; on p3 its F1 is still just short of persistence's. GCP (two days, one
        # pool with four outages) is a 3-4% log-loss gain and loses in AUC and F1.
        ("aws-04-22-2023/", 0.05, False, True),
        ("aws-04-19-2023/", 0.05, True, True),
        ("gcp-04-30-2023/", 0.03, False, False),
    ],
)
def test_model_on_the_preemption_groups_read_as_available_counts(
    shared_data: Path, group: str, log_loss_gain: float, must_win_f1: bool, must_win_auc: bool
) -> None:
    trace = load_market(
        shared_data / "traces" / "preemption_1-node.json.gz", None, convention="available", select=group
    )
    risk = evaluate(trace)["risk"]
    model, persistence, recent = risk["model"], risk["persistence"], risk["recent_unavailability"]
    assert model["log_loss"] <= (1.0 - log_loss_gain) * persistence["log_loss"]
    assert model["brier"] <= 0.95 * persistence["brier"]
    assert model["log_loss"] < recent["log_loss"]
    if must_win_auc:
        assert model["auc"] > persistence["auc"]
        assert model["auc"] >= recent["auc"]
    if must_win_f1:
        assert model["f1"] > persistence["f1"]
    # The per-state alarm starts as persistence's rule, so even where it loses it stays close to it.
    assert model["f1"] >= persistence["f1"] - 0.1
