"""The store on real databases: every test runs on an SQLite file and on the PostgreSQL server.

On PostgreSQL each test gets a fresh schema (``actors.store.testing.scratch_database``), so runs can
overlap and a crashed run leaves nothing that breaks the next.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncConnection
from test_store_codec import T0_S, every_kind_of_decision, make_decision, make_instance

from actors.store import MAX_PAGE, DecisionRecord, Store, decision_to_json
from actors.store.db import create_engine
from actors.store.errors import DatabaseUnavailableError, DatabaseURLError, InvalidRecordError
from actors.store.migrate import current_revision, head_revision
from actors.store.tables import METADATA
from actors.store.testing import scratch_database
from engine.types import Action, Decision, Lifecycle, Rule

ACCOUNT, REGION = "demo", "us-east-1"


def numbered(decisions: list[Decision], first_seq: int = 1) -> list[tuple[int, Decision]]:
    return [(first_seq + n, d) for n, d in enumerate(decisions)]


def timeline(count: int) -> list[tuple[int, Decision]]:
    """``count`` decisions a minute apart over three instances, actions cycling."""
    actions = [(Action.KEEP, Rule.BEST_ALREADY), (Action.REPLACE, Rule.SAVING), (Action.KEEP, Rule.DWELL)]
    return [
        (seq, make_decision(f"i-{seq % 3}", *actions[seq % 3], decided_at_s=T0_S + 60 * seq))
        for seq in range(1, count + 1)
    ]


def seqs(records: list[DecisionRecord]) -> list[int]:
    return [r.seq for r in records]


# --- migrations ---------------------------------------------------------------------------------------


async def test_open_migrates_an_empty_database_to_head_with_tables_and_indexes(store_url: str) -> None:
    engine = create_engine(store_url)
    try:
        assert await current_revision(engine) is None
        store = await Store.open(store_url)
        await store.close()
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as conn:
            tables, indexes, diff = await conn.run_sync(
                lambda c: (
                    set(sa.inspect(c).get_table_names()),
                    {i["name"] for t in ("decisions", "stream_events") for i in sa.inspect(c).get_indexes(t)},
                    compare_metadata(MigrationContext.configure(c), METADATA),
                )
            )
    finally:
        await engine.dispose()
    assert tables >= {"decisions", "stream_events", "instances", "alembic_version"}
    assert indexes >= {
        "ix_decisions_stream_instance_seq",
        "ix_decisions_stream_action_seq",
        "ix_decisions_stream_decided_at",
        "ix_stream_events_stream_topic_at",
        "ix_stream_events_topic_at",
    }
    assert diff == [], "the migrations and the SQLModel tables disagree"


async def test_opening_again_is_a_no_op_that_keeps_the_data(store_url: str) -> None:
    first = await Store.open(store_url)
    await first.save_tick(ACCOUNT, REGION, timeline(3), [])
    await first.close()
    second = await Store.open(store_url)
    try:
        assert seqs(await second.list_decisions(ACCOUNT, REGION)) == [3, 2, 1]
    finally:
        await second.close()


async def test_concurrent_opens_migrate_once_without_errors(store_url: str) -> None:
    stores = await asyncio.gather(*(Store.open(store_url) for _ in range(3)))
    try:
        await stores[0].save_tick(ACCOUNT, REGION, timeline(1), [])
        assert [(await s.max_event_seqs(ACCOUNT, REGION))["decisions"] for s in stores] == [1, 1, 1]
    finally:
        for s in stores:
            await s.close()


async def test_opening_an_unmigrated_database_without_migrating_says_to_upgrade(store_url: str) -> None:
    with pytest.raises(DatabaseUnavailableError, match=r"revision none.*spot-optimizer db upgrade"):
        await Store.open(store_url, migrate=False)


async def test_an_in_memory_sqlite_store_keeps_its_data_while_open() -> None:
    store = await Store.open("sqlite+aiosqlite://")
    try:
        await store.save_tick(ACCOUNT, REGION, timeline(2), [])
        await store.save_fleet(ACCOUNT, REGION, [make_instance()], now_s=T0_S)
        assert seqs(await store.list_decisions(ACCOUNT, REGION)) == [2, 1]
        assert await store.list_instances(ACCOUNT, REGION) == [make_instance()]
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("url", "error", "message"),
    [
        ("mysql://root@db/spot", DatabaseURLError, "unsupported database 'mysql'"),
        ("spot.db", DatabaseURLError, "not a database URL: 'spot.db'"),
        ("sqlite+aiosqlite:///no/such/dir/spot.db", DatabaseUnavailableError, "directory no/such/dir does not exist"),
    ],
)
async def test_open_names_a_bad_url_or_a_missing_directory(url: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        await Store.open(url)


async def test_ping_answers_for_a_live_database(store: Store) -> None:
    assert await store.ping() is True


async def test_ping_is_false_and_open_is_clear_when_the_server_is_gone() -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:1/test"
    assert await Store(create_engine(url)).ping() is False
    with pytest.raises(DatabaseUnavailableError, match=r"cannot open database postgresql\+asyncpg://.*:1/test"):
        await Store.open(url)


# --- decisions ----------------------------------------------------------------------------------------


async def test_decisions_round_trip_through_the_database_keeping_every_field(store: Store) -> None:
    decisions = every_kind_of_decision()
    await store.save_tick(ACCOUNT, REGION, numbered(decisions), [])
    records = await store.decisions_after(ACCOUNT, REGION, 0)
    assert records == [DecisionRecord(ACCOUNT, REGION, seq, d) for seq, d in numbered(decisions)]
    back = records[0].decision
    assert isinstance(back.action, Action)
    assert isinstance(back.candidates[2].lifecycle, Lifecycle)
    assert back.saving_usd_per_hour == 0.1234567890123
    assert back.numbers["tiny"] == 1e-300


async def test_stored_json_is_the_json_published_live(store: Store) -> None:
    decision = make_decision()
    await store.save_tick(ACCOUNT, REGION, [(9, decision)], [])
    [record] = await store.list_decisions(ACCOUNT, REGION)
    assert record.to_json() == decision_to_json(ACCOUNT, REGION, 9, decision)


async def test_list_is_newest_first_and_the_before_cursor_walks_every_page(store: Store) -> None:
    await store.save_tick(ACCOUNT, REGION, timeline(25), [])
    assert seqs(await store.list_decisions(ACCOUNT, REGION, limit=10)) == list(range(25, 15, -1))
    walked: list[int] = []
    before = None
    while page := await store.list_decisions(ACCOUNT, REGION, limit=7, before=before):
        walked += seqs(page)
        before = page[-1].seq
    assert walked == list(range(25, 0, -1))
    assert await store.list_decisions(ACCOUNT, REGION, before=1) == []


@pytest.mark.parametrize("limit", [0, -1, MAX_PAGE + 1, True])
async def test_list_limit_out_of_bounds_is_refused(store: Store, limit: int) -> None:
    with pytest.raises(ValueError, match="limit must be an integer in"):
        await store.list_decisions(ACCOUNT, REGION, limit=limit)


async def test_list_limit_bounds_themselves_are_allowed(store: Store) -> None:
    await store.save_tick(ACCOUNT, REGION, timeline(3), [])
    assert seqs(await store.list_decisions(ACCOUNT, REGION, limit=1)) == [3]
    assert seqs(await store.list_decisions(ACCOUNT, REGION, limit=MAX_PAGE)) == [3, 2, 1]


async def test_list_filters_by_action_instance_and_time_and_combines_with_the_cursor(store: Store) -> None:
    await store.save_tick(ACCOUNT, REGION, timeline(12), [])
    replaced = await store.list_decisions(ACCOUNT, REGION, action=Action.REPLACE)
    assert seqs(replaced) == [10, 7, 4, 1]
    assert {r.decision.action for r in replaced} == {Action.REPLACE}
    assert seqs(await store.list_decisions(ACCOUNT, REGION, action="replace", before=7)) == [4, 1]
    assert seqs(await store.list_decisions(ACCOUNT, REGION, instance_id="i-2")) == [11, 8, 5, 2]
    window = await store.list_decisions(ACCOUNT, REGION, since_s=T0_S + 60 * 3, until_s=T0_S + 60 * 6)
    assert seqs(window) == [5, 4, 3]  # since inclusive, until exclusive
    both = await store.list_decisions(ACCOUNT, REGION, instance_id="i-0", since_s=T0_S + 60 * 4, limit=2)
    assert seqs(both) == [12, 9]
    assert await store.list_decisions(ACCOUNT, REGION, instance_id="i-404") == []


async def test_list_refuses_an_unknown_action(store: Store) -> None:
    with pytest.raises(ValueError, match="action must be one of keep, replace"):
        await store.list_decisions(ACCOUNT, REGION, action="explode")  # type: ignore[arg-type]


async def test_streams_do_not_see_each_other(store: Store) -> None:
    await store.save_tick(ACCOUNT, REGION, timeline(3), [])
    await store.save_tick(ACCOUNT, "us-west-2", timeline(2), [])
    await store.save_tick("other", REGION, timeline(1), [])
    assert seqs(await store.list_decisions(ACCOUNT, "us-west-2")) == [2, 1]
    assert seqs(await store.decisions_after("other", REGION, 0)) == [1]
    assert (await store.max_event_seqs(ACCOUNT, REGION))["decisions"] == 3
    streams = [(ACCOUNT, REGION), (ACCOUNT, "us-west-2"), ("other", REGION), ("other", "us-west-2")]
    assert [seqs(await store.decisions_after(a, r, 0)) for a, r in streams] == [[1, 2, 3], [1, 2], [1], []]


async def test_decisions_after_replays_oldest_first_in_chunks(store: Store) -> None:
    await store.save_tick(ACCOUNT, REGION, timeline(10), [])
    assert seqs(await store.decisions_after(ACCOUNT, REGION, 6)) == [7, 8, 9, 10]
    assert seqs(await store.decisions_after(ACCOUNT, REGION, 0, limit=3)) == [1, 2, 3]
    assert await store.decisions_after(ACCOUNT, REGION, 10) == []
    with pytest.raises(ValueError, match="limit"):
        await store.decisions_after(ACCOUNT, REGION, 0, limit=0)


async def test_max_seq_is_zero_for_an_empty_stream(store: Store) -> None:
    assert (await store.max_event_seqs(ACCOUNT, REGION))["decisions"] == 0
    await store.save_tick(ACCOUNT, REGION, [(41, make_decision()), (40, make_decision())], [])
    assert (await store.max_event_seqs(ACCOUNT, REGION))["decisions"] == 41


async def test_saving_a_batch_again_is_idempotent_and_the_first_write_wins(store: Store) -> None:
    batch = timeline(5)
    await store.save_tick(ACCOUNT, REGION, batch, [])
    await store.save_tick(ACCOUNT, REGION, batch, [])
    rewritten = [(seq, replace(d, reason="second try")) for seq, d in batch[3:]]
    await store.save_tick(ACCOUNT, REGION, [*rewritten, *timeline(7)[5:]], [])
    records = await store.decisions_after(ACCOUNT, REGION, 0)
    assert seqs(records) == [1, 2, 3, 4, 5, 6, 7]
    assert [r.decision for r in records[:5]] == [d for _, d in batch]


async def test_an_empty_batch_writes_nothing(store: Store) -> None:
    await store.save_tick(ACCOUNT, REGION, [], [])
    assert await store.max_event_seqs(ACCOUNT, REGION) == {"decisions": 0, "prices": 0, "instances": 0, "alerts": 0}
    assert await store.list_decisions(ACCOUNT, REGION) == []


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (make_decision(saving_usd_per_hour=float("nan")), "decisions[2].decision.saving_usd_per_hour"),
        (make_decision(action="explode"), "decisions[2].decision.action"),
        ("not a decision", "decisions[2].decision"),
    ],
)
async def test_a_batch_with_one_invalid_decision_is_rejected_whole(store: Store, bad: Decision, field: str) -> None:
    await store.save_tick(ACCOUNT, REGION, timeline(3), [])
    batch = [(4, make_decision("i-4")), (5, make_decision("i-5")), (6, bad), (7, make_decision("i-7"))]
    with pytest.raises(InvalidRecordError) as caught:
        await store.save_tick(ACCOUNT, REGION, batch, [])
    assert caught.value.field == field
    assert seqs(await store.decisions_after(ACCOUNT, REGION, 0)) == [1, 2, 3]
    assert (await store.max_event_seqs(ACCOUNT, REGION))["decisions"] == 3


async def test_a_batch_repeating_a_seq_or_malformed_is_rejected_whole(store: Store) -> None:
    with pytest.raises(InvalidRecordError, match=r"decisions\[1\]\.seq: seq 4 appears twice"):
        await store.save_tick(ACCOUNT, REGION, [(4, make_decision()), (4, make_decision("i-9"))], [])
    with pytest.raises(InvalidRecordError, match=r"decisions\[1\]\.seq: must be in \[1"):
        await store.save_tick(ACCOUNT, REGION, [(1, make_decision()), (0, make_decision())], [])
    with pytest.raises(InvalidRecordError, match=r"decisions\[0\]: must be a \(seq, Decision\) pair"):
        await store.save_tick(ACCOUNT, REGION, [(1,)], [])  # type: ignore[list-item]
    assert (await store.max_event_seqs(ACCOUNT, REGION))["decisions"] == 0


# --- the decisions writer (one hop per batch: actors/store/writer.py) ----------------------------------


async def test_concurrent_saves_through_one_store_and_through_two_are_each_stored_once(
    store: Store, store_url: str
) -> None:
    other = await Store.open(store_url, migrate=False)  # as a second process writing the same database
    try:
        batch = timeline(12)
        halves = [batch[k : k + 2] for k in range(0, 12, 2)]
        await asyncio.gather(*(s.save_tick(ACCOUNT, REGION, h, []) for h in halves for s in (store, other, store)))
    finally:
        await other.close()
    records = await store.decisions_after(ACCOUNT, REGION, 0)
    assert [(r.seq, r.decision) for r in records] == batch


async def test_a_save_the_database_refuses_is_database_unavailable_naming_it(store: Store) -> None:
    await store.save_tick(ACCOUNT, REGION, timeline(1), [])
    async with store.engine.begin() as conn:
        await conn.execute(sa.text("DROP TABLE decisions"))
    with pytest.raises(DatabaseUnavailableError, match=r"cannot save a tick to .*decisions"):
        await store.save_tick(ACCOUNT, REGION, timeline(2)[1:], [])


async def test_sqlite_a_save_waits_for_another_writer_and_one_cancelled_meanwhile_writes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "spot.db"
    store = await Store.open(f"sqlite+aiosqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        cancelled = asyncio.create_task(store.save_tick(ACCOUNT, REGION, timeline(1), []))
        waiting = asyncio.create_task(store.save_tick(ACCOUNT, REGION, timeline(3)[1:], []))
        await asyncio.sleep(0.2)
        assert not cancelled.done()
        assert not waiting.done()  # waiting for the lock (busy_timeout), not failing
        cancelled.cancel()
        await asyncio.sleep(0.05)
        other.execute("COMMIT")
        await waiting
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert seqs(await store.decisions_after(ACCOUNT, REGION, 0)) == [2, 3]
    finally:
        other.close()
        await store.close()


async def _wait_for_blocked_writer(lock: AsyncConnection, *, other_than: int | None = None) -> int:
    for _ in range(1000):
        query = sa.text("SELECT pid FROM pg_locks WHERE relation = 'decisions'::regclass AND NOT granted")
        pids = [pid for pid in (await lock.execute(query)).scalars() if pid != other_than]
        if pids:
            return int(pids[0])
        await asyncio.sleep(0.01)
    raise AssertionError("no writer came to wait for the decisions table")


async def _wait_until_no_writer_is_blocked(lock: AsyncConnection) -> None:
    for _ in range(1000):
        query = sa.text("SELECT count(*) FROM pg_locks WHERE relation = 'decisions'::regclass AND NOT granted")
        if (await lock.execute(query)).scalar_one() == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("a writer still waits for the decisions table")


@pytest.mark.postgres
async def test_postgres_a_save_cancelled_while_blocked_writes_nothing(postgres_url: str) -> None:
    async with scratch_database(postgres_url) as url:
        store = await Store.open(url)
        try:
            await store.save_tick(ACCOUNT, REGION, timeline(1), [])
            async with store.engine.connect() as lock:
                await lock.execute(sa.text("LOCK TABLE decisions IN EXCLUSIVE MODE"))
                cancelled = asyncio.create_task(store.save_tick(ACCOUNT, REGION, timeline(2)[1:], []))
                await _wait_for_blocked_writer(lock)
                cancelled.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await cancelled
                await _wait_until_no_writer_is_blocked(lock)  # the server has cancelled the insert
                await lock.rollback()
            await store.save_tick(ACCOUNT, REGION, timeline(3)[2:], [])
            assert seqs(await store.decisions_after(ACCOUNT, REGION, 0)) == [1, 3]
        finally:
            await store.close()


@pytest.mark.postgres
async def test_postgres_a_save_whose_connection_the_server_kills_is_retried_on_a_new_one(postgres_url: str) -> None:
    async with scratch_database(postgres_url) as url:
        store = await Store.open(url)
        try:
            await store.save_tick(ACCOUNT, REGION, timeline(1), [])
            async with store.engine.connect() as lock:
                await lock.execute(sa.text("LOCK TABLE decisions IN EXCLUSIVE MODE"))
                saving = asyncio.create_task(store.save_tick(ACCOUNT, REGION, timeline(2)[1:], []))
                killed = await _wait_for_blocked_writer(lock)
                await lock.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": killed})
                await _wait_for_blocked_writer(lock, other_than=killed)  # the retry, on a fresh connection
                await lock.rollback()
            await saving
            await store.save_tick(ACCOUNT, REGION, timeline(3)[2:], [])
            assert seqs(await store.decisions_after(ACCOUNT, REGION, 0)) == [1, 2, 3]
        finally:
            await store.close()


# --- instances ----------------------------------------------------------------------------------------


async def test_a_saved_fleet_is_listed_by_id_overwritten_and_left(store: Store) -> None:
    a, b, c = make_instance("i-a"), make_instance("i-b", "us-east-1b"), make_instance("i-c", "us-east-1c")
    await store.save_fleet(ACCOUNT, REGION, [c, a, b], now_s=T0_S)
    assert await store.list_instances(ACCOUNT, REGION) == [a, b, c]

    moved = replace(a, lifecycle=Lifecycle.ON_DEMAND, interrupted=True, launched_at_s=T0_S)
    await store.save_fleet(ACCOUNT, REGION, [moved, b, c], now_s=T0_S + 60)
    assert await store.list_instances(ACCOUNT, REGION) == [moved, b, c]

    await store.save_fleet(ACCOUNT, REGION, [moved, c], now_s=T0_S + 120)  # i-b left
    assert await store.list_instances(ACCOUNT, REGION) == [moved, c]
    assert await store.list_instances("other", REGION) == []
    assert await store.fleet_updated_at_s(ACCOUNT, REGION) == T0_S + 120
    assert await store.fleet_updated_at_s("other", REGION) is None


async def test_instances_of_other_streams_are_untouched(store: Store) -> None:
    await store.save_fleet(ACCOUNT, REGION, [make_instance("i-a")], now_s=T0_S)
    await store.save_fleet(ACCOUNT, "us-west-2", [make_instance("i-a", "us-west-2a")], now_s=T0_S)
    await store.save_fleet(ACCOUNT, REGION, [], now_s=T0_S + 60)
    assert await store.list_instances(ACCOUNT, REGION) == []
    assert [i.pool.availability_zone for i in await store.list_instances(ACCOUNT, "us-west-2")] == ["us-west-2a"]


async def test_an_invalid_instance_rejects_the_whole_fleet(store: Store) -> None:
    await store.save_fleet(ACCOUNT, REGION, [make_instance("i-a")], now_s=T0_S)
    bad = replace(make_instance("i-bad"), launched_at_s=float("nan"))
    with pytest.raises(InvalidRecordError, match=r"instances\[1\]\.instance 'i-bad'\.launched_at_s"):
        await store.save_fleet(ACCOUNT, REGION, [make_instance("i-b"), bad], now_s=T0_S)
    with pytest.raises(InvalidRecordError, match="appears twice"):
        await store.save_fleet(ACCOUNT, REGION, [make_instance("i-b"), make_instance("i-b")], now_s=T0_S)
    assert [i.instance_id for i in await store.list_instances(ACCOUNT, REGION)] == ["i-a"]


# --- test isolation on PostgreSQL ---------------------------------------------------------------------


@pytest.mark.postgres
async def test_scratch_schemas_of_dead_runs_are_swept_and_live_ones_kept(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actors.store import testing

    dead_pid = next(pid for pid in range(4_000_000, 4_100_000) if not testing._process_alive(pid))
    dead, alive = f"spot_scratch_{dead_pid}_0bad", f"spot_scratch_{os.getpid()}_0live"
    admin = create_engine(postgres_url)
    try:
        async with admin.begin() as conn:
            for name in (dead, alive):
                await conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{name}"'))
        monkeypatch.setattr(testing, "_orphans_swept", False)
        async with scratch_database(postgres_url) as url:
            assert "search_path=spot_scratch_" in url
        async with admin.connect() as conn:
            names = set((await conn.execute(sa.text("SELECT nspname FROM pg_namespace"))).scalars())
        assert dead not in names
        assert alive in names
        assert not any(n.startswith(f"spot_scratch_{os.getpid()}_") and n != alive for n in names)
    finally:
        async with admin.begin() as conn:
            await conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{alive}" CASCADE'))
        await admin.dispose()


async def test_saving_the_fleet_drops_instances_that_left_it_and_keeps_other_streams(store: Store) -> None:
    first, second, third = (make_instance(instance_id=f"i-{k}") for k in range(3))
    await store.save_fleet("a", "us-east-1", [first, second], T0_S)
    await store.save_fleet("b", "us-east-1", [first], T0_S)
    await store.save_fleet("a", "us-east-1", [second, third], T0_S + 60)  # i-0 was replaced by i-2
    assert [i.instance_id for i in await store.list_instances("a", "us-east-1")] == ["i-1", "i-2"]
    assert [i.instance_id for i in await store.list_instances("b", "us-east-1")] == ["i-0"]
    await store.save_fleet("a", "us-east-1", [], T0_S + 120)
    assert await store.list_instances("a", "us-east-1") == []
