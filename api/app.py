"""The FastAPI application factory. The runtime (Ray, store, actors, feeds) starts in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from api import routes, ws
from api.errors import install_error_handlers
from api.runtime import Runtime
from api.settings import Settings

RuntimeFactory = Callable[[Settings], Awaitable[Runtime]]


def create_app(settings: Settings | None = None, runtime_factory: RuntimeFactory = Runtime.start) -> FastAPI:
    """Build the app; settings are read here (not at import), from the environment unless given."""
    resolved = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = await runtime_factory(resolved)
        try:
            yield
        finally:
            await app.state.runtime.close()

    app = FastAPI(
        title="Spot Optimizer",
        version="0.1.0",
        description="Live spot-instance decisions, explained in numbers, per account and region.",
        lifespan=lifespan,
    )
    app.state.settings = resolved
    install_error_handlers(app)
    app.include_router(routes.router)
    app.include_router(ws.router)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def dashboard() -> str:
        return (resources.files("api") / "dashboard" / "index.html").read_text(encoding="utf-8")

    return app
