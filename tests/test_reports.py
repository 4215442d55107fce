"""Savings reports: the replay demo's first week against a hand computation from the stored rows, the
pure arithmetic on small histories (hibernation, observe mode, unpriced time, interruption episodes,
month cuts), REST as JSON and CSV, the CLI's chart, and bad input."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from actors.demo import demo_fleet
from actors.feeds.replay import ReplayFeed
from actors.region import RegionActor
from actors.region_config import RegionConfig
from actors.registry import on_demand_price
from actors.store import Store, StreamEvent
from actors.store.reports import stream_savings
from actors.store.tenancy import Account, Tenancy
from api.app import create_app
from api.auth import TokenBucket
from api.cli import app as cli_app
from api.testing import bearer_headers, settings_for_test
from engine.fleet_history import FleetSnapshot, Placement
from engine.report_period import Granularity, parse_period
from engine.savings import PriceTick, StreamHistory, savings_report
from engine.traces import bundled_market
from engine.types import Action, Decision, Lifecycle, Pool, Rule

ACCOUNT, REGION = "demo", "us-east-1"
WEEK = "2023-02-15..2023-02-21"  # the bundled history starts 2023-02-15T00:00Z
DAY_S = 86_400.0
CENT = 0.005


# --- the replay demo's first week, stored ------------------------------------------------------------

@dataclass(frozen=True)
class StoredWeek:
    url: str
    path: Path


async def nowhere(_region: str, _ticks: list[Any]) -> None:
    return None


async def replay_first_week(path: Path, schedules: tuple[str, ...] = ()) -> StoredWeek:
    """The demo account's region actor (its fleet, the simulated cloud, the default policy), with
    ``schedules``, fed the bundled history's first seven days of ticks, exactly, as the replay feed sends
    them."""
    url = f"sqlite+aiosqlite:///{path}"
    await (await Store.open(url)).close()
    trace = bundled_market()
    actor = RegionActor(RegionConfig(ACCOUNT, REGION, database_url=url))
    await actor.add_pools([(p.key, on_demand_price(trace, i)) for i, p in enumerate(trace.pools)
                           if p.region == REGION])
    await actor.set_fleet(demo_fleet(trace, "p3.2xlarge", REGION, 4), trace.start_s)
    if schedules:
        await actor.set_schedules(list(schedules))
    end_s = trace.start_s + 7 * DAY_S
    feed = ReplayFeed(trace, send=nowhere, speed=trace.tick_s * 200, loop=False)  # batches taken, not sent
    while (batch := feed.take_batch()) is not None:
        ticks = [tick for tick in batch[REGION] if tick[0] < end_s]
        if ticks:
            await actor.ingest_many(ticks)
        if len(ticks) < len(batch[REGION]):
            break
    await actor.flush()
    await actor.close()
    return StoredWeek(url, path)


@pytest.fixture(scope="module")
async def week(tmp_path_factory: pytest.TempPathFactory) -> StoredWeek:
    return await replay_first_week(tmp_path_factory.mktemp("reports") / "week.db")


def hand_computed_days(path: Path, days: list[float]) -> list[dict[str, float]]:
    """Per day, from the stored rows with plain loops: the simulated cloud carries every move out, so
    each instance is where its first decision found it (``from``) and then wherever each later move sent
    it (``to``), from the move's time on; a spot second costs the newest stored price tick of its pool at
    or before it, an on-demand second the on-demand price the decisions state; a stopped second costs
    nothing and saves what the instance paid running before its hibernation (spot: its pool's price)."""
    with sqlite3.connect(path) as db:
        decisions = db.execute(
            "SELECT instance_id, action, decided_at_s, from_instance_type, from_availability_zone, from_lifecycle,"
            " to_instance_type, to_availability_zone, to_lifecycle, numbers FROM decisions"
            " WHERE account = ? AND region = ? ORDER BY seq", (ACCOUNT, REGION)).fetchall()
        ticks = db.execute("SELECT at_s, payload FROM stream_events WHERE account = ? AND region = ?"
                           " AND topic = 'prices' ORDER BY seq", (ACCOUNT, REGION)).fetchall()
        event_times = [t for (t,) in db.execute("SELECT at_s FROM stream_events WHERE account = ? AND region = ?",
                                                (ACCOUNT, REGION))]
    start_s = min([d[2] for d in decisions] + event_times)
    end_s = max([d[2] for d in decisions] + event_times)
    on_demand = {d[3]: json.loads(d[9])["on_demand_usd_per_hour"] for d in decisions
                 if "on_demand_usd_per_hour" in json.loads(d[9])}
    price_steps: dict[str, list[tuple[float, float]]] = {}
    for at_s, payload in ticks:
        for p in json.loads(payload)["prices"]:
            price_steps.setdefault(p["pool"], []).append((at_s, p["price_usd_per_hour"]))

    def spot_price(pool: str, t: float) -> float:
        in_force = None
        for at_s, price in price_steps[pool]:
            if at_s <= t:
                in_force = price
        assert in_force is not None, f"no stored price for {pool} at {t}"
        return in_force

    where: dict[str, tuple[str, str, str]] = {}
    for d in decisions:
        where.setdefault(d[0], (d[3], d[4], d[5]))
    moves = [(d[2], d[0], (d[6], d[7], d[8]), d[1]) for d in decisions if d[1] != "keep"]
    cuts = sorted({start_s, end_s, *days, *(d[2] for d in decisions), *(t for t, _ in ticks)})
    cuts = [t for t in cuts if start_s <= t <= end_s]
    rows = [{"actual": 0.0, "on_demand": 0.0, "spot_h": 0.0, "od_h": 0.0, "stopped_h": 0.0, "hibernation": 0.0,
             "fallbacks": 0, "returns": 0, "replacements": 0, "hibernations": 0, "wakes": 0} for _ in days]
    ran_as: dict[str, str] = {}  # instance -> the lifecycle it had when it was hibernated
    for a, b in itertools.pairwise(cuts):
        for t, instance_id, placement, action in moves:
            if t <= a:
                if action == "hibernate":
                    ran_as[instance_id] = where[instance_id][2]
                where[instance_id] = placement
        moves = [m for m in moves if m[0] > a]
        day = max(k for k, d in enumerate(days) if d <= a)
        for instance_id, (instance_type, zone, lifecycle) in where.items():
            hours = (b - a) / 3600.0
            od = on_demand[instance_type]
            if lifecycle == "stopped":
                rows[day]["stopped_h"] += hours
                would_pay = spot_price(f"{instance_type}@{zone}", a) if ran_as[instance_id] == "spot" else od
                rows[day]["hibernation"] += would_pay * hours
                continue
            price = spot_price(f"{instance_type}@{zone}", a) if lifecycle == "spot" else od
            rows[day]["actual"] += price * hours
            rows[day]["on_demand"] += od * hours
            rows[day]["spot_h" if lifecycle == "spot" else "od_h"] += hours
    names = {"fallback_on_demand": "fallbacks", "return_to_spot": "returns", "replace": "replacements",
             "hibernate": "hibernations", "wake": "wakes"}
    for d in decisions:
        if d[1] in names:
            rows[max(k for k, day in enumerate(days) if day <= d[2])][names[d[1]]] += 1
    return rows


def assert_matches_by_hand(report: Any, path: Path) -> None:
    hand = hand_computed_days(path, [row.start_s for row in report.rows])
    assert [row.label for row in report.rows] == [f"2023-02-{d}" for d in range(15, 22)]
    for row, expected in zip(report.rows, hand, strict=True):
        assert abs(row.actual_cost_usd - expected["actual"]) < CENT, row.label
        assert abs(row.on_demand_cost_usd - expected["on_demand"]) < CENT, row.label
        assert abs(row.hibernation_saving_usd - expected["hibernation"]) < CENT, row.label
        hours = ((row.spot_hours, "spot_h"), (row.on_demand_hours, "od_h"), (row.hibernated_hours, "stopped_h"))
        for got, want in hours:
            assert abs(got - expected[want]) < 1e-6, (row.label, want)
        assert (row.fallbacks, row.returns_to_spot, row.replacements, row.hibernations, row.wakes) == (
            expected["fallbacks"], expected["returns"], expected["replacements"], expected["hibernations"],
            expected["wakes"]), row.label
        assert row.unpriced_hours == 0
    assert abs(report.total.savings_usd - sum(h["on_demand"] - h["actual"] for h in hand)) < CENT


async def week_report(week: StoredWeek, period: str = WEEK, granularity: Granularity = Granularity.DAILY) -> Any:
    store = await Store.open(week.url)
    try:
        return await stream_savings(store, ACCOUNT, REGION, parse_period(period), granularity)
    finally:
        await store.close()


async def test_the_first_replayed_week_matches_a_hand_computation_from_the_stored_rows_to_the_cent(
        week: StoredWeek) -> None:
    report = await week_report(week)
    assert_matches_by_hand(report, week.path)
    total = report.total
    assert total.savings_usd > 0 and total.spot_hours > 0 and total.fallbacks > 0  # a week with something in it
    assert total.hibernated_hours == 0
    assert total.spot_hours + total.on_demand_hours == pytest.approx(4 * (report.last_s - report.first_s) / 3600)
    monthly = await week_report(week, "2023-02", Granularity.MONTHLY)
    assert [r.label for r in monthly.rows] == ["2023-02"]
    assert abs(monthly.total.actual_cost_usd - total.actual_cost_usd) < CENT


async def test_a_hibernation_schedule_on_the_replayed_week_matches_the_hand_computation_too(
        tmp_path: Path) -> None:
    scheduled = await replay_first_week(tmp_path / "scheduled.db", ("Mon-Fri 09:00-17:00 UTC",))
    report = await week_report(scheduled)
    assert_matches_by_hand(report, scheduled.path)
    saturday = report.rows[3]  # 2023-02-18: the whole fleet stopped all day
    assert (saturday.label, saturday.hibernated_hours, saturday.actual_cost_usd) == ("2023-02-18", 96.0, 0.0)
    assert report.total.hibernations >= 4 * 5 and report.total.wakes >= 4 * 4  # every weekday evening and morning
    assert report.total.hibernation_saving_usd > report.total.savings_usd > 0


# --- the arithmetic on small histories ---------------------------------------------------------------

T0 = 1_675_209_600.0  # 2023-02-01T00:00Z
POOL_A, POOL_B = Pool("m5.large", "us-east-1a"), Pool("m5.large", "us-east-1b")
OD = 0.096


def decision(action: Action = Action.KEEP, rule: Rule = Rule.BEST_ALREADY, at_s: float = T0,
             instance_id: str = "i-1", from_pool: Pool = POOL_A, from_lifecycle: Lifecycle = Lifecycle.SPOT,
             to_pool: Pool | None = None, to_lifecycle: Lifecycle | None = None) -> Decision:
    return Decision(instance_id, action, rule, "", at_s, from_pool, from_lifecycle, to_pool or from_pool,
                    to_lifecycle or from_lifecycle, numbers={"on_demand_usd_per_hour": OD})


def history(decisions: tuple[Decision, ...] = (), snapshots: tuple[FleetSnapshot, ...] = (),
            ticks: tuple[PriceTick, ...] = (PriceTick(T0, {POOL_A.key: 0.03, POOL_B.key: 0.02}),),
            hours: float = 24.0, fleet: dict[str, Placement] | None = None) -> StreamHistory:
    return StreamHistory(T0, T0 + hours * 3600, decisions or (decision(),), snapshots, ticks,
                         fleet if fleet is not None else {"i-1": Placement(POOL_A, "spot")})


def day_report(h: StreamHistory, period: str = "2023-02-01") -> Any:
    return savings_report(h, parse_period(period), Granularity.DAILY)


def test_a_spot_instance_pays_the_price_in_force_each_second_and_saves_the_rest_of_on_demand() -> None:
    ticks = (PriceTick(T0, {POOL_A.key: 0.03}), PriceTick(T0 + 6 * 3600, {POOL_A.key: 0.05}))
    row = day_report(history(ticks=ticks)).total
    assert row.actual_cost_usd == pytest.approx(6 * 0.03 + 18 * 0.05)
    assert row.on_demand_cost_usd == pytest.approx(24 * OD)
    assert row.savings_pct == pytest.approx(100 * (24 * OD - 1.08) / (24 * OD))
    assert (row.spot_hours, row.unpriced_hours) == (24.0, 0.0)


def test_a_hibernated_instance_costs_nothing_and_saves_what_it_would_have_cost_running() -> None:
    stop = decision(Action.HIBERNATE, Rule.SCHEDULE, T0 + 8 * 3600, from_lifecycle=Lifecycle.ON_DEMAND,
                    to_lifecycle=Lifecycle.STOPPED)
    wake = decision(Action.WAKE, Rule.SCHEDULE, T0 + 18 * 3600, from_lifecycle=Lifecycle.STOPPED,
                    to_lifecycle=Lifecycle.ON_DEMAND)
    snapshots = (FleetSnapshot(T0, {"i-1": Placement(POOL_A, "on_demand")}),
                 FleetSnapshot(stop.decided_at_s, {"i-1": Placement(POOL_A, "stopped")}),
                 FleetSnapshot(wake.decided_at_s, {"i-1": Placement(POOL_A, "on_demand")}))
    row = day_report(history((stop, wake), snapshots)).total
    assert (row.on_demand_hours, row.hibernated_hours) == (14.0, 10.0)
    assert row.actual_cost_usd == pytest.approx(14 * OD) == row.on_demand_cost_usd
    assert row.hibernation_saving_usd == pytest.approx(10 * OD)
    assert (row.hibernations, row.wakes) == (1, 1)


def test_a_stopped_spot_instance_saves_its_pools_spot_price() -> None:
    stop = decision(Action.HIBERNATE, Rule.SCHEDULE, T0 + 12 * 3600, to_lifecycle=Lifecycle.STOPPED)
    snapshots = (FleetSnapshot(stop.decided_at_s, {"i-1": Placement(POOL_A, "stopped")}),)
    row = day_report(history((stop,), snapshots)).total
    assert row.actual_cost_usd == pytest.approx(12 * 0.03)
    assert row.hibernation_saving_usd == pytest.approx(12 * 0.03)


def test_a_move_no_snapshot_shows_carried_out_changes_nothing_and_is_not_counted() -> None:
    recommended = decision(Action.REPLACE, Rule.SAVING, T0 + 3600, to_pool=POOL_B)  # observe mode
    row = day_report(history((recommended,))).total
    assert row.replacements == 0
    assert row.actual_cost_usd == pytest.approx(24 * 0.03)  # still in pool A all day


def test_a_move_carried_out_is_counted_and_charged_in_its_new_pool() -> None:
    moved = decision(Action.REPLACE, Rule.SAVING, T0 + 4 * 3600, to_pool=POOL_B)
    snapshots = (FleetSnapshot(moved.decided_at_s, {"i-1": Placement(POOL_B, "spot")}),)
    row = day_report(history((decision(), moved), snapshots)).total
    assert row.replacements == 1
    assert row.actual_cost_usd == pytest.approx(4 * 0.03 + 20 * 0.02)


def test_before_the_first_snapshot_an_instance_is_where_the_decision_that_moved_it_found_it() -> None:
    keep = decision(at_s=T0)  # the stream starts here, in observe mode: no snapshot
    moved = decision(Action.REPLACE, Rule.SAVING, T0 + 6 * 3600, to_pool=POOL_B)  # carried out: the first snapshot
    snapshots = (FleetSnapshot(moved.decided_at_s, {"i-1": Placement(POOL_B, "spot")}),)
    row = day_report(history((keep, moved), snapshots, fleet={})).total
    assert row.actual_cost_usd == pytest.approx(6 * 0.03 + 18 * 0.02)
    assert row.replacements == 1


def test_an_interruption_decided_again_every_tick_counts_once() -> None:
    again = [decision(Action.REPLACE, Rule.INTERRUPTED, T0 + k * 195, to_pool=POOL_B) for k in range(1, 4)]
    later = decision(Action.REPLACE, Rule.INTERRUPTED, T0 + 7200, to_pool=POOL_B)
    row = day_report(history((decision(), *again, decision(at_s=T0 + 3600), later))).total
    assert row.interruptions == 2


def test_spot_time_before_the_pools_first_stored_price_is_unpriced_and_saves_nothing() -> None:
    ticks = (PriceTick(T0 + 2 * 3600, {POOL_A.key: 0.03}),)  # the first two hours were pruned
    row = day_report(history(ticks=ticks)).total
    assert row.unpriced_hours == 2.0
    assert row.actual_cost_usd == pytest.approx(2 * OD + 22 * 0.03)
    assert row.savings_usd == pytest.approx(22 * (OD - 0.03))


def test_nothing_is_counted_outside_the_stored_history_and_months_are_cut_at_their_boundary() -> None:
    h = StreamHistory(T0 - 12 * 3600, T0 + 12 * 3600, (decision(at_s=T0 - 12 * 3600),), (),
                      (PriceTick(T0 - 12 * 3600, {POOL_A.key: 0.03}),), {"i-1": Placement(POOL_A, "spot")})
    report = savings_report(h, parse_period("2023-01..2023-02"), Granularity.MONTHLY)
    assert [(r.label, r.spot_hours) for r in report.rows] == [("2023-01", 12.0), ("2023-02", 12.0)]
    empty = day_report(history(hours=0.0))
    assert empty.total.spot_hours == 0 and empty.total.savings_pct is None


@pytest.mark.parametrize(("text", "says"), [
    ("2023-13", "not a valid month or day"), ("Feb 2023", "is not one of YYYY-MM"),
    ("2023-02-10..2023-02-01", "before the start"), ("2023-02..2023-02-03", "both ends must be days or both months"),
    ("2020-01..2023-01", "at most 366"), ("", "must be one of"),
])
def test_a_bad_period_says_which_forms_are_accepted(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_period(text)


# --- REST ---------------------------------------------------------------------------------------------

class ReportsRuntime:
    """What the report route reaches through the dependencies: settings, the store, tenancy, the limiter."""

    def __init__(self, settings: Any, store: Store) -> None:
        self.settings, self.store, self.tenancy = settings, store, Tenancy(store.engine)
        self.limiter = TokenBucket(10_000.0, 10_000)


@pytest.fixture
async def rest(week: StoredWeek, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    store = await Store.open(week.url)
    app = create_app(settings_for_test(tmp_path))
    runtime = app.state.runtime = ReportsRuntime(app.state.settings, store)
    tenancy = runtime.tenancy
    tenant = await tenancy.tenant_by_name("reports") or await tenancy.create_tenant("reports", 0.0)
    if await tenancy.get_account(tenant.id, ACCOUNT) is None:
        await tenancy.create_account(Account(ACCOUNT, tenant.id, (REGION, "us-west-2"), "replay", "simulated",
                                             "risk_aware"))
    _, key = await tenancy.create_key(tenant.id, "test", 0.0)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                                     headers=bearer_headers(key)) as client:
            yield client
    finally:
        await store.close()


SAVINGS = f"/api/v1/accounts/{ACCOUNT}/reports/savings"


async def test_rest_serves_the_report_as_json_per_region(week: StoredWeek, rest: httpx.AsyncClient) -> None:
    response = await rest.get(SAVINGS, params={"period": WEEK, "region": REGION})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["account"], body["period"], body["granularity"], body["currency"]) == (ACCOUNT, WEEK, "daily", "USD")
    assert body["start"] == "2023-02-15T00:00:00Z" and body["end"] == "2023-02-22T00:00:00Z"
    [region] = body["regions"]
    store = await Store.open(week.url)
    try:
        expected = await stream_savings(store, ACCOUNT, REGION, parse_period(WEEK), Granularity.DAILY)
    finally:
        await store.close()
    assert [r["label"] for r in region["rows"]] == [r.label for r in expected.rows]
    for got, want in zip(region["rows"], expected.rows, strict=True):
        assert abs(got["actual_cost_usd"] - want.actual_cost_usd) < 1e-5
        assert abs(got["savings_usd"] - want.savings_usd) < 1e-5
        assert got["fallbacks"] == want.fallbacks
    assert region["total"]["label"] == WEEK
    every = (await rest.get(SAVINGS, params={"period": "2023-02", "granularity": "monthly"})).json()
    assert [(r["region"], len(r["rows"])) for r in every["regions"]] == [(REGION, 1), ("us-west-2", 1)]
    assert every["regions"][1]["total"]["actual_cost_usd"] == 0  # nothing stored there
    assert every["regions"][1]["total"]["savings_pct"] is None


async def test_rest_serves_csv_by_format_or_accept_header(rest: httpx.AsyncClient) -> None:
    by_format = await rest.get(SAVINGS, params={"period": WEEK, "region": REGION, "format": "csv"})
    by_accept = await rest.get(SAVINGS, params={"period": WEEK, "region": REGION}, headers={"Accept": "text/csv"})
    for response in (by_format, by_accept):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
    assert by_format.text == by_accept.text
    rows = list(csv.DictReader(io.StringIO(by_format.text)))
    assert [r["label"] for r in rows] == [f"2023-02-{d}" for d in range(15, 22)] + ["total"]
    assert {"region", "actual_cost_usd", "on_demand_cost_usd", "savings_usd", "savings_pct", "hibernated_hours",
            "interruptions", "replacements", "fallbacks"} <= set(rows[0])
    as_json = (await rest.get(SAVINGS, params={"period": WEEK, "region": REGION})).json()["regions"][0]
    assert math.isclose(float(rows[-1]["actual_cost_usd"]), as_json["total"]["actual_cost_usd"])


@pytest.mark.parametrize(("params", "field"), [
    ({"period": "2023-13"}, "query.period"),
    ({"period": "last week"}, "query.period"),
    ({"period": WEEK, "granularity": "weekly"}, "granularity"),
    ({"period": WEEK, "region": "eu-west-1"}, "query.region"),
    ({"period": WEEK, "format": "xml"}, "format"),
    ({}, "period"),
])
async def test_rest_bad_input_is_a_422_naming_the_field(rest: httpx.AsyncClient, params: dict[str, str],
                                                        field: str) -> None:
    response = await rest.get(SAVINGS, params=params)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error" and field in response.json()["detail"]


async def test_another_tenants_account_is_a_404(rest: httpx.AsyncClient) -> None:
    response = await rest.get("/api/v1/accounts/nobody/reports/savings", params={"period": WEEK})
    assert response.status_code == 404


# --- CLI ----------------------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def no_database_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SPOT_DATABASE_URL", "DATABASE_URL", "SPOT_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)


def test_cli_writes_a_png_chart_and_csv_and_prints_the_table(week: StoredWeek, tmp_path: Path,
                                                             no_database_env: None) -> None:
    png, table = tmp_path / "out" / "report.png", tmp_path / "report.csv"
    result = runner.invoke(cli_app, ["report", "savings", "--account", ACCOUNT, "--period", WEEK, "--out", str(png),
                                     "--csv", str(table), "--database-url", week.url], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert "2023-02-15" in result.output and "total" in result.output
    rows = list(csv.DictReader(table.open(encoding="utf-8")))
    assert rows[-1]["label"] == "total" and float(rows[-1]["savings_usd"]) > 0


@pytest.mark.parametrize(("args", "says"), [
    (["--period", "2023-02-30"], "--period"),
    (["--period", WEEK, "--account", "nobody"], "--account"),
    (["--period", WEEK, "--region", "eu-west-1"], "--region"),
    (["--period", WEEK, "--granularity", "weekly"], "--granularity"),
])
def test_cli_bad_input_exits_2_naming_the_option(week: StoredWeek, tmp_path: Path, no_database_env: None,
                                                 args: list[str], says: str) -> None:
    base = {"--account": ACCOUNT, "--out": str(tmp_path / "r.png"), "--database-url": week.url}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    result = runner.invoke(cli_app, ["report", "savings", *[x for pair in base.items() for x in pair]])
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert not (tmp_path / "r.png").exists()


# --- the store's side, on SQLite and PostgreSQL ------------------------------------------------------

def fleet_event(seq: int, at_s: float, fleet: dict[str, tuple[Pool, str]]) -> StreamEvent:
    instances = [{"instance_id": i, "pool": pool.key, "lifecycle": lifecycle, "fleet": "default",
                  "launched_at_s": at_s, "interrupted": False} for i, (pool, lifecycle) in fleet.items()]
    return StreamEvent("instances", seq, at_s, json.dumps({"at_s": at_s, "instances": instances, "seq": seq}))


def prices_event(seq: int, at_s: float, prices: dict[Pool, float]) -> StreamEvent:
    doc = {"at_s": at_s, "prices": [{"pool": p.key, "price_usd_per_hour": v} for p, v in prices.items()],
           "availability": [], "seq": seq}
    return StreamEvent("prices", seq, at_s, json.dumps(doc))


async def test_the_store_side_reads_decisions_snapshots_and_price_ticks_on_both_backends(store: Store) -> None:
    h = 3600.0
    od, stopped = Lifecycle.ON_DEMAND, Lifecycle.STOPPED
    ticks: list[tuple[list[tuple[int, Decision]], list[StreamEvent]]] = [
        ([(1, decision()), (2, decision(instance_id="i-2", from_pool=POOL_B, from_lifecycle=od))],
         [prices_event(1, T0, {POOL_A: 0.03, POOL_B: 0.02})]),
        ([], [prices_event(2, T0 + 6 * h, {POOL_A: 0.05})]),
        ([(3, decision(Action.REPLACE, Rule.SAVING, T0 + 10 * h, to_pool=POOL_B))],
         [fleet_event(1, T0 + 10 * h, {"i-1": (POOL_B, "spot"), "i-2": (POOL_B, "on_demand")})]),
        ([(4, decision(Action.HIBERNATE, Rule.SCHEDULE, T0 + 12 * h, "i-2", POOL_B, od, to_lifecycle=stopped))],
         [fleet_event(2, T0 + 12 * h, {"i-1": (POOL_B, "spot"), "i-2": (POOL_B, "stopped")})]),
        ([(5, decision(Action.REPLACE, Rule.SAVING, T0 + 15 * h, from_pool=POOL_B, to_pool=POOL_A))], []),  # observe
        ([(6, decision(Action.WAKE, Rule.SCHEDULE, T0 + 20 * h, "i-2", POOL_B, stopped, to_lifecycle=od))],
         [fleet_event(3, T0 + 20 * h, {"i-1": (POOL_B, "spot"), "i-2": (POOL_B, "on_demand")})]),
        ([], [prices_event(3, T0 + 24 * h, {POOL_B: 0.025})]),
    ]
    for decisions, events in ticks:
        await store.save_tick("acct", "us-east-1", decisions, events)
    report = await stream_savings(store, "acct", "us-east-1", parse_period("2023-02-01"), Granularity.DAILY)
    row = report.total
    assert (row.spot_hours, row.on_demand_hours, row.hibernated_hours, row.unpriced_hours) == (24.0, 16.0, 8.0, 0.0)
    assert abs(row.actual_cost_usd - (6 * 0.03 + 4 * 0.05 + 14 * 0.02 + 16 * OD)) < 1e-9
    assert abs(row.on_demand_cost_usd - 40 * OD) < 1e-9
    assert abs(row.hibernation_saving_usd - 8 * OD) < 1e-9
    assert (row.replacements, row.hibernations, row.wakes, row.interruptions) == (1, 1, 1, 0)
    before = await stream_savings(store, "acct", "us-east-1", parse_period("2023-01-31"), Granularity.DAILY)
    assert before.total.spot_hours == 0  # nothing stored then
