"""Speed of the learning pipeline: microseconds per pool update and per fleet decision.

* update: one tick of the whole learning pipeline (RiskModel.observe_rows: mature labels, learn, update
  features, predict and queue; plus PriceForecaster.observe_array) over 200 pools, divided by the pools;
* decision: RiskModel.predict + PriceForecaster.predict for 200 pools and the ``risk_aware`` policy's
  vectorized decide for a fleet of 1,000 instances, divided by the instances.

Writes bench/results/learning.json and prints one line. Run: ``.venv/bin/python bench/learning.py``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from engine.learning.price import PriceForecaster
from engine.learning.risk import RiskModel
from engine.policy import make_policy
from engine.policy.base import FleetView, MarketView
from engine.types import Pool

N_POOLS = 200
N_INSTANCES = 1000
TICK_S = 195.0
WARMUP_TICKS = 400  # longer than the 1 h label delay, so learning runs in every timed tick
TIMED_TICKS = 1000
DECISIONS = 200
START_S = 1_700_000_000.0


def _percentiles(samples_us: list[float]) -> dict[str, float]:
    arr = np.asarray(samples_us)
    return {"p50": round(float(np.percentile(arr, 50)), 3), "p99": round(float(np.percentile(arr, 99)), 3)}


def bench_update(rng: np.random.Generator) -> tuple[dict[str, float], RiskModel, PriceForecaster, list[str]]:
    keys = [f"p3.2xlarge@zone-{i:03d}a" for i in range(N_POOLS)]
    risk = RiskModel()
    prices = PriceForecaster()
    rows = risk.rows_of(keys)
    state = rng.random(N_POOLS) < 0.3
    price = np.full(N_POOLS, 0.9)
    per_pool_us: list[float] = []
    for t in range(WARMUP_TICKS + TIMED_TICKS):
        state ^= rng.random(N_POOLS) < 0.02
        price = np.where(rng.random(N_POOLS) < 0.01, price * np.exp(rng.normal(0, 0.02, N_POOLS)), price)
        now = START_S + t * TICK_S
        extras = {"price_ratio": price / 3.06}
        start = time.perf_counter()
        risk.observe_rows(now, rows, state.astype(np.float64), extras)
        prices.observe_array(now, keys, price)
        elapsed_us = (time.perf_counter() - start) * 1e6
        if t >= WARMUP_TICKS:
            per_pool_us.append(elapsed_us / N_POOLS)
    return _percentiles(per_pool_us), risk, prices, keys


def bench_decision(
    rng: np.random.Generator, risk: RiskModel, prices: PriceForecaster, keys: list[str]
) -> dict[str, float]:
    pools = tuple(Pool.from_key(k) for k in keys)
    policy = make_policy("risk_aware")
    now = START_S + (WARMUP_TICKS + TIMED_TICKS) * TICK_S
    on_demand = np.full(N_POOLS, 3.06)
    fleet = FleetView(
        market_row=np.zeros(N_INSTANCES, dtype=np.intp),
        fleet=rng.integers(0, 10, N_INSTANCES).astype(np.intp),
        pool=rng.integers(0, N_POOLS, N_INSTANCES).astype(np.intp),
        on_demand=np.zeros(N_INSTANCES, dtype=bool),
        interrupted=np.zeros(N_INSTANCES, dtype=bool),
        compatible=rng.random((N_INSTANCES, N_POOLS)) < 0.5,
        on_demand_price=np.full(N_INSTANCES, 3.06),
        last_move_s=np.full(N_INSTANCES, now - 7200.0),
        spot_better_since_s=np.full(N_INSTANCES, np.nan),
        budget_left=np.full(10, 50, dtype=np.intp),
    )
    per_decision_us: list[float] = []
    learning_share: list[float] = []
    for _ in range(DECISIONS):
        start = time.perf_counter()
        risk_now = risk.predict(now, keys)
        price_now = prices.predict(now, keys, 3600.0)
        mid = time.perf_counter()
        market = MarketView(
            pools=pools, spot_price=price_now[None, :], risk=risk_now[None, :],
            available=(risk_now < 0.99)[None, :], capacity_score=(1.0 - risk_now)[None, :],
            on_demand_price=on_demand,
        )  # fmt: skip
        policy.decide(market, fleet, now)
        end = time.perf_counter()
        per_decision_us.append((end - start) * 1e6 / N_INSTANCES)
        learning_share.append((mid - start) / (end - start))
    out = _percentiles(per_decision_us)
    out["predict_share"] = round(float(np.mean(learning_share)), 3)
    return out


def main() -> None:
    rng = np.random.default_rng(0)
    update, risk, prices, keys = bench_update(rng)
    decision = bench_decision(rng, risk, prices, keys)
    result = {
        "pools": N_POOLS,
        "instances": N_INSTANCES,
        "update_us_per_pool": update,
        "decision_us_per_instance": decision,
        "target_update_us_per_pool_p50": 50.0,
    }
    out = Path(__file__).resolve().parent / "results" / "learning.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        f"learning: update {update['p50']:.2f} us/pool p50 ({update['p99']:.2f} p99) over {N_POOLS} pools; "
        f"decision {decision['p50']:.2f} us/instance p50 ({decision['p99']:.2f} p99) for {N_INSTANCES} "
        f"instances x {N_POOLS} pools (risk_aware policy incl. predict)"
    )


if __name__ == "__main__":
    main()
