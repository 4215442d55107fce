"""WebSocket fan-out: one long-poll listener per subscribed stream, shared by every client of it.

A listener asks the stream host for the events after its position, encodes each event to JSON *once*
and offers the same text to every subscribed client. Each client has a bounded outbox: a client that
cannot keep up overflows it, its outbox is replaced by a ``resync`` message (with the last seq it was
sent of every stream, to ``resume`` from) and the connection is dropped; the listener never waits for a
client, and the engine never waits for the listener.

No gap, no duplicate: a client stream remembers the last seq it was given and ignores anything at or
below it. Catching up (``resume``) registers the client with the listener *first*, parks live events
while the missed ones are read from the store (a region actor saves every event, of every topic, before
it publishes it, so anything published is already readable), then releases the parked ones above the
last replayed seq. When more live events arrive during a catch-up than a client may park, the parked ones
are dropped and the catch-up reads the store again (they are all there), so a long replay under load
never forces a resync; the slow-consumer rule applies to what is actually queued for the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

from actors.stream import Entry, parse_stream_key
from actors.views import ws_message
from actors.wire import unpack

log = logging.getLogger(__name__)

LISTEN_TIMEOUT_S = 10.0
CONTROL_BACKLOG = 500  # unsent acks, errors and heartbeats a client may have queued before a resync
RESYNC, CLOSE = -1, -2  # outbox markers (seq) the sender turns into resync-and-close, and a close
GapFiller = Callable[[str, int, int], Awaitable[list[Entry]]]  # (stream, after, before) -> stored entries


@dataclass(slots=True)
class ClientStream:
    """One stream of one client: the last seq handed to its outbox, and events parked while catching up."""

    last_seq: int
    parked: list[tuple[int, str]] | None = None
    replayable: bool = True  # anything published is also in the store (False: a stream no store backs)
    dropped: bool = False  # parked events were dropped: the catch-up must read the store again


@dataclass(eq=False, slots=True)
class Client:
    """A WebSocket connection's state: its streams, its bounded outbox and what was actually sent."""

    tenant_id: str
    limit: int
    id: int = 0
    streams: dict[str, ClientStream] = field(default_factory=dict)
    outbox: deque[tuple[str, int, str]] = field(default_factory=deque)  # (stream, seq, text); stream "" = control
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    room: asyncio.Event = field(default_factory=asyncio.Event)
    overflowed: bool = False
    events_queued: int = 0
    resume_from: dict[str, int] = field(default_factory=dict)
    sent_count: int = 0  # messages written: the heartbeat timer's sign of activity
    seen_count: int = -1
    write: Callable[[str], Coroutine[Any, Any, None]] | None = None  # the socket's send, for eager writes
    busy: bool = False  # the sender task owns the socket (draining the outbox or finishing a write)
    suspended: tuple[Coroutine[Any, Any, None], Any] | None = None  # an eager write that had to wait
    failed: bool = False
    closing: tuple[int, str] | None = None  # (code, reason): the sender closes after what is queued

    def deliver(self, stream: str, seq: int, text: str) -> None:
        """A live event from a listener: parked while catching up, dropped when already given."""
        state = self.streams.get(stream)
        if state is None or seq <= state.last_seq or self.overflowed:
            return
        if state.parked is not None:
            if len(state.parked) < self.limit:
                state.parked.append((seq, text))
            elif state.replayable:  # the store has them: drop the parked ones, the catch-up reads on
                state.parked.clear()
                state.parked.append((seq, text))
                state.dropped = True
            else:
                self.overflow()
            return
        self.offer(stream, seq, text)  # first: an overflow must not count this event as given
        state.last_seq = seq

    def offer(self, stream: str, seq: int, text: str) -> None:
        if self.overflowed or self.failed or self.closing:
            return
        if not self.busy and not self.outbox and self.write is not None:
            self._write_now(text)
            return
        if self.events_queued >= self.limit:
            self.overflow()
            return
        self.outbox.append((stream, seq, text))
        self.events_queued += 1
        self.ready.set()

    def _write_now(self, text: str) -> None:
        """Write an event at once, in the listener's turn, when nothing is ahead of it.

        A socket send normally completes without suspending (the transport buffers it), so it is run
        right here instead of waking this client's sender task: that wake-up was a third of the cost of
        a delivery. If the send has to wait (the transport is paused), the sender task finishes it and
        owns the socket until the outbox is empty again, so order is kept.
        """
        assert self.write is not None
        coro = self.write(text)
        try:
            waiting = coro.send(None)
        except StopIteration:
            self.sent_count += 1
            return
        except Exception:
            self.failed = True
            self.ready.set()
            return
        if getattr(waiting, "_asyncio_future_blocking", False):
            # What a Task does with a future its coroutine yields: take it over. Left set, the sender's
            # ``await`` of that same future fails with "await wasn't used with future".
            waiting._asyncio_future_blocking = False
        self.busy = True
        self.suspended = (coro, waiting)
        self.ready.set()

    def control(self, message: dict[str, Any]) -> None:
        """Acks, errors and notices: not counted against the event limit, never dropped (except by an
        overflow); a client that leaves ``CONTROL_BACKLOG`` of them unread overflows all the same."""
        if self.overflowed or self.closing:
            return
        if len(self.outbox) - self.events_queued >= CONTROL_BACKLOG:
            self.overflow()
            return
        self.outbox.append(("", 0, json.dumps(message, separators=(",", ":"))))
        self.ready.set()

    def close(self, code: int, reason: str) -> None:
        """Write what is queued, then close with ``code``; nothing more is queued."""
        if self.overflowed or self.closing:
            return
        self.closing = (code, reason)
        self.outbox.append(("", CLOSE, ""))
        self.ready.set()

    def overflow(self) -> None:
        self.resume_from = self._sent_positions()
        self.overflowed = True
        self.outbox.clear()
        self.events_queued = 0
        self.outbox.append(("", RESYNC, ""))  # the sender turns this marker into the resync message and closes
        self.ready.set()
        self.room.set()

    def _sent_positions(self) -> dict[str, int]:
        """Per stream, the last seq handed to the socket: seqs of a stream reach a client contiguously, so
        it is one below the first still waiting in the outbox, else the last one given (parked ones are
        not given). Computed once, at overflow, instead of bookkeeping on every send."""
        positions = {name: state.last_seq for name, state in self.streams.items()}
        first_unsent: dict[str, int] = {}
        for name, seq, _ in self.outbox:
            if name and name not in first_unsent:
                first_unsent[name] = seq
        for name, seq in first_unsent.items():
            positions[name] = seq - 1
        return {name: seq for name, seq in positions.items() if seq > 0}

    def resync_message(self) -> dict[str, Any]:
        return {"type": "resync", "detail": "client too slow: its queue overflowed; reconnect and resume",
                "resume": self.resume_from}

    def take(self) -> tuple[str, int, str] | None:
        if not self.outbox:
            self.ready.clear()
            return None
        item = self.outbox.popleft()
        if item[0]:
            self.events_queued -= 1
            if self.events_queued <= self.limit // 2:
                self.room.set()
        return item

    async def wait_for_room(self) -> None:
        """Back-pressure for replays: wait while the outbox is more than half full."""
        while self.events_queued > self.limit // 2 and not self.overflowed:
            self.room.clear()
            await self.room.wait()


