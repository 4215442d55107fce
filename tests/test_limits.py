"""REST bodies over ``SPOT_MAX_BODY_BYTES`` get 413 ``payload_too_large`` before the app reads them, with a
Content-Length or chunked; bodies within the limit reach the app intact."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from api.app import create_app
from api.limits import BodySizeLimit
from api.settings import Settings
from api.testing import LiveServer, settings_for_test

LIMIT = 1024


class NoRuntime:
    """What the lifespan holds here: the limit answers before any route needs the runtime."""

    async def close(self) -> None:
        return None


async def no_runtime(_settings: Settings) -> NoRuntime:
    return NoRuntime()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = settings_for_test(tmp_path_factory.mktemp("limits"), max_body_bytes=LIMIT)
    with LiveServer(create_app(settings, runtime_factory=no_runtime)) as live:  # type: ignore[arg-type]
        yield live


def chunks(size: int, piece: int = 100) -> Iterator[bytes]:
    """A body of ``size`` bytes that httpx sends chunked (no Content-Length)."""
    for start in range(0, size, piece):
        yield b"x" * min(piece, size - start)


def assert_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    assert response.json() == {"error": "payload_too_large",
                               "detail": f"request body over {LIMIT} bytes (SPOT_MAX_BODY_BYTES)"}


def test_a_body_declared_over_the_limit_gets_413_unread(server: LiveServer) -> None:
    # Not even JSON: a parsed body would be a 422; the 413 comes first.
    response = httpx.post(f"{server.url}/api/v1/tenants", content=b"x" * (LIMIT + 1))
    assert response.request.headers["content-length"] == str(LIMIT + 1)
    assert_too_large(response)
    assert response.headers["connection"] == "close"


def test_a_chunked_body_over_the_limit_gets_413(server: LiveServer) -> None:
    response = httpx.post(f"{server.url}/api/v1/tenants", content=chunks(4 * LIMIT))
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.request.headers
    assert_too_large(response)


def test_bodies_within_the_limit_reach_the_route(server: LiveServer) -> None:
    """The route reads its body before it checks the caller: a 401, not a 413, means the body got through."""
    body = b'{"name": "' + b"n" * (LIMIT - 12) + b'"}'
    assert len(body) == LIMIT
    for content in (body, iter([body[:500], body[500:]])):
        response = httpx.post(f"{server.url}/api/v1/tenants", content=content)
        assert response.status_code == 401, response.text


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body and answers its length; what the limit lets through arrives whole."""
    assert scope["type"] == "http"
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            size = -1
            break
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


@pytest.fixture
async def limited() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=BodySizeLimit(echo, max_bytes=LIMIT))
    async with httpx.AsyncClient(transport=transport, base_url="http://limits") as client:
        yield client


async def test_a_chunked_body_exactly_at_the_limit_passes_whole_and_one_byte_more_is_cut(
        limited: httpx.AsyncClient) -> None:
    async def body(size: int) -> AsyncIterator[bytes]:
        for piece in chunks(size, piece=300):
            yield piece

    at_limit = await limited.post("/", content=body(LIMIT))
    assert (at_limit.status_code, at_limit.text) == (200, str(LIMIT))
    over = await limited.post("/", content=body(LIMIT + 1))
    assert_too_large(over)  # and the app's own answer (it saw the client leave) was dropped
