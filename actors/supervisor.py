"""Supervisor: finds or creates the region actor of an (account, region), and lists them.

Actors are named (``region:<account>:<region>`` in the ``spot-optimizer`` namespace), so any process of
the cluster finds the same one; Ray restarts a crashed actor and the supervisor's handle stays valid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from actors.region_config import RegionConfig
from actors.remote import NAMESPACE, RemoteRegionActor, region_actor_name

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class UnknownRegionActor(KeyError):
    """No actor serves that (account, region)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown account or region"


def check_name(kind: str, value: str) -> str:
    """Account and region names become actor names and URL parts: keep them plain.

    >>> check_name("account", "demo")
    'demo'
    """
    if not _NAME.match(value):
        raise ValueError(f"{kind} {value!r} must be 1-64 letters, digits, '.', '_' or '-'")
    return value


@dataclass(slots=True)
class Supervisor:
    """Owns the map (account, region) -> actor handle for this process."""

    hub_name: str | None = None  # the stream host's actor name (a handle would pin a Ray restart to it)
    # Memory each actor reserves from Ray's scheduler (0: none). Reserving nothing, Ray's default policy packs
    # actors on the creating process's node; reserving, a node takes them until half its memory is reserved.
    actor_memory_mb: float = 0.0
    actors: dict[tuple[str, str], Any] = field(default_factory=dict)
    configs: dict[tuple[str, str], RegionConfig] = field(default_factory=dict)

    def get_or_create(self, config: RegionConfig) -> Any:
        key = (check_name("account", config.account), check_name("region", config.region))
        handle = self.actors.get(key)
        if handle is None:
            reserved = {"memory": round(self.actor_memory_mb * 2**20)} if self.actor_memory_mb else {}
            handle = RemoteRegionActor.options(
                name=region_actor_name(*key), namespace=NAMESPACE, get_if_exists=True, **reserved
            ).remote(config, self.hub_name)
            self.actors[key] = handle
            self.configs[key] = config
        return handle

    def get(self, account: str, region: str) -> Any:
        try:
            return self.actors[(account, region)]
        except KeyError:
            raise UnknownRegionActor(f"no account {account!r} with region {region!r}") from None

    def known(self, account: str, region: str) -> bool:
        return (account, region) in self.actors

    def accounts(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for account, region in sorted(self.actors):
            out.setdefault(account, []).append(region)
        return out

    def list(self) -> list[tuple[str, str]]:
        return sorted(self.actors)
