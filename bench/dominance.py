"""Does ``risk_aware`` dominate ``price_capacity_optimized`` on every fleet set?

Dominates = no more expensive, no more interruptions, no less availability, all three at once. Sets: the
2023 bundle with its prices (20 instances), the 2022 bundle, each group of the preemption bundle (these
have no price file: a constant spot price, the 2023 price file's mean, and $3.06 on demand, as the CLI's
``--spot-price``/``--on-demand-price`` give), and each of them again at a random fleet size in 4-50
(fixed seed). Each set runs both policies with one parameter set (the defaults) through the code
the CLI's ``simulate fleet`` runs (:func:`engine.sim.backtest.run_fleet_shard`, the function each Ray
task calls; here in this process, so no Ray start-up; results are the same, sharding only splits runs).

Writes bench/results/dominance.json, prints a table and a one-line summary. Run:
``.venv/bin/python bench/dominance.py [--runs 100] [--sizes 5] [--seed 0] [--only SET]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "traces"
OUT = ROOT / "bench" / "results" / "dominance.json"
POLICIES = ("risk_aware", "price_capacity_optimized")
ON_DEMAND_USD = 3.06


@dataclass(frozen=True)
class FleetSet:
    name: str
    availability: Path
    prices: Path | None = None
    select: str | None = None
    fleet_size: int = 20
    constant_prices: bool = False


def fleet_sets(n_sizes: int, seed: int) -> list[FleetSet]:
    a23 = DATA / "availability_aws_2023-02-15.json.gz"
    p23 = DATA / "prices_p3.2xlarge_2023-02-15.json.gz"
    pre = DATA / "preemption_1-node.json.gz"
    sets = [
        FleetSet("2023", a23, p23),
        FleetSet("2022", DATA / "availability_aws_2022-10-26.json.gz", constant_prices=True),
        *(FleetSet(f"preemption {g.rstrip('/')}", pre, select=g, constant_prices=True)
          for g in ("aws-04-19-2023/", "aws-04-22-2023/", "gcp-04-30-2023/")),
    ]
    sizes = np.random.default_rng(seed).integers(4, 51, size=n_sizes)
    # Each random size on the next set in turn, so every set is also run at another size.
    sets += [dataclasses.replace(base, name=f"{base.name} size {int(size)}", fleet_size=int(size))
             for base, size in zip(itertools.cycle(list(sets)), sizes, strict=False)]
    return sets


def mean_spot_price_2023() -> float:
    from engine.traces import load_market

    trace = load_market(DATA / "availability_aws_2023-02-15.json.gz", DATA / "prices_p3.2xlarge_2023-02-15.json.gz")
    assert trace.spot_price is not None
    return float(np.nanmean(trace.spot_price))


def run_set(s: FleetSet, runs: int, seed: int, spot_usd: float) -> dict[str, Any]:
    """As ``api.commands.simulate.run_fleet`` does: load, learn risk online, random starts, simulate."""
    from engine.learning.series import risk_series
    from engine.policy import PolicyParams
    from engine.sim.backtest import run_fleet_shard
    from engine.sim.fleet import FleetMarket, fleet_metrics
    from engine.traces import load_market

    params = PolicyParams()
    trace = load_market(s.availability, s.prices, select=s.select)
    n_ticks = trace.n_ticks // 2
    risk = risk_series(trace, params.risk_horizon_s)
    market = FleetMarket.of(trace, risk, params.risk_horizon_s,
                            spot_usd if s.constant_prices else None, ON_DEMAND_USD if s.constant_prices else None)
    starts = np.random.default_rng(seed).integers(0, trace.n_ticks - n_ticks + 1, size=runs)
    outcomes = run_fleet_shard(market, POLICIES, starts, n_ticks, s.fleet_size, params)
    metrics = {name: fleet_metrics(out) for name, out in outcomes.items()}
    ours, base = metrics["risk_aware"], metrics["price_capacity_optimized"]
    dominates = (ours["total_cost"] <= base["total_cost"] + 1e-9 and ours["interruptions"] <= base["interruptions"]
                 and ours["availability"] >= base["availability"] - 1e-12)
    return {"set": s.name, "fleet_size": s.fleet_size, "runs": runs, "hours_per_run": n_ticks * trace.tick_s / 3600,
            "policies": metrics, "dominates": dominates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="fleets per set (the CLI's default)")
    parser.add_argument("--sizes", type=int, default=5, help="random fleet sizes in 4-50, each on the next set")
    parser.add_argument("--seed", type=int, default=0, help="seed of the start ticks and the sizes")
    parser.add_argument("--only", default=None, help="run only sets whose name starts with this")
    args = parser.parse_args()
    spot_usd = mean_spot_price_2023()
    started = time.perf_counter()
    results = []
    header = f"{'set':28} {'size':>4} {'ra $':>10} {'pco $':>10} {'ra int':>6} {'pco int':>7} " \
             f"{'ra avail':>9} {'pco avail':>9}  dominates"
    print(header)
    for s in fleet_sets(args.sizes, args.seed):
        if args.only and not s.name.startswith(args.only):
            continue
        r = run_set(s, args.runs, args.seed, spot_usd)
        results.append(r)
        ra, pco = r["policies"]["risk_aware"], r["policies"]["price_capacity_optimized"]
        print(f"{r['set']:28} {r['fleet_size']:>4} {ra['total_cost']:>10.2f} {pco['total_cost']:>10.2f} "
              f"{ra['interruptions']:>6} {pco['interruptions']:>7} {ra['availability']:>9.5f} "
              f"{pco['availability']:>9.5f}  {'yes' if r['dominates'] else 'NO'}", flush=True)
    wins = sum(r["dominates"] for r in results)
    summary = {"sets": len(results), "dominated": wins, "runs": args.runs, "seed": args.seed,
               "constant_spot_usd_per_hour": spot_usd, "constant_on_demand_usd_per_hour": ON_DEMAND_USD,
               "seconds": round(time.perf_counter() - started, 1), "results": results}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"dominance: risk_aware dominates price_capacity_optimized on {wins}/{len(results)} fleet sets "
          f"({args.runs} runs each, {summary['seconds']} s) -> {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
