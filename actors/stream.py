"""StreamHost: bounded ring buffers of events with increasing sequence numbers, and long-poll listeners.

Region actors publish a whole tick of events per call; the API holds one listener per subscribed stream
and fans events out to its WebSocket clients. Every event carries the seq the actor gave it, the same
seq the store keeps, so a client resumes from the store. A listener that is behind returns at once; one
that is caught up waits until something arrives or its timeout passes (randomised a little against
thundering herds, as Ray Serve's long poll does). The buffer is bounded: a listener that fell further
behind than it holds is told so (``truncated``) and must resume from the store.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from actors.topics import TOPICS
from actors.wire import pack, unpack

DEFAULT_CAPACITY = 10_000
Entry = tuple[int, str]  # (seq, the event as JSON object text: what a WebSocket message carries as "data")


def encode(event: Mapping[str, Any]) -> str:
    """An event's JSON text, as the stream host keeps it and the store keeps non-decision events."""
    return json.dumps(event, separators=(",", ":"))


def entries(events: Sequence[Mapping[str, Any]]) -> list[Entry]:
    """Events (each with its ``seq``) as stream entries."""
    return [(int(event["seq"]), encode(event)) for event in events]


@dataclass(slots=True)
class Stream:
    capacity: int
    entries: deque[Entry] = field(default_factory=deque)
    last_seq: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def after(self, seq: int) -> tuple[list[Entry], bool]:
        """Entries newer than ``seq`` and whether some were already evicted (the listener must resync)."""
        truncated = bool(self.entries) and seq < self.entries[0][0] - 1
        return [entry for entry in self.entries if entry[0] > seq], truncated


class StreamHost:
    """Holds every stream (``account/region/topic``) of this cluster.

    Each event is kept as its JSON text, the form the WebSocket sends: a tuple of an int and a string is
    invisible to the garbage collector and a fraction of the memory of the event's objects, which matters
    for a long-running host holding thousands of events per stream.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._capacity = capacity
        self._streams: dict[str, Stream] = {}

    def _stream(self, key: str) -> Stream:
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = Stream(self._capacity)
        return stream

    def _check(self, key: str, batch: Sequence[Entry]) -> None:
        """Refuse a batch whose seqs do not each exceed the one before (and the stream's last)."""
        known = self._streams.get(key)
        last = known.last_seq if known is not None else 0
        for seq, text in batch:
            if not isinstance(text, str):
                raise ValueError(f"stream {key}: seq {seq}: an entry is (seq, JSON text), got {type(text).__name__}")
            if seq <= last:
                raise ValueError(f"stream {key}: seq {seq} is not after {last}")
            last = seq

    def _append(self, key: str, batch: Sequence[Entry]) -> int:
        stream = self._stream(key)
        stream.entries.extend(batch)
        if batch:
            stream.last_seq = batch[-1][0]
        while len(stream.entries) > stream.capacity:
            stream.entries.popleft()
        stream.changed.set()
        stream.changed = asyncio.Event()
        return stream.last_seq

    async def publish(self, key: str, events: Sequence[Mapping[str, Any]]) -> int:
        """Append a batch of events; each event's ``seq`` must exceed the one before it and the stream's
        last (a bad batch is refused whole). Returns the last seq."""
        batch = entries(events)
        self._check(key, batch)
        return self._append(key, batch)

    async def append(self, key: str, payloads: Sequence[Mapping[str, Any]]) -> int:
        """Append a batch numbered by the host (``seq`` = last + 1, ...). Returns the last seq.

        For streams no store backs (tools, tests); region actors number their own events, since what
        they publish must match what they stored.
        """
        stream = self._stream(key)
        return await self.publish(key, [{**p, "seq": stream.last_seq + i} for i, p in enumerate(payloads, 1)])

    async def publish_entries(self, batches: Mapping[str, Sequence[Entry]]) -> dict[str, int]:
        """Several streams' entries in one call (a region actor's whole tick: one round trip); every
        batch is checked before any is applied. Returns each stream's last seq."""
        for key, batch in batches.items():
            self._check(key, batch)
        return {key: self._append(key, batch) for key, batch in batches.items() if batch}

    async def publish_packed(self, blob: bytes) -> dict[str, int]:
        """:meth:`publish_entries` with its argument packed by :func:`actors.wire.pack` (the region
        actors' hot path: Ray passes one bytes value through)."""
        return await self.publish_entries(unpack(blob))

    async def last_seq(self, key: str) -> int:
        """The stream's newest seq (0 when nothing was published): where a new listener starts."""
        stream = self._streams.get(key)
        return stream.last_seq if stream else 0

    async def listen(self, positions: Mapping[str, int], timeout_s: float = 10.0) -> dict[str, Any]:
        """Entries after each stream's position: ``{"events": {key: [(seq, text), ...]}, "truncated":
        [key, ...]}``.

        Returns at once when any stream has news, else waits up to ``timeout_s`` (jittered by 10%).
        """
        def collect() -> dict[str, Any]:
            events: dict[str, list[Entry]] = {}
            truncated = []
            for key, seq in positions.items():
                news, cut = self._stream(key).after(seq)
                if news:
                    events[key] = news
                if cut:
                    truncated.append(key)
            return {"events": events, "truncated": truncated}

        result = collect()
        if result["events"] or not positions:
            return result
        waiters = [asyncio.ensure_future(self._stream(key).changed.wait()) for key in positions]
        try:
            await asyncio.wait(waiters, timeout=timeout_s * random.uniform(0.9, 1.0),
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return collect()

    async def listen_packed(self, positions: Mapping[str, int], timeout_s: float = 10.0) -> bytes:
        """:meth:`listen` with the answer packed by :func:`actors.wire.pack` (the API's listeners)."""
        return pack(await self.listen(positions, timeout_s))

    async def streams(self) -> dict[str, int]:
        """Every stream and its last seq."""
        return {key: s.last_seq for key, s in self._streams.items()}


def stream_key(account: str, region: str, topic: str = "decisions") -> str:
    """``account/region/topic``.

    >>> stream_key("demo", "us-east-1")
    'demo/us-east-1/decisions'
    """
    return f"{account}/{region}/{topic}"


def parse_stream_key(key: str) -> tuple[str, str, str]:
    """The (account, region, topic) of a key; ValueError when it is not one.

    >>> parse_stream_key("demo/us-east-1/prices")
    ('demo', 'us-east-1', 'prices')
    """
    parts = key.split("/")
    if len(parts) != 3 or not all(parts) or parts[2] not in TOPICS:
        raise ValueError(f"stream {key!r} must be 'account/region/topic' with topic one of {', '.join(TOPICS)}")
    return parts[0], parts[1], parts[2]
