"""A region actor whose database becomes unreachable: the real PostgreSQL behind a TCP proxy the test cuts.

While the database is cut the actor keeps deciding and streaming; what it could not save waits in order in
a bounded queue and is written when the database returns, so the store ends up with every decision and
every event, each stream's seqs contiguous and unique. A queue that overflows says so loudly.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.engine import make_url
from tcp_proxy import TcpProxy

from actors.demo import demo_fleet
from actors.region import RegionActor, RegionConfig
from actors.registry import on_demand_price
from actors.store import Store
from actors.store.testing import scratch_database
from actors.stream import StreamHost, stream_key
from engine.market import MarketTrace
from engine.traces import bundled_market
from engine.types import AvailabilityPoint, PricePoint

pytestmark = pytest.mark.postgres

ACCOUNT, REGION = "outage", "us-east-1"
CUT_S = 10.0


@pytest.fixture(scope="module")
def market() -> MarketTrace:
    return bundled_market()


@pytest.fixture
async def migrated_url(postgres_url: str) -> AsyncIterator[str]:
    async with scratch_database(postgres_url) as url:
        await (await Store.open(url)).close()  # migrated, directly
        yield url


@pytest.fixture
def proxy(migrated_url: str) -> Iterator[TcpProxy]:
    parsed = make_url(migrated_url)
    with TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432) as running:
        yield running


def through(proxy: TcpProxy, url: str) -> str:
    return make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


async def replay_actor(url: str, market: MarketTrace, **config: object) -> RegionActor:
    actor = RegionActor(RegionConfig(ACCOUNT, REGION, database_url=url, executor="simulated",  # type: ignore[arg-type]
                                     checkpoint_interval_s=3600.0, price_retention_s=1e9, **config), hub=StreamHost())
    await actor.add_pools([(p.key, on_demand_price(market, i)) for i, p in enumerate(market.pools)
                           if p.region == REGION])
    await actor.set_fleet(demo_fleet(market, "p3.2xlarge", REGION, 4), market.start_s)
    return actor


async def play(actor: RegionActor, market: MarketTrace, start: int, count: int) -> int:
    """Ticks ``start..start+count`` of the real trace, every pool's price and availability each tick."""
    assert market.spot_price is not None
    columns = [(i, p) for i, p in enumerate(market.pools) if p.region == REGION]
    for t in range(start, start + count):
        now = market.timestamp_s(t)
        await actor.ingest([PricePoint(p, float(market.spot_price[t, i]), now) for i, p in columns],
                           [AvailabilityPoint(p, bool(market.available[t, i]), now) for i, p in columns], now)
    return start + count


