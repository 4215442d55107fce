"""CPU cost of one live tick of the decision engine: ``RegionEngine.observe`` then ``decide``.

The workload of one account-region in ``bench/latency.py``, without the server around it: 100 spot pools
of types compatible with ``m5.large`` in us-east-1, one instance, the risk model and the price forecaster
attached as ``actors/region.py`` attaches them. Every tick carries a full batch of 100 prices (a random
walk) and availability in which the instance's pool is taken back, so every tick forces a replacement,
which is then applied as the actor's executor would. Ticks are a minute apart, so the risk model's
one-hour labels mature and it learns in every timed tick. Both ``lowest_price`` and ``risk_aware``.

Writes bench/results/engine_tick.json and prints one line. Run: ``.venv/bin/python bench/engine_tick.py``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from workload import region_pools

from engine.catalog import default_catalog
from engine.learning.price import PriceForecaster
from engine.learning.risk import RiskModel
from engine.policy import make_policy
from engine.region import RegionEngine
from engine.types import Action, AvailabilityPoint, Instance, Lifecycle, Pool, PricePoint

REGION = "us-east-1"
POLICIES = ("lowest_price", "risk_aware")
WARMUP_TICKS = 20
TIMED_TICKS = 300
TICK_S = 60.0  # simulated time between ticks, as in bench/latency.py
START_S = 1_700_000_000.0
TARGET_TOTAL_MS = 2.0


def build_engine(policy: str, pools: list[tuple[Pool, float]]) -> RegionEngine:
    """A region engine wired as the live actor wires it, with the pools and one spot instance."""
    catalog = default_catalog()

    def compatible(instance_type: str) -> tuple[str, ...]:
        if instance_type not in catalog:
            return (instance_type,)
        return tuple(catalog.compatible_types(instance_type, REGION))

    engine = RegionEngine(
        REGION,
        policy=make_policy(policy),
        risk_model=RiskModel(horizon_s=3600.0, seed=0),
        price_model=PriceForecaster(),
        compatible_types=compatible,
    )
    for pool, on_demand in pools:
        engine.add_pool(pool, on_demand)
    engine.upsert_instance(Instance("i-bench", pools[0][0], Lifecycle.SPOT, START_S), START_S)
    return engine


def run(policy: str, pools: list[tuple[Pool, float]], seed: int = 0) -> dict[str, list[float]]:
    """Time observe and decide of every timed tick (milliseconds)."""
    rng = np.random.default_rng(seed)
    engine = build_engine(policy, pools)
    price = np.array([od * rng.uniform(0.25, 0.45) for _, od in pools])
    current = pools[0][0]
    samples: dict[str, list[float]] = {"observe": [], "decide": [], "total": []}
    for tick in range(WARMUP_TICKS + TIMED_TICKS):
        now_s = START_S + TICK_S * (tick + 1)
        price *= np.exp(rng.normal(0.0, 0.002, price.size))
        prices = [PricePoint(pool, float(p), now_s) for (pool, _), p in zip(pools, price, strict=True)]
        availability = [AvailabilityPoint(pool, pool != current, now_s) for pool, _ in pools]
        t0 = time.perf_counter()
        engine.observe(prices, availability, now_s)
        t1 = time.perf_counter()
        decisions = engine.decide(now_s)
        t2 = time.perf_counter()
        for decision in decisions:
            if decision.action is not Action.KEEP:
                engine.apply(decision, now_s)
                current = decision.to_pool
        if tick >= WARMUP_TICKS:
            samples["observe"].append((t1 - t0) * 1e3)
            samples["decide"].append((t2 - t1) * 1e3)
            samples["total"].append((t2 - t0) * 1e3)
    return samples


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    arr = np.asarray(samples_ms)
    return {"p50": round(float(np.percentile(arr, 50)), 3), "p99": round(float(np.percentile(arr, 99)), 3)}


def main() -> None:
    pools = region_pools(REGION)
    result: dict[str, Any] = {
        "region": REGION,
        "pools": len(pools),
        "instances": 1,
        "warmup_ticks": WARMUP_TICKS,
        "timed_ticks": TIMED_TICKS,
        "target_total_ms": TARGET_TOTAL_MS,
    }
    for policy in POLICIES:
        samples = run(policy, pools)
        result[policy] = {name: _percentiles(values) for name, values in samples.items()}
    result["cpus"] = os.cpu_count()
    result["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    out = Path(__file__).resolve().parent / "results" / "engine_tick.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    shown = "; ".join(
        f"{policy} observe {result[policy]['observe']['p50']} + decide {result[policy]['decide']['p50']} = "
        f"{result[policy]['total']['p50']} ms p50 ({result[policy]['total']['p99']} p99)"
        for policy in POLICIES
    )
    print(f"engine tick: {shown}; {len(pools)} pools, 1 instance, target <= {TARGET_TOTAL_MS} ms")


if __name__ == "__main__":
    main()
