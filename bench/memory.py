"""Memory per account-region: what one more region actor costs, and what the whole server takes.

The real server (API, stream host, region actors on a local Ray, SQLite store) runs in this process on a
loopback socket, replaying the bundled prices (3 regions). Account-regions come through the real code
path (``bench/replay_accounts.py``): the demo replay account, narrowed to one region over REST
(``PATCH``), is the first; the others are replay accounts registered over REST (``POST
/api/v1/accounts``), one region each, the replayed regions in turn, each with a fleet of 4; each
account-region is its own RegionActor process. At each count (default 1, 20, 50) the replay runs
``--settle`` seconds (the actors tick, their models fill), then every process of the server is measured
(``bench/processes.py``): each region actor's worker process (USS: its own pages; PSS: those plus its
share of the pages it shares), and the total of the process tree (this API process, gcs_server, raylet,
Ray's agents, every worker), summed as USS and as PSS. The marginal cost of one more account-region is
the slope of a least-squares line through the totals; the projected capacity is how many account-regions
fit in this host's memory at that slope, above the line's intercept.

Writes bench/results/memory.json and prints one line.
Run: ``.venv/bin/python bench/memory.py [--counts 1,20,50] [--settle 20]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from processes import by_kind, mapped_extensions, server_processes, totals
from replay_accounts import bench_tenant, narrow_demo, register

from api.app import create_app
from api.testing import LiveServer, settings_for_test

DEFAULT_COUNTS = (1, 20, 50)
SETTLE_S = 20.0
FLEET_SIZE = 4  # instances per account-region, as the demo account has
# Slow enough that 100 actors keep up on 2 cores: each batch carries 2 ticks of the 195 s recording.
REPLAY_SPEED = 390.0
REPLAY_INTERVAL_S = 1.0


async def actor_pids(server: LiveServer) -> list[int]:
    handles = [server.runtime.supervisor.get(a, r) for a, r in server.runtime.supervisor.list()]
    return list(await asyncio.gather(*(h.process_id.remote() for h in handles)))


async def tick_errors(server: LiveServer) -> int:
    handles = [server.runtime.supervisor.get(a, r) for a, r in server.runtime.supervisor.list()]
    return sum(int(s["tick_errors"]) for s in await asyncio.gather(*(h.status.remote() for h in handles)))


def measure(count: int, pids: list[int]) -> dict[str, Any]:
    gc.collect()
    rows = server_processes()
    actors = [r for r in rows if r.pid in set(pids)]
    uss, pss = [r.uss_mib for r in actors], [r.pss_mib for r in actors]
    return {
        "account_regions": count,
        "region_actor_uss_mib": {"median": round(float(np.median(uss)), 1), "max": round(max(uss), 1)},
        "region_actor_pss_mib": {"median": round(float(np.median(pss)), 1), "max": round(max(pss), 1)},
        "region_actor_rss_mib": round(float(np.median([r.rss_mib for r in actors])), 1),
        "server": totals(rows),
        "by_kind": by_kind(rows),
    }


def fit(points: list[dict[str, Any]], field: str) -> tuple[float, float]:
    """(slope MiB per account-region, intercept MiB) of the server's total ``field`` over the counts."""
    counts = np.array([p["account_regions"] for p in points], float)
    values = np.array([p["server"][field] for p in points], float)
    slope, intercept = np.polyfit(counts, values, 1)
    return float(slope), float(intercept)


async def run(server: LiveServer, counts: list[int], settle_s: float) -> dict[str, Any]:
    points = []
    extensions: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=server.url, timeout=300) as http:
        await narrow_demo(http, server)
        key = await bench_tenant(http, "mem")
        for count in counts:
            started = time.perf_counter()
            await register(http, server, key, count - len(server.runtime.supervisor.list()), FLEET_SIZE, "mem")
            registered_s = time.perf_counter() - started
            await asyncio.sleep(settle_s)
            pids = await actor_pids(server)
            point = measure(count, pids)
            point["register_s"] = round(registered_s, 1)
            point["tick_errors"] = await tick_errors(server)
            points.append(point)
            extensions = mapped_extensions(pids[-1])
            print(f"  {count} account-regions: server PSS {point['server']['pss_mib']} MiB, USS "
                  f"{point['server']['uss_mib']} MiB; region actor USS {point['region_actor_uss_mib']['median']} "
                  f"MiB, PSS {point['region_actor_pss_mib']['median']} MiB", flush=True)
    slope_pss, intercept_pss = fit(points, "pss_mib")
    slope_uss, intercept_uss = fit(points, "uss_mib")
    host_mib = psutil.virtual_memory().total / 2**20
    return {
        "points": points,
        "marginal_pss_mib_per_account_region": round(slope_pss, 1),
        "fixed_pss_mib": round(intercept_pss, 1),
        "marginal_uss_mib_per_account_region": round(slope_uss, 1),
        "fixed_uss_mib": round(intercept_uss, 1),
        "host_memory_mib": round(host_mib),
        "projected_account_regions_on_host": int((host_mib - intercept_pss) / slope_pss),
        "target_account_regions": 100,
        "region_actor_extension_modules": extensions,
        "replay": {"speed": REPLAY_SPEED, "interval_s": REPLAY_INTERVAL_S, "settle_s": settle_s},
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", default=",".join(map(str, DEFAULT_COUNTS)),
                        help="account-region counts to measure at, ascending (default 1,20,50)")
    parser.add_argument("--settle", type=float, default=SETTLE_S, help="seconds of replay before each measure")
    parser.add_argument("--output", default="memory", help="bench/results/<output>.json (default memory)")
    args = parser.parse_args()
    args.counts = [int(c) for c in args.counts.split(",")]
    if args.counts != sorted(args.counts) or args.counts[0] < 1 or len(args.counts) < 2:
        parser.error("--counts: at least two counts, ascending, from 1")
    return args


def main() -> None:
    os.environ.setdefault("RAY_worker_niceness", "0")  # as `serve` does
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for_test(Path(tmp), replay_speed=REPLAY_SPEED, replay_tick_interval_s=REPLAY_INTERVAL_S)
        with LiveServer(create_app(settings)) as server:
            result = asyncio.run(run(server, args.counts, args.settle))
    result["cpus"] = os.cpu_count()
    out = Path(__file__).resolve().parent / "results" / f"{args.output}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    last = result["points"][-1]
    print(f"memory: {result['marginal_pss_mib_per_account_region']} MiB PSS "
          f"({result['marginal_uss_mib_per_account_region']} USS) per more account-region, fixed "
          f"{result['fixed_pss_mib']} MiB; region actor USS {last['region_actor_uss_mib']['median']} MiB, PSS "
          f"{last['region_actor_pss_mib']['median']} MiB; server PSS at "
          + ", ".join(f"{p['account_regions']}: {p['server']['pss_mib']:.0f}" for p in result["points"])
          + f" MiB; ~{result['projected_account_regions_on_host']} account-regions fit in "
          f"{result['host_memory_mib'] / 1024:.0f} GiB (target >= 100)")


if __name__ == "__main__":
    main()
