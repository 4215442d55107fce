"""Auth and tenancy: keys, roles, rate limits, the demo bootstrap, isolation on every route, and the
tenancy tables on SQLite and PostgreSQL (migrated from empty)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace

import httpx
import pytest
import sqlalchemy as sa

from actors.store import Store
from actors.store.db import create_engine
from actors.store.migrate import current_revision, head_revision
from actors.store.tenancy import Account, ConflictError, Tenancy
from actors.store.testing import scratch_database
from api.app import create_app
from api.auth import TokenBucket
from api.runtime import DEMO_KEY_LABEL, Runtime
from api.settings import Settings
from api.testing import ADMIN_KEY, LiveServer, bearer_headers, demo_key, new_tenant, settings_for_test

ADMIN = bearer_headers(ADMIN_KEY)


@pytest.fixture(scope="module")
def server(ray_session, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(create_app(settings_for_test(tmp_path_factory.mktemp("auth")))) as live:
        yield live


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        yield client


# --- keys and roles ---------------------------------------------------------------------------------------


@pytest.mark.ray
async def test_requests_without_a_valid_key_are_401_and_wrong_roles_are_403(http: httpx.AsyncClient) -> None:
    missing = await http.get("/api/v1/accounts")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"] == "unauthorized"
    for key in ("nonsense", "spk_000000000000_guess", ADMIN_KEY + "x"):
        assert (await http.get("/api/v1/accounts", headers=bearer_headers(key))).status_code == 401
    assert (await http.get("/api/v1/accounts", headers=ADMIN)).status_code == 403  # admin is not a tenant
    _, key = await new_tenant(http)
    forbidden = await http.get("/api/v1/tenants", headers=bearer_headers(key))
    assert forbidden.status_code == 403 and forbidden.json()["error"] == "forbidden"


@pytest.mark.ray
async def test_keys_are_shown_once_stored_hashed_and_revocable(server: LiveServer, http: httpx.AsyncClient) -> None:
    tenant_id, first = await new_tenant(http)
    me = await http.get("/api/v1/me", headers=bearer_headers(first))
    assert me.json()["id"] == tenant_id
    second = (await http.post("/api/v1/keys", json={"label": "rotation"}, headers=bearer_headers(first))).json()
    assert second["key"].startswith("spk_") and second["label"] == "rotation"
    listed = (await http.get("/api/v1/keys", headers=bearer_headers(second["key"]))).json()["keys"]
    assert {k["label"] for k in listed} == {"initial", "rotation"} and all("key" not in k for k in listed)

    async def stored() -> list[str]:
        async with server.runtime.store.engine.connect() as conn:
            return [str(v) for row in (await conn.execute(sa.text("SELECT * FROM api_keys"))).all() for v in row]

    columns = server.call(stored())
    assert first not in columns and second["key"] not in columns  # only hashes are kept

    first_id = first.split("_")[1]
    assert (await http.delete(f"/api/v1/keys/{first_id}", headers=bearer_headers(second["key"]))).status_code == 204
    assert (await http.get("/api/v1/me", headers=bearer_headers(first))).status_code == 401
    assert (await http.delete(f"/api/v1/keys/{first_id}", headers=bearer_headers(second["key"]))).status_code == 404
    assert (await http.post("/api/v1/tenants", json={"name": "x\u0000y"}, headers=ADMIN)).status_code == 422


@pytest.mark.ray
async def test_a_key_over_its_rate_gets_429_with_retry_after(server: LiveServer, http: httpx.AsyncClient) -> None:
    _, key = await new_tenant(http)
    runtime = server.runtime
    previous, runtime.limiter = runtime.limiter, TokenBucket(rate_per_s=0.5, burst=3)
    try:
        codes = [(await http.get("/api/v1/me", headers=bearer_headers(key))).status_code for _ in range(4)]
        limited = await http.get("/api/v1/me", headers=bearer_headers(key))
        _, other = await new_tenant(http)
        other_code = (await http.get("/api/v1/me", headers=bearer_headers(other))).status_code
    finally:
        runtime.limiter = previous
    assert codes == [200, 200, 200, 429]
    assert limited.status_code == 429 and limited.json()["error"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    assert other_code == 200  # buckets are per key


# --- isolation -----------------------------------------------------------------------------------------


def concrete(path: str, account: str, region: str = "us-east-1") -> str:
    return path.replace("{account}", account).replace("{region}", region)


@pytest.mark.ray
async def test_another_tenants_account_is_a_404_on_every_route(server: LiveServer, http: httpx.AsyncClient) -> None:
    owner = bearer_headers(await demo_key(http))  # the demo tenant owns the replay account
    account = server.runtime.settings.account
    assert (await http.get(f"/api/v1/accounts/{account}/regions/us-east-1/prices", headers=owner)).status_code == 200
    _, stranger_key = await new_tenant(http)
    stranger = bearer_headers(stranger_key)
    assert (await http.get("/api/v1/accounts", headers=stranger)).json() == {"accounts": []}

    schema = server.app.openapi()
    checked = []
    for path, operations in schema["paths"].items():
        if "{account}" not in path:
            continue
        for method in operations:
            body = {"policy": "lowest_price"} if method == "patch" else None
            response = await http.request(method.upper(), concrete(path, account), json=body, headers=stranger)
            missing = await http.request(method.upper(), concrete(path, "no-such-account"), json=body,
                                         headers=stranger)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json() == {**missing.json(), "detail": missing.json()["detail"].replace(
                "no-such-account", account)}, "a foreign account must look exactly like a missing one"
            checked.append(f"{method} {path}")
    assert len(checked) == 16, checked  # account: get, patch, delete; region: 2 prices, instances, forecasts,
    # decisions, metrics; schedules: get, put; webhooks: create, list, delete, deliveries; savings report
    # and the owner's account is untouched by the stranger's PATCH and DELETE attempts
    assert (await http.get(f"/api/v1/accounts/{account}", headers=owner)).json()["policy"] == "risk_aware"

    simulation = await http.post("/api/v1/simulations", headers=owner,
                                 json={"job": {"job_hours": 1, "deadline_hours": 2}, "runs": 4})
    simulation_id = simulation.json()["id"]
    for path in (f"/api/v1/simulations/{simulation_id}", f"/api/v1/simulations/{simulation_id}/result"):
        assert (await http.get(path, headers=stranger)).status_code == 404
    assert (await http.get("/api/v1/simulations", headers=stranger)).json() == {"simulations": []}


# --- the demo bootstrap ---------------------------------------------------------------------------------


async def test_serve_bootstraps_a_demo_tenant_owning_the_replay_account_with_a_fresh_key(tmp_path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'boot.db'}")
    tenancy = Tenancy(store.engine)
    settings = Settings(account="demo", data_dir=tmp_path)
    try:
        keys = []
        for _ in range(2):  # two starts of `serve` without an admin key
            runtime = SimpleNamespace(settings=settings, tenancy=tenancy, demo_api_key=None, demo_tenant_id=None,
                                      registry=SimpleNamespace(replay_regions=["us-east-1", "us-west-2"]))
            await Runtime._bootstrap_demo(runtime)  # type: ignore[arg-type]
            keys.append(runtime.demo_api_key)
        tenant_id = runtime.demo_tenant_id
        assert all(keys) and keys[0] != keys[1]
        assert await tenancy.authenticate(keys[0]) is None  # the previous start's key is revoked
        assert await tenancy.authenticate(keys[1]) == tenant_id
        owned = await tenancy.get_account(tenant_id, "demo")
        assert owned is not None and owned.regions == ("us-east-1", "us-west-2")
        assert [k.label for k in await tenancy.list_keys(tenant_id)] == [DEMO_KEY_LABEL, DEMO_KEY_LABEL]

        with_admin = SimpleNamespace(settings=settings.model_copy(update={"admin_api_key": "a"}), tenancy=tenancy,
                                     demo_api_key=None, demo_tenant_id=None,
                                     registry=SimpleNamespace(replay_regions=["us-east-1"]))
        await Runtime._bootstrap_demo(with_admin)  # type: ignore[arg-type]
        assert with_admin.demo_api_key is None  # with an admin key, keys are made through the API
    finally:
        await store.close()


# --- the store: migrations and the tenancy repository on both backends ----------------------------------


async def test_migrations_upgrade_an_empty_database_to_head_with_the_tenancy_tables(database_url: str) -> None:
    async with scratch_database(database_url) as url:
        engine = create_engine(url)
        try:
            assert await current_revision(engine) is None
            store = await Store.open(url)
            await store.close()
            assert await current_revision(engine) == head_revision()
            async with engine.connect() as conn:
                tables = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        finally:
            await engine.dispose()
    assert {"tenants", "api_keys", "accounts", "simulations", "decisions", "instances"} <= tables


async def test_tenancy_scopes_accounts_keeps_tombstones_and_checks_keys(database_url: str) -> None:
    async with scratch_database(database_url) as url:
        store = await Store.open(url)
        try:
            tenancy = Tenancy(store.engine)
            a = await tenancy.create_tenant("a", 1.0)
            b = await tenancy.create_tenant("b", 2.0)
            with pytest.raises(ConflictError):
                await tenancy.create_tenant("a", 3.0)
            account = Account("acct", a.id, ("us-east-1",), "replay", "dry_run", "risk_aware", {"payback_hours": 2.0})
            await tenancy.create_account(account)
            assert await tenancy.get_account(a.id, "acct") == account
            assert await tenancy.get_account(b.id, "acct") is None
            assert await tenancy.list_accounts(b.id) == []
            assert await tenancy.delete_account(b.id, "acct", 5.0) is False
            assert await tenancy.delete_account(a.id, "acct", 5.0) is True
            assert await tenancy.get_account(a.id, "acct") is None
            with pytest.raises(ConflictError):  # the name stays taken after removal
                await tenancy.create_account(Account("acct", b.id, ("us-east-1",), "replay", "dry_run", "x"))

            _, secret = await tenancy.create_key(a.id, "k", 1.0)
            assert await tenancy.authenticate(secret) == a.id
            assert await tenancy.authenticate(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
            assert await tenancy.authenticate("garbage") is None
        finally:
            await store.close()


def test_token_bucket_refills_over_time() -> None:
    bucket = TokenBucket(rate_per_s=10.0, burst=2)
    now = time.monotonic()
    assert [bucket.take("k", now) for _ in range(3)] == [0.0, 0.0, pytest.approx(0.1)]
    assert bucket.take("k", now + 0.11) == 0.0
