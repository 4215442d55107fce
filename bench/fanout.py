"""WebSocket fan-out cost: server CPU microseconds per client per message, and delivery latency, with
1,000 clients on one stream.

The server (the real app: API process + stream host actor on a local Ray) runs in a child process; the
clients run here, so their CPU is not counted. The child publishes decision-sized events (a real decision
JSON, ~1 kB) on one stream at a fixed rate, straight to the stream host as a region actor does; every
client subscribed to that stream receives each one. Server CPU = the API process's CPU time (user + sys)
during the publishing window, divided by clients x messages: it includes the listener, building each
event's wire message once (the host keeps the event's JSON text), the per-client outbox and the WebSocket
writes (and the publishing itself). The
process's idle CPU (Ray's driver threads, timers) is measured first with every client connected, and
the cost above it is reported too.
Delivery latency = arrival at a client - the publish wall time stamped into the event (one machine).
A client "keeps up" when it never got a ``resync``; for those, every seq must arrive once, in order.

Writes bench/results/fanout.json and prints one line.
Run: ``.venv/bin/python bench/fanout.py [clients] [messages] [rate_per_s]``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import websockets

CLIENTS = 1000
MESSAGES = 200
RATE_PER_S = 10.0
IDLE_S = 5.0
ACCOUNT, REGION = "fanout", "us-east-1"
DECISION_PREFIX, SEQ, PUBLISHED = '{"type":"decision"', '"seq":', '"published_at":'


# --- the server (child process) ---------------------------------------------------------------------------


def serve(data_dir: str) -> None:
    """Child: run the app, print its port and a tenant key, then publish when told, and report CPU."""
    os.environ.setdefault("RAY_worker_niceness", "0")
    from actors.store import decision_to_json
    from actors.store.tenancy import Account
    from actors.stream import stream_key
    from api.app import create_app
    from api.testing import LiveServer, settings_for_test
    from engine.types import Action, Candidate, Decision, Lifecycle, Pool, Rule

    settings = settings_for_test(Path(data_dir), replay=False, ws_queue_size=10_000, ws_heartbeat_s=30.0)
    implementation = {"ws": os.environ["SPOT_BENCH_WS"]} if "SPOT_BENCH_WS" in os.environ else {}  # else serve's
    with LiveServer(create_app(settings), backlog=4096, **implementation) as server:
        runtime = server.runtime

        async def setup() -> str:
            tenant = await runtime.tenancy.create_tenant("fanout", time.time())
            await runtime.tenancy.create_account(Account(ACCOUNT, tenant.id, (REGION,), "aws_default", "dry_run",
                                                         "risk_aware"))
            return (await runtime.tenancy.create_key(tenant.id, "bench", time.time()))[1]

        key = server.call(setup())
        print(json.dumps({"port": server.port, "key": key}), flush=True)
        command = json.loads(sys.stdin.readline())
        a, b = Pool("p3.2xlarge", "us-east-1a"), Pool("p3.2xlarge", "us-east-1c")
        decision = Decision("i-0001", Action.REPLACE, Rule.SAVING, "us-east-1c is 0.21 $/h cheaper after risk; "
                            "the saving beats the 0.05 $/h threshold and pays back the move in 3.1 h", 1.7e9,
                            a, Lifecycle.SPOT, b, Lifecycle.SPOT, 0.21,
                            {"risk_from": 0.12, "risk_to": 0.03, "cost_from": 1.1, "cost_to": 0.89},
                            tuple(Candidate(Pool("p3.2xlarge", f"us-east-1{z}"), Lifecycle.SPOT, 0.9, 0.05, 0.95)
                                  for z in "acdf"), "risk_aware")
        stream = stream_key(ACCOUNT, REGION)

        async def publish(messages: int, rate_per_s: float) -> dict[str, float]:
            profiler = None
            if os.environ.get("SPOT_BENCH_PROFILE"):
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            listeners = len(runtime.fanout.listeners)
            idle0, idle_wall0 = time.process_time(), time.perf_counter()
            await asyncio.sleep(IDLE_S)  # every client connected, nothing published: the fixed cost
            idle_cpu_per_s = (time.process_time() - idle0) / (time.perf_counter() - idle_wall0)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for seq in range(1, messages + 1):
                event = decision_to_json(ACCOUNT, REGION, seq, decision) | {"published_at": time.time()}
                await runtime.hub.publish.remote(stream, [event])
                await asyncio.sleep(max(0.0, wall0 + seq / rate_per_s - time.perf_counter()))
            cpu_mid = time.process_time()
            await asyncio.sleep(2.0)  # let the last event drain to every client
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(os.environ["SPOT_BENCH_PROFILE"])
            return {"cpu_s": time.process_time() - cpu0, "cpu_publishing_s": cpu_mid - cpu0,
                    "wall_s": time.perf_counter() - wall0, "resyncs": runtime.fanout.resyncs,
                    "delivered": runtime.fanout.delivered, "listeners": listeners,
                    "idle_cpu_per_s": idle_cpu_per_s}

        print(json.dumps(server.call(publish(command["messages"], command["rate_per_s"]), 600)), flush=True)
        sys.stdin.readline()


# --- the clients (this process) ---------------------------------------------------------------------------


async def client(url: str, key: str, messages: int, ready: asyncio.Event, results: list[dict[str, Any]]) -> None:
    seqs: list[int] = []
    latencies: list[float] = []
    resynced = False
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {key}"}, max_queue=None,
                                  open_timeout=120) as ws:
        await ws.send(json.dumps({"type": "subscribe", "account": ACCOUNT}))
        while json.loads(await ws.recv())["type"] != "subscribed":
            pass
        ready.set()
        while len(seqs) < messages and not resynced:
            try:
                raw = await asyncio.wait_for(ws.recv(), 60)
            except (TimeoutError, websockets.ConnectionClosed):
                break
            arrived = time.time()
            if raw.startswith(DECISION_PREFIX):  # the hot path, parsed by hand: the clients share 2 cores
                seq_at = raw.index(SEQ, len(DECISION_PREFIX)) + len(SEQ)
                seqs.append(int(raw[seq_at:raw.index(",", seq_at)]))
                stamp_at = raw.rindex(PUBLISHED) + len(PUBLISHED)
                latencies.append(arrived - float(raw[stamp_at:raw.index("}", stamp_at)]))
            elif json.loads(raw)["type"] == "resync":
                resynced = True
    results.append({"seqs": seqs, "latencies": latencies, "resynced": resynced})


async def run_clients(port: int, key: str, clients: int, messages: int, rate: float,
                      child: subprocess.Popen[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    url = f"ws://127.0.0.1:{port}/ws"
    results: list[dict[str, Any]] = []
    readies = [asyncio.Event() for _ in range(clients)]
    tasks = []
    for i in range(clients):  # connect in waves, as a fleet of dashboards would, not all in one instant
        tasks.append(asyncio.create_task(client(url, key, messages, readies[i], results)))
        if i % 50 == 49:
            await asyncio.gather(*(r.wait() for r in readies[i - 49:i + 1]))
    await asyncio.gather(*(r.wait() for r in readies))
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(json.dumps({"messages": messages, "rate_per_s": rate}) + "\n")
    child.stdin.flush()
    server_line = await asyncio.to_thread(child.stdout.readline)
    await asyncio.gather(*tasks)
    return results, json.loads(server_line)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        serve(sys.argv[2])
        return
    clients = int(sys.argv[1]) if len(sys.argv) > 1 else CLIENTS
    messages = int(sys.argv[2]) if len(sys.argv) > 2 else MESSAGES
    rate = float(sys.argv[3]) if len(sys.argv) > 3 else RATE_PER_S
    with tempfile.TemporaryDirectory() as tmp:
        child = subprocess.Popen([sys.executable, __file__, "--serve", tmp], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None
            hello = json.loads(child.stdout.readline())
            results, server = asyncio.run(run_clients(hello["port"], hello["key"], clients, messages, rate, child))
        finally:
            if child.stdin is not None:
                child.stdin.close()
            child.wait(60)
    kept_up = [r for r in results if not r["resynced"]]
    lossless = sum(r["seqs"] == list(range(1, messages + 1)) for r in kept_up)
    latencies_ms = np.concatenate([np.asarray(r["latencies"]) for r in results]) * 1e3
    deliveries = clients * messages
    result = {
        "clients": clients,
        "messages": messages,
        "rate_per_s": rate,
        "server_cpu_us_per_client_message": round(server["cpu_s"] * 1e6 / deliveries, 2),
        "server_cpu_us_per_client_message_above_idle": round(
            (server["cpu_s"] - server["idle_cpu_per_s"] * server["wall_s"]) * 1e6 / deliveries, 2),
        "server_idle_cpu_share": round(server["idle_cpu_per_s"], 4),
        "server_cpu_s": round(server["cpu_s"], 3),
        "stream_listeners": server["listeners"],
        "delivery_ms": {"p50": round(float(np.percentile(latencies_ms, 50)), 2),
                        "p99": round(float(np.percentile(latencies_ms, 99)), 2),
                        "max": round(float(latencies_ms.max()), 2)},
        "clients_kept_up": len(kept_up),
        "clients_kept_up_lossless": int(lossless),
        "clients_resynced": clients - len(kept_up),
        "target_us_per_client_message": 20.0,
        "cpus": os.cpu_count(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }
    out = Path(__file__).resolve().parent / "results" / "fanout.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"fanout: {result['server_cpu_us_per_client_message']} us server CPU per client per message "
          f"({result['server_cpu_us_per_client_message_above_idle']} above the idle process; target <= 20), "
          f"delivery p99 {result['delivery_ms']['p99']} ms, {clients} clients x {messages} messages at {rate:g}/s; "
          f"{lossless}/{len(kept_up)} clients that kept up got every event once, in order; "
          f"{result['clients_resynced']} resynced")


if __name__ == "__main__":
    main()
