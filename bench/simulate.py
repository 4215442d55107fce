"""Speed of the bulk simulator: simulated job-ticks (deadline) and instance-ticks (fleet) per second per
core, and the speed-up of the Ray fan-out from 1 to 2 workers.

* deadline: the 1,000 published Can't-Be-Late windows tiled to 100,000 runs (48 h job, 52 h deadline),
  each policy's kernel in one process (one core); a job-tick is one run advancing one tick before it
  finishes (so ticks of finished runs are not counted). The risk-aware tables are solved before timing.
* fleet: 40 fleets of 10 p3.2xlarge instances (catalog-compatible pools only), constant prices, driving the
  live ``risk_aware`` and ``reactive`` policies: 1,500 ticks of the 2022 bundle (600 s ticks) and 3,000 of
  the 2023 bundle (195 s ticks), with the policy consulted every tick and every 5 minutes (the default;
  interruptions always at once; a 5-minute interval is one tick at 600 s). An instance-tick is one
  instance for one tick.
* Ray: the same 100,000-run deadline batch (greedy, uniform_progress, risk_aware) through ``actors.simulation``
  with a local Ray of 1 CPU, then of 2 CPUs, the same 8 shards both times (Ray started and warmed up
  before timing).

Writes bench/results/simulate.json and prints one line. Run: ``.venv/bin/python bench/simulate.py``;
``--fleet-only`` runs the fleet part alone and writes bench/results/simulate_fleet.json.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "traces"
WINDOWS = DATA / "cant_be_late_windows_us-west-2a_v100_1.json.gz"
BUNDLE_2022 = DATA / "availability_aws_2022-10-26.json.gz"
BUNDLE_2023 = DATA / "availability_aws_2023-02-15.json.gz"


def _deadline_batch(copies: int) -> tuple[Any, Any, Any]:
    from engine.sim.clock import DeadlineJob, WorkClock
    from engine.sim.runs import DeadlineRuns, runs_from_windows
    from engine.traces import read_windows

    job = DeadlineJob(48, 52, 0.1, 0.9731, 3.06)
    windows = read_windows(WINDOWS)
    clock = WorkClock.of(job, windows.tick_s)
    base = runs_from_windows(windows.available, windows.tick_s, clock)
    available = np.ascontiguousarray(np.tile(base.available, (1, copies)))
    labels = tuple(f"copy {c} {label}" for c in range(copies) for label in base.labels)
    return job, clock, DeadlineRuns(windows.tick_s, available, labels)


def bench_deadline() -> dict[str, Any]:
    from engine.sim.backtest import deadline_policy
    from engine.sim.deadline import simulate_deadline

    job, clock, runs = _deadline_batch(100)
    warm = deadline_policy("risk_aware")
    assert warm is not None
    warm.start(job, clock, 1, None)  # solves (and caches) the decision tables outside the timing
    out: dict[str, Any] = {"runs": runs.n_runs}
    for name in ("on_demand", "greedy", "uniform_progress", "risk_aware"):
        policy = deadline_policy(name)
        assert policy is not None
        t0 = time.perf_counter()
        outcome = simulate_deadline(job, clock, runs.available, policy)
        elapsed = time.perf_counter() - t0
        job_ticks = int(outcome.finish_tick.sum())
        out[name] = {
            "seconds": round(elapsed, 3),
            "job_ticks": job_ticks,
            "M_job_ticks_per_s_per_core": round(job_ticks / elapsed / 1e6, 1),
        }
    return out


def bench_fleet() -> dict[str, Any]:
    from engine.learning.series import risk_series
    from engine.policy import make_policy
    from engine.sim.fleet import DEFAULT_DECISION_INTERVAL_S, FleetMarket, simulate_fleet
    from engine.traces import load_availability

    out: dict[str, Any] = {}
    for label, path, n_ticks in (("2022", BUNDLE_2022, 1500), ("2023", BUNDLE_2023, 3000)):
        trace = load_availability(path)
        market = FleetMarket.of(
            trace, risk_series(trace), 3600.0, spot_price=0.9, on_demand_price=3.06, instance_type="p3.2xlarge"
        )
        fleet_size = 10
        starts = np.random.default_rng(0).integers(0, trace.n_ticks - n_ticks, 40)
        part: dict[str, Any] = {"runs": len(starts), "fleet_size": fleet_size, "ticks": n_ticks, "tick_s": trace.tick_s}
        for interval_s in (0.0, DEFAULT_DECISION_INTERVAL_S):
            for name in ("risk_aware", "reactive"):
                t0 = time.perf_counter()
                simulate_fleet(market, make_policy(name), starts, n_ticks, fleet_size, interval_s)
                elapsed = time.perf_counter() - t0
                instance_ticks = len(starts) * fleet_size * n_ticks
                part[f"{name}_every_{interval_s:g}s"] = {
                    "seconds": round(elapsed, 3),
                    "M_instance_ticks_per_s_per_core": round(instance_ticks / elapsed / 1e6, 3),
                }
        out[label] = part
    return out


def bench_ray() -> dict[str, Any]:
    import ray

    from actors.simulation import RayTarget, connect, simulate_deadline_runs

    job, _, runs = _deadline_batch(100)
    policies = ["greedy", "uniform_progress", "risk_aware"]
    seconds: dict[int, float] = {}
    for cpus in (1, 2):
        connect(RayTarget(num_cpus=cpus))
        simulate_deadline_runs(job, runs.shard(0, 8000), policies, n_shards=8)  # warm every worker
        t0 = time.perf_counter()
        simulate_deadline_runs(job, runs, policies, n_shards=8)
        seconds[cpus] = time.perf_counter() - t0
        ray.shutdown()
    return {
        "runs": runs.n_runs,
        "policies": policies,
        "seconds_1_worker": round(seconds[1], 3),
        "seconds_2_workers": round(seconds[2], 3),
        "speedup": round(seconds[1] / seconds[2], 2),
        "cores_on_machine": os.cpu_count(),
    }


def main_fleet_only() -> None:
    """``--fleet-only``: the fleet part alone (seconds, not minutes), to bench/results/simulate_fleet.json."""
    fleet = bench_fleet()
    out = ROOT / "bench" / "results" / "simulate_fleet.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"fleet": fleet, "load_average_1m_at_end": round(os.getloadavg()[0], 2)}, indent=2)
                   + "\n", encoding="utf-8")
    print("simulate fleet: M instance-ticks/s/core " + "; ".join(
        f"{y} " + ", ".join(f"{k.removesuffix('s')} {v['M_instance_ticks_per_s_per_core']}"
                            for k, v in fleet[y].items() if isinstance(v, dict))
        for y in ("2022", "2023")
    ))


def main() -> None:
    if "--fleet-only" in sys.argv[1:]:
        main_fleet_only()
        return
    result = {"deadline": bench_deadline(), "fleet": bench_fleet(), "ray": bench_ray()}
    out = ROOT / "bench" / "results" / "simulate.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    d, f, r = result["deadline"], result["fleet"], result["ray"]
    print(
        "simulate: deadline M job-ticks/s/core "
        + ", ".join(
            f"{p} {d[p]['M_job_ticks_per_s_per_core']}"
            for p in ("on_demand", "greedy", "uniform_progress", "risk_aware")
        )
        + "; fleet M instance-ticks/s/core risk_aware "
        + ", ".join(
            f"{y} every tick {f[y]['risk_aware_every_0s']['M_instance_ticks_per_s_per_core']}"
            f" / 5 min {f[y]['risk_aware_every_300s']['M_instance_ticks_per_s_per_core']}"
            for y in ("2022", "2023")
        )
        + f"; Ray 1->2 workers x{r['speedup']}"
    )


if __name__ == "__main__":
    main()
