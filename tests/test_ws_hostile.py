"""Hostile WebSocket clients over real sockets: each is answered with an error or a close code and cut
off, while a well-behaved client connected at the same time keeps receiving every event in order.

The server here has small limits (4 KiB messages, 5 messages/s with a burst of 30, 3 streams, a 1 s send
timeout) so each fault is reached quickly; timings are for benchmarks, the waits below are generous.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import websockets
from test_ws import connect, decisions, next_message, publish
from websockets.client import ClientProtocol
from websockets.frames import Frame
from websockets.http11 import Response
from websockets.uri import parse_uri

from actors.stream import stream_key
from actors.topics import TOPICS
from api.app import create_app
from api.fanout import CONTROL_BACKLOG, Client
from api.testing import LiveServer, settings_for_test

pytestmark = pytest.mark.ray
REGION = "us-east-1"
MAX_MESSAGE_BYTES = 4096
SERVER_FRAME_LIMIT = 2 * MAX_MESSAGE_BYTES  # uvicorn's ws_max_size, raised here so the handler's check is reached
PADDING = "x" * 32_000  # a price event this big fills the socket buffers of a client that never reads quickly


@pytest.fixture(scope="module")
def server(ray_session, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = settings_for_test(tmp_path_factory.mktemp("ws-hostile"), replay=False, ws_queue_size=64,
                                 ws_max_message_bytes=MAX_MESSAGE_BYTES, ws_messages_per_s=5.0,
                                 ws_messages_burst=30, ws_max_streams=3, ws_send_timeout_s=1.0)
    with LiveServer(create_app(settings), ws_max_size=SERVER_FRAME_LIMIT) as live:
        yield live


async def read_until_closed(ws: Any) -> tuple[list[dict[str, Any]], websockets.ConnectionClosed]:
    """Every message (but heartbeats) until the server closes, and how it closed."""
    messages = []
    while True:
        try:
            message = json.loads(await asyncio.wait_for(ws.recv(), 20))
        except websockets.ConnectionClosed as closed:
            how = closed
            break
        if message["type"] != "heartbeat":
            messages.append(message)
    assert how.rcvd is not None, "the server did not send a close frame"
    return messages, how


async def closed_with(ws: Any) -> websockets.ConnectionClosed:
    return (await read_until_closed(ws))[1]


def connection_ids(server: LiveServer) -> set[int]:
    async def ids() -> set[int]:  # read on the server's loop: the set changes under it
        return {client.id for client in server.runtime.fanout.clients}

    return set(server.call(ids()))


async def test_a_message_over_the_size_limit_is_closed_with_1009_at_both_ends(
        server: LiveServer, tenant: tuple[str, str]) -> None:
    key, _ = tenant
    ws = await connect(server, key)
    at_limit = json.dumps({"type": "ping", "pad": ""})
    await ws.send(json.dumps({"type": "ping", "pad": "x" * (MAX_MESSAGE_BYTES - len(at_limit))}))
    await next_message(ws, "pong")  # exactly at the limit: answered
    await ws.send(json.dumps({"type": "ping", "pad": "é" * 2100}, ensure_ascii=False))  # 2,100 characters, 4,200 bytes
    closed = await closed_with(ws)
    assert closed.rcvd.code == 1009 and f"the limit is {MAX_MESSAGE_BYTES}" in closed.rcvd.reason

    ws = await connect(server, key)  # past the server's frame limit: refused before it is buffered
    await ws.send("x" * (SERVER_FRAME_LIMIT + 1))
    closed = await closed_with(ws)
    assert closed.rcvd.code == 1009 and str(SERVER_FRAME_LIMIT) in closed.rcvd.reason


async def test_invalid_messages_are_answered_invalid_message_and_ten_in_a_row_close_with_1008(
        server: LiveServer, tenant: tuple[str, str]) -> None:
    key, _ = tenant
    ws = await connect(server, key)
    for bad, named in (("not json", "not JSON"), (b"\x00\x01", "binary"), ("[1, 2]", "JSON object"),
                       ('{"type": "dance"}', "unknown message type 'dance'"),
                       ("[" * 4000, "not JSON")):  # nested deeper than the parser recurses
        await ws.send(bad)
        error = await next_message(ws, "error")
        assert error["error"] == "invalid_message" and named in error["detail"], error
    await ws.send(json.dumps({"type": "ping"}))  # a good message resets the count
    await next_message(ws, "pong")
    for _ in range(10):
        await ws.send("nope")
    errors = [await next_message(ws, "error") for _ in range(10)]
    assert {e["error"] for e in errors} == {"invalid_message"}
    closed = await closed_with(ws)
    assert closed.rcvd.code == 1008 and "10 rejected messages in a row" in closed.rcvd.reason


async def test_a_subscribe_flood_is_rate_limited_then_closed_with_1008_while_others_keep_receiving(
        server: LiveServer, tenant: tuple[str, str]) -> None:
    key, account = tenant
    good = await connect(server, key)
    await good.send(json.dumps({"type": "subscribe", "account": account}))
    await next_message(good, "subscribed")
    flood = await connect(server, key)
    for _ in range(100):  # sent at once, never waiting for an answer
        await flood.send(json.dumps({"type": "subscribe", "account": account}))
    publish(server, account, range(1, 21))
    assert await decisions(good, 20) == list(range(1, 21))

    answers, closed = await read_until_closed(flood)
    kinds = [a["error"] if a["type"] == "error" else a["type"] for a in answers]
    assert kinds[0] == "subscribed" and kinds[-10:] == ["rate_limited"] * 10, kinds
    assert kinds.count("subscribed") < 100 and "5 messages per second" in answers[-1]["detail"]
    assert closed.rcvd.code == 1008

    publish(server, account, range(21, 26))  # the flood is gone; the good client goes on
    assert await decisions(good, 5) == list(range(21, 26))
    await good.close()


async def test_a_connection_may_not_subscribe_to_more_streams_than_the_cap(
        server: LiveServer, tenant: tuple[str, str]) -> None:
    key, account = tenant
    ws = await connect(server, key)
    await ws.send(json.dumps({"type": "subscribe", "account": account, "topics": list(TOPICS)}))  # 4 streams
    error = await next_message(ws, "error")
    assert error["error"] == "too_many_streams" and "at most 3 streams" in error["detail"]
    await ws.send(json.dumps({"type": "subscribe", "account": account, "topics": list(TOPICS[:3])}))
    assert len((await next_message(ws, "subscribed"))["streams"]) == 3  # refused whole, then within the cap
    await ws.send(json.dumps({"type": "resume", "streams": {stream_key(account, REGION, TOPICS[3]): 0}}))
    assert (await next_message(ws, "error"))["error"] == "too_many_streams"
    await ws.send(json.dumps({"type": "resume", "streams": {stream_key(account, REGION, TOPICS[0]): 0}}))
    assert (await next_message(ws, "resumed"))["replayed"] == 0  # one it has: no new stream
    await ws.close()


def never_reading_client(server: LiveServer, key: str, account: str) -> socket.socket:
    """A raw socket with a small receive buffer: it reads the handshake and its ``subscribed`` ack, then
    never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(20)
    sock.connect(("127.0.0.1", server.port))
    protocol = ClientProtocol(parse_uri(server.ws_url))
    request = protocol.connect()
    request.headers["Authorization"] = f"Bearer {key}"
    protocol.send_request(request)
    sock.sendall(b"".join(protocol.data_to_send()))

    def until(wanted: Any) -> None:
        while True:
            for event in protocol.events_received():
                if wanted(event):
                    return
            protocol.receive_data(sock.recv(4096))

    until(lambda event: isinstance(event, Response) and event.status_code == 101)
    protocol.send_text(json.dumps({"type": "subscribe", "account": account, "topics": ["prices"]}).encode())
    sock.sendall(b"".join(protocol.data_to_send()))
    until(lambda event: isinstance(event, Frame) and b'"subscribed"' in event.data)
    return sock


