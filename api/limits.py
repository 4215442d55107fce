"""A request body over ``max_bytes`` is a 413 ``payload_too_large``, decided before the app reads it.

A declared ``Content-Length`` over the limit is refused at once, body unread; a chunked body (no length)
is counted as ``receive`` yields it and refused as soon as it crosses the limit, so nothing larger is ever
buffered. The app then sees the client as gone and whatever it answers is dropped. The 413 says
``Connection: close``: the rest of the body is not worth reading.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body


class BodySizeLimit:
    """Pure ASGI middleware: ``app.add_middleware(BodySizeLimit, max_bytes=...)``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        refused = responded = False

        async def counted() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    if not responded:
                        await self._refuse(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def unless_refused(message: Message) -> None:
            nonlocal responded
            if refused:
                return
            responded = True
            await send(message)

        await self.app(scope, counted, unless_refused)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"request body over {self.max_bytes} bytes (SPOT_MAX_BODY_BYTES)"
        response = JSONResponse(error_body("payload_too_large", detail), status_code=413,
                                headers={"Connection": "close"})
        await response(scope, receive, send)
