"""What a region actor checkpoints and how it is encoded: the engine's snapshot (pools, fleet, learned
models, policy memory) plus where the actor's streams stand, so a restarted actor resumes its models and
numbers its events on from where it was.

The payload is ``zlib(pickle(dict))`` of plain values and the engine's own versioned snapshot; the store
keeps it with :data:`CHECKPOINT_VERSION` and its SHA-256 (``actors/store/checkpoints.py``). A
checkpoint that fails any check raises :class:`CheckpointError`, and the actor falls back to an older one.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from actors.store import CheckpointRecord

CHECKPOINT_VERSION = 1
COMPRESS_LEVEL = 1  # the engine's pickle shrinks ~3x at level 1; higher levels cost far more for little


class CheckpointError(ValueError):
    """A stored checkpoint that cannot be used: wrong version, checksum mismatch, unreadable payload."""


@dataclass(frozen=True, slots=True)
class ActorState:
    """A region actor's checkpoint, decoded.

    ``fleet_at_s`` is the tick time of the newest fleet change the checkpoint holds: a stored fleet
    written later is newer. ``config`` is the actor's RegionConfig as a dict, ``config_at_s`` when it was
    set: a restarted actor keeps the newer of it and its constructor's (an in-place reconfigure is not
    what Ray re-runs ``__init__`` with).
    """

    engine: bytes  # RegionEngine.snapshot()
    seq: int = 0  # the decisions stream's last seq
    topic_seq: Mapping[str, int] = field(default_factory=dict)
    last_rule: Mapping[str, str] = field(default_factory=dict)  # instance id -> Rule value
    fleet_at_s: float = -math.inf
    config: Mapping[str, Any] = field(default_factory=dict)


def encode_state(state: ActorState) -> bytes:
    """The payload to store (CPU-heavy for a big engine: compress off the event loop).

    >>> decode_state(encode_state(ActorState(b"engine", seq=3))).seq
    3
    """
    doc = {f.name: getattr(state, f.name) for f in dataclasses.fields(ActorState)}
    doc["topic_seq"], doc["last_rule"], doc["config"] = dict(state.topic_seq), dict(state.last_rule), dict(state.config)
    return zlib.compress(pickle.dumps(doc, protocol=pickle.HIGHEST_PROTOCOL), COMPRESS_LEVEL)


def decode_state(payload: bytes) -> ActorState:
    try:
        doc = pickle.loads(zlib.decompress(payload))
    except Exception as exc:  # zlib.error, any unpickling error: the payload is unusable either way
        raise CheckpointError(f"unreadable payload: {type(exc).__name__}: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("engine"), bytes):
        raise CheckpointError("payload is not a region actor checkpoint")
    known = {f.name for f in dataclasses.fields(ActorState)}
    return ActorState(**{name: value for name, value in doc.items() if name in known})


def checked_state(record: CheckpointRecord) -> ActorState:
    """Decode a stored checkpoint after checking its format version and checksum."""
    if record.version != CHECKPOINT_VERSION:
        raise CheckpointError(f"checkpoint {record.id}: version {record.version} is not {CHECKPOINT_VERSION}")
    if not record.intact:
        raise CheckpointError(f"checkpoint {record.id}: SHA-256 mismatch (the payload changed after it was written)")
    return decode_state(record.payload)
