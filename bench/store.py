"""Store write latency of one tick, as a region actor saves it before publishing (the write sits on the
batch -> dashboard latency path): ``--save tick`` (default) is ``Store.save_tick`` of 2 decisions and 2
events (a ~9 KB ``prices`` event and a small ``instances`` one), ``--save decisions`` is
``Store.save_tick`` of the 2 decisions alone.

Three loads, on SQLite (a temporary file) and on PostgreSQL (a scratch schema on the local server):

- ``one_writer``: one process saving back to back, nothing else running (the cost of the code path; on
  SQLite its p99 includes waiting for the writer's own WAL checkpoint, which runs on the writer's thread
  after every 50th save: back to back, the next save queues behind it, an actor ticking once a second
  does not, see ``spread``);
- ``spread``: 20 writer processes (as 20 region actors), each saving once per second, their phases spread
  evenly over the second (the feeds' schedule);
- ``same_instant``: the same 20, all at the same instant every second (the worst case: every write
  queues for SQLite's one writer lock, or for PostgreSQL and the 2 cores at once).

Latency = wall time of the ``await store.save_tick(...)`` in the writing process
(perf_counter), real-sized decisions (6 candidates, 9 numbers) and events. Each process opens its store
and saves a few warm-up ticks before the timed seconds start; all processes start their timed loop at the
same wall-clock time.

Writes bench/results/store-<save>.json and prints one line.
Run: ``.venv/bin/python bench/store.py [seconds] [--save tick|decisions] [--sqlite-only | --postgres-only]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from actors.store import Store, StreamEvent
from actors.store.testing import scratch_database
from engine.types import Action, Candidate, Decision, Lifecycle, Pool, Rule

PROCESSES = 20
BATCH = 2
PRICED_POOLS = 72  # -> a prices event of ~9 KB
ONE_WRITER_SAVES = 1000
DEFAULT_SECONDS = 30
WARMUP_SAVES = 5
START_S = 1_700_000_000.0
POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def make_decision(instance_id: str, decided_at_s: float) -> Decision:
    """A decision the size the region actor makes: 5 top candidates + current + on-demand, 9 numbers."""
    zones = "abcdef"
    return Decision(
        instance_id, Action.REPLACE, Rule.SAVING,
        "us-east-1c is 0.21 $/h cheaper after risk (spot 0.89 $/h, risk 3%); the saving beats the 0.05 $/h "
        "threshold and pays back the move in 3.1 h", decided_at_s,
        Pool("m5.large", "us-east-1a"), Lifecycle.SPOT, Pool("m5.large", "us-east-1c"), Lifecycle.SPOT, 0.0211,
        {"current_price_usd_per_hour": 0.041, "current_risk": 0.12, "current_expected_cost_usd_per_hour": 0.052,
         "target_price_usd_per_hour": 0.029, "target_risk": 0.03, "target_expected_cost_usd_per_hour": 0.031,
         "on_demand_usd_per_hour": 0.096, "saving_usd_per_hour": 0.0211, "budget_left": 12.5},
        (*(Candidate(Pool("m5.large", f"us-east-1{z}"), Lifecycle.SPOT, 0.03 + 0.001 * k, 0.02 * k,
                     0.031 + 0.002 * k) for k, z in enumerate(zones)),
         Candidate(Pool("m5.large", "us-east-1a"), Lifecycle.ON_DEMAND, 0.096, 0.0, 0.096)),
        "risk_aware",
    )


def make_events(tick: int, at_s: float) -> list[StreamEvent]:
    """A tick's prices event (every priced pool and its availability, ~9 KB) and an instances event (2
    instances), shaped as the region actor publishes them."""
    pools = [f"{family}.{size}/us-east-1{zone}" for family in ("m5", "c5", "r5", "m6i", "c6i")
             for size in ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge") for zone in "abcdef"][:PRICED_POOLS]
    prices = {"at_s": at_s,
              "prices": [{"pool": p, "price_usd_per_hour": 0.0312 + 0.000137 * k} for k, p in enumerate(pools)],
              "availability": [{"pool": p, "available": k % 7 != 0} for k, p in enumerate(pools)]}
    instances = {"at_s": at_s, "instances": [
        {"instance_id": f"i-{k}", "pool": pools[k], "lifecycle": "spot", "fleet": "web",
         "launched_at_s": START_S - 3600.0, "interrupted": False} for k in range(2)]}
    return [StreamEvent("prices", tick, at_s, json.dumps(prices)),
            StreamEvent("instances", tick, at_s, json.dumps(instances))]


class Writer:
    """One stream's writer: numbers its ticks as a region actor does (seq 1, 2, ... per topic)."""

    def __init__(self, store: Store, account: str, region: str, save: str) -> None:
        self.store, self.account, self.region, self.with_events = store, account, region, save == "tick"
        self.seq = 0
        self.ticks = 0

    async def save(self) -> float:
        """Save the next tick; returns its latency in seconds."""
        now_s = START_S + self.ticks
        self.ticks += 1
        batch = [(self.seq + k + 1, make_decision(f"i-{k}", now_s)) for k in range(BATCH)]
        self.seq += BATCH
        if self.with_events:
            events = make_events(self.ticks, now_s)
            started = time.perf_counter()
            await self.store.save_tick(self.account, self.region, batch, events)
        else:
            started = time.perf_counter()
            await self.store.save_tick(self.account, self.region, batch, [])
        return time.perf_counter() - started


