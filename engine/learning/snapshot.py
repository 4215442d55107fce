"""Versioned pickles of the learning models, so an actor can checkpoint and restart where it was.

The blob is ``MAGIC + version + pickle``; a blob from another format version (or not ours at all) is
refused with a clear error instead of being half-loaded into an incompatible object.
"""

from __future__ import annotations

import pickle
from typing import TypeVar

MAGIC = b"SPOTLRN"
FORMAT_VERSION = 2  # 2: counts_state component, per-state F1 cuts

T = TypeVar("T")


class SnapshotError(ValueError):
    """A snapshot that cannot be restored: wrong magic, wrong version or wrong model type."""


def dump(model: object, version: int = FORMAT_VERSION) -> bytes:
    """Serialise a model with the format version in front.

    >>> load(dump([1, 2]), list)
    [1, 2]
    """
    return MAGIC + version.to_bytes(2, "big") + pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)


def load(blob: bytes, expected: type[T]) -> T:
    """Restore a model, checking the magic, the version and the type."""
    if not isinstance(blob, bytes | bytearray) or not blob.startswith(MAGIC):
        raise SnapshotError("not a spot-optimizer learning snapshot (bad magic bytes)")
    version = int.from_bytes(blob[len(MAGIC) : len(MAGIC) + 2], "big")
    if version != FORMAT_VERSION:
        raise SnapshotError(f"snapshot format version {version} is not supported (this build reads {FORMAT_VERSION})")
    model = pickle.loads(blob[len(MAGIC) + 2 :])  # our own checkpoints only
    if not isinstance(model, expected):
        raise SnapshotError(f"snapshot holds a {type(model).__name__}, expected {expected.__name__}")
    return model