async def test_a_client_that_never_reads_is_cut_off_while_another_gets_every_event_in_order(
        server: LiveServer, tenant: tuple[str, str]) -> None:
    key, account = tenant
    stream = stream_key(account, REGION, "prices")
    good = await connect(server, key)
    await good.send(json.dumps({"type": "subscribe", "account": account, "topics": ["prices"]}))
    await next_message(good, "subscribed")
    before = connection_ids(server)
    hostile = never_reading_client(server, key, account)
    (hostile_id,) = connection_ids(server) - before

    seen: list[int] = []
    deadline = time.monotonic() + 120
    while hostile_id in connection_ids(server):
        assert time.monotonic() < deadline, "the never-reading client was never cut off"
        await server.runtime.hub.append.remote(stream, [{"at_s": 0.0, "prices": [], "pad": PADDING}] * 10)
        seen += [(await next_message(good, "price"))["seq"] for _ in range(10)]
    await server.runtime.hub.append.remote(stream, [{"at_s": 0.0, "prices": []}] * 3)
    seen += [(await next_message(good, "price"))["seq"] for _ in range(3)]
    assert seen == list(range(1, len(seen) + 1))  # every event, in order, no gap, no duplicate

    def read_until_closed() -> None:  # what was buffered, then the end the server made
        try:
            while hostile.recv(1 << 20):
                pass
        except ConnectionResetError:
            pass

    await asyncio.to_thread(read_until_closed)
    hostile.close()
    await good.close()


def test_control_messages_a_client_leaves_unread_are_bounded() -> None:
    """A client that never reads but keeps asking (``ping``) overflows into a resync: its outbox of
    acks cannot grow without bound either."""
    client = Client("t", limit=4)
    for _ in range(CONTROL_BACKLOG + 10):
        client.control({"type": "pong"})
    assert client.overflowed and len(client.outbox) == 1
