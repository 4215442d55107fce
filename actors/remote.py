"""Ray at the edge: the actor classes made remote, with their options in one place.

Ray re-runs ``__init__`` on restart; the region actor re-opens its store there and continues its
sequence numbers from the last persisted decision.

Each actor owns its worker process, so the process is tuned for it once its setup is done: every
object alive then (modules, classes, the libraries' import-time state: most of a Python process) is
moved out of the cyclic garbage collector's reach with :func:`gc.freeze`. Otherwise a full collection
walks all of them every few thousand ticks and stalls that tick by a hundred milliseconds or more, which
is the whole latency budget of a decision many times over.
"""

from __future__ import annotations

import gc
from typing import Any

import ray

from actors.region import RegionActor
from actors.stream import StreamHost

NAMESPACE = "spot-optimizer"



def settle_process_gc() -> None:
    """Collect what setup left behind, then freeze the survivors out of later collections."""
    gc.collect()
    gc.freeze()


class RegionActorProcess(RegionActor):
    """A region actor that owns its process (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settle_process_gc()


class StreamHostProcess(StreamHost):
    """A stream host that owns its process (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settle_process_gc()


RemoteRegionActor = ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0)(RegionActorProcess)
RemoteStreamHost = ray.remote(max_restarts=-1, num_cpus=0)(StreamHostProcess)


def region_actor_name(account: str, region: str) -> str:
    return f"region:{account}:{region}"


def stream_host() -> Any:
    """A stream host owned by the caller (the API process): it lives as long as the caller's handle."""
    return RemoteStreamHost.remote()
