"""The FastAPI application factory. The runtime (Ray, store, actors, feeds) starts in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response

from api import routes, ws
from api.errors import NotFound, install_error_handlers
from api.limits import BodySizeLimit
from api.routes import reports as report_routes
from api.routes import schedules as schedule_routes
from api.routes import webhooks
from api.runtime import Runtime
from api.settings import Settings

DASHBOARD_ASSETS = {"app.js": "text/javascript; charset=utf-8", "sims.js": "text/javascript; charset=utf-8",
                    "style.css": "text/css; charset=utf-8"}
RuntimeFactory = Callable[[Settings], Awaitable[Runtime]]
StartedHook = Callable[[Runtime], None]

DESCRIPTION = """Live spot-instance decisions, explained in numbers, per account and region.

**Auth**: `Authorization: Bearer <API key>`. Tenants and their first key are created with the admin key
(`SPOT_ADMIN_API_KEY`); without one, `spot-optimizer serve` creates a local `demo` tenant and prints its
key. Another tenant's account is a 404, never a 403. **Errors**: `{"error": ..., "detail": ...}`.
**Rate limit**: a token bucket per key; 429 with `Retry-After`. **Live**: WebSocket `/ws` (see `api/ws.py`):
subscribe to accounts/regions/topics, `resume` with the last `seq` seen.
"""


def create_app(settings: Settings | None = None, runtime_factory: RuntimeFactory = Runtime.start,
               on_started: StartedHook | None = None) -> FastAPI:
    """Build the app; settings are read here (not at import), from the environment unless given."""
    resolved = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = await runtime_factory(resolved)
        try:
            if on_started is not None:
                on_started(app.state.runtime)
            yield
        finally:
            await app.state.runtime.close()

    app = FastAPI(title="Spot Optimizer", version="0.2.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = resolved
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=resolved.max_body_bytes)
    app.include_router(routes.router)
    app.include_router(schedule_routes.router)
    app.include_router(report_routes.router)
    app.include_router(ws.router)
    app.include_router(webhooks.router)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def dashboard() -> str:
        return (resources.files("api") / "dashboard" / "index.html").read_text(encoding="utf-8")

    @app.get("/dashboard/{name}", include_in_schema=False)
    async def dashboard_asset(name: str) -> Response:
        if name not in DASHBOARD_ASSETS:  # a fixed list: no path from the URL reaches the file system
            raise NotFound(f"no dashboard asset {name!r}")
        body = (resources.files("api") / "dashboard" / name).read_bytes()
        return Response(body, media_type=DASHBOARD_ASSETS[name], headers={"Cache-Control": "no-cache"})

    return app
