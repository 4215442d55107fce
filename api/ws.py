"""WebSocket ``/ws``: decisions as JSON, live, each with its stream's increasing ``seq``."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from api.runtime import Runtime

router = APIRouter()
HEARTBEAT_S = 15.0


@router.websocket("/ws")
async def stream_decisions(websocket: WebSocket) -> None:
    runtime: Runtime = websocket.app.state.runtime
    await websocket.accept()
    client = runtime.fanout.subscribe()
    try:
        await websocket.send_json({"type": "hello", "streams": sorted(runtime.fanout.positions)})
        while True:
            try:
                message = await asyncio.wait_for(client.queue.get(), timeout=HEARTBEAT_S)
            except TimeoutError:
                await websocket.send_json({"type": "heartbeat"})
                continue
            await websocket.send_json(message)
            if message.get("type") == "resync":
                await websocket.close(code=1013)
                return
    except WebSocketDisconnect:
        pass
    finally:
        runtime.fanout.unsubscribe(client)
        with contextlib.suppress(Exception):
            await websocket.close()