@dataclass(slots=True)
class Listener:
    stream: str
    topic: str
    position: int
    task: asyncio.Task[None] | None = None


@dataclass(slots=True)
class Fanout:
    """Listeners (one per subscribed stream) and the clients subscribed to each stream."""

    hub: Any
    fill_gap: GapFiller | None = None  # reads evicted decisions back from the store
    queue_size: int = 1000
    listen_timeout_s: float = LISTEN_TIMEOUT_S
    clients: set[Client] = field(default_factory=set)
    subscribers: dict[str, set[Client]] = field(default_factory=dict)
    listeners: dict[str, Listener] = field(default_factory=dict)
    delivered: int = 0
    dispatched: int = 0
    errors: int = 0
    resyncs: int = 0
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def connect(self, tenant_id: str) -> Client:
        client = Client(tenant_id, self.queue_size, id=next(self._ids))
        self.clients.add(client)
        return client

    def disconnect(self, client: Client) -> None:
        self.clients.discard(client)
        if client.overflowed:
            self.resyncs += 1
        for stream in list(client.streams):
            self.unsubscribe(client, stream)

    async def subscribe(self, client: Client, stream: str, after: int | None = None, catch_up: bool = False) -> int:
        """Add ``stream`` to the client; live from now (``after`` None) or after ``after``.

        With ``catch_up`` the client stream starts parked: the caller replays what was missed, then calls
        :meth:`release`. Returns the stream's live position when the client joined.
        """
        listener = await self._listener(stream)
        start = listener.position if after is None else after
        client.streams[stream] = ClientStream(start, [] if catch_up else None, self.fill_gap is not None)
        self.subscribers.setdefault(stream, set()).add(client)
        return listener.position

    def release(self, client: Client, stream: str) -> None:
        """End a catch-up: hand over the parked live events newer than what was replayed."""
        state = client.streams.get(stream)
        if state is None or state.parked is None:
            return
        parked, state.parked = state.parked, None
        for seq, text in parked:
            if seq > state.last_seq:
                client.offer(stream, seq, text)
                state.last_seq = seq

    def unsubscribe(self, client: Client, stream: str) -> None:
        client.streams.pop(stream, None)
        members = self.subscribers.get(stream)
        if members is None:
            return
        members.discard(client)
        if not members:
            del self.subscribers[stream]
            listener = self.listeners.pop(stream, None)
            if listener is not None and listener.task is not None:
                listener.task.cancel()

    async def _listener(self, stream: str) -> Listener:
        listener = self.listeners.get(stream)
        if listener is None:
            _, _, topic = parse_stream_key(stream)
            position = int(await self.hub.last_seq.remote(stream))
            listener = self.listeners.get(stream)  # another client may have started it meanwhile
            if listener is None:
                listener = self.listeners[stream] = Listener(stream, topic, position)
                listener.task = asyncio.create_task(self._listen(listener), name=f"listen:{stream}")
        return listener

    def dispatch(self, listener: Listener, batch: list[Entry]) -> None:
        members = self.subscribers.get(listener.stream, ())
        for seq, payload in batch:
            if seq <= listener.position:
                continue
            listener.position = seq
            text = ws_message(listener.stream, listener.topic, seq, payload)
            for client in list(members):
                client.deliver(listener.stream, seq, text)
            self.dispatched += 1
            self.delivered += len(members)

    async def _listen(self, listener: Listener) -> None:
        stream = listener.stream
        while self.listeners.get(stream) is listener:
            try:
                result = unpack(await self.hub.listen_packed.remote({stream: listener.position}, self.listen_timeout_s))
                batch = result["events"].get(stream, [])
                if stream in result["truncated"]:
                    batch = await self._gap(listener, batch)
                self.dispatch(listener, batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.errors += 1
                log.exception("stream listener %s failed; retrying", stream)
                await asyncio.sleep(1.0)

    async def _gap(self, listener: Listener, batch: list[Entry]) -> list[Entry]:
        """The host evicted entries this listener had not read: they come back from the store."""
        first = batch[0][0] if batch else None
        if self.fill_gap is None or first is None:
            self._notify(listener.stream, {"type": "gap", "stream": listener.stream,
                                           "detail": "events were evicted before they could be sent"})
            return batch
        missed = await self.fill_gap(listener.stream, listener.position, first)
        return missed + batch

    def _notify(self, stream: str, message: dict[str, Any]) -> None:
        for client in list(self.subscribers.get(stream, ())):
            client.control(message)

    async def heartbeats(self, every_s: float, stop: asyncio.Event) -> None:
        """One timer for every connection: a client that was sent nothing for about ``every_s`` gets a
        heartbeat. (A timeout per send would cost a task per event per client; this is one pass over the
        clients per half period.)"""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s / 2)
            message = {"type": "heartbeat", "at_s": time.time()}
            for client in list(self.clients):
                if client.sent_count == client.seen_count and not client.outbox:
                    client.control(message)
                client.seen_count = client.sent_count

    def queue_depths(self) -> list[int]:
        return [c.events_queued for c in self.clients]

    async def close(self) -> None:
        tasks = [lst.task for lst in self.listeners.values() if lst.task is not None]
        self.listeners.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def finish_write(coro: Coroutine[Any, Any, None], waiting: Any) -> None:
    """Drive a started send coroutine to its end from the sender task (see ``Client._write_now``)."""
    while True:
        error: BaseException | None = None
        try:
            if waiting is None:
                await asyncio.sleep(0)
            else:
                await waiting
        except asyncio.CancelledError:
            coro.close()
            raise
        except Exception as exc:
            error = exc
        try:
            waiting = coro.throw(error) if error is not None else coro.send(None)
        except StopIteration:
            return
