"""Schemathesis against the app's own OpenAPI schema, on a live server: no generated input gets a 5xx.

A bounded number of cases per operation keeps the normal run short (``SPOT_FUZZ_EXAMPLES`` raises it).
GET operations are also fuzzed on the real replay account, so the data paths run, not only the 404s.
``POST /api/v1/simulations`` is left out: a valid request launches a real backtest (tested in test_api).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from api.settings import Settings
from api.testing import ADMIN_KEY, LiveServer, bearer_headers, demo_key, settings_for_test

pytestmark = pytest.mark.ray

EXAMPLES = int(os.environ.get("SPOT_FUZZ_EXAMPLES", "12"))
SKIPPED = {"POST /api/v1/simulations"}
SCHEMA = schemathesis.openapi.from_dict(create_app(Settings(_env_file=None)).openapi())  # type: ignore[call-arg]
OPERATIONS = {op.label: op for op in (r.ok() for r in SCHEMA.get_all_operations()) if op.label not in SKIPPED}


@pytest.fixture(scope="module")
def server(ray_session, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(create_app(settings_for_test(tmp_path_factory.mktemp("fuzz")))) as live:
        yield live


@pytest.fixture(scope="module")
def tenant_key(server: LiveServer) -> str:
    async def fresh() -> str:
        async with httpx.AsyncClient(base_url=server.url) as client:
            return await demo_key(client)

    import asyncio

    return asyncio.run(fresh())


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_no_generated_request_gets_a_server_error(label: str, server: LiveServer, tenant_key: str) -> None:
    operation = OPERATIONS[label]
    strategy = operation.as_strategy()
    if operation.method.upper() == "GET" and "{account}" in operation.path:
        real = {"account": server.runtime.settings.account}
        if "{region}" in operation.path:
            real["region"] = "us-east-1"
        strategy = st.one_of(strategy, operation.as_strategy(path_parameters=real))
    key = ADMIN_KEY if "/tenants" in operation.path or operation.path == "/metrics" else tenant_key

    @given(case=strategy)
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    def check(case: schemathesis.Case) -> None:
        response = case.call(base_url=server.url, headers=bearer_headers(key), timeout=60)
        assert response.status_code < 500, f"{case.method} {case.formatted_path} -> {response.status_code}: " \
                                           f"{response.text[:500]}"

    check()
