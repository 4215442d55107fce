"""WebSocket ``/ws``: subscribe to accounts, regions and topics; resume after a disconnect; heartbeats.

Authenticate with ``?token=`` (from ``POST /api/v1/ws-tokens``) or an ``Authorization: Bearer`` API key.
Client -> server (JSON):

    {"type": "subscribe",   "account": "a"?, "regions": ["us-east-1"]?, "topics": ["decisions", ...]?}
    {"type": "unsubscribe", "account": "a"?, "regions": [...]?, "topics": [...]?}
    {"type": "resume",      "streams": {"a/us-east-1/decisions": 41, ...}}
    {"type": "ping"}

Server -> client: ``hello``; events ``{"type": "decision"|"price"|"instances"|"alert", "stream", "seq",
"data"}``; acks ``subscribed`` / ``unsubscribed`` / ``resumed``; ``heartbeat``; ``error``
(``{"error", "detail"}``); ``gap``; and ``resync`` (then the server closes: reconnect and ``resume`` with
its ``resume`` positions). Omitted account/regions mean all of the tenant's; omitted topics mean
decisions. Another tenant's account is ``not_found``, exactly like a missing one.

Limits per connection (``hello`` states them): a message over ``ws_max_message_bytes`` closes with 1009;
one that is not JSON or not a known command is an ``invalid_message`` error; more than
``ws_messages_per_s`` (burst ``ws_messages_burst``) is a ``rate_limited`` error; more than
``ws_max_streams`` streams is ``too_many_streams``. Ten rejected messages in a row close with 1008.

``resume`` replays every topic from the store (region actors save each event before they publish it),
then goes live: every seq after the given one, in order, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from actors.store import MAX_REPLAY
from actors.store.tenancy import Account
from actors.stream import parse_stream_key, stream_key
from actors.topics import TOPICS
from actors.views import ws_message
from actors.wire import unpack
from api.auth import TokenBucket, bearer, verify_token
from api.deps import resolve_key
from api.fanout import CLOSE, RESYNC, Client, finish_write
from api.runtime import Runtime

log = logging.getLogger(__name__)

router = APIRouter()
REPLAY_CHUNK = 500
CLOSE_UNAUTHORIZED = 4401
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_POLICY_VIOLATION = 1008
CLOSE_MESSAGE_TOO_BIG = 1009
MAX_REJECTED_IN_A_ROW = 10
COMMANDS = ("subscribe", "unsubscribe", "resume", "ping")


class ClientError(Exception):
    def __init__(self, error: str, detail: str) -> None:
        super().__init__(detail)
        self.error, self.detail = error, detail


async def _tenant_of(websocket: WebSocket, runtime: Runtime) -> str | None:
    token = websocket.query_params.get("token")
    if token:
        return verify_token(runtime.token_secret, token, time.time())
    key = bearer(websocket.headers.get("authorization"))
    if key:
        principal = await resolve_key(runtime, key)
        return principal.tenant_id if principal is not None else None
    return None


@router.websocket("/ws")
async def stream(websocket: WebSocket) -> None:
    runtime: Runtime = websocket.app.state.runtime
    tenant_id = await _tenant_of(websocket, runtime)
    await websocket.accept()
    if tenant_id is None:
        await websocket.send_json({"type": "error", "error": "unauthorized",
                                   "detail": "connect with ?token= (POST /api/v1/ws-tokens) or a Bearer API key"})
        await websocket.close(code=CLOSE_UNAUTHORIZED)
        return
    client = runtime.fanout.connect(tenant_id)
    accounts = {a.name: list(a.regions) for a in await runtime.tenancy.list_accounts(tenant_id)}
    settings = runtime.settings
    client.control({"type": "hello", "tenant": tenant_id, "accounts": accounts, "topics": list(TOPICS),
                    "heartbeat_s": settings.ws_heartbeat_s, "queue_size": client.limit,
                    "limits": {"max_message_bytes": settings.ws_max_message_bytes,
                               "messages_per_s": settings.ws_messages_per_s,
                               "messages_burst": settings.ws_messages_burst, "max_streams": settings.ws_max_streams}})
    sender = asyncio.create_task(_send(websocket, client))
    receiver = asyncio.create_task(_receive(websocket, client, runtime))
    try:
        await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, receiver):
            task.cancel()
        for task in (sender, receiver):
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                await task
        runtime.fanout.disconnect(client)
        with contextlib.suppress(Exception):
            await websocket.close()


async def _send(websocket: WebSocket, client: Client) -> None:
    """The socket's writer for everything that could not be written at once: the outbox in order
    (acks, heartbeats, events queued behind them), an eager write that had to wait, resync then close.

    Events go to the ASGI ``send`` directly: Starlette's ``send_text`` only re-checks the connection state,
    which the server's send checks again, and this runs once per event per client.
    """
    raw_send = getattr(websocket, "_send", None) or websocket.send

    def write(text: str) -> Any:
        return raw_send({"type": "websocket.send", "text": text})

    client.write = write
    while not client.failed:
        if client.suspended is not None:
            coro, waiting = client.suspended
            client.suspended = None
            await finish_write(coro, waiting)
            client.sent_count += 1
        item = client.take()
        if item is None:
            client.busy = False
            await client.ready.wait()
            continue
        client.busy = True
        _, seq, text = item
        if seq == RESYNC:
            await websocket.send_text(json.dumps(client.resync_message()))
            await websocket.close(code=CLOSE_TRY_AGAIN_LATER)
            return
        if seq == CLOSE and client.closing is not None:
            code, reason = client.closing
            await websocket.close(code=code, reason=reason)
            return
        await write(text)
        client.sent_count += 1


async def _receive(websocket: WebSocket, client: Client, runtime: Runtime) -> None:
    closing = await _answer(websocket, client, runtime)
    if closing is None:
        return
    client.close(*closing)
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass  # read and drop until the sender has written what is queued and closed


async def _answer(websocket: WebSocket, client: Client, runtime: Runtime) -> tuple[int, str] | None:
    """Answer the client's messages one at a time until it disconnects (None) or breaks a limit: then
    the close code and reason."""
    settings = runtime.settings
    bucket = TokenBucket(settings.ws_messages_per_s, settings.ws_messages_burst)
    rejected = 0
    while (message := await websocket.receive())["type"] == "websocket.receive":
        text, size = message.get("text"), _size(message)
        if size > settings.ws_max_message_bytes:
            return CLOSE_MESSAGE_TOO_BIG, f"message of {size} bytes: the limit is {settings.ws_max_message_bytes}"
        try:
            if bucket.take("", time.monotonic()) > 0:
                raise ClientError("rate_limited", f"over {settings.ws_messages_per_s:g} messages per second "
                                                  f"(burst {settings.ws_messages_burst}); slow down")
            await _handle(_command(text), client, runtime)
            rejected = 0
        except ClientError as exc:
            client.control({"type": "error", "error": exc.error, "detail": exc.detail})
            rejected += 1
            if rejected >= MAX_REJECTED_IN_A_ROW:
                return CLOSE_POLICY_VIOLATION, f"{rejected} rejected messages in a row"
    return None


def _size(message: Mapping[str, Any]) -> int:
    text = message.get("text")
    return len(text.encode()) if text is not None else len(message.get("bytes") or b"")


def _command(text: str | None) -> dict[str, Any]:
    if text is None:
        raise ClientError("invalid_message", "binary messages are not commands: send JSON text")
    try:
        command = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the parser goes
        raise ClientError("invalid_message", f"not JSON: {exc}") from None
    if not isinstance(command, dict):
        raise ClientError("invalid_message", f"a message is a JSON object with a 'type' ({', '.join(COMMANDS)})")
    return command


async def _handle(message: dict[str, Any], client: Client, runtime: Runtime) -> None:
    kind = message.get("type")
    fanout = runtime.fanout
    if kind == "ping":
        client.control({"type": "pong", "at_s": time.time()})
    elif kind == "subscribe":
        streams = await _select(message, client, runtime)
        _check_stream_cap([s for s in streams if s not in client.streams], client, runtime)
        positions = {s: await fanout.subscribe(client, s) for s in streams if s not in client.streams}
        client.control({"type": "subscribed", "streams": positions,
                        "already": sorted(s for s in streams if s not in positions)})
    elif kind == "unsubscribe":
        streams = await _select(message, client, runtime)
        for s in streams:
            fanout.unsubscribe(client, s)
        client.control({"type": "unsubscribed", "streams": streams})
    elif kind == "resume":
        wanted = message.get("streams")
        if not isinstance(wanted, dict) or not wanted:
            raise ClientError("bad_request", "resume needs 'streams': {\"account/region/topic\": last_seq, ...}")
        _check_stream_cap([name for name in wanted if name not in client.streams], client, runtime)
        checked: dict[str, int] = {}
        owned: dict[str, Account | None] = {}
        for name, seq in wanted.items():
            if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
                raise ClientError("bad_request", f"streams.{name}: the last seq seen must be an integer >= 0")
            checked[await _owned_stream(name, client, runtime, owned)] = seq
        for name, seq in checked.items():
            await _resume(name, seq, client, runtime)
    else:
        raise ClientError("invalid_message", f"unknown message type {kind!r}: use {', '.join(COMMANDS)}")


def _check_stream_cap(new: list[str], client: Client, runtime: Runtime) -> None:
    """Refuse, before any work, a command that would take the connection past its stream cap."""
    cap = runtime.settings.ws_max_streams
    if len(client.streams) + len(new) > cap:
        raise ClientError("too_many_streams", f"a connection may subscribe to at most {cap} streams "
                                              f"(SPOT_WS_MAX_STREAMS); it has {len(client.streams)} "
                                              f"and asked for {len(new)} more")


async def _owned_stream(name: Any, client: Client, runtime: Runtime, owned: dict[str, Account | None]) -> str:
    """``name`` checked and normalized; ``owned`` caches the tenant's accounts looked up by this command."""
    if not isinstance(name, str):
        raise ClientError("bad_request", "stream names are strings 'account/region/topic'")
    try:
        account, region, topic = parse_stream_key(name)
    except ValueError as exc:
        raise ClientError("bad_request", str(exc)) from None
    if account not in owned:
        owned[account] = await runtime.tenancy.get_account(client.tenant_id, account)
    found = owned[account]
    if found is None or region not in found.regions:
        raise ClientError("not_found", f"unknown account {account!r} or region {region!r}")
    return stream_key(account, region, topic)


