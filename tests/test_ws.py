"""WebSocket ``/ws`` over a real socket: subscribe, resume without gap or duplicate, slow consumers,
heartbeats, auth and tenant isolation. (The slow-consumer queue, overflow and resync positions are also
tested on plain objects in test_ws_fanout.py.) Decisions are written the way a region actor writes them (saved
in the store, then published on the stream host), so each test controls exactly what is in flight."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from test_store_codec import T0_S, make_decision

from actors.store import StreamEvent, decision_to_json
from actors.stream import stream_key
from api.app import create_app
from api.testing import LiveServer, bearer_headers, new_tenant, settings_for_test

pytestmark = pytest.mark.ray
REGION = "us-east-1"


@pytest.fixture(scope="module")
def server(ray_session, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = settings_for_test(tmp_path_factory.mktemp("ws"), replay=False, ws_queue_size=64, ws_heartbeat_s=0.5)
    with LiveServer(create_app(settings)) as live:
        yield live


def publish(server: LiveServer, account: str, seqs: range) -> None:
    """What a region actor does per batch: save the decisions in one transaction, then publish them."""
    runtime = server.runtime
    batch = [(s, make_decision(f"i-{s % 3}", decided_at_s=T0_S + s)) for s in seqs]

    async def write() -> None:
        await runtime.store.save_tick(account, REGION, batch, [])
        await runtime.hub.publish.remote(stream_key(account, REGION),
                                         [decision_to_json(account, REGION, s, d) for s, d in batch])

    server.call(write())


async def connect(server: LiveServer, key: str) -> Any:
    ws = await websockets.connect(server.ws_url, additional_headers=bearer_headers(key))
    hello = await next_message(ws, "hello")
    assert hello["tenant"]
    return ws


async def next_message(ws: Any, kind: str, timeout_s: float = 20.0) -> dict[str, Any]:
    """The next message of ``kind``, skipping heartbeats (and failing on anything else)."""
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
        if message["type"] == "heartbeat" and kind != "heartbeat":
            continue
        assert message["type"] == kind, message
        return message


async def read_until_closed(ws: Any) -> tuple[list[int], dict[str, Any] | None, websockets.ConnectionClosed]:
    """Everything until the server closes: the decision seqs, the resync message if any, how it closed."""
    seen, resync = [], None
    try:
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 20))
            if message["type"] == "decision":
                seen.append(message["seq"])
            elif message["type"] == "resync":
                resync = message
    except websockets.ConnectionClosed as closed:
        return seen, resync, closed


async def decisions(ws: Any, count: int) -> list[int]:
    return [(await next_message(ws, "decision"))["seq"] for _ in range(count)]


async def test_resume_after_a_disconnect_replays_exactly_the_missed_events_then_goes_live(
        server: LiveServer, tenant: tuple[str, str]) -> None:
    key, account = tenant
    stream = stream_key(account, REGION)
    ws = await connect(server, key)
    await ws.send(json.dumps({"type": "subscribe", "account": account, "regions": [REGION]}))
    assert (await next_message(ws, "subscribed"))["streams"] == {stream: 0}
    publish(server, account, range(1, 6))
    assert await decisions(ws, 5) == [1, 2, 3, 4, 5]
    await ws.close()

    publish(server, account, range(6, 16))  # while nobody listens
    publish(server, account, range(16, 21))

    ws = await connect(server, key)
    await ws.send(json.dumps({"type": "resume", "streams": {stream: 5}}))
    assert await decisions(ws, 15) == list(range(6, 21))
    resumed = await next_message(ws, "resumed")
    assert resumed == {"type": "resumed", "stream": stream, "replayed": 15, "seq": 20}
    publish(server, account, range(21, 24))
    assert await decisions(ws, 3) == [21, 22, 23]
    await ws.close()


async def test_resuming_while_decisions_keep_coming_has_no_gap_and_no_duplicate(
        server: LiveServer, tenant: tuple[str, str]) -> None:
    key, account = tenant
    stream = stream_key(account, REGION)
    publish(server, account, range(1, 301))
    stop = asyncio.Event()

    async def keep_publishing() -> int:
        seq = 301
        while not stop.is_set():
            await asyncio.to_thread(publish, server, account, range(seq, seq + 7))
            seq += 7
        return seq - 1

    publisher = asyncio.create_task(keep_publishing())
    await asyncio.sleep(0.05)
    ws = await connect(server, key)
    await ws.send(json.dumps({"type": "resume", "streams": {stream: 0}}))
    seen: list[int] = []
    while len(seen) < 400:
        message = json.loads(await asyncio.wait_for(ws.recv(), 20))
        if message["type"] == "decision":
            seen.append(message["seq"])
    stop.set()
    last = await publisher
    while seen[-1] < last:
        message = json.loads(await asyncio.wait_for(ws.recv(), 20))
        if message["type"] == "decision":
            seen.append(message["seq"])
    await ws.close()
    assert seen == list(range(1, last + 1))


async def test_resume_replays_a_prices_stream_from_the_store(server: LiveServer, tenant: tuple[str, str]) -> None:
    """Every topic is stored before it is published, so a resume is read from the store: here the
    missed price ticks are only in the store (as after a stream-host restart), and still come back."""
    key, account = tenant
    stream = stream_key(account, REGION, "prices")

    def tick(seq: int) -> StreamEvent:
        payload = {"at_s": T0_S + seq, "prices": [{"pool": "m5.large@us-east-1a", "price_usd_per_hour": 0.03}],
                   "availability": [], "seq": seq}
        return StreamEvent("prices", seq, T0_S + seq, json.dumps(payload))

    ws = await connect(server, key)
    await ws.send(json.dumps({"type": "subscribe", "account": account, "topics": ["prices"]}))
    await next_message(ws, "subscribed")

    async def live(seqs: range) -> None:
        await server.runtime.store.save_tick(account, REGION, [], [tick(s) for s in seqs])
        await server.runtime.hub.publish.remote(stream, [json.loads(tick(s).payload) for s in seqs])

    server.call(live(range(1, 3)))
    assert [(await next_message(ws, "price"))["seq"] for _ in range(2)] == [1, 2]
    await ws.close()
    server.call(server.runtime.store.save_tick(account, REGION, [], [tick(s) for s in range(3, 8)]))

    ws = await connect(server, key)
    await ws.send(json.dumps({"type": "resume", "streams": {stream: 2}}))
    replayed = [await next_message(ws, "price") for _ in range(5)]
    assert [m["seq"] for m in replayed] == [3, 4, 5, 6, 7] and replayed[0]["data"]["at_s"] == T0_S + 3
    assert (await next_message(ws, "resumed"))["replayed"] == 5
    await ws.close()


async def test_a_listeners_gap_is_filled_from_the_store_for_every_topic(server: LiveServer,
                                                                       tenant: tuple[str, str]) -> None:
    """What the runtime hands a listener that fell behind the ring buffer: the stored events between."""
    _, account = tenant
    publish(server, account, range(1, 8))
    prices = [StreamEvent("prices", s, T0_S + s, json.dumps({"at_s": T0_S + s, "prices": [], "seq": s}))
              for s in range(1, 6)]
    server.call(server.runtime.store.save_tick(account, REGION, [], prices))
    decisions_gap = server.call(server.runtime.events_between(stream_key(account, REGION), 2, 6))
    assert [seq for seq, _ in decisions_gap] == [3, 4, 5]
    assert json.loads(decisions_gap[0][1])["instance_id"] == "i-0"
    prices_gap = server.call(server.runtime.events_between(stream_key(account, REGION, "prices"), 0, 4))
    assert [(seq, json.loads(text)) for seq, text in prices_gap] == [
        (s, {"at_s": T0_S + s, "prices": [], "seq": s}) for s in (1, 2, 3)]


async def test_subscriptions_change_and_idle_connections_get_heartbeats(
        server: LiveServer, tenant: tuple[str, str]) -> None:
    key, account = tenant
    ws = await connect(server, key)
    await ws.send(json.dumps({"type": "subscribe", "topics": ["decisions", "prices"]}))
    subscribed = await next_message(ws, "subscribed")
    assert set(subscribed["streams"]) == {stream_key(account, REGION), stream_key(account, REGION, "prices")}
    await next_message(ws, "heartbeat", timeout_s=5)
    await ws.send(json.dumps({"type": "ping"}))
    await next_message(ws, "pong")

    await ws.send(json.dumps({"type": "unsubscribe", "topics": ["decisions"]}))
    await next_message(ws, "unsubscribed")
    publish(server, account, range(1, 4))
    price_stream = stream_key(account, REGION, "prices")
    await server.runtime.hub.append.remote(price_stream, [{"at_s": T0_S, "prices": [], "availability": []}])
    price = await next_message(ws, "price")  # decisions no longer come; prices do
    assert price["stream"] == price_stream and price["seq"] == 1

    await ws.send(json.dumps({"type": "subscribe", "topics": ["weather"]}))
    assert (await next_message(ws, "error"))["error"] == "bad_request"
    await ws.send("not json")
    assert (await next_message(ws, "error"))["error"] == "invalid_message"
    await ws.close()


async def test_another_tenant_cannot_subscribe_or_resume_and_sees_nothing(
        server: LiveServer, tenant: tuple[str, str]) -> None:
    _, account = tenant
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        _, other_key = await new_tenant(http)
    ws = await connect(server, other_key)
    for message in ({"type": "subscribe", "account": account},
                    {"type": "resume", "streams": {stream_key(account, REGION): 0}},
                    {"type": "resume", "streams": {stream_key("no-such-account", REGION): 0}}):
        await ws.send(json.dumps(message))
        error = await next_message(ws, "error")
        assert error["error"] == "not_found" and "unknown account" in error["detail"]
    await ws.send(json.dumps({"type": "subscribe"}))  # everything of its own: nothing
    assert (await next_message(ws, "subscribed"))["streams"] == {}
    publish(server, account, range(1, 4))
    await next_message(ws, "heartbeat", timeout_s=5)  # and nothing of the other tenant arrives
    await ws.close()


async def test_connections_without_valid_credentials_are_refused(server: LiveServer,
                                                                 tenant: tuple[str, str]) -> None:
    key, _ = tenant
    for url, headers in ((server.ws_url, None), (f"{server.ws_url}?token=forged.token", None),
                         (server.ws_url, bearer_headers("spk_nope_nope"))):
        async with websockets.connect(url, additional_headers=headers) as ws:
            assert (await next_message(ws, "error"))["error"] == "unauthorized"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    async with httpx.AsyncClient(base_url=server.url, headers=bearer_headers(key)) as http:
        token = (await http.post("/api/v1/ws-tokens")).json()["token"]
    async with websockets.connect(f"{server.ws_url}?token={token}") as ws:
        await next_message(ws, "hello")


@pytest.mark.slow
async def test_a_client_that_stops_reading_gets_a_resync_and_resumes_with_nothing_lost(
        server: LiveServer, tenant: tuple[str, str]) -> None:
    """Over real sockets: one client stops reading, so its TCP buffers and then its bounded queue fill;
    it is marked for ``resync`` while a client that keeps up gets every event and publishing never waits.
    When it reads again it gets what was already in flight, then ``resync`` and a close (1013); resuming
    from the resync positions replays exactly the rest."""
    key, account = tenant
    stream = stream_key(account, REGION)
    fast = await connect(server, key)
    slow = await websockets.connect(server.ws_url, additional_headers=bearer_headers(key), max_queue=1)
    await next_message(slow, "hello")
    for ws in (fast, slow):
        await ws.send(json.dumps({"type": "subscribe", "account": account, "regions": [REGION]}))
        await next_message(ws, "subscribed")

    def overflowed() -> bool:
        return any(client.overflowed for client in server.runtime.fanout.clients)

    total, fast_seen = 0, []
    while total < 20_000 and not overflowed():
        await asyncio.to_thread(publish, server, account, range(total + 1, total + 501))
        total += 500
        fast_seen += await decisions(fast, 500)
    assert overflowed(), "the slow client never overflowed"
    assert fast_seen == list(range(1, total + 1))  # the fast client got everything, in order

    slow_seen, resync, closed = await read_until_closed(slow)
    assert closed.rcvd is not None and closed.rcvd.code == 1013
    assert resync is not None and slow_seen == list(range(1, len(slow_seen) + 1))
    assert resync["resume"] == {stream: slow_seen[-1]}  # exactly what it received

    again = await connect(server, key)
    await again.send(json.dumps({"type": "resume", "streams": resync["resume"]}))
    rest = await decisions(again, total - slow_seen[-1])
    assert slow_seen + rest == list(range(1, total + 1))
    for ws in (fast, again):
        await ws.close()
