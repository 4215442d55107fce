"""Soak: the server under a steady load for a set time, minute by minute: throughput, tick latency, the
memory of every process with a growth-trend check, errors, and resumes that must leave no gap.

The server (the real app: API, stream host, region actors on a local Ray, SQLite store) runs in a child
process replaying the bundled prices at ``--speed`` (default 390 simulated seconds per wall second: 2
ticks of the 195 s recording per second per account-region, what this 2-core host sustains for 50; 1950
saturates it) into 50 account-regions (the demo replay account narrowed to one region, 49 more
registered over REST, each with a fleet of 4: see ``bench/replay_accounts.py``). Every ``--sample``
seconds it reports the actors' counters (``status``), the tick latency the actors measured (``latency_s``
of each batch reply, as bench/latency.py's actor tick), the replay's batch round trips, the fan-out's
counters and the USS/PSS/RSS of every process of its tree.

200 WebSocket clients run here, each subscribed to the decisions of one account-region and the prices of
another, reading everything; each checks that every stream's seq goes up by one. Every ``--resume-every``
seconds a few clients disconnect, wait while events go on, reconnect and ``resume`` from the last seq
they saw: they must get every missed event once, in order, then the live ones (no gap, no duplicate).

Growth trend: per process, a least-squares line through its RSS after the first minute (the warm-up:
actors start, models fill; ``--stream-capacity`` is small, 300 events per stream, so that the stream
host's ring buffers are full before it ends); a process is flagged when its line rises more than 5 MiB
and 5% of its size over the run and the rise is more than 3 standard errors. The slope of the second half
tells a cache filling to its bound (it slows) from a leak. Ray's gcs_server keeps an event per actor call
up to ``RAY_task_events_max_num_task_in_gcs`` (100,000): it grows until then.

Writes bench/results/soak.json and prints one line. Load stays on loopback and stops by itself.
Run: ``.venv/bin/python bench/soak.py [--minutes 10] [--clients 200] [--account-regions 50] [--speed 390]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import websockets

MIB = 2**20
SPEED = 390.0  # 2 ticks of the 195 s recording per second per account-region: 100 ticks/s for 50 on 2 cores
STREAM_CAPACITY = 300  # full within the warm-up at that speed, so the host's ring buffers are not growth
WARMUP_S = 60.0
GROWTH_MIN_MIB, GROWTH_MIN_SHARE, GROWTH_MIN_SE = 5.0, 0.05, 3.0
RESUMERS = 3  # clients that disconnect and resume each time
OFFLINE_S = 2.0  # how long a resuming client stays away (events go on meanwhile)
EVENT_TYPES = frozenset({"decision", "price", "instances", "alert"})


# --- the server (child process) ---------------------------------------------------------------------------


def serve(data_dir: str, config: dict[str, Any]) -> None:
    """Child: run the app with the account-regions, print the streams, then a sample line every
    ``sample_s`` until stdin closes."""
    os.environ.setdefault("RAY_worker_niceness", "0")
    report = os.fdopen(os.dup(1), "w", buffering=1)  # the parent reads JSON lines here; anything else that
    os.dup2(2, 1)  # prints (a library, Ray's processes, which inherit fd 1) goes to stderr
    import httpx
    from processes import server_processes
    from replay_accounts import narrow_demo, register

    from api.app import create_app
    from api.testing import LiveServer, demo_key, settings_for_test

    settings = settings_for_test(Path(data_dir), replay_speed=config["speed"], replay_tick_interval_s=0.5,
                                 stream_capacity=config["stream_capacity"], ws_heartbeat_s=5.0)
    with LiveServer(create_app(settings), backlog=4096) as server:
        runtime = server.runtime
        calls: list[tuple[float, list[float]]] = []  # (batch round trip s, [tick latency s of each reply])
        feed = runtime.feed
        assert feed is not None
        send = feed.send

        async def timed_send(region: str, ticks: list[Any]) -> Any:
            started = time.perf_counter()
            results = await send(region, ticks)
            calls.append((time.perf_counter() - started,
                          [r["latency_s"] for r in results if isinstance(r, dict) and "latency_s" in r]))
            return results

        async def setup() -> tuple[str, list[tuple[str, str]]]:
            async with httpx.AsyncClient(base_url=server.url, timeout=300) as http:
                await narrow_demo(http, server)
                key = await demo_key(http)  # the demo tenant owns every account-region: one key reads all
                await register(http, server, key, config["account_regions"] - 1, 4, "soak")
            return key, runtime.supervisor.list()

        key, streams = server.call(setup(), 1800.0)
        feed.send = timed_send

        async def status() -> dict[str, Any]:
            handles = [runtime.supervisor.get(a, r) for a, r in runtime.supervisor.list()]
            replies = await asyncio.gather(*(h.status.remote() for h in handles), return_exceptions=True)
            totals: dict[str, float] = defaultdict(float)
            for reply in replies:
                if isinstance(reply, BaseException):
                    totals["status_errors"] += 1
                    continue
                for name in ("batches", "rejected_batches", "tick_errors", "decisions", "published"):
                    totals[name] += reply[name]
            pids = await asyncio.gather(*(h.process_id.remote() for h in handles), return_exceptions=True)
            fanout = runtime.fanout
            return {**totals, "actor_pids": [p for p in pids if isinstance(p, int)],
                    "feed_errors": feed.errors, "feed_batches": feed.batches_sent,
                    "ws_clients": len(fanout.clients), "ws_delivered": fanout.delivered,
                    "ws_resyncs": fanout.resyncs, "fanout_errors": fanout.errors}

        print(json.dumps({"port": server.port, "key": key, "streams": streams}), file=report)
        import threading

        stop = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
        started = time.monotonic()
        while True:  # a sample at once (the baseline of the first minute), then every sample_s
            taken, calls[:] = list(calls), []
            sample = server.call(status(), 120.0)
            memory = [[r.pid, r.kind, round(r.rss_mib, 1), round(r.uss_mib, 1), round(r.pss_mib, 1)]
                      for r in server_processes()]
            print(json.dumps({"t_s": round(time.monotonic() - started, 1), **sample, "memory": memory,
                              "batch_call_s": [c for c, _ in taken],
                              "tick_latency_s": [x for _, ticks in taken for x in ticks]}), file=report)
            if stop.wait(max(0.0, config["sample_s"] - (time.monotonic() - started) % config["sample_s"])):
                return


# --- the clients (this process) ---------------------------------------------------------------------------


class Counters:
    def __init__(self) -> None:
        self.messages = self.events = self.gaps = self.duplicates = self.errors = self.disconnects = 0
        self.resyncs = self.resumes = self.resume_gaps = self.resume_duplicates = self.replayed = 0
        self.error_samples: list[str] = []

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 20:
            self.error_samples.append(what)


class Reader:
    """One WebSocket client: its subscriptions, the last seq seen per stream, and its checks."""

    def __init__(self, index: int, url: str, key: str, subscriptions: list[dict[str, Any]],
                 counters: Counters) -> None:
        self.index, self.url, self.key, self.subscriptions, self.counters = index, url, key, subscriptions, counters
        self.last: dict[str, int] = {}
        self.resuming = False  # the messages up to each stream's "resumed" are the replay
        self.closing = False  # this side is closing the socket: not a disconnect to count
        self.ws: Any = None
        self.task: asyncio.Task[None] | None = None

    async def connect(self) -> Any:
        return await websockets.connect(self.url, additional_headers={"Authorization": f"Bearer {self.key}"},
                                        max_queue=None, open_timeout=120, ping_interval=None)

    async def start(self) -> None:
        self.ws = await self.connect()
        for command in self.subscriptions:
            await self.ws.send(json.dumps(command))
        self.task = asyncio.create_task(self.read())

    def on_event(self, stream: str, seq: int, resumed: bool) -> None:
        last = self.last.get(stream)
        if last is None:  # only before the "subscribed" ack, which the server sends first
            self.counters.error(f"client {self.index}: event on {stream} before its ack")
        elif seq <= last:
            self.counters.duplicates += 1
            self.counters.resume_duplicates += resumed
        elif seq != last + 1:
            self.counters.gaps += 1
            self.counters.resume_gaps += resumed
        self.last[stream] = max(seq, last or 0)

    async def read(self) -> None:
        counters = self.counters
        pending_resumed = 0
        try:
            async for raw in self.ws:
                counters.messages += 1
                message = json.loads(raw)
                kind = message["type"]
                if kind in EVENT_TYPES:
                    counters.events += 1
                    self.on_event(message["stream"], message["seq"], self.resuming)
                elif kind == "subscribed":
                    for stream, position in message["streams"].items():
                        self.last.setdefault(stream, position)
                elif kind == "resumed":
                    counters.replayed += message["replayed"]
                    pending_resumed += 1
                    if pending_resumed >= len(self.last):
                        self.resuming, pending_resumed = False, 0
                elif kind == "resync":
                    counters.resyncs += 1
                elif kind == "gap":
                    counters.gaps += 1
                elif kind == "error":
                    counters.error(f"client {self.index}: {message}")
        except websockets.ConnectionClosed as exc:
            if not self.closing:
                counters.disconnects += 1
                counters.error(f"client {self.index}: closed {exc!r}")

    async def resume(self) -> None:
        """Disconnect, stay away while events go on, reconnect and resume from the last seq seen."""
        self.closing = True
        await self.ws.close()
        if self.task is not None:
            await self.task
        await asyncio.sleep(OFFLINE_S)
        self.closing = False
        self.resuming = True
        self.ws = await self.connect()
        await self.ws.send(json.dumps({"type": "resume", "streams": dict(self.last)}))
        self.counters.resumes += 1
        self.task = asyncio.create_task(self.read())

    async def close(self) -> None:
        self.closing = True
        await self.ws.close()
        if self.task is not None:
            await self.task


def subscriptions(index: int, streams: list[list[str]]) -> list[dict[str, Any]]:
    """Client ``index``: the decisions of one account-region and the prices of another."""
    a_account, a_region = streams[index % len(streams)]
    b_account, b_region = streams[(index * 7 + 3) % len(streams)]
    return [{"type": "subscribe", "account": a_account, "regions": [a_region], "topics": ["decisions"]},
            {"type": "subscribe", "account": b_account, "regions": [b_region], "topics": ["prices"]}]


async def run_clients(hello: dict[str, Any], args: argparse.Namespace, child: subprocess.Popen[str],
                      samples: list[dict[str, Any]], counters_by_minute: list[dict[str, int]]) -> Counters:
    url = f"ws://127.0.0.1:{hello['port']}/ws"
    counters = Counters()
    readers = [Reader(i, url, hello["key"], subscriptions(i, hello["streams"]), counters) for i in range(args.clients)]
    for k in range(0, len(readers), 50):  # connect in waves, as a fleet of dashboards would
        await asyncio.gather(*(r.start() for r in readers[k:k + 50]))
    assert child.stdout is not None
    stdout = child.stdout

    async def read_samples() -> None:
        while line := await asyncio.to_thread(stdout.readline):
            if line.startswith("{"):  # a library may print too
                samples.append(json.loads(line))

    sampler = asyncio.create_task(read_samples())
    rng = random.Random(0)
    started = time.monotonic()
    end = started + args.minutes * 60.0
    next_resume = started + args.resume_every
    next_minute = started + 60.0
    while (now := time.monotonic()) < end:
        await asyncio.sleep(max(0.0, min(next_resume, next_minute, end) - now))
        now = time.monotonic()
        if now >= next_resume:
            next_resume += args.resume_every
            await asyncio.gather(*(r.resume() for r in rng.sample(readers, RESUMERS)))
        if now >= next_minute:
            next_minute += 60.0
            counters_by_minute.append(dict(vars(counters), error_samples=None))
    counters_by_minute.append(dict(vars(counters), error_samples=None))
    await asyncio.sleep(1.0)  # a resume just started finishes its replay
    await asyncio.gather(*(r.close() for r in readers), return_exceptions=True)
    assert child.stdin is not None
    child.stdin.write("\n")
    child.stdin.flush()
    await sampler
    return counters


# --- the report -------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1e3, 2) if values else None


def minutes_report(samples: list[dict[str, Any]], counters_by_minute: list[dict[str, Any]],
                   minutes: int) -> list[dict[str, Any]]:
    out = []
    previous: dict[str, Any] = samples[0]  # taken as the clients start
    previous_counters: dict[str, Any] = defaultdict(int)
    for minute in range(minutes):
        window = [s for s in samples if minute * 60.0 < s["t_s"] <= (minute + 1) * 60.0 + 1.0]
        if not window:
            continue
        last = window[-1]
        span_s = last["t_s"] - previous["t_s"]
        counters = counters_by_minute[minute] if minute < len(counters_by_minute) else counters_by_minute[-1]
        ticks = [x for s in window for x in s["tick_latency_s"]]
        calls = [x for s in window for x in s["batch_call_s"]]
        rss = defaultdict(float)
        for _, kind, r, _, _ in last["memory"]:
            rss[kind] += r

        def delta(name: str, last: dict[str, Any] = last, previous: dict[str, Any] = previous) -> float:
            return float(last.get(name, 0.0)) - float(previous.get(name, 0.0))

        out.append({
            "minute": minute + 1,
            "decisions_per_s": round(delta("decisions") / span_s, 1),
            "batches_per_s": round(delta("batches") / span_s, 1),
            "tick_latency_ms": {"p50": percentile(ticks, 50), "p99": percentile(ticks, 99),
                                "max": percentile(ticks, 100), "samples": len(ticks)},
            "batch_call_ms": {"p50": percentile(calls, 50), "p99": percentile(calls, 99)},
            "ws_events_per_s": round((counters["events"] - previous_counters["events"]) / span_s, 1),
            "tick_errors": int(delta("tick_errors")), "rejected_batches": int(delta("rejected_batches")),
            "feed_errors": int(delta("feed_errors")), "fanout_errors": int(delta("fanout_errors")),
            "ws_errors": counters["errors"] - previous_counters["errors"],
            "ws_disconnects": counters["disconnects"] - previous_counters["disconnects"],
            "gaps": counters["gaps"] - previous_counters["gaps"],
            "duplicates": counters["duplicates"] - previous_counters["duplicates"],
            "resumes": counters["resumes"] - previous_counters["resumes"],
            "resume_replayed": counters["replayed"] - previous_counters["replayed"],
            "rss_mib_by_kind": {k: round(v, 1) for k, v in sorted(rss.items())},
            "pss_mib_total": round(sum(row[4] for row in last["memory"]), 1),
        })
        previous, previous_counters = last, counters
    return out


def growth(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per process seen through the run after the warm-up: its RSS trend (MiB per minute) and a flag."""
    series: dict[tuple[int, str], list[tuple[float, float]]] = defaultdict(list)
    for sample in samples:
        if sample["t_s"] < WARMUP_S:
            continue
        for pid, kind, rss, _, _ in sample["memory"]:
            series[(pid, kind)].append((sample["t_s"] / 60.0, rss))
    out = []
    for (pid, kind), points in series.items():
        if len(points) < 4:
            continue
        t, y = np.array(points).T
        (slope, _), residuals, *_ = np.polyfit(t, y, 1, full=True)
        dof = len(t) - 2
        sigma = float(np.sqrt(residuals[0] / dof)) if len(residuals) and dof > 0 else 0.0
        se = sigma / float(np.sqrt(((t - t.mean()) ** 2).sum())) if sigma else 0.0
        rise = float(slope * (t[-1] - t[0]))
        late = t >= (t[0] + t[-1]) / 2  # a cache filling to its bound slows down; a leak does not
        late_slope = float(np.polyfit(t[late], y[late], 1)[0]) if late.sum() >= 3 else float("nan")
        flagged = (rise > max(GROWTH_MIN_MIB, GROWTH_MIN_SHARE * float(y.mean()))
                   and (se == 0.0 or slope > GROWTH_MIN_SE * se))
        out.append({"pid": pid, "kind": kind, "rss_mib_first": round(float(y[0]), 1),
                    "rss_mib_last": round(float(y[-1]), 1), "slope_mib_per_min": round(float(slope), 3),
                    "slope_second_half_mib_per_min": round(late_slope, 3),
                    "stderr_mib_per_min": round(se, 3), "rise_mib": round(rise, 1), "flagged": bool(flagged)})
    return sorted(out, key=lambda g: -g["slope_mib_per_min"])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=int, default=10, help="how long the load runs (default 10)")
    parser.add_argument("--clients", type=int, default=200, help="WebSocket clients (default 200)")
    parser.add_argument("--account-regions", type=int, default=50, help="region actors (default 50)")
    parser.add_argument("--speed", type=float, default=SPEED, help=f"replay speed (default {SPEED:g})")
    parser.add_argument("--sample", type=float, default=15.0, help="seconds between the server's samples")
    parser.add_argument("--resume-every", type=float, default=20.0, help="seconds between resume rounds")
    parser.add_argument("--stream-capacity", type=int, default=STREAM_CAPACITY,
                        help=f"events per stream in the host (default {STREAM_CAPACITY})")
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.minutes < 2 or args.account_regions < 2 or args.clients < RESUMERS:
        parser.error("at least 2 minutes, 2 account-regions and 3 clients")
    return args