async def _select(message: dict[str, Any], client: Client, runtime: Runtime) -> list[str]:
    """The stream keys a subscribe/unsubscribe names, all owned by the client's tenant."""
    account, regions, topics = message.get("account"), message.get("regions"), message.get("topics", ["decisions"])
    if not isinstance(topics, list) or not topics or any(t not in TOPICS for t in topics):
        raise ClientError("bad_request", f"topics must be a non-empty list of {', '.join(TOPICS)}")
    if regions is not None and (not isinstance(regions, list) or not all(isinstance(r, str) for r in regions)):
        raise ClientError("bad_request", "regions must be a list of region names")
    if account is None:
        accounts = await runtime.tenancy.list_accounts(client.tenant_id)
    elif not isinstance(account, str):
        raise ClientError("bad_request", "account must be a string")
    else:
        found = await runtime.tenancy.get_account(client.tenant_id, account)
        if found is None:
            raise ClientError("not_found", f"unknown account {account!r}")
        accounts = [found]
        missing = [r for r in regions or [] if r not in found.regions]
        if missing:
            raise ClientError("not_found", f"unknown account {account!r} or region {missing[0]!r}")
    return list(dict.fromkeys(stream_key(a.name, r, t) for a in accounts for r in a.regions
                              if regions is None or r in regions for t in topics))


