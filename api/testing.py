"""A real server on a loopback socket in a background thread, for tests and benchmarks.

Tests share one running app per module (the runtime costs seconds to start); a thread with its own event
loop lets synchronous clients (schemathesis) and async ones (httpx, websockets) talk to the same server.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from fastapi import FastAPI

from api.runtime import Runtime
from api.serving import uvicorn_options
from api.settings import Settings

START_TIMEOUT_S = 120.0
T = TypeVar("T")


class LiveServer:
    """``with LiveServer(app) as server: server.url`` — the app with its lifespan, on 127.0.0.1:<free port>."""

    def __init__(self, app: FastAPI, **config: Any) -> None:
        """``config``: uvicorn options, over those ``serve`` takes from the app's settings."""
        self.app = app
        options = {**uvicorn_options(app.state.settings), **config}
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    lifespan="on", **options))
        self.thread = threading.Thread(target=self._run, name="live-server", daemon=True)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:  # what `uvicorn.run` (and so `serve`) uses when it is installed
            import uvloop

            self.loop = uvloop.new_event_loop()
        except ImportError:  # pragma: no cover - uvicorn[standard] ships it
            self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.serve())
        except BaseException as exc:  # surfaced to the test by __enter__
            self.error = exc
        finally:
            self.loop.close()

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if self.error is not None or not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {self.error!r}")
            time.sleep(0.05)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(60)

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    def call(self, coroutine: Any, timeout_s: float = 60.0) -> Any:
        """Run a coroutine on the server's loop (to reach the runtime from a test) and wait for it."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)


ADMIN_KEY = "admin-test-key"


def settings_for_test(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test server: its own SQLite file, a unique replay account, a fast replay, an admin key."""
    values: dict[str, Any] = {
        "account": f"t{uuid.uuid4().hex[:8]}",
        "data_dir": data_dir,
        "database_url": f"sqlite+aiosqlite:///{data_dir / 'api.db'}",
        "replay_speed": 40_000.0,
        "replay_tick_interval_s": 0.05,
        "admin_api_key": ADMIN_KEY,
        "rate_limit_per_s": 10_000.0,
        "rate_limit_burst": 10_000,
    }
    values.update(overrides)
    return Settings(**values)


def bearer_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def new_tenant(client: httpx.AsyncClient, name: str | None = None) -> tuple[str, str]:
    """Create a tenant with the admin key: (tenant id, its first API key)."""
    response = await client.post("/api/v1/tenants", json={"name": name or f"tenant-{uuid.uuid4().hex[:8]}"},
                                 headers=bearer_headers(ADMIN_KEY))
    response.raise_for_status()
    body = response.json()
    return body["tenant"]["id"], body["api_key"]["key"]


async def demo_key(client: httpx.AsyncClient, tenant_name: str = "demo") -> str:
    """A fresh key for the bootstrapped demo tenant (which owns the replay account)."""
    tenants = (await client.get("/api/v1/tenants", headers=bearer_headers(ADMIN_KEY))).json()["tenants"]
    tenant_id = next(t["id"] for t in tenants if t["name"] == tenant_name)
    response = await client.post(f"/api/v1/tenants/{tenant_id}/keys", json={"label": "test"},
                                 headers=bearer_headers(ADMIN_KEY))
    response.raise_for_status()
    return str(response.json()["key"])


async def quiet_account(client: httpx.AsyncClient, key: str, prefix: str, region: str = "us-east-1") -> str:
    """Register an AWS account whose feed finds nothing (a managed tag no instance carries), so a test can
    publish the account's events itself; returns its name."""
    account = f"{prefix}-{uuid.uuid4().hex[:8]}"
    response = await client.post("/api/v1/accounts", headers=bearer_headers(key), json={
        "name": account, "regions": [region], "credentials_mode": "aws_default",
        "aws": {"managed_tag": f"spot-optimizer:test={uuid.uuid4().hex}"}})
    response.raise_for_status()
    return account


async def eventually(fetch: Callable[[], Awaitable[T]], done: Callable[[T], object], timeout_s: float = 60.0,
                     every_s: float = 0.1) -> T:
    """Fetch until ``done(value)`` or ``timeout_s`` passes; the last value either way (the caller asserts)."""
    deadline = time.monotonic() + timeout_s
    value = await fetch()
    while not done(value) and time.monotonic() < deadline:
        await asyncio.sleep(every_s)
        value = await fetch()
    return value