async def one_writer(url: str, saves: int, save: str) -> list[float]:
    store = await Store.open(url, migrate=False)
    try:
        writer = Writer(store, "one-writer", "us-east-1", save)
        for _ in range(WARMUP_SAVES):
            await writer.save()
        return [await writer.save() for _ in range(saves)]
    finally:
        await store.close()


def writer_process(url: str, save: str, scenario: str, index: int, offset_s: float, seconds: int, ready: Any,
                   go: Any, start_at: Any, results: Any) -> None:
    """Child: open the store, warm up, wait for the common start, then save once per second at ``offset_s``."""

    async def run() -> list[float]:
        store = await Store.open(url, migrate=False)
        try:
            writer = Writer(store, scenario, f"region-{index}", save)
            for _ in range(WARMUP_SAVES):
                await writer.save()
            ready.put(index)
            go.wait()
            latencies = []
            for k in range(seconds):
                await asyncio.sleep(max(0.0, start_at.value + k + offset_s - time.time()))
                latencies.append(await writer.save())
            return latencies
        finally:
            await store.close()

    results.put((index, asyncio.run(run())))


def writer_processes(url: str, save: str, scenario: str, seconds: int, *, spread: bool) -> list[float]:
    """PROCESSES writers in their own processes; their latencies, all together."""
    context = multiprocessing.get_context("fork")  # nothing is open in the parent: children build their own
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    start_at = context.Value("d", 0.0)
    children = [
        context.Process(target=writer_process, args=(url, save, scenario, i, i / PROCESSES if spread else 0.0,
                                                     seconds, ready, go, start_at, results))
        for i in range(PROCESSES)
    ]
    for child in children:
        child.start()
    for _ in children:
        ready.get(timeout=120)
    start_at.value = time.time() + 0.5
    go.set()
    latencies: list[float] = []
    for _ in children:
        latencies += results.get(timeout=seconds + 120)[1]
    for child in children:
        child.join()
        if child.exitcode != 0:
            raise RuntimeError(f"a writer process failed (exit code {child.exitcode})")
    return latencies


def summary_ms(latencies_s: list[float]) -> dict[str, float]:
    ms = np.asarray(latencies_s) * 1e3
    return {"n": len(ms), **{f"p{q}": round(float(np.percentile(ms, q)), 3) for q in (50, 90, 99)},
            "max": round(float(ms.max()), 3)}


async def migrated(url: str) -> None:
    await (await Store.open(url)).close()


def run_backend(url: str, seconds: int, saves: int, save: str) -> dict[str, Any]:
    asyncio.run(migrated(url))
    return {
        "one_writer": summary_ms(asyncio.run(one_writer(url, saves, save))),
        "spread": summary_ms(writer_processes(url, save, "spread", seconds, spread=True)),
        "same_instant": summary_ms(writer_processes(url, save, "same-instant", seconds, spread=False)),
    }


def run_postgres(url: str, seconds: int, saves: int, save: str) -> dict[str, Any]:
    loop = asyncio.new_event_loop()
    context = scratch_database(url)
    try:
        scratch_url = loop.run_until_complete(context.__aenter__())
        return run_backend(scratch_url, seconds, saves, save)
    finally:
        loop.run_until_complete(context.__aexit__(None, None, None))
        loop.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("seconds", type=int, nargs="?", default=DEFAULT_SECONDS,
                        help="timed seconds of the 20-process loads")
    parser.add_argument("--saves", type=int, default=ONE_WRITER_SAVES, help="timed saves of the one writer")
    parser.add_argument("--save", choices=("tick", "decisions"), default="tick",
                        help="save_tick of 2 decisions + 2 events (default) or of the 2 decisions alone")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--sqlite-only", action="store_true")
    only.add_argument("--postgres-only", action="store_true")
    args = parser.parse_args()
    if args.seconds < 1 or args.saves < 1:
        parser.error("seconds and --saves must be at least 1")
    return args


def main() -> None:
    args = parse_args()
    events = make_events(1, START_S) if args.save == "tick" else []
    result: dict[str, Any] = {"save": args.save, "batch": BATCH, "event_bytes": [len(e.payload) for e in events],
                              "processes": PROCESSES, "seconds": args.seconds, "one_writer_saves": args.saves,
                              "cpus": os.cpu_count(), "latency_ms": {}}
    if not args.postgres_only:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'store.db'}"
            result["latency_ms"]["sqlite"] = run_backend(url, args.seconds, args.saves, args.save)
    if not args.sqlite_only:
        url = os.environ.get("SPOT_BENCH_DATABASE_URL", POSTGRES_URL)
        result["latency_ms"]["postgresql"] = run_postgres(url, args.seconds, args.saves, args.save)
    out = Path(__file__).resolve().parent / "results" / f"store-{args.save}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    parts = [f"{db}: " + ", ".join(f"{load} p50 {s['p50']} / p99 {s['p99']}" for load, s in loads.items())
             for db, loads in result["latency_ms"].items()]
    what = f"save_tick({BATCH} decisions, events of {'+'.join(map(str, result['event_bytes']))} B)" if events \
        else f"save_tick({BATCH} decisions)"
    print(f"store: {what} latency ms; " + "; ".join(parts), file=sys.stdout)


if __name__ == "__main__":
    main()
