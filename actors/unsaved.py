"""Ticks a region actor decided and streamed while its store was unreachable, kept in order until the store
answers again.

The actor never waits for the database: a tick that cannot be saved is numbered, streamed and queued here,
and every later tick queues behind it (so the store receives each stream in seq order); a background task
writes the queue out, oldest first, once the store answers. The queue is bounded in events: past the bound
the oldest ticks are dropped, which is loud (the actor counts, logs, raises an ``alerts`` event and reports
not ready) because those events are then in no store, only in the stream host's ring while it holds them.
Saving is idempotent per (stream, seq), so a tick written just before a connection broke is not doubled.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from actors.store import StreamEvent
from engine.types import Decision

DEFAULT_LIMIT_EVENTS = 10_000


@dataclass(frozen=True, slots=True)
class PendingTick:
    decisions: Sequence[tuple[int, Decision]]
    events: Sequence[StreamEvent]

    @property
    def size(self) -> int:
        return len(self.decisions) + len(self.events)


@dataclass(slots=True)
class UnsavedTicks:
    """A bounded FIFO of ticks not yet saved; ``events`` is how many events it holds."""

    limit_events: int = DEFAULT_LIMIT_EVENTS
    ticks: deque[PendingTick] = field(default_factory=deque)
    events: int = 0
    dropped_events: int = 0  # ever dropped by overflow: lost to the store

    def __post_init__(self) -> None:
        if self.limit_events < 1:
            raise ValueError(f"limit_events must be >= 1, got {self.limit_events}")

    def __bool__(self) -> bool:
        return bool(self.ticks)

    def add(self, tick: PendingTick) -> int:
        """Queue a tick; returns how many events the bound dropped to make room (oldest first).

        >>> queue = UnsavedTicks(limit_events=3)
        >>> event = StreamEvent("prices", 1, 0.0, "{}")
        >>> queue.add(PendingTick([], [event, event])), queue.add(PendingTick([], [event, event]))
        (0, 2)
        >>> queue.events, queue.dropped_events
        (2, 2)
        """
        self.ticks.append(tick)
        self.events += tick.size
        dropped = 0
        while self.events > self.limit_events and len(self.ticks) > 1:
            oldest = self.ticks.popleft()
            self.events -= oldest.size
            dropped += oldest.size
        self.dropped_events += dropped
        return dropped

    async def flush(self, save: Callable[[PendingTick], Awaitable[None]]) -> int:
        """Save the queued ticks oldest first; returns how many events were written. An error from
        ``save`` propagates with the failed tick still queued, so a later flush resumes there."""
        written = 0
        while self.ticks:
            tick = self.ticks[0]
            await save(tick)
            self.ticks.popleft()
            self.events -= tick.size
            written += tick.size
        return written
