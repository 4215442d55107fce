"""Ray at the edge: the actor classes made remote, with their options in one place.

Ray re-runs ``__init__`` on restart; the region actor re-opens its store there and continues its
sequence numbers from the last persisted decision.
"""

from __future__ import annotations

from typing import Any

import ray

from actors.region import RegionActor
from actors.stream import StreamHost

NAMESPACE = "spot-optimizer"

RemoteRegionActor = ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0)(RegionActor)
RemoteStreamHost = ray.remote(max_restarts=-1, num_cpus=0)(StreamHost)


def region_actor_name(account: str, region: str) -> str:
    return f"region:{account}:{region}"


def stream_host() -> Any:
    """A stream host owned by the caller (the API process): it lives as long as the caller's handle."""
    return RemoteStreamHost.remote()
