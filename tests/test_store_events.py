"""Stream events in the store: a tick's decisions and events saved together, replayed for a WebSocket
resume and read back as history windows. Every test runs on an SQLite file and on the PostgreSQL server.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from test_store_codec import T0_S, make_decision

from actors.store import MAX_REPLAY, Store, StreamEvent
from actors.store import repository as repository_module
from actors.store import writer as writer_module
from actors.store.db import create_engine
from actors.store.errors import DatabaseUnavailableError, InvalidRecordError
from actors.store.migrate import upgrade
from engine.types import Decision

ACCOUNT, REGION = "demo", "us-east-1"


def make_event(topic: str = "prices", seq: int = 1, at_s: float = T0_S, **data: Any) -> StreamEvent:
    """An event whose payload names its own topic and seq, so a mix-up shows in the payload too."""
    return StreamEvent(topic, seq, at_s, json.dumps({"topic": topic, "seq": seq, **data}))


def prices_payload(pools: int = 84) -> str:
    """A prices event the size the region actor publishes (~9 KB), with non-ASCII text in it."""
    points = [{"pool": f"m5.large/us-east-1{'abcdef'[k % 6]}", "price_usd_per_hour": 0.0412345 + k * 1e-4,
               "forecast_usd_per_hour": 0.04123, "risk": 0.0312} for k in range(pools)]
    return json.dumps({"topic": "prices", "note": "prix à l'heure ✓", "points": points}, ensure_ascii=False)


def tick(n: int, at_s: float | None = None) -> tuple[list[tuple[int, Decision]], list[StreamEvent]]:
    """Tick ``n`` (1, 2, ...): one decision and one event per topic, each numbered ``n``, a minute apart."""
    at = T0_S + 60 * n if at_s is None else at_s
    decisions = [(n, make_decision(f"i-{n}", decided_at_s=at))]
    events = [make_event(topic, n, at) for topic in ("prices", "instances", "alerts")]
    return decisions, events


def prices_timeline(count: int, step_s: float = 60.0) -> list[StreamEvent]:
    return [make_event("prices", seq, T0_S + step_s * seq) for seq in range(1, count + 1)]


def seqs(events: list[StreamEvent]) -> list[int]:
    return [e.seq for e in events]


async def saved_decision_seqs(store: Store) -> list[int]:
    return [r.seq for r in await store.decisions_after(ACCOUNT, REGION, 0)]


# --- a tick is one transaction ------------------------------------------------------------------------


async def test_a_tick_saves_its_decisions_and_events_and_reads_them_back_exactly(store: Store) -> None:
    decisions = [(1, make_decision("i-a")), (2, make_decision("i-b"))]
    events = [StreamEvent("prices", 1, T0_S, prices_payload()), make_event("alerts", 1, T0_S, text="risk ↑")]
    await store.save_tick(ACCOUNT, REGION, decisions, events)
    assert [(r.seq, r.decision) for r in await store.decisions_after(ACCOUNT, REGION, 0)] == decisions
    assert await store.events_after(ACCOUNT, REGION, "prices", 0) == [events[0]]
    assert await store.events_after(ACCOUNT, REGION, "alerts", 0) == [events[1]]
    assert await store.events_after(ACCOUNT, REGION, "instances", 0) == []


async def test_a_tick_of_events_only_or_decisions_only_is_saved(store: Store) -> None:
    await store.save_tick(ACCOUNT, REGION, [], [make_event("prices", 1)])
    await store.save_tick(ACCOUNT, REGION, [(1, make_decision())], [])
    assert seqs(await store.events_after(ACCOUNT, REGION, "prices", 0)) == [1]
    assert await saved_decision_seqs(store) == [1]


async def test_a_tick_the_database_refuses_half_way_writes_neither_decisions_nor_events(store: Store) -> None:
    first_decisions, first_events = tick(1)
    await store.save_tick(ACCOUNT, REGION, first_decisions, first_events)
    async with store.engine.begin() as conn:  # the events insert fails after the decisions insert ran
        await conn.execute(sa.text("ALTER TABLE stream_events RENAME TO stream_events_gone"))
    with pytest.raises(DatabaseUnavailableError, match=r"cannot save a tick to .*stream_events"):
        await store.save_tick(ACCOUNT, REGION, *tick(2))
    async with store.engine.begin() as conn:
        await conn.execute(sa.text("ALTER TABLE stream_events_gone RENAME TO stream_events"))
    assert await saved_decision_seqs(store) == [1]
    assert await store.max_event_seqs(ACCOUNT, REGION) == {"decisions": 1, "prices": 1, "instances": 1, "alerts": 1}
    await store.save_tick(ACCOUNT, REGION, *tick(2))  # and the writer carries on
    assert await saved_decision_seqs(store) == [1, 2]


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (StreamEvent("prices", 2, T0_S, {"a": 1}), "events[1].payload"),  # type: ignore[arg-type]
        (StreamEvent("prices", 2, T0_S, "[1, 2]"), "events[1].payload"),
        (StreamEvent("prices", 2, T0_S, "{'a': 1"), "events[1].payload"),
        (StreamEvent("prices", 2, T0_S, '{"a": "\x00"}'), "events[1].payload"),
        (StreamEvent("prices", 2, T0_S, '{"a": "\ud800"}'), "events[1].payload"),
        (StreamEvent("decisions", 2, T0_S, "{}"), "events[1].topic"),
        (StreamEvent("news", 2, T0_S, "{}"), "events[1].topic"),
        (StreamEvent("prices", 0, T0_S, "{}"), "events[1].seq"),
        (StreamEvent("prices", True, T0_S, "{}"), "events[1].seq"),
        (StreamEvent("prices", 1, T0_S, "{}"), "events[1].seq"),  # repeats events[0]
        (StreamEvent("prices", 2, float("nan"), "{}"), "events[1].at_s"),
        (StreamEvent("prices", 2, float("inf"), "{}"), "events[1].at_s"),
        (StreamEvent("prices", 2, -1.0, "{}"), "events[1].at_s"),
        ({"topic": "prices", "seq": 2}, "events[1]"),
    ],
)
async def test_one_invalid_event_rejects_the_whole_tick_naming_it(store: Store, bad: Any, field: str) -> None:
    await store.save_tick(ACCOUNT, REGION, *tick(1, at_s=T0_S))
    decisions = [(2, make_decision("i-2")), (3, make_decision("i-3"))]
    events = [make_event("prices", 1, T0_S + 1), bad, make_event("alerts", 2, T0_S + 1)]
    with pytest.raises(InvalidRecordError) as caught:
        await store.save_tick(ACCOUNT, REGION, decisions, events)
    assert caught.value.field == field
    assert await saved_decision_seqs(store) == [1]
    assert await store.events_after(ACCOUNT, REGION, "prices", 0) == [make_event("prices", 1, T0_S)]
    assert await store.max_event_seqs(ACCOUNT, REGION) == {"decisions": 1, "prices": 1, "instances": 1, "alerts": 1}


async def test_one_invalid_decision_or_stream_name_rejects_the_whole_tick(store: Store) -> None:
    decisions = [(1, make_decision()), (2, make_decision(action="explode"))]
    with pytest.raises(InvalidRecordError) as caught:
        await store.save_tick(ACCOUNT, REGION, decisions, [make_event()])
    assert caught.value.field == "decisions[1].decision.action"
    with pytest.raises(InvalidRecordError, match=r"^region: must not be empty"):
        await store.save_tick(ACCOUNT, "", [], [make_event()])
    with pytest.raises(InvalidRecordError, match=r"^account: longer than 128"):
        await store.save_tick("a" * 129, REGION, [], [make_event()])
    assert await store.max_event_seqs(ACCOUNT, REGION) == {"decisions": 0, "prices": 0, "instances": 0, "alerts": 0}


async def test_saving_a_tick_again_is_idempotent_and_the_first_write_wins(store: Store) -> None:
    decisions, events = tick(1)
    await store.save_tick(ACCOUNT, REGION, decisions, events)
    await store.save_tick(ACCOUNT, REGION, decisions, events)
    retried = [replace(events[0], payload='{"second": "try"}'), make_event("prices", 2, T0_S + 120)]
    await store.save_tick(ACCOUNT, REGION, [(1, replace(decisions[0][1], reason="second try"))], retried)
    assert await store.events_after(ACCOUNT, REGION, "prices", 0) == [events[0], retried[1]]
    assert [r.decision for r in await store.decisions_after(ACCOUNT, REGION, 0)] == [decisions[0][1]]


async def test_an_empty_tick_starts_no_transaction(tmp_path: Path) -> None:
    path = tmp_path / "spot.db"
    store = await Store.open(f"sqlite+aiosqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # a transaction would wait for this lock (busy_timeout 10 s)
        await asyncio.wait_for(store.save_tick(ACCOUNT, REGION, [], []), timeout=5)
        other.execute("COMMIT")
        assert await store.max_event_seqs(ACCOUNT, REGION) == {"decisions": 0, "prices": 0, "instances": 0,
                                                                "alerts": 0}
    finally:
        other.close()
        await store.close()


async def test_sqlite_the_writer_checkpoints_the_wal_after_answering_a_tick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "CHECKPOINT_EVERY_TICKS", 1)
    path = tmp_path / "spot.db"
    store = await Store.open(f"sqlite+aiosqlite:///{path}")
    try:
        await store.save_tick(ACCOUNT, REGION, *tick(1))
        await store.save_tick(ACCOUNT, REGION, *tick(2))  # runs after tick 1's checkpoint, on the same thread
        copy = tmp_path / "main-file-only.db"
        copy.write_bytes(path.read_bytes())  # the database file without its WAL: only checkpointed pages
        reader = sqlite3.connect(copy)
        try:
            stored = reader.execute("SELECT topic, seq FROM stream_events ORDER BY topic, seq").fetchall()
        finally:
            reader.close()
    finally:
        await store.close()
    assert ("prices", 1) in stored


async def test_concurrent_ticks_through_two_stores_are_each_stored_once(store: Store, store_url: str) -> None:
    other = await Store.open(store_url, migrate=False)  # as a second process writing the same database
    try:
        ticks = [tick(n) for n in range(1, 7)]
        await asyncio.gather(*(s.save_tick(ACCOUNT, REGION, *t) for t in ticks for s in (store, other, store)))
    finally:
        await other.close()
    assert await saved_decision_seqs(store) == [1, 2, 3, 4, 5, 6]
    for topic in ("prices", "instances", "alerts"):
        assert await store.events_after(ACCOUNT, REGION, topic, 0) == [t[1][k] for t in ticks for k in range(3)
                                                                        if t[1][k].topic == topic]


async def test_an_in_memory_sqlite_store_saves_and_reads_ticks() -> None:
    store = await Store.open("sqlite+aiosqlite://")
    try:
        await store.save_tick(ACCOUNT, REGION, *tick(1))
        await store.save_tick(ACCOUNT, REGION, *tick(1))
        assert await store.max_event_seqs(ACCOUNT, REGION) == {"decisions": 1, "prices": 1, "instances": 1,
                                                                "alerts": 1}
        assert await store.events_after(ACCOUNT, REGION, "alerts", 0) == [tick(1)[1][2]]
    finally:
        await store.close()


# --- reads --------------------------------------------------------------------------------------------


async def test_events_after_replays_one_topic_oldest_first_in_chunks(store: Store) -> None:
    timeline = prices_timeline(10)
    await store.save_tick(ACCOUNT, REGION, [], list(reversed(timeline[:6])))
    await store.save_tick(ACCOUNT, REGION, [], [*timeline[6:], make_event("alerts", 11)])
    assert await store.events_after(ACCOUNT, REGION, "prices", 6) == timeline[6:]
    assert seqs(await store.events_after(ACCOUNT, REGION, "prices", 0, limit=3)) == [1, 2, 3]
    assert seqs(await store.events_after(ACCOUNT, REGION, "prices", 3, limit=3)) == [4, 5, 6]
    assert await store.events_after(ACCOUNT, REGION, "prices", 10) == []
    assert seqs(await store.events_after(ACCOUNT, REGION, "alerts", 0)) == [11]


async def test_streams_do_not_see_each_others_events(store: Store) -> None:
    await store.save_tick(ACCOUNT, REGION, [], prices_timeline(3))
    await store.save_tick(ACCOUNT, "us-west-2", [], prices_timeline(2))
    await store.save_tick("other", REGION, *tick(1))
    assert seqs(await store.events_after(ACCOUNT, "us-west-2", "prices", 0)) == [1, 2]
    assert seqs(await store.events_window("other", REGION, "prices", None, None)) == [1]
    assert await store.max_event_seqs(ACCOUNT, REGION) == {"decisions": 0, "prices": 3, "instances": 0, "alerts": 0}


async def test_events_window_is_since_inclusive_until_exclusive(store: Store) -> None:
    await store.save_tick(ACCOUNT, REGION, [], prices_timeline(10))  # at_s = T0_S + 60 * seq
    window = await store.events_window(ACCOUNT, REGION, "prices", T0_S + 60 * 3, T0_S + 60 * 6)
    assert seqs(window) == [3, 4, 5]
    assert seqs(await store.events_window(ACCOUNT, REGION, "prices", T0_S + 60 * 8, None)) == [8, 9, 10]
    assert seqs(await store.events_window(ACCOUNT, REGION, "prices", None, T0_S + 60 * 3)) == [1, 2]
    assert await store.events_window(ACCOUNT, REGION, "prices", T0_S + 60 * 5, T0_S + 60 * 5) == []
    assert await store.events_window(ACCOUNT, REGION, "alerts", None, None) == []


async def test_events_window_returns_the_newest_limit_events_oldest_first(store: Store) -> None:
    timeline = prices_timeline(10)
    await store.save_tick(ACCOUNT, REGION, [], timeline)
    assert await store.events_window(ACCOUNT, REGION, "prices", None, None, limit=3) == timeline[7:]
    assert seqs(await store.events_window(ACCOUNT, REGION, "prices", T0_S, T0_S + 60 * 6, limit=2)) == [4, 5]
    assert seqs(await store.events_window(ACCOUNT, REGION, "prices", None, None)) == list(range(1, 11))


async def test_max_event_seqs_is_per_topic_and_zero_when_none(store: Store) -> None:
    assert await store.max_event_seqs(ACCOUNT, REGION) == {"decisions": 0, "prices": 0, "instances": 0, "alerts": 0}
    await store.save_tick(ACCOUNT, REGION, [(4, make_decision()), (3, make_decision("i-b"))],
                          [make_event("prices", 9), make_event("prices", 7), make_event("alerts", 2)])
    assert await store.max_event_seqs(ACCOUNT, REGION) == {"decisions": 4, "prices": 9, "instances": 0, "alerts": 2}


@pytest.mark.parametrize("topic", ["decisions", "news", ""])
async def test_reads_refuse_a_topic_that_is_not_an_event_topic(store: Store, topic: str) -> None:
    with pytest.raises(ValueError, match="topic must be one of prices, instances, alerts"):
        await store.events_after(ACCOUNT, REGION, topic, 0)
    with pytest.raises(ValueError, match="topic must be one of prices, instances, alerts"):
        await store.events_window(ACCOUNT, REGION, topic, None, None)
    with pytest.raises(ValueError, match="topic must be one of prices, instances, alerts"):
        await store.prune_events(T0_S, [topic])


@pytest.mark.parametrize("limit", [0, -1, MAX_REPLAY + 1, True])
async def test_reads_refuse_a_limit_out_of_bounds(store: Store, limit: int) -> None:
    with pytest.raises(ValueError, match="limit must be an integer in"):
        await store.events_after(ACCOUNT, REGION, "prices", 0, limit=limit)
    with pytest.raises(ValueError, match="limit must be an integer in"):
        await store.events_window(ACCOUNT, REGION, "prices", None, None, limit=limit)


# --- retention ----------------------------------------------------------------------------------------


async def test_prune_deletes_only_older_events_of_the_chosen_topics_in_every_stream(store: Store) -> None:
    for region in (REGION, "us-west-2"):
        for n in range(1, 6):
            await store.save_tick(ACCOUNT, region, *tick(n))  # at_s = T0_S + 60 * n
    assert await store.prune_events(T0_S + 60 * 3) == 4  # prices 1 and 2 of both regions
    for region in (REGION, "us-west-2"):
        assert seqs(await store.events_after(ACCOUNT, region, "prices", 0)) == [3, 4, 5]
        assert seqs(await store.events_after(ACCOUNT, region, "alerts", 0)) == [1, 2, 3, 4, 5]
    assert await saved_decision_seqs(store) == [1, 2, 3, 4, 5]
    assert await store.prune_events(T0_S + 60 * 3) == 0
    assert await store.prune_events(T0_S + 60 * 5, topics=("alerts", "instances")) == 16
    assert seqs(await store.events_after(ACCOUNT, REGION, "instances", 0)) == [5]
    assert await store.prune_events(T0_S + 60 * 9, topics=()) == 0
    with pytest.raises(ValueError, match="the string 'prices'"):
        await store.prune_events(T0_S, topics="prices")


async def test_prune_can_be_narrowed_to_one_actors_streams(store: Store) -> None:
    for region in (REGION, "us-west-2"):
        for n in range(1, 4):
            await store.save_tick(ACCOUNT, region, *tick(n))
    assert await store.prune_events(T0_S + 60 * 3, account=ACCOUNT, region="us-west-2") == 2
    assert seqs(await store.events_after(ACCOUNT, "us-west-2", "prices", 0)) == [3]
    assert seqs(await store.events_after(ACCOUNT, REGION, "prices", 0)) == [1, 2, 3]  # another actor's clock
    assert await store.prune_events(T0_S + 60 * 3, account="someone-else") == 0


async def test_prune_deletes_in_chunks_until_none_is_left(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repository_module, "PRUNE_CHUNK", 3)
    await store.save_tick(ACCOUNT, REGION, [], prices_timeline(10))
    assert await store.prune_events(T0_S + 60 * 10) == 9  # chunks of 3, 3, 3, then 0
    assert seqs(await store.events_after(ACCOUNT, REGION, "prices", 0)) == [10]
    # the numbering goes on after the newest event, which retention kept
    assert (await store.max_event_seqs(ACCOUNT, REGION))["prices"] == 10


# --- migration ----------------------------------------------------------------------------------------


async def test_a_database_at_the_previous_revision_upgrades_and_keeps_its_decisions(store_url: str) -> None:
    engine = create_engine(store_url)
    try:
        await upgrade(engine, "0002")
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        assert "decisions" in tables
        assert "stream_events" not in tables
    finally:
        await engine.dispose()
    # Saving through the 0002 schema is done with plain SQL: this code's Store needs head.
    old = create_engine(store_url)
    try:
        async with old.begin() as conn:
            await conn.execute(sa.text(
                "INSERT INTO decisions (account, region, seq, instance_id, action, rule, reason, decided_at_s, "
                "from_instance_type, from_availability_zone, from_lifecycle, to_instance_type, to_availability_zone, "
                "to_lifecycle, saving_usd_per_hour, numbers, candidates, policy) VALUES ('demo', 'us-east-1', 5, "
                "'i-1', 'keep', 'best_already', '', 0, 'm5.large', 'us-east-1a', 'spot', 'm5.large', 'us-east-1a', "
                "'spot', 0, '{}', '[]', '')"))
    finally:
        await old.dispose()
    store = await Store.open(store_url)
    try:
        assert await store.max_event_seqs(ACCOUNT, REGION) == {"decisions": 5, "prices": 0, "instances": 0,
                                                                "alerts": 0}
        await store.save_tick(ACCOUNT, REGION, [(6, make_decision())], [make_event()])
        assert await saved_decision_seqs(store) == [5, 6]
    finally:
        await store.close()
