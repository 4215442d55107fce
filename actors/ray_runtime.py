"""The one place this process starts or joins Ray, and lets go of the actors it made.

``serve`` (through the app's lifespan), the CLI's ``simulate`` and the REST simulations all come through
:func:`connect`, so whichever starts Ray first is the Ray the others use (a test session's Ray included);
``api/`` never imports ``ray``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import ray

SERVICE_NAMESPACE = "spot-optimizer"
SINGLE_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True, slots=True)
class RayTarget:
    """Where to run: a cluster ``address``, or a local Ray with ``num_cpus`` workers (None: all cores).

    ``namespace`` lets named actors be found again (the server's stream host); ``single_threaded_workers``
    caps BLAS/OpenMP thread pools in every worker; ``worker_niceness`` (local Ray only) overrides the
    nice level Ray gives its workers.
    """

    address: str | None = None
    num_cpus: int | None = None
    namespace: str | None = None
    single_threaded_workers: bool = False
    worker_niceness: int | None = None


def service_target(address: str | None, num_cpus: int | None) -> RayTarget:
    """The server's Ray. Region actors reserve no CPU, so Ray does not cap their thread pools: without the
    cap each actor process may start one per core and they fight over the cores. Ray renices workers to 15
    by default; here the region actors are the latency-critical path (a price batch -> a decision on a
    dashboard), so on a local Ray they keep the API's priority."""
    return RayTarget(address, num_cpus, SERVICE_NAMESPACE, single_threaded_workers=True, worker_niceness=0)


def connect(target: RayTarget | None = None) -> None:
    """Start (or join) Ray once per process; a Ray already initialised (tests, notebooks, the server's
    own when a simulation runs behind REST) is reused as it is."""
    if ray.is_initialized():
        return
    target = target or RayTarget()
    runtime_env = {"env_vars": dict.fromkeys(SINGLE_THREAD_ENV, "1")} if target.single_threaded_workers else None
    if target.address:
        ray.init(address=target.address, namespace=target.namespace, log_to_driver=False, runtime_env=runtime_env)
        return
    # Local Ray only: keep it on loopback and quiet.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if target.worker_niceness is not None:
        os.environ.setdefault("RAY_worker_niceness", str(target.worker_niceness))
    ray.init(
        address="local",
        num_cpus=target.num_cpus,
        include_dashboard=False,
        namespace=target.namespace,
        log_to_driver=False,
        configure_logging=False,
        runtime_env=runtime_env,
    )


def cluster_cpus() -> int:
    """CPUs the connected Ray has in all (at least 1)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))  # type: ignore[no-untyped-call]


def kill_actors(handles: Iterable[Any]) -> None:
    """Kill each actor for good (no restart); one already gone is skipped."""
    for handle in handles:
        with contextlib.suppress(Exception):
            ray.kill(handle, no_restart=True)
