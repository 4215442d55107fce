"""Session-wide real services: one local Ray instance and the PostgreSQL server.

Ray starts once per test session (2 CPUs, loopback only) and is reused by every test marked ``ray``.
PostgreSQL comes from ``SPOT_TEST_DATABASE_URL``; when it is unreachable the PostgreSQL tests skip on a
developer machine and *fail* under ``CI=true``, so CI can never pass without exercising it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pytest

if TYPE_CHECKING:
    from aws_fakes import FakeAws

    from actors.store import Store
    from api.testing import LiveServer

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def running_in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public traces and catalog beside the repo (``../shared/data``)."""
    if not SHARED_DATA.is_dir():
        if running_in_ci():
            pytest.fail(f"shared data not found at {SHARED_DATA}")
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ray_session(aws_endpoint: FakeAws) -> Iterator[object]:
    """One real local Ray for the whole session, bound to loopback. It starts after the fake AWS, so its
    worker processes inherit AWS_ENDPOINT_URL and the test credentials."""
    import ray

    if not ray.is_initialized():
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    yield ray
    ray.shutdown()


# The fake AWS owns these for the session; anything else that points clients elsewhere is removed.
_AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_RETRY_MODE": "standard",
    "AWS_MAX_ATTEMPTS": "2",
}
_AWS_UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_REGION",
              "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")


@pytest.fixture(scope="session")
def aws_endpoint() -> Iterator[FakeAws]:
    """A fake AWS for the session: moto's server behind a fault-injecting proxy, with AWS_ENDPOINT_URL
    and test credentials set so every client (in this process and in Ray workers) talks to it."""
    from aws_fakes import FakeAws

    fake = FakeAws.start()
    wanted = {**_AWS_TEST_ENV, "AWS_ENDPOINT_URL": fake.url}
    unset = [*_AWS_UNSET, *(name for name in os.environ if name.startswith("AWS_ENDPOINT_URL_"))]
    saved = {name: os.environ.get(name) for name in [*wanted, *unset]}
    for name in unset:
        os.environ.pop(name, None)
    os.environ.update(wanted)
    try:
        yield fake
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        fake.stop()


@pytest.fixture
def aws(aws_endpoint: FakeAws) -> FakeAws:
    """The session's fake AWS, emptied: no moto resources, no proxy rules, no recorded calls."""
    aws_endpoint.reset()
    return aws_endpoint


def _tcp_reachable(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of the real PostgreSQL test database; fails under CI when it is missing."""
    url = os.environ.get("SPOT_TEST_DATABASE_URL", DEFAULT_PG_URL)
    parsed = urlparse(url.replace("+asyncpg", ""))
    if _tcp_reachable(parsed.hostname or "127.0.0.1", parsed.port or 5432):
        return url
    message = f"PostgreSQL not reachable at {url}"
    if running_in_ci():
        pytest.fail(message + " (CI=true: a missing PostgreSQL is a failure, not a skip)")
    pytest.skip(message)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every store test runs twice: on an embedded SQLite file and on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'spot.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def store_url(database_url: str) -> AsyncIterator[str]:
    """A fresh scratch database (a new SQLite file, or a new PostgreSQL schema dropped afterwards)."""
    from actors.store.testing import scratch_database

    async with scratch_database(database_url) as url:
        yield url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """A Store opened (and migrated) on the scratch database, closed after the test."""
    from actors.store import Store

    opened = await Store.open(store_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def tenant(server: LiveServer) -> AsyncIterator[tuple[str, str]]:
    """A new tenant with one AWS account in us-east-1 whose feed finds nothing, on the module's ``server``
    (the tests publish the account's events themselves): (key, account)."""
    import httpx

    from api.testing import new_tenant, quiet_account

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        _, key = await new_tenant(http)
        yield key, await quiet_account(http, key, "t", "us-east-1")


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless Chromium (tests/chromium.py: skipped without one, except under CI=true)."""
    from chromium import CHROMIUM, CHROMIUM_ARGS, playwright_or_skip

    async_playwright = playwright_or_skip()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()
