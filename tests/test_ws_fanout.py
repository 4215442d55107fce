"""The fan-out as plain objects on a local stream host: shared listeners, catch-up without gap or
duplicate, slow consumers, and a listener that fell behind the host's buffer."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

from actors.stream import Entry, StreamHost, entries, stream_key
from api.fanout import Client, Fanout

KEY = stream_key("acct", "us-east-1")


class LocalHandle:
    """A StreamHost called the way the API calls a Ray handle (``host.method.remote(...)``)."""

    def __init__(self, host: StreamHost) -> None:
        self.host = host

    def __getattr__(self, name: str) -> Any:
        return SimpleNamespace(remote=getattr(self.host, name))


def events(*seqs: int) -> list[dict[str, Any]]:
    return [{"seq": s, "action": "keep"} for s in seqs]


def outbox_seqs(client: Client) -> list[int]:
    return [seq for stream, seq, _ in client.outbox if stream]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0.01)


async def test_one_listener_per_stream_is_shared_and_each_event_is_encoded_once() -> None:
    host = StreamHost()
    fanout = Fanout(LocalHandle(host), listen_timeout_s=0.5)
    clients = [fanout.connect("t") for _ in range(3)]
    for client in clients:
        await fanout.subscribe(client, KEY)
    await fanout.subscribe(clients[0], stream_key("acct", "us-east-1", "prices"))
    assert set(fanout.listeners) == {KEY, stream_key("acct", "us-east-1", "prices")}
    await host.publish(KEY, events(1, 2, 3))
    await settle()
    for client in clients:
        assert outbox_seqs(client) == [1, 2, 3]
    assert all(a[2] is b[2] for a, b in zip(clients[0].outbox, clients[1].outbox, strict=True))  # one encoding
    assert json.loads(clients[0].outbox[0][2]) == {"type": "decision", "stream": KEY, "seq": 1,
                                                   "data": {"seq": 1, "action": "keep"}}
    for client in clients:
        fanout.disconnect(client)
    assert fanout.listeners == {} and fanout.subscribers == {}
    await fanout.close()


async def test_catch_up_parks_live_events_and_releases_only_the_newer_ones() -> None:
    host = StreamHost()
    await host.publish(KEY, events(1, 2, 3, 4))
    fanout = Fanout(LocalHandle(host), listen_timeout_s=0.5)
    client = fanout.connect("t")
    await fanout.subscribe(client, KEY, after=1, catch_up=True)
    await host.publish(KEY, events(5, 6, 7))  # live while the client catches up: parked, not sent
    await settle()
    assert outbox_seqs(client) == []
    state = client.streams[KEY]
    for seq in (2, 3, 4, 5, 6):  # what the store replay returns (it may overlap the parked ones)
        client.offer(KEY, seq, f"replayed {seq}")
        state.last_seq = seq
    fanout.release(client, KEY)
    await host.publish(KEY, events(8))
    await settle()
    assert outbox_seqs(client) == [2, 3, 4, 5, 6, 7, 8]
    await fanout.close()


async def test_a_slow_client_overflows_into_a_resync_and_the_others_are_untouched() -> None:
    host = StreamHost()
    fanout = Fanout(LocalHandle(host), queue_size=4, listen_timeout_s=0.5)
    slow, fast = fanout.connect("t"), fanout.connect("t")
    for client in (slow, fast):
        await fanout.subscribe(client, KEY)
    fast_sent: list[int] = []
    for first in range(1, 10, 3):
        await host.publish(KEY, events(first, first + 1, first + 2))
        await settle()
        while (item := fast.take()) is not None:  # the fast client's sender keeps up
            fast_sent.append(item[1])
        if first == 1:
            assert slow.take()[1] == 1  # the slow one sent a single event, then stalled
    assert fast_sent == list(range(1, 10)) and not fast.overflowed
    assert slow.overflowed and list(slow.outbox) == [("", -1, "")]
    assert slow.resync_message()["resume"] == {KEY: 1}  # 2..5 were queued, not sent: resume after 1
    fanout.disconnect(slow)
    assert fanout.resyncs == 1 and fanout.subscribers[KEY] == {fast}
    await fanout.close()


async def test_a_listener_behind_the_buffer_gets_the_evicted_decisions_from_the_store() -> None:
    host = StreamHost(capacity=3)
    asked: list[tuple[str, int, int]] = []

    async def from_store(stream: str, after: int, before: int) -> list[Entry]:
        asked.append((stream, after, before))
        return entries(events(*range(after + 1, before)))

    fanout = Fanout(LocalHandle(host), fill_gap=from_store, listen_timeout_s=0.5)
    client = fanout.connect("t")
    await fanout.subscribe(client, KEY)
    await host.publish(KEY, events(*range(1, 11)))  # before the listener's first poll: 1..7 are evicted
    await settle()
    assert asked == [(KEY, 0, 8)]
    assert outbox_seqs(client) == list(range(1, 11))
    await fanout.close()


async def test_a_long_catch_up_drops_parked_events_instead_of_the_client() -> None:
    async def from_store(stream: str, after: int, before: int) -> list[Entry]:
        return entries(events(*range(after + 1, before)))

    host = StreamHost()
    fanout = Fanout(LocalHandle(host), fill_gap=from_store, queue_size=4, listen_timeout_s=0.5)
    client = fanout.connect("t")
    prices = stream_key("acct", "us-east-1", "prices")
    for stream in (KEY, prices):  # every topic is in the store: read it again rather than resync
        await fanout.subscribe(client, stream, after=0, catch_up=True)
        await host.publish(stream, events(*range(1, 8)))  # more than 4 arrive while the client catches up
        await settle()
        state = client.streams[stream]
        assert not client.overflowed and state.dropped
        assert state.parked == [(5, state.parked[0][1]), (6, state.parked[1][1]), (7, state.parked[2][1])]
    await fanout.close()


async def test_without_a_store_a_long_catch_up_overflows_into_a_resync() -> None:
    host = StreamHost()
    fanout = Fanout(LocalHandle(host), queue_size=4, listen_timeout_s=0.5)  # nothing to re-read from
    client = fanout.connect("t")
    await fanout.subscribe(client, KEY, after=0, catch_up=True)
    await host.publish(KEY, events(*range(1, 8)))
    await settle()
    assert client.overflowed
    await fanout.close()
