"""Time for a SIGKILLed region actor to serve again: Ray restarts its process, the actor restores its newest
checkpoint and the stored fleet on its first call, and a tick goes through.

A region actor with 100 pools, 20 instances and a few hundred learned ticks is checkpointed, its process
killed with SIGKILL (not a polite call), and the time measured from the kill to (1) the restarted process
answering and (2) its first tick after the restore being decided and stored, with the risk model's learned
labels no fewer than the checkpoint held. Repeated ``--kills`` times on one local Ray. Writes
bench/results/restart.json and prints one line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
from workload import region_pools

from actors.region_config import RegionConfig
from actors.remote import stream_host, stream_host_name
from actors.store import Store
from actors.supervisor import Supervisor
from engine.types import AvailabilityPoint, Instance, Lifecycle, PricePoint

RESULTS = Path(__file__).resolve().parent / "results"
REGION = "us-east-1"
TICK_S = 60.0


async def one_kill(supervisor: Supervisor, url: str, account: str, warm_ticks: int) -> dict[str, float]:
    handle = supervisor.get_or_create(RegionConfig(account, REGION, policy="risk_aware", database_url=url,
                                                   checkpoint_interval_s=3600.0))
    pools = region_pools(REGION)
    await handle.add_pools.remote([(p.key, od) for p, od in pools])
    await handle.set_fleet.remote([Instance(f"i-{k:03d}", pools[k % len(pools)][0], Lifecycle.SPOT, 0.0)
                                   for k in range(20)], 0.0)
    for t in range(warm_ticks):
        now_s = t * TICK_S
        await handle.ingest.remote([PricePoint(p, od * 0.35, now_s) for p, od in pools],
                                   [AvailabilityPoint(p, (t + k) % 50 != 0, now_s) for k, (p, _) in enumerate(pools)],
                                   now_s)
    await handle.save_checkpoint.remote()
    learned = (await handle.model_metrics.remote())["risk"]["labels_learned"]
    pid = await handle.process_id.remote()
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    while True:
        try:
            if await asyncio.wait_for(handle.process_id.remote(), 10.0) != pid:
                break
        except Exception:
            await asyncio.sleep(0.05)
    answered = time.monotonic()
    now_s = warm_ticks * TICK_S
    await handle.ingest.remote([PricePoint(p, od * 0.35, now_s) for p, od in pools], [], now_s)
    served = time.monotonic()
    after = (await handle.model_metrics.remote())["risk"]["labels_learned"]
    ray.kill(handle, no_restart=True)
    return {"answer_s": answered - killed, "serve_s": served - killed, "labels_before": learned,
            "labels_after": after}


async def run(kills: int, warm_ticks: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'restart.db'}"
        await (await Store.open(url)).close()
        hub_name = stream_host_name()
        hub = stream_host(hub_name)
        supervisor = Supervisor(hub_name=hub_name)
        runs = [await one_kill(supervisor, url, f"restart{k}", warm_ticks) for k in range(kills)]
        ray.kill(hub, no_restart=True)
    serve = [r["serve_s"] for r in runs]
    return {"kills": kills, "warm_ticks": warm_ticks, "pools": len(region_pools(REGION)), "instances": 20,
            "serve_s": {"median": statistics.median(serve), "max": max(serve)},
            "answer_s": {"median": statistics.median(r["answer_s"] for r in runs),
                         "max": max(r["answer_s"] for r in runs)},
            "labels_kept": all(r["labels_after"] >= r["labels_before"] for r in runs), "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--warm-ticks", type=int, default=300)
    args = parser.parse_args()
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             namespace="spot-optimizer", _node_ip_address="127.0.0.1")
    try:
        result = asyncio.run(run(args.kills, args.warm_ticks))
    finally:
        ray.shutdown()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "restart.json").write_text(json.dumps(result, indent=2))
    print(f"restart: SIGKILL -> serving again median {result['serve_s']['median']:.2f} s, max "
          f"{result['serve_s']['max']:.2f} s over {args.kills} kills (target <= 5 s); process answers after "
          f"{result['answer_s']['median']:.2f} s; learned labels kept: {result['labels_kept']}")


if __name__ == "__main__":
    main()
