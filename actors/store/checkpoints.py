"""Checkpoint records: what :meth:`Store.save_checkpoint` keeps and :meth:`Store.load_checkpoints` returns.

The store does not read a payload (``actors/checkpoint.py`` owns the format); it keeps the payload's
SHA-256 beside it, so a reader can tell a payload that changed after it was written (a torn write, a bad
disk, a hand edit) from one that did not, and it keeps the last few per stream, so one bad checkpoint
never leaves an actor with nothing to resume from.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from actors.store.errors import InvalidRecordError
from actors.store.tables import ACCOUNT_MAX_LEN, REGION_MAX_LEN

KEEP_CHECKPOINTS = 3


def sha256_hex(payload: bytes) -> str:
    """The checksum stored with a payload.

    >>> sha256_hex(b"")[:12]
    'e3b0c44298fc'
    """
    return hashlib.sha256(payload).hexdigest()


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    """One stored checkpoint. ``tick_s`` is the actor's last tick (None before its first one);
    ``created_at_s`` is the wall clock when it was taken."""

    id: int
    account: str
    region: str
    created_at_s: float
    tick_s: float | None
    version: int
    sha256: str
    payload: bytes

    @property
    def intact(self) -> bool:
        """The payload is the one that was written (its SHA-256 matches)."""
        return sha256_hex(self.payload) == self.sha256


def checkpoint_row(account: str, region: str, payload: bytes, *, version: int, tick_s: float | None,
                   created_at_s: float, sha256: str | None) -> dict[str, Any]:
    """A validated ``checkpoints`` row; an InvalidRecordError names the bad field."""
    for name, value, limit in (("account", account, ACCOUNT_MAX_LEN), ("region", region, REGION_MAX_LEN)):
        if not isinstance(value, str) or not 0 < len(value) <= limit:
            raise InvalidRecordError(name, f"must be a string of 1-{limit} characters, got {value!r}")
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise InvalidRecordError("payload", f"must be bytes, got {type(payload).__name__}")
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidRecordError("version", f"must be an integer, got {version!r}")
    if not (isinstance(created_at_s, int | float) and math.isfinite(created_at_s)):
        raise InvalidRecordError("created_at_s", f"must be finite epoch seconds, got {created_at_s!r}")
    payload = bytes(payload)
    return {"account": account, "region": region, "created_at_s": float(created_at_s),
            "tick_s": float(tick_s) if tick_s is not None and math.isfinite(tick_s) else None,
            "version": version, "sha256": sha256 or sha256_hex(payload), "payload": payload}


def checkpoint_from_row(row: Mapping[str, Any]) -> CheckpointRecord:
    return CheckpointRecord(int(row["id"]), row["account"], row["region"], float(row["created_at_s"]),
                            None if row["tick_s"] is None else float(row["tick_s"]), int(row["version"]),
                            row["sha256"], bytes(row["payload"]))
