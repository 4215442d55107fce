"""End-to-end decision latency: a price batch entering a region actor -> the decision on a WebSocket.

The real server (API, stream host, region actors on a local Ray, SQLite store) runs in this process on a
loopback socket. 20 account-regions (4 accounts x 5 regions), each with 100 spot pools of types
compatible with ``m5.large`` and one instance, tick every second: a full batch of 100 prices (a random
walk) plus availability, in which the pool holding the instance is taken back, so every tick forces a
decision (``interrupted`` -> replace). Each account-region ticks at its own phase of the second, as the
feeds schedule them (``actors/feeds/schedule.py``); ``--synchronized`` sends all 20 at the same instant,
the worst case a host can be given. Batches cross to the actors packed, as the feeds send them. One
WebSocket client (subscribed to all 20 decision streams) timestamps each decision on arrival; latency =
arrival - the moment the batch was sent to the actor.
Both clocks are this process's ``perf_counter``. The client shares the process (and the GIL) with the
server: the numbers include that contention, on this 2-core machine.

The store is SQLite by default; ``--postgres`` uses a scratch schema on the local PostgreSQL
(``SPOT_BENCH_DATABASE_URL`` or postgres@127.0.0.1:5432/test). Every tick's decisions and its prices,
instances and alerts events are stored in one transaction before they are published.

Writes bench/results/latency-<database>[-synchronized].json and prints one line.
Run: ``.venv/bin/python bench/latency.py [seconds] [--postgres] [--synchronized] [--accounts N] [--regions N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import websockets
from workload import POOLS, region_pools

from actors.feeds.schedule import spread_offsets
from actors.remote import settle_process_gc
from actors.store.tenancy import Account
from actors.store.testing import scratch_database
from actors.wire import pack_ticks
from api.app import create_app
from api.testing import LiveServer, bearer_headers, new_tenant, settings_for_test
from engine.types import AvailabilityPoint, Instance, Lifecycle, Pool, PricePoint

ACCOUNTS = 4
REGIONS = ("us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1")
TICK_S = 1.0
DEFAULT_SECONDS = 60
WARMUP_TICKS = 5  # actor processes start, models allocate: not the steady state being measured
START_S = 1_700_000_000.0


class Stream:
    def __init__(self, account: str, region: str, handle: Any, pools: list[tuple[Pool, float]],
                 rng: np.random.Generator) -> None:
        self.account, self.region, self.handle, self.pools = account, region, handle, pools
        self.key = f"{account}/{region}/decisions"
        self.price = np.array([od * rng.uniform(0.25, 0.45) for _, od in pools])
        self.current = pools[0][0]  # where the instance is: updated from its decisions
        self.taken: Pool | None = None

    def batch(self, now_s: float, rng: np.random.Generator) -> tuple[list[PricePoint], list[AvailabilityPoint]]:
        self.price *= np.exp(rng.normal(0.0, 0.002, self.price.size))
        prices = [PricePoint(pool, float(p), now_s) for (pool, _), p in zip(self.pools, self.price, strict=True)]
        availability = [AvailabilityPoint(pool, pool != self.current, now_s) for pool, _ in self.pools]
        return prices, availability


async def setup(server: LiveServer, rng: np.random.Generator, accounts: int,
                regions: tuple[str, ...]) -> tuple[str, list[Stream]]:
    async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
        tenant_id, key = await new_tenant(http, f"bench-{uuid.uuid4().hex[:6]}")

        async def register() -> None:
            # The bench is these accounts' feed: accounts in replay mode on a server that replays nothing get
            # region actors and no feed (REST would refuse replay regions there), and may move instantly.
            runtime, now_s = server.runtime, time.time()
            for a in range(accounts):
                account = Account(f"bench{a}-{uuid.uuid4().hex[:4]}", tenant_id, tuple(regions), "replay",
                                  "simulated", "lowest_price", {}, {}, now_s, now_s)
                await runtime.tenancy.create_account(account)
                await runtime.registry.start(account)

        await asyncio.to_thread(server.call, register(), 300.0)
        registered = (await http.get("/api/v1/accounts", headers=bearer_headers(key))).json()["accounts"]
    streams = []
    for account in registered:
        for region in account["regions"]:
            handle = server.runtime.supervisor.get(account["account"], region)
            pools = region_pools(region)
            await handle.add_pools.remote([(p.key, od) for p, od in pools])
            await handle.set_fleet.remote([Instance("i-bench", pools[0][0], Lifecycle.SPOT, START_S)], START_S)
            streams.append(Stream(account["account"], region, handle, pools, rng))
    return key, streams


async def run(server: LiveServer, seconds: int, synchronized: bool, accounts: int,
              regions: tuple[str, ...]) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    key, streams = await setup(server, rng, accounts, regions)
    settle_process_gc()  # as `serve` does once the server is up
    by_key = {s.key: s for s in streams}
    # As the feeds schedule them: each account-region at its own phase of the second (synchronized: all
    # at the same instant, the worst case a host can be given).
    offsets = ({s.key: 0.0 for s in streams} if synchronized
               else spread_offsets([s.key for s in streams], TICK_S))
    sent: dict[tuple[str, float], float] = {}
    latencies_ms: list[float] = []
    arrivals: dict[tuple[str, float], float] = {}
    async with httpx.AsyncClient(base_url=server.url) as http:
        token = (await http.post("/api/v1/ws-tokens", headers=bearer_headers(key))).json()["token"]
    async with websockets.connect(f"{server.ws_url}?token={token}", max_queue=None) as ws:
        await ws.send(json.dumps({"type": "subscribe", "topics": ["decisions"]}))

        async def receive() -> None:
            async for raw in ws:
                arrived = time.perf_counter()
                message = json.loads(raw)
                if message["type"] != "decision":
                    continue
                data = message["data"]
                stream = by_key[message["stream"]]
                if data["instance_id"] == "i-bench" and data["to"]["lifecycle"] == "spot":
                    stream.current = Pool.from_key(data["to"]["pool"])
                started = sent.pop((message["stream"], data["decided_at_s"]), None)
                if started is not None and data["decided_at_s"] > START_S + 60.0 * WARMUP_TICKS:
                    latencies_ms.append((arrived - started) * 1e3)
                    arrivals[(message["stream"], data["decided_at_s"])] = arrived

        receiver = asyncio.create_task(receive())
        tick_latency: list[float] = []
        sections_ms: dict[str, list[float]] = {}
        call_ms: list[float] = []  # send -> the actor's reply back in this process
        queued_ms: list[float] = []  # send -> the actor starting the tick (serialisation, Ray, CPU queue)
        published_pc: dict[tuple[str, float], float] = {}
        begin = time.perf_counter() + 0.1

        async def drive(index: int, stream: Stream) -> None:
            stream_rng = np.random.default_rng(index + 1)
            for tick in range(seconds):
                await asyncio.sleep(max(0.0, begin + tick * TICK_S + offsets[stream.key] - time.perf_counter()))
                now_s = START_S + 60.0 * (tick + 1)
                prices, availability = stream.batch(now_s, stream_rng)
                started = sent[(stream.key, now_s)] = time.perf_counter()
                try:
                    result = await stream.handle.ingest_packed.remote(pack_ticks([(now_s, prices, availability)]))
                except Exception as exc:  # counted by the missing decision; say why once
                    print(f"ingest failed for {stream.key}: {exc}", file=sys.stderr)
                    continue
                if tick < WARMUP_TICKS:
                    continue
                call_ms.append((time.perf_counter() - started) * 1e3)
                # perf_counter is CLOCK_MONOTONIC on Linux, so the actor's stamps compare with ours
                queued_ms.append((result.get("started_at_pc", started) - started) * 1e3)
                published_pc[(stream.key, now_s)] = result["published_at_pc"]
                tick_latency.append(result["latency_s"] * 1e3)
                for name, value in result.get("sections_s", {}).items():
                    sections_ms.setdefault(name, []).append(value * 1e3)

        await asyncio.gather(*(drive(i, s) for i, s in enumerate(streams)))
        await asyncio.sleep(1.0)
        receiver.cancel()
    arr = np.asarray(latencies_ms)
    delivery_ms = [(arrivals[k] - published_pc[k]) * 1e3 for k in arrivals if k in published_pc]
    ticks = seconds * len(streams)
    return {
        "account_regions": len(streams),
        "pools_per_region": POOLS,
        "tick_s": TICK_S,
        "seconds": seconds,
        "batches": ticks,
        "decisions_timed": int(arr.size),
        "latency_ms": {"p50": round(float(np.percentile(arr, 50)), 2), "p90": round(float(np.percentile(arr, 90)), 2),
                       "p99": round(float(np.percentile(arr, 99)), 2), "max": round(float(arr.max()), 2)},
        "actor_tick_ms": {"p50": round(float(np.percentile(tick_latency, 50)), 2),
                          "p99": round(float(np.percentile(tick_latency, 99)), 2)},
        "ingest_call_ms": {"p50": round(float(np.percentile(call_ms, 50)), 2),
                           "p99": round(float(np.percentile(call_ms, 99)), 2)},
        "queued_before_actor_ms": {"p50": round(float(np.percentile(queued_ms, 50)), 2),
                                   "p99": round(float(np.percentile(queued_ms, 99)), 2)},
        "hub_to_websocket_ms": {"p50": round(float(np.percentile(delivery_ms, 50)), 2),
                                "p99": round(float(np.percentile(delivery_ms, 99)), 2)},
        "actor_sections_ms": {name: {"p50": round(float(np.percentile(v, 50)), 2),
                                     "p99": round(float(np.percentile(v, 99)), 2)} for name, v in sections_ms.items()},
        "schedule": "synchronized" if synchronized else "spread",
        "target_p99_ms": 25.0,
        "warmup_ticks_excluded": WARMUP_TICKS,
        "cpus": os.cpu_count(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }


async def scratch(url: str | None) -> tuple[str | None, Any]:
    """A fresh PostgreSQL schema (dropped at the end) for ``url``; None keeps SQLite."""
    if url is None:
        return None, None
    context = scratch_database(url)
    return await context.__aenter__(), context


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("seconds", nargs="?", type=int, default=DEFAULT_SECONDS, help="ticks per account-region")
    parser.add_argument("--postgres", action="store_true", help="store on the local PostgreSQL (a scratch schema)")
    parser.add_argument("--synchronized", action="store_true",
                        help="every account-region ticks at the same instant (the worst case), instead of the "
                             "feeds' phase-spread schedule")
    parser.add_argument("--accounts", type=int, default=ACCOUNTS, help=f"accounts (default {ACCOUNTS})")
    parser.add_argument("--regions", type=int, default=len(REGIONS), choices=range(1, len(REGIONS) + 1),
                        metavar=f"1..{len(REGIONS)}", help=f"regions per account (default {len(REGIONS)})")
    args = parser.parse_args()
    if args.seconds <= WARMUP_TICKS:
        parser.error(f"seconds must exceed the {WARMUP_TICKS} warm-up ticks")
    if args.accounts < 1:
        parser.error("--accounts must be at least 1")
    return args


def main() -> None:
    os.environ.setdefault("RAY_worker_niceness", "0")  # as `serve` does: actors are the hot path
    args = parse_args()
    postgres = None
    if args.postgres:
        postgres = os.environ.get("SPOT_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    loop = asyncio.new_event_loop()
    database_url, context = loop.run_until_complete(scratch(postgres))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            overrides: dict[str, Any] = {"replay": False, "ws_queue_size": 100_000}
            if database_url:
                overrides["database_url"] = database_url
            settings = settings_for_test(Path(tmp), **overrides)
            with LiveServer(create_app(settings)) as server:
                result = asyncio.run(run(server, args.seconds, args.synchronized, args.accounts,
                                         REGIONS[: args.regions]))
    finally:
        if context is not None:
            loop.run_until_complete(context.__aexit__(None, None, None))
        loop.close()
    result["database"] = "postgresql" if database_url else "sqlite"
    name = f"latency-{result['database']}" + ("-synchronized" if args.synchronized else "")
    out = Path(__file__).resolve().parent / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lat = result["latency_ms"]
    print(f"latency: batch -> WebSocket decision p50 {lat['p50']} ms, p99 {lat['p99']} ms (target <= 25) over "
          f"{result['decisions_timed']} decisions; {result['account_regions']} account-regions x {POOLS} pools, "
          f"1 tick/s {result['schedule']}, {result['database']}; actor tick p50 {result['actor_tick_ms']['p50']} ms")


if __name__ == "__main__":
    main()