async def _replay_unsaved_tail(name: str, topic: str, client: Client, runtime: Runtime) -> int:
    """What the stream host holds past the store: a region actor whose store is unreachable keeps
    streaming and saves the tick later, so for a while the newest events live only in the host's ring."""
    state = client.streams[name]
    answer = unpack(await runtime.hub.listen_packed.remote({name: state.last_seq}, 0.0))
    tail = [(seq, payload) for seq, payload in answer["events"].get(name, []) if seq > state.last_seq]
    if tail and name in answer["truncated"] and tail[0][0] > state.last_seq + 1:
        client.control({"type": "gap", "stream": name, "detail": f"events {state.last_seq + 1}-{tail[0][0] - 1} "
                        "were neither stored nor still held by the stream host"})
    for seq, payload in tail:
        client.offer(name, seq, ws_message(name, topic, seq, payload))
        state.last_seq = seq
    return len(tail)


async def _resume(name: str, after: int, client: Client, runtime: Runtime) -> None:
    """Join live (parked), replay everything after ``after``, then release the parked live events."""
    fanout = runtime.fanout
    fanout.unsubscribe(client, name)
    await fanout.subscribe(client, name, after=after, catch_up=True)
    topic = parse_stream_key(name)[2]
    state = client.streams[name]
    replayed = 0
    chunk = max(1, min(REPLAY_CHUNK, MAX_REPLAY, client.limit // 2))
    while not client.overflowed:
        await client.wait_for_room()
        try:
            stored = await runtime.stored_after(name, state.last_seq, chunk)
        except Exception as exc:  # an unreachable store: the stream host's tail is all there is for now
            log.warning("resume of %s could not read the store (%s); replaying the stream host's tail", name, exc)
            break
        for seq, payload in stored:
            client.offer(name, seq, ws_message(name, topic, seq, payload))
            state.last_seq = seq
            replayed += 1
        if len(stored) < chunk:
            if not state.dropped:
                break
            state.dropped = False  # live events were dropped while parked: they are in the store
    if not client.overflowed:
        replayed += await _replay_unsaved_tail(name, topic, client, runtime)
    client.control({"type": "resumed", "stream": name, "replayed": replayed, "seq": state.last_seq})
    fanout.release(client, name)
