"""The Ray fan-out: shards land on workers and merge back, in run order, to what one process computes."""

from __future__ import annotations

import numpy as np
import pytest

from actors.simulation import shard_bounds, simulate_deadline_runs
from engine.sim.backtest import run_deadline_shard
from engine.sim.clock import DeadlineJob, WorkClock
from engine.sim.runs import runs_from_windows


def test_shards_cover_every_run_once() -> None:
    for n_runs in (1, 31, 100, 1000):
        bounds = shard_bounds(n_runs, 2, min_runs=8)
        covered = [i for a, b in bounds for i in range(a, b)]
        assert covered == list(range(n_runs))


@pytest.mark.ray
def test_fan_out_matches_a_single_process(ray_session: object) -> None:
    job = DeadlineJob(2, 3, 0.1, 1.0, 3.0)
    clock = WorkClock.of(job, 600)
    rng = np.random.default_rng(1)
    windows = list(rng.random((150, clock.horizon_ticks)) < 0.7)
    runs = runs_from_windows(windows, 600.0, clock)
    policies = ["greedy", "uniform_progress", "optimal"]
    fanned = simulate_deadline_runs(job, runs, policies)
    local = run_deadline_shard(job, runs, policies)
    for name in policies:
        np.testing.assert_allclose(fanned[name].cost_usd, local[name].cost_usd)
        np.testing.assert_array_equal(fanned[name].finish_tick, local[name].finish_tick)


@pytest.mark.ray
def test_fleet_fan_out_matches_a_single_process(ray_session: object) -> None:
    from actors.simulation import simulate_fleet_runs
    from engine.market import MarketTrace
    from engine.sim.backtest import run_fleet_shard
    from engine.sim.fleet import FleetMarket
    from engine.types import Pool

    rng = np.random.default_rng(2)
    avail = rng.random((120, 3)) < 0.85
    pools = tuple(Pool("m5.large", f"us-east-1{z}") for z in "abc")
    trace = MarketTrace(pools, 0.0, 600.0, avail, np.tile([0.3, 0.35, 0.4], (120, 1)), np.full(3, 1.0))
    market = FleetMarket.of(trace, np.where(avail, 0.05, 1.0), 3600.0)
    starts = rng.integers(0, 60, 6)
    fanned = simulate_fleet_runs(market, ["risk_aware", "reactive"], starts, 60, 3)
    local = run_fleet_shard(market, ["risk_aware", "reactive"], starts, 60, 3)
    for name in ("risk_aware", "reactive"):
        np.testing.assert_allclose(fanned[name].cost_usd, local[name].cost_usd)
        np.testing.assert_array_equal(fanned[name].interruptions, local[name].interruptions)


@pytest.mark.ray
def test_progress_is_reported_as_each_shard_lands_from_a_thread_or_an_event_loop(ray_session: object) -> None:
    import asyncio

    from actors.simulation import merge_deadline, submit_deadline

    job = DeadlineJob(2, 3, 0.1, 1.0, 3.0)
    clock = WorkClock.of(job, 600)
    windows = list(np.random.default_rng(3).random((40, clock.horizon_ticks)) < 0.6)
    runs = runs_from_windows(windows, 600.0, clock)
    seen: list[tuple[int, int]] = []
    fanned = simulate_deadline_runs(job, runs, ["greedy"], on_progress=lambda d, t: seen.append((d, t)),
                                    n_shards=5)
    assert seen == [(k, 5) for k in range(1, 6)]

    seen_async: list[tuple[int, int]] = []
    shards = submit_deadline(job, runs, ["greedy"], n_shards=5)
    parts = asyncio.run(shards.wait_async(lambda d, t: seen_async.append((d, t))))
    assert seen_async == seen
    np.testing.assert_allclose(merge_deadline(parts, ["greedy"])["greedy"].cost_usd, fanned["greedy"].cost_usd)
