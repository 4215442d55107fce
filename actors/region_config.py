"""A region actor's configuration: small plain values only (Ray re-runs the actor's ``__init__`` with them
after a crash, so nothing in it may live in the object store), and the catalog lookup it is built with."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from actors.unsaved import DEFAULT_LIMIT_EVENTS
from engine.catalog import region_catalog
from engine.policy import PolicyParams

DEFAULT_PRICE_RETENTION_S = 35 * 86_400.0  # a monthly savings report reads a month of price ticks
DEFAULT_CHECKPOINT_INTERVAL_S = 60.0
DEFAULT_NOTICE_HOLD_S = 600.0
AWS_CREDENTIALS_MODES = frozenset({"aws_default", "aws_assume_role"})


@dataclass(frozen=True, slots=True)
class RegionConfig:
    account: str
    region: str
    policy: str = "risk_aware"
    params: PolicyParams = field(default_factory=PolicyParams)
    database_url: str | None = None
    executor: str = "simulated"
    seed: int = 0
    price_retention_s: float = DEFAULT_PRICE_RETENTION_S  # stored price events older than this are deleted
    unsaved_limit_events: int = DEFAULT_LIMIT_EVENTS  # events queued while the store is unreachable
    # A real cloud's account (plain references, never secrets): how the executor reaches it.
    credentials_mode: str = "replay"
    role_arn: str | None = None
    external_id: str | None = None
    managed_tag: str = "spot-optimizer:managed=true"
    notice_hold_s: float = DEFAULT_NOTICE_HOLD_S  # a pool a cloud warned about is no placement this long
    checkpoint_interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S  # wall seconds between checkpoints; 0: none
    # When this configuration was set (the account's updated_at_s): of the constructor's and the newest
    # checkpoint's, a restarted actor keeps the newer (Ray re-runs __init__ with the first one).
    config_at_s: float = 0.0

    @property
    def on_aws(self) -> bool:
        return self.credentials_mode in AWS_CREDENTIALS_MODES


@functools.lru_cache(maxsize=256)
def compatible_types(region: str, instance_type: str) -> tuple[str, ...]:
    catalog = region_catalog(region)  # the actor's region only: half the whole catalog's memory
    if instance_type not in catalog:
        return (instance_type,)
    return tuple(catalog.compatible_types(instance_type, region))
