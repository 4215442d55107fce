"""Deadline jobs with long restarts: how much of the greedy-to-optimal gap ``risk_aware`` closes.

On the 1,000 published Can't-Be-Late windows (48 h job, spot $0.9731/h, on-demand $3.06/h), for every
deadline (52 h, 70 h), restart overhead (0.05, 0.1, 0.2 h) and launch delay (0 and 1 tick): the mean cost
of greedy, uniform progress, risk_aware and the omniscient optimum (which pays the same restarts and
delay), the share of the gap from greedy to the optimum each online policy closes, and missed deadlines.
Every policy runs in this process (one core); the risk-aware tables are solved inside the timing.

Writes bench/results/deadline.json and prints one line. Run: ``.venv/bin/python bench/deadline.py``
(``--deadlines 70 --overheads 0.2 --delays 0,1`` for a subset).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WINDOWS = ROOT.parent / "shared" / "data" / "traces" / "cant_be_late_windows_us-west-2a_v100_1.json.gz"
POLICIES = ("greedy", "uniform_progress", "risk_aware", "optimal")


def gap_closed(greedy: float, policy: float, optimal: float) -> float:
    """Share of the greedy-to-optimal gap a policy closes (1.0: as cheap as the optimum)."""
    return (greedy - policy) / (greedy - optimal) if greedy > optimal else 1.0


def run_case(windows: Any, deadline_hours: float, overhead_hours: float, delay_ticks: int) -> dict[str, Any]:
    from engine.sim.backtest import run_deadline_shard
    from engine.sim.clock import DeadlineJob, WorkClock
    from engine.sim.runs import runs_from_windows

    job = DeadlineJob(48, deadline_hours, overhead_hours, 0.9731, 3.06, delay_ticks=delay_ticks)
    clock = WorkClock.of(job, windows.tick_s)
    runs = runs_from_windows(windows.available, windows.tick_s, clock)
    started = time.perf_counter()
    outs = run_deadline_shard(job, runs, POLICIES)
    cost = {name: round(float(out.cost_usd.mean()), 2) for name, out in outs.items()}
    return {
        "deadline_hours": deadline_hours,
        "restart_overhead_hours": overhead_hours,
        "delay_ticks": delay_ticks,
        "runs": runs.n_runs,
        "mean_cost": cost,
        "gap_closed": {
            name: round(gap_closed(cost["greedy"], cost[name], cost["optimal"]), 4)
            for name in ("uniform_progress", "risk_aware")
        },
        "deadline_misses": {name: int(out.missed.sum()) for name, out in outs.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deadlines", default="52,70", help="deadlines, hours, comma-separated")
    parser.add_argument("--overheads", default="0.05,0.1,0.2", help="restart overheads, hours")
    parser.add_argument("--delays", default="0,1", help="launch delays, ticks")
    parser.add_argument("--windows", type=Path, default=WINDOWS)
    args = parser.parse_args()

    from engine.traces import read_windows

    windows = read_windows(args.windows)
    cases = []
    for delay in (int(x) for x in args.delays.split(",")):
        for deadline in (float(x) for x in args.deadlines.split(",")):
            for overhead in (float(x) for x in args.overheads.split(",")):
                case = run_case(windows, deadline, overhead, delay)
                cases.append(case)
                c = case["mean_cost"]
                print(
                    f"  D={deadline:g} h R={overhead:g} h delay={delay}: greedy {c['greedy']:.2f} "
                    f"uniform {c['uniform_progress']:.2f} risk_aware {c['risk_aware']:.2f} optimal "
                    f"{c['optimal']:.2f}; closed {case['gap_closed']['risk_aware']:.1%} "
                    f"(uniform {case['gap_closed']['uniform_progress']:.1%}); misses {case['deadline_misses']}",
                    flush=True,
                )
    worst = min(cases, key=lambda c: c["gap_closed"]["risk_aware"])
    misses = sum(c["deadline_misses"]["risk_aware"] for c in cases)
    result = {
        "windows": str(args.windows),
        "job_hours": 48,
        "spot_usd_per_hour": 0.9731,
        "on_demand_usd_per_hour": 3.06,
        "load_average": os.getloadavg(),
        "cases": cases,
        "worst_gap_closed": worst["gap_closed"]["risk_aware"],
        "risk_aware_misses": misses,
    }
    out = ROOT / "bench" / "results" / "deadline.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        f"deadline: risk_aware closes {worst['gap_closed']['risk_aware']:.1%} of the greedy-to-optimal gap at "
        f"worst (D={worst['deadline_hours']:g} h, R={worst['restart_overhead_hours']:g} h, delay "
        f"{worst['delay_ticks']}) over {len(cases)} cases, {misses} missed deadlines; {out.relative_to(ROOT)}"
    )


if __name__ == "__main__":
    main()
