"""Store write latency: ``Store.save_decisions`` of a batch of 2 decisions, as a region actor saves a tick's
newsworthy decisions before publishing them (the write sits on the batch -> dashboard latency path).

Three loads, on SQLite (a temporary file) and on PostgreSQL (a scratch schema on the local server):

- ``one_writer``: one process saving back to back, nothing else running (the cost of the code path);
- ``spread``: 20 writer processes (as 20 region actors), each saving once per second, their phases spread
  evenly over the second (the feeds' schedule);
- ``same_instant``: the same 20, all at the same instant every second (the worst case: every write
  queues for SQLite's one writer lock, or for PostgreSQL and the 2 cores at once).

Latency = wall time of the ``await store.save_decisions(...)`` in the writing process (perf_counter), a
real-sized decision (6 candidates, 9 numbers). Each process opens its store and saves a few warm-up
batches before the timed seconds start; all processes start their timed loop at the same wall-clock time.

Writes bench/results/store.json and prints one line.
Run: ``.venv/bin/python bench/store.py [seconds] [--sqlite-only | --postgres-only]``.
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

from actors.store import Store
from actors.store.testing import scratch_database
from engine.types import Action, Candidate, Decision, Lifecycle, Pool, Rule

PROCESSES = 20
BATCH = 2
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


class Writer:
    """One stream's writer: numbers its batches as a region actor does (seq 1, 2, ...)."""

    def __init__(self, store: Store, account: str, region: str) -> None:
        self.store, self.account, self.region = store, account, region
        self.seq = 0

    async def save(self) -> float:
        """Save the next batch; returns its latency in seconds."""
        now_s = START_S + self.seq
        batch = [(self.seq + k + 1, make_decision(f"i-{k}", now_s)) for k in range(BATCH)]
        self.seq += BATCH
        started = time.perf_counter()
        await self.store.save_decisions(self.account, self.region, batch)
        return time.perf_counter() - started


async def one_writer(url: str, saves: int) -> list[float]:
    store = await Store.open(url, migrate=False)
    try:
        writer = Writer(store, "one-writer", "us-east-1")
        for _ in range(WARMUP_SAVES):
            await writer.save()
        return [await writer.save() for _ in range(saves)]
    finally:
        await store.close()


def writer_process(url: str, scenario: str, index: int, offset_s: float, seconds: int, ready: Any, go: Any,
                   start_at: Any, results: Any) -> None:
    """Child: open the store, warm up, wait for the common start, then save once per second at ``offset_s``."""

    async def run() -> list[float]:
        store = await Store.open(url, migrate=False)
        try:
            writer = Writer(store, scenario, f"region-{index}")
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


def writer_processes(url: str, scenario: str, seconds: int, *, spread: bool) -> list[float]:
    """PROCESSES writers in their own processes; their latencies, all together."""
    context = multiprocessing.get_context("fork")  # nothing is open in the parent: children build their own
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    start_at = context.Value("d", 0.0)
    children = [
        context.Process(target=writer_process, args=(url, scenario, i, i / PROCESSES if spread else 0.0, seconds,
                                                     ready, go, start_at, results))
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


def run_backend(url: str, seconds: int, saves: int) -> dict[str, Any]:
    asyncio.run(migrated(url))
    return {
        "one_writer": summary_ms(asyncio.run(one_writer(url, saves))),
        "spread": summary_ms(writer_processes(url, "spread", seconds, spread=True)),
        "same_instant": summary_ms(writer_processes(url, "same-instant", seconds, spread=False)),
    }


def run_postgres(url: str, seconds: int, saves: int) -> dict[str, Any]:
    loop = asyncio.new_event_loop()
    context = scratch_database(url)
    try:
        scratch_url = loop.run_until_complete(context.__aenter__())
        return run_backend(scratch_url, seconds, saves)
    finally:
        loop.run_until_complete(context.__aexit__(None, None, None))
        loop.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("seconds", type=int, nargs="?", default=DEFAULT_SECONDS,
                        help="timed seconds of the 20-process loads")
    parser.add_argument("--saves", type=int, default=ONE_WRITER_SAVES, help="timed saves of the one writer")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--sqlite-only", action="store_true")
    only.add_argument("--postgres-only", action="store_true")
    args = parser.parse_args()
    if args.seconds < 1 or args.saves < 1:
        parser.error("seconds and --saves must be at least 1")
    return args


def main() -> None:
    args = parse_args()
    result: dict[str, Any] = {"batch": BATCH, "processes": PROCESSES, "seconds": args.seconds,
                              "one_writer_saves": args.saves, "cpus": os.cpu_count(), "latency_ms": {}}
    if not args.postgres_only:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'store.db'}"
            result["latency_ms"]["sqlite"] = run_backend(url, args.seconds, args.saves)
    if not args.sqlite_only:
        url = os.environ.get("SPOT_BENCH_DATABASE_URL", POSTGRES_URL)
        result["latency_ms"]["postgresql"] = run_postgres(url, args.seconds, args.saves)
    out = Path(__file__).resolve().parent / "results" / "store.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    parts = [f"{db}: " + ", ".join(f"{load} p50 {s['p50']} / p99 {s['p99']}" for load, s in loads.items())
             for db, loads in result["latency_ms"].items()]
    print(f"store: save_decisions({BATCH}) latency ms; " + "; ".join(parts), file=sys.stdout)


if __name__ == "__main__":
    main()