def main() -> None:
    args = parse_args()
    if args.serve:
        serve(args.serve[0], json.loads(args.serve[1]))
        return
    config = {"speed": args.speed, "account_regions": args.account_regions, "sample_s": args.sample,
              "stream_capacity": args.stream_capacity}
    samples: list[dict[str, Any]] = []
    counters_by_minute: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        child = subprocess.Popen([sys.executable, __file__, "--serve", tmp, json.dumps(config)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                 cwd=Path(__file__).resolve().parent.parent)
        try:
            assert child.stdout is not None
            setup_started = time.perf_counter()
            hello = json.loads(child.stdout.readline() or "null")
            if hello is None:
                raise SystemExit("the server did not start: see its messages above")
            setup_s = time.perf_counter() - setup_started
            counters = asyncio.run(run_clients(hello, args, child, samples, counters_by_minute))
        finally:
            if child.stdin is not None and not child.stdin.closed:
                child.stdin.close()
            try:
                child.wait(120)
            except subprocess.TimeoutExpired:  # stuck (or still setting up after a failure here)
                child.terminate()
                child.wait(60)
    minutes = minutes_report(samples, counters_by_minute, args.minutes)
    trends = growth(samples)
    flagged = [g for g in trends if g["flagged"]]
    errors = {name: sum(m[name] for m in minutes) for name in
              ("tick_errors", "rejected_batches", "feed_errors", "fanout_errors", "ws_errors", "ws_disconnects")}
    result = {
        "minutes": minutes,
        "account_regions": len(hello["streams"]),
        "clients": args.clients,
        "replay_speed": args.speed,
        "stream_capacity": args.stream_capacity,
        "setup_s": round(setup_s, 1),
        "decisions_per_s": round(float(np.mean([m["decisions_per_s"] for m in minutes])), 1),
        "batches_per_s": round(float(np.mean([m["batches_per_s"] for m in minutes])), 1),
        "worst_tick_p99_ms": max((m["tick_latency_ms"]["p99"] or 0.0) for m in minutes),
        "errors": errors,
        "error_samples": counters.error_samples,
        "gaps": counters.gaps, "duplicates": counters.duplicates, "resyncs": counters.resyncs,
        "resumes": counters.resumes, "resume_replayed": counters.replayed,
        "resume_gaps": counters.resume_gaps, "resume_duplicates": counters.resume_duplicates,
        "growth": trends,
        "growth_flagged": flagged,
        "cpus": os.cpu_count(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }
    out = Path(__file__).resolve().parent / "results" / "soak.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    top = trends[0] if trends else None
    print(f"soak: {args.minutes} min, {result['account_regions']} account-regions at {args.speed:g}x, "
          f"{args.clients} WebSocket clients: {result['decisions_per_s']} decisions/s, "
          f"{result['batches_per_s']} batches/s; worst per-minute tick p99 {result['worst_tick_p99_ms']} ms; "
          f"errors {sum(errors.values())}; gaps {counters.gaps}, duplicates {counters.duplicates}, "
          f"{counters.resumes} resumes ({counters.replayed} events replayed, {counters.resume_gaps} gaps); "
          f"RSS growth flagged in {len(flagged)} of {len(trends)} processes"
          + (f" (steepest: {top['kind']} {top['slope_mib_per_min']:+.2f} MiB/min)" if top else ""))


if __name__ == "__main__":
    main()
