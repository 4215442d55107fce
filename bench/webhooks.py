"""Webhooks: what the consumer costs a region actor's tick, how fast events reach a receiver, and how fast a
backlog drains. SQLite (a temporary file: the store where writers contend most), receivers on loopback.

- ``ticks``: a writer process (as a region actor) saves one tick every 50 ms for ``seconds`` — a fallback
  decision and a ~9 KB ``prices`` event — twice: with no consumer, then with the consumer running in this
  process (default poll, 1 s) and two webhooks on the fallbacks: one receiver that answers 200, one that
  holds every request open (a receiver that hangs). Reported: ``save_tick`` p50/p99 in the writer, each
  way, and from the save to the receiver's arrival, p50/p99 (the poll period dominates it).
- ``backlog``: ``--backlog`` fallbacks already stored when the consumer starts (poll 50 ms, the hanging
  webhook beside): deliveries per second to the receiver that answers.

Writes bench/results/webhooks.json and prints one line.
Run: ``.venv/bin/python bench/webhooks.py [--seconds 20] [--backlog 2000]``.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store import PRICED_POOLS, make_decision

from actors.notify.dispatcher import DispatchSettings, WebhookDispatcher
from actors.notify.testing import Receiver
from actors.store import Store, StreamEvent
from actors.store.tenancy import Account, Tenancy
from actors.store.webhooks import Webhooks
from engine.types import Action, Lifecycle, Rule

ACCOUNT, REGION = "bench", "us-east-1"
TICK_S = 0.05
START_S = 1_700_000_000.0
RESULTS = Path(__file__).resolve().parent / "results"


def arrived(receiver: Receiver) -> dict[int, float]:
    """When each decision seq first reached the receiver."""
    first: dict[int, float] = {}
    for request in list(receiver.received):
        first.setdefault(int(request.doc["data"]["seq"]), request.at_s)
    return first


def fallback(seq: int) -> Any:
    from dataclasses import replace

    return replace(make_decision(f"i-{seq % 20}", START_S + seq), action=Action.FALLBACK_ON_DEMAND,
                   rule=Rule.FALLBACK, to_lifecycle=Lifecycle.ON_DEMAND)


def prices_event(seq: int) -> StreamEvent:
    payload = json.dumps({"at_s": START_S + seq, "prices": [
        {"pool": f"m5.large@us-east-1{'abcdef'[i % 6]}-{i}", "price_usd_per_hour": 0.0123456 * i}
        for i in range(PRICED_POOLS)], "availability": []})
    return StreamEvent("prices", seq, START_S + seq, payload)


def writer(url: str, first_seq: int, ticks: int, out: Any) -> None:
    """A region actor's saves, one every TICK_S: (seq, wall time saved, save latency s) each."""
    async def main() -> list[tuple[int, float, float]]:
        store = await Store.open(url, migrate=False)
        done = []
        try:
            next_at = time.perf_counter()
            for seq in range(first_seq, first_seq + ticks):
                began = time.perf_counter()
                await store.save_tick(ACCOUNT, REGION, [(seq, fallback(seq))], [prices_event(seq)])
                done.append((seq, time.time(), time.perf_counter() - began))
                next_at += TICK_S
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        finally:
            await store.close()
        return done

    out.put(asyncio.run(main()))


async def timed_writer(url: str, first_seq: int, ticks: int) -> list[tuple[int, float, float]]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=writer, args=(url, first_seq, ticks, queue))
    process.start()
    result: list[tuple[int, float, float]] = await asyncio.to_thread(queue.get)
    await asyncio.to_thread(process.join)
    return result


def ms(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)) * 1000, 2) if values else float("nan")


async def run(seconds: float, backlog: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        store = await Store.open(url)
        tenancy = Tenancy(store.engine)
        tenant = await tenancy.create_tenant("bench", 0.0)
        await tenancy.create_account(Account(ACCOUNT, tenant.id, (REGION,), "replay", "simulated", "risk_aware"))
        good, hanging = Receiver(), Receiver(hang=True, hang_s=600)
        webhooks = Webhooks(store.engine)
        await webhooks.create(ACCOUNT, good.url, ["fallback"], time.time())
        await webhooks.create(ACCOUNT, hanging.url, ["fallback"], time.time())
        ticks = int(seconds / TICK_S)
        try:
            alone = await timed_writer(url, 1, ticks)
            await webhooks.owe((await webhooks.subscriptions())[0], REGION, "decisions", [], ticks, time.time())

            stop = asyncio.Event()
            consumer = WebhookDispatcher(webhooks, DispatchSettings(timeout_s=600.0))
            task = asyncio.create_task(consumer.run(stop))
            beside = await timed_writer(url, ticks + 1, ticks)
            deadline = time.time() + 30
            while len(arrived(good)) < ticks and time.time() < deadline:
                await asyncio.sleep(0.1)
            stop.set()
            await task
            got = arrived(good)
            delays = [got[seq] - at for seq, at, _ in beside if seq in got]

            first = 2 * ticks + 1
            await store.save_tick(ACCOUNT, REGION, [(s, fallback(s)) for s in range(first, first + backlog)], [])
            drained = WebhookDispatcher(webhooks, DispatchSettings(poll_s=0.05, timeout_s=600.0))
            before, began = len(good.received), time.perf_counter()
            stop = asyncio.Event()
            task = asyncio.create_task(drained.run(stop))
            while len(good.received) - before < backlog and time.perf_counter() - began < 300:
                await asyncio.sleep(0.02)
            drain_s = time.perf_counter() - began
            stop.set()
            await task
        finally:
            good.close()
            hanging.close()
            await store.close()
    save_alone = [lat for _, _, lat in alone]
    save_beside = [lat for _, _, lat in beside]
    return {
        "ticks": ticks, "tick_interval_s": TICK_S,
        "save_tick_ms_no_consumer": {"p50": ms(save_alone, 50), "p99": ms(save_alone, 99)},
        "save_tick_ms_with_consumer_and_hanging_receiver": {"p50": ms(save_beside, 50), "p99": ms(save_beside, 99)},
        "stored_to_received_ms": {"p50": ms(delays, 50), "p99": ms(delays, 99), "received": len(delays),
                                  "poll_s": DispatchSettings().poll_s},
        "backlog": backlog, "backlog_deliveries_per_s": round((len(good.received) - before) / drain_s, 1),
        "load_average": os.getloadavg(), "nproc": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--backlog", type=int, default=2000)
    args = parser.parse_args()
    result = asyncio.run(run(args.seconds, args.backlog))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "webhooks.json").write_text(json.dumps(result, indent=2))
    alone, beside = result["save_tick_ms_no_consumer"], result["save_tick_ms_with_consumer_and_hanging_receiver"]
    delay = result["stored_to_received_ms"]
    print(f"save_tick p50/p99 ms: {alone['p50']}/{alone['p99']} without the consumer, {beside['p50']}/{beside['p99']} "
          f"with it and a hanging receiver; stored->received p50/p99 {delay['p50']}/{delay['p99']} ms "
          f"({delay['received']}/{result['ticks']}, poll {delay['poll_s']} s); backlog of {result['backlog']}: "
          f"{result['backlog_deliveries_per_s']} deliveries/s; load {result['load_average'][0]:.1f}")


if __name__ == "__main__":
    main()
