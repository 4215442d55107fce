"""WebSocket fan-out: one long-poll listener on the stream host per process, many clients.

Each client gets a bounded queue. A client that cannot keep up overflows its queue: it is sent a
``resync`` message and dropped, and the engine never waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from actors.stream import stream_key

log = logging.getLogger(__name__)

LISTEN_TIMEOUT_S = 5.0


@dataclass(eq=False, slots=True)
class Client:
    queue: asyncio.Queue[dict[str, Any]]
    overflowed: bool = False

    def offer(self, event: dict[str, Any]) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait({"type": "resync", "detail": "client too slow; reconnect and resume"})


@dataclass(slots=True)
class Fanout:
    hub: Any
    queue_size: int = 1000
    positions: dict[str, int] = field(default_factory=dict)
    clients: set[Client] = field(default_factory=set)
    delivered: int = 0
    errors: int = 0

    def watch(self, account: str, region: str) -> None:
        self.positions.setdefault(stream_key(account, region), 0)

    def subscribe(self) -> Client:
        client = Client(asyncio.Queue(maxsize=self.queue_size))
        self.clients.add(client)
        return client

    def unsubscribe(self, client: Client) -> None:
        self.clients.discard(client)

    def broadcast(self, stream: str, events: list[dict[str, Any]]) -> None:
        for event in events:
            message = {"type": "decision", "stream": stream, "seq": event["seq"], "data": event}
            for client in list(self.clients):
                client.offer(message)
            self.delivered += 1

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if not self.positions:
                await asyncio.sleep(0.2)
                continue
            try:
                result = await self.hub.listen.remote(dict(self.positions), LISTEN_TIMEOUT_S)
            except Exception:
                self.errors += 1
                log.exception("stream listener failed; retrying")
                await asyncio.sleep(1.0)
                continue
            for key, events in result["events"].items():
                if events:
                    self.positions[key] = max(self.positions.get(key, 0), int(events[-1]["seq"]))
                    self.broadcast(key, events)
