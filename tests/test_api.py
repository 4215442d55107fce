"""The API end to end on real Ray, a real SQLite store and the bundled real prices."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn
import websockets
from fastapi import FastAPI
from typer.testing import CliRunner

from api.app import create_app
from api.cli import app as cli_app
from api.settings import Settings

pytestmark = pytest.mark.ray


def settings_for(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "account": f"t{uuid.uuid4().hex[:8]}",
        "data_dir": tmp_path,
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'api.db'}",
        "replay_speed": 40_000.0,
        "replay_tick_interval_s": 0.05,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def test_rest_routes_serve_prices_and_paginated_decisions(ray_session, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    base = f"/api/v1/accounts/{settings.account}/regions/us-east-1"
    async with running(create_app(settings)) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        accounts = (await client.get("/api/v1/accounts")).json()["accounts"]
        assert {"account": settings.account, "regions": ["us-east-1", "us-east-2", "us-west-2"]} in accounts

        prices: list[dict] = []
        deadline = time.monotonic() + 30
        while not prices and time.monotonic() < deadline:  # the replay's first batch is on its way
            prices = (await client.get(f"{base}/prices")).json()["prices"]
            await asyncio.sleep(0.1)
        assert {p["pool"] for p in prices} == {f"p3.2xlarge@us-east-1{z}" for z in "acdf"}
        assert all(0 < p["price_usd_per_hour"] < p["on_demand_usd_per_hour"] for p in prices)

        deadline = time.monotonic() + 60
        decisions: list[dict] = []
        while time.monotonic() < deadline and len(decisions) < 6:
            decisions = (await client.get(f"{base}/decisions", params={"limit": 1000})).json()["decisions"]
            await asyncio.sleep(0.2)
        assert len(decisions) >= 6
        seqs = [d["seq"] for d in decisions]
        assert seqs == sorted(seqs, reverse=True)

        page = (await client.get(f"{base}/decisions", params={"limit": 2})).json()
        assert len(page["decisions"]) == 2
        following = (await client.get(f"{base}/decisions", params={"limit": 2, "before": page["next_before"]})).json()
        assert all(d["seq"] < page["next_before"] for d in following["decisions"])
        assert {"instance_id", "action", "rule", "reason", "candidates", "numbers"} <= set(decisions[0])

        instances = (await client.get(f"{base}/instances")).json()["instances"]
        assert len(instances) == settings.demo_fleet_size


async def test_unknown_account_or_region_is_a_404_with_the_error_shape(ray_session, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, demo_fleet_size=0)
    async with running(create_app(settings)) as client:
        for path in ("/api/v1/accounts/nobody/regions/us-east-1/prices",
                     f"/api/v1/accounts/{settings.account}/regions/eu-west-9/decisions"):
            response = await client.get(path)
            assert response.status_code == 404
            body = response.json()
            assert body["error"] == "not_found" and "unknown account" in body["detail"]


async def test_bad_query_parameters_are_a_422_naming_the_field(ray_session, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, demo_fleet_size=0)
    base = f"/api/v1/accounts/{settings.account}/regions/us-east-1/decisions"
    async with running(create_app(settings)) as client:
        for params, field in (({"limit": 0}, "limit"), ({"limit": "many"}, "limit"), ({"before": "x"}, "before")):
            response = await client.get(base, params=params)
            assert response.status_code == 422
            assert response.json()["error"] == "validation_error"
            assert f"query.{field}" in response.json()["detail"]


async def test_websocket_streams_decisions_over_a_real_socket(ray_session, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        received: list[dict] = []
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert hello["type"] == "hello"
            deadline = time.monotonic() + 60
            while len(received) < 5 and time.monotonic() < deadline:
                message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if message["type"] == "decision" and message["data"]["account"] == settings.account:
                    received.append(message)
        assert len(received) >= 5
        by_stream: dict[str, list[int]] = {}
        for message in received:
            assert message["seq"] == message["data"]["seq"]
            by_stream.setdefault(message["stream"], []).append(message["seq"])
        for seqs in by_stream.values():
            assert seqs == sorted(set(seqs))  # strictly increasing within a stream, no duplicates
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 30)


def test_serve_refuses_a_bad_prices_file_with_exit_code_2(tmp_path: Path) -> None:
    bad = tmp_path / "prices.csv"
    bad.write_text("availability_zone,instance_type,product_description,spot_price,timestamp\n"
                   "us-east-1a,m5.large,Linux/UNIX,0.05,2024-01-01T00:00:00Z\n"
                   "us-east-1b,m5.large,Linux/UNIX,abc,2024-01-01T00:00:00Z\n")
    result = CliRunner().invoke(cli_app, ["serve", "--prices", str(bad)])
    assert result.exit_code == 2
    assert "prices.csv" in result.output and "line 3" in result.output and "spot_price" in result.output


def test_serve_refuses_an_unknown_policy(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli_app, ["serve", "--policy", "yolo"])
    assert result.exit_code == 2
    assert "risk_aware" in result.output