async def wait_saved(actor: RegionActor, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while actor.unsaved and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert not actor.unsaved, f"{actor.unsaved.events} events still unsaved"


async def all_seqs(store: Store, topic: str) -> list[int]:
    """Every stored seq of a stream, paged."""
    seqs: list[int] = []
    while True:
        if topic == "decisions":
            page = [r.seq for r in await store.decisions_after(ACCOUNT, REGION, seqs[-1] if seqs else 0,
                                                               limit=10_000)]
        else:
            page = [e.seq for e in await store.events_after(ACCOUNT, REGION, topic, seqs[-1] if seqs else 0,
                                                            limit=10_000)]
        seqs += page
        if len(page) < 10_000:
            return seqs


async def streamed(actor: RegionActor, topic: str) -> list[int]:
    key = stream_key(ACCOUNT, REGION, topic)
    answer = await actor.hub.listen({key: 0}, timeout_s=0.05)
    return [seq for seq, _ in answer["events"].get(key, [])]


async def test_a_ten_second_database_cut_during_ticks_loses_nothing(
        migrated_url: str, proxy: TcpProxy, market: MarketTrace) -> None:
    actor = await replay_actor(through(proxy, migrated_url), market)
    tick = await play(actor, market, 0, 200)
    saved_before = actor.seq
    proxy.cut()
    cut_until = time.monotonic() + CUT_S
    while time.monotonic() < cut_until:  # ticks keep coming for the whole cut
        tick = await play(actor, market, tick, 20)
        await asyncio.sleep(0.05)
    assert actor.unsaved.events > 0 and actor.stats["store_failures"] >= 1
    assert actor.seq > saved_before  # decided and numbered during the cut
    proxy.restore()
    tick = await play(actor, market, tick, 200)
    await wait_saved(actor)
    assert actor.stats["dropped_events"] == 0 and not actor.store_overflow

    store = await Store.open(migrated_url, migrate=False)
    try:
        assert await all_seqs(store, "decisions") == list(range(1, actor.seq + 1))
        for topic, last in actor.topic_seq.items():
            assert await all_seqs(store, topic) == list(range(1, last + 1)), topic
            assert await streamed(actor, topic) == list(range(1, last + 1))  # streamed without a gap too
        assert actor.topic_seq["prices"] == tick  # one prices event per tick, the cut's included
    finally:
        await store.close()
        await actor.close()


async def test_an_overflowing_queue_is_loud_and_the_actor_goes_on(
        migrated_url: str, proxy: TcpProxy, market: MarketTrace) -> None:
    actor = await replay_actor(through(proxy, migrated_url), market, unsaved_limit_events=50)
    tick = await play(actor, market, 0, 20)
    proxy.cut()
    tick = await play(actor, market, tick, 120)
    status = await actor.status()
    assert status["store_overflow"] and status["dropped_events"] > 0 and status["unsaved_events"] <= 50
    proxy.restore()
    tick = await play(actor, market, tick, 5)
    await wait_saved(actor)
    assert not actor.store_overflow  # written out: ready again, the count stays
    key = stream_key(ACCOUNT, REGION, "alerts")
    alerts = (await actor.hub.listen({key: 0}, timeout_s=0.05))["events"].get(key, [])
    assert any(json.loads(text)["kind"] == "store_overflow" for _, text in alerts)
    await actor.close()


async def test_a_websocket_streams_through_a_database_cut_and_resumes_after_it_without_gap_or_duplicate(
        ray_session, migrated_url: str, proxy: TcpProxy, tmp_path) -> None:
    import httpx
    import websockets

    from api.app import create_app
    from api.testing import LiveServer, bearer_headers, demo_key, settings_for_test

    settings = settings_for_test(tmp_path, database_url=through(proxy, migrated_url), replay_speed=20_000.0)
    streams = [stream_key(settings.account, REGION, topic) for topic in ("decisions", "prices")]
    seen: dict[str, list[int]] = {name: [] for name in streams}

    async def read(socket: websockets.ClientConnection, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = json.loads(await asyncio.wait_for(socket.recv(), left))
            except TimeoutError:
                return
            if message.get("stream") in seen and "data" in message:  # events only, not the acks
                seen[message["stream"]].append(message["seq"])

    with LiveServer(create_app(settings)) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            http.headers.update(bearer_headers(await demo_key(http)))
            token = (await http.post("/api/v1/ws-tokens")).json()["token"]
        async with websockets.connect(f"{server.ws_url}?token={token}") as socket:
            await socket.send(json.dumps({"type": "subscribe", "account": settings.account, "regions": [REGION],
                                          "topics": ["decisions", "prices"]}))
            await read(socket, 3.0)
            proxy.cut()
            before_cut = len(seen[streams[1]])
            await read(socket, CUT_S / 2)
            assert len(seen[streams[1]]) > before_cut  # streaming goes on while the database is cut
        positions = {name: seqs[-1] for name, seqs in seen.items() if seqs}
        await asyncio.sleep(CUT_S / 2)  # disconnected for the rest of the cut
        proxy.restore()
        async with websockets.connect(f"{server.ws_url}?token={token}") as socket:
            await socket.send(json.dumps({"type": "resume", "streams": positions}))
            await read(socket, 5.0)
        for name, seqs in seen.items():
            breaks = [(i, s) for i, s in enumerate(seqs) if i and s != seqs[i - 1] + 1]
            assert not breaks, f"{name}: a gap or a duplicate at {breaks}, resumed after {positions[name]}"
            assert seqs[-1] > positions[name]
