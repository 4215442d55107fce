"""How uvicorn serves the app (``serve`` and the test server alike): its options, and a WebSocket protocol
that cuts off a peer which stops reading.

uvicorn's WebSocket protocol waits for a paused transport to drain before every send, a close included,
and its keepalive timeout closes gracefully, which also waits for the buffer to drain: a peer that never
reads would hold its socket, its handler and its fan-out subscriptions for ever. The protocol below aborts
the transport once writing has stayed paused for ``stall_timeout_s``; uvicorn then reports the disconnect
to the app as for any lost connection. Only asyncio's protocol callbacks are overridden.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from api.settings import Settings

log = logging.getLogger(__name__)


class StallGuardedWebSocket(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, aborting a connection whose writes stay paused ``stall_timeout_s``."""

    stall_timeout_s: ClassVar[float] = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stalled_transport: asyncio.Transport | None = None
        self._stall_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._stalled_transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def pause_writing(self) -> None:
        super().pause_writing()
        self._cancel_stall_timer()
        self._stall_timer = asyncio.get_running_loop().call_later(self.stall_timeout_s, self._abort)

    def resume_writing(self) -> None:
        self._cancel_stall_timer()
        super().resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_stall_timer()
        super().connection_lost(exc)

    def _cancel_stall_timer(self) -> None:
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    def _abort(self) -> None:
        self._stall_timer = None
        transport = self._stalled_transport
        if transport is not None:  # closing or not: a graceful close would wait for the same drain
            log.info("WebSocket peer %s took no data for %g s: connection aborted",
                     transport.get_extra_info("peername"), self.stall_timeout_s)
            transport.abort()


def websocket_protocol(stall_timeout_s: float) -> type[StallGuardedWebSocket]:
    """The protocol class for uvicorn's ``ws`` option (uvicorn builds it with its own arguments)."""
    return type("StallGuardedWebSocket", (StallGuardedWebSocket,), {"stall_timeout_s": stall_timeout_s})


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """``uvicorn.run`` / ``uvicorn.Config`` keyword arguments that the settings decide."""
    # ws_max_size: a larger message is refused by the protocol with close code 1009 before it is buffered.
    # No per-message deflate: each connection compresses on its own, so a fan-out to N clients would
    # compress every event N times (measured: it was two thirds of the server's CPU per delivery).
    return {"ws": websocket_protocol(settings.ws_send_timeout_s), "ws_max_size": settings.ws_max_message_bytes,
            "ws_per_message_deflate": False}
