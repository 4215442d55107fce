"""Ray at the edge: the actor classes made remote, with their options in one place.

Ray re-runs ``__init__`` on restart, with the arguments the actor was created with: so they are small
plain values (a config, a name), never object references or actor handles, which Ray keeps in its object
store and could not give back once they are gone. The region actor finds its stream host by name, and on
its first call re-opens its store, restores its newest checkpoint and continues every stream's numbering.

Each actor owns its worker process, so the process is tuned for it once its setup is done: every
object alive then (modules, classes, the libraries' import-time state: most of a Python process) is
moved out of the cyclic garbage collector's reach with :func:`gc.freeze`. Otherwise a full collection
walks all of them every few thousand ticks and stalls that tick by a hundred milliseconds or more, which
is the whole latency budget of a decision many times over.
"""

from __future__ import annotations

import gc
import logging
import os
import time
import uuid
from typing import Any

import ray

from actors.region import RegionActor, RegionConfig
from actors.stream import StreamHost

log = logging.getLogger(__name__)

NAMESPACE = "spot-optimizer"
HUB_LOOKUP_RETRY_S = 5.0  # a stream host not found by name is looked up again at most this often


def settle_process_gc() -> None:
    """Collect what setup left behind, then freeze the survivors out of later collections."""
    gc.collect()
    gc.freeze()


class RegionActorProcess(RegionActor):
    """A region actor that owns its process (see the module docstring), publishing to the stream host
    named ``hub_name`` (looked up on first use)."""

    def __init__(self, config: RegionConfig, hub_name: str | None = None) -> None:
        super().__init__(config)
        self.hub_name = hub_name
        self._hub_looked_up_at = -HUB_LOOKUP_RETRY_S
        settle_process_gc()

    def stream_host(self) -> Any:
        if self.hub is None and self.hub_name is not None:
            now = time.monotonic()
            if now - self._hub_looked_up_at >= HUB_LOOKUP_RETRY_S:
                self._hub_looked_up_at = now
                try:
                    self.hub = ray.get_actor(self.hub_name, namespace=NAMESPACE)
                except ValueError:
                    log.warning("no stream host named %r for account=%s region=%s: not publishing", self.hub_name,
                                self.config.account, self.config.region)
        return self.hub

    async def process_id(self) -> int:
        """The actor's worker process (tests kill it to see Ray restart the actor)."""
        return os.getpid()


class StreamHostProcess(StreamHost):
    """A stream host that owns its process (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settle_process_gc()


# No task events: Ray would otherwise keep a record of every call in its GCS (up to 100,000 of them), which a
# long soak showed as the GCS process growing ~29 MiB a minute; the actors count their own calls.
RemoteRegionActor = ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0,
                               enable_task_events=False)(RegionActorProcess)
RemoteStreamHost = ray.remote(max_restarts=-1, num_cpus=0, enable_task_events=False)(StreamHostProcess)


def region_actor_name(account: str, region: str) -> str:
    return f"region:{account}:{region}"


def stream_host_name() -> str:
    """A name for a new stream host, unique in the cluster."""
    return f"stream-host:{uuid.uuid4().hex[:12]}"


def stream_host(name: str, *args: Any) -> Any:
    """A stream host named ``name`` and owned by the caller (the API process): it lives as long as the
    caller's handle; region actors find it by its name."""
    return RemoteStreamHost.options(name=name, namespace=NAMESPACE).remote(*args)
