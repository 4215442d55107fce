"""Hibernation: the stored schedules, the engine's hibernate and wake decisions, their execution, the
backtest kernel and the replay demo following a schedule on the replayed clock."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pytest

from actors.demo import demo_fleet
from actors.executor import Outcome, SimulatedCloud
from actors.feeds.replay import ReplayFeed
from actors.region import RegionActor
from actors.region_config import RegionConfig
from actors.store import Store
from actors.store.schedules import ScheduleStore
from actors.store.tenancy import Account, Tenancy
from api.app import create_app
from api.auth import TokenBucket
from api.testing import bearer_headers, settings_for_test
from engine.hibernation import Hibernation, hibernate_decision
from engine.market import MarketTrace
from engine.policy import make_policy
from engine.region import RegionEngine
from engine.schedule import Schedule, open_mask
from engine.sim.fleet import FleetMarket, fleet_metrics, simulate_fleet
from engine.traces import bundled_market
from engine.types import Action, AvailabilityPoint, Decision, Instance, Lifecycle, Pool, PricePoint, Rule

POOL = Pool("p3.2xlarge", "us-east-1a")
OFFICE = "Mon-Fri 09:00-17:00 UTC"
MUTATING = {"RunInstances", "TerminateInstances", "StopInstances", "StartInstances"}


def utc(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def make_instance(instance_id: str = "i-1", lifecycle: Lifecycle = Lifecycle.SPOT, fleet: str = "default") -> Instance:
    return Instance(instance_id, POOL, lifecycle, fleet=fleet)


# -- the plan: who stops, who wakes, who is the policy's --------------------------------------------------------


def test_outside_the_window_running_instances_hibernate_and_stopped_ones_stay_asleep() -> None:
    hibernation = Hibernation.of([OFFICE])
    running, stopped = make_instance("i-1"), make_instance("i-2", Lifecycle.STOPPED)
    plan = hibernation.plan([running, stopped], utc("2026-06-06 12:00"))  # a Saturday
    assert [i.instance_id for i, _ in plan.hibernate] == ["i-1"]
    assert [i.instance_id for i, _ in plan.asleep] == ["i-2"]
    assert plan.wake == () and plan.for_policy == ()


def test_inside_the_window_stopped_instances_wake_through_the_policy() -> None:
    hibernation = Hibernation.of([OFFICE])
    running, stopped = make_instance("i-1"), make_instance("i-2", Lifecycle.STOPPED)
    plan = hibernation.plan([running, stopped], utc("2026-06-08 09:00"))  # Monday 09:00
    assert plan.hibernate == () and plan.asleep == ()
    assert [i.instance_id for i in plan.for_policy] == ["i-1", "i-2"]
    assert [i.instance_id for i, _ in plan.wake] == ["i-2"]


def test_a_selector_governs_only_the_instances_with_its_tag() -> None:
    hibernation = Hibernation.of([f"env=dev {OFFICE}"])
    hibernation.set_tags({"i-dev": {"env": "dev"}, "i-prod": {"env": "prod"}})
    plan = hibernation.plan([make_instance("i-dev"), make_instance("i-prod"), make_instance("i-batch", fleet="dev")],
                            utc("2026-06-06 12:00"))
    assert [i.instance_id for i, _ in plan.hibernate] == ["i-dev"]
    assert [i.instance_id for i in plan.running] == ["i-prod", "i-batch"]
    by_fleet = Hibernation.of([f"fleet=dev {OFFICE}"]).plan([make_instance("i-batch", fleet="dev")],
                                                             utc("2026-06-06 12:00"))
    assert [i.instance_id for i, _ in by_fleet.hibernate] == ["i-batch"]


def test_a_member_of_a_group_that_keeps_its_size_is_never_hibernated_until_it_leaves_the_group() -> None:
    hibernation = Hibernation.of([OFFICE])
    hibernation.set_exempt(["i-asg", "i-own"], ["i-asg"])  # discovery: i-asg is in an Auto Scaling group
    saturday = utc("2026-06-06 12:00")
    plan = hibernation.plan([make_instance("i-asg"), make_instance("i-own")], saturday)
    assert [i.instance_id for i, _ in plan.hibernate] == ["i-own"]
    assert [i.instance_id for i in plan.running] == ["i-asg"]  # the policy's, like an unscheduled instance
    hibernation.set_exempt(["i-asg"], [])  # detached from its group: the schedule governs it again
    assert [i.instance_id for i, _ in hibernation.plan([make_instance("i-asg")], saturday).hibernate] == ["i-asg"]


def test_a_stopped_instance_no_schedule_governs_any_more_wakes() -> None:
    plan = Hibernation().plan([make_instance("i-2", Lifecycle.STOPPED)], utc("2026-06-06 12:00"))
    assert [(i.instance_id, s) for i, s in plan.wake] == [("i-2", None)]


def test_bad_schedules_are_refused_whole_naming_the_index() -> None:
    hibernation = Hibernation.of([OFFICE])
    with pytest.raises(ValueError, match=r"schedules\.1: window 1: unknown day 'Fry'"):
        hibernation.set_schedules([OFFICE, "Mon-Fry 09:00-17:00 UTC"])
    assert [str(s) for s in hibernation.schedules] == [OFFICE]


def test_a_hibernate_decision_says_the_window_the_saving_and_when_it_wakes() -> None:
    spot = hibernate_decision(make_instance(), Schedule.parse(OFFICE), 1.2345, utc("2026-06-05 17:00"), "risk_aware")
    assert (spot.action, spot.rule, spot.from_lifecycle, spot.to_lifecycle) == (
        Action.HIBERNATE, Rule.SCHEDULE, Lifecycle.SPOT, Lifecycle.STOPPED)
    assert spot.reason.startswith(f"outside {OFFICE}: let the spot instance go")
    assert "saves $1.2345/h; wakes Mon 2026-06-08 09:00 UTC" in spot.reason
    assert spot.numbers["wakes_at_s"] == utc("2026-06-08 09:00")

# -- the store ----------------------------------------------------------------------------------------------


async def registered(store: Store, name: str = "acme") -> str:
    tenancy = Tenancy(store.engine)
    tenant = await tenancy.create_tenant(f"tenant-{name}", 0.0)
    await tenancy.create_account(Account(name, tenant.id, ("us-east-1",), "replay", "simulated", "risk_aware"))
    return name


async def test_a_put_replaces_the_accounts_schedules_in_order(store: Store) -> None:
    schedules = ScheduleStore(store.engine)
    account = await registered(store)
    assert await schedules.get(account) == []
    await schedules.put(account, ["env=dev Mon-Fri 09:00-17:00 UTC", "Mon-Sun 06:00-22:00 UTC"], 1.0)
    assert await schedules.get(account) == ["env=dev Mon-Fri 09:00-17:00 UTC", "Mon-Sun 06:00-22:00 UTC"]
    await schedules.put(account, ["Sat 10:00-12:00 UTC"], 2.0)
    assert await schedules.get(account) == ["Sat 10:00-12:00 UTC"]
    await schedules.put(account, [], 3.0)
    assert await schedules.get(account) == []


async def test_a_failed_put_keeps_the_schedules_already_stored(store: Store) -> None:
    schedules = ScheduleStore(store.engine)
    account = await registered(store)
    await schedules.put(account, ["Mon-Fri 09:00-17:00 UTC"], 1.0)
    with pytest.raises(ValueError, match=r"schedules\.1: longer than"):
        await schedules.put(account, ["Sat 10:00-12:00 UTC", "x" * 600], 2.0)
    assert await schedules.get(account) == ["Mon-Fri 09:00-17:00 UTC"]


# -- execution on AWS (moto) --------------------------------------------------------------------------------


def run_on_aws(zone: str = "us-east-1a", spot: bool = True) -> str:
    import boto3

    ec2 = boto3.client("ec2", region_name="us-east-1")
    images = ec2.describe_images(Owners=["amazon"])["Images"]
    image = next(i["ImageId"] for i in images if i.get("Platform") != "windows")
    subnet = next(s["SubnetId"] for s in ec2.describe_subnets()["Subnets"] if s["AvailabilityZone"] == zone)
    tags = [{"ResourceType": "instance", "Tags": [{"Key": "spot-optimizer:managed", "Value": "true"}]}]
    market = {"InstanceMarketOptions": {"MarketType": "spot"}} if spot else {}
    return str(ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="m5.large", SubnetId=subnet,
                                 TagSpecifications=tags, **market)["Instances"][0]["InstanceId"])


def aws_states() -> dict[str, str]:
    import boto3

    ec2 = boto3.client("ec2", region_name="us-east-1")
    reservations = ec2.describe_instances()["Reservations"]
    return {i["InstanceId"]: i["State"]["Name"] for r in reservations for i in r["Instances"]}


def schedule_decision(instance_id: str, action: Action, from_lifecycle: Lifecycle, to_lifecycle: Lifecycle,
                      to_zone: str = "us-east-1a", at_s: float = 1.0) -> Decision:
    return Decision(instance_id, action, Rule.SCHEDULE, "", at_s, Pool("m5.large", "us-east-1a"), from_lifecycle,
                    Pool("m5.large", to_zone), to_lifecycle)


@pytest.fixture
async def aws_executor(aws: Any) -> Any:
    from actors.aws.executor import AwsExecutor
    from actors.aws.gateway import AwsGateway
    from actors.aws.session import AwsAccess, AwsSessions

    sessions = AwsSessions()
    gateway = AwsGateway(sessions, AwsAccess("aws_default"), "us-east-1")

    async def make(mode: str) -> AwsExecutor:
        specs = {i.instance_id: i for i in await gateway.managed_instances("spot-optimizer:managed", "true")}
        aws.proxy.calls.clear()  # only the executor's calls from here
        return AwsExecutor(mode, gateway, specs, ("spot-optimizer:managed", "true"), running_timeout_s=30)

    yield make
    await sessions.close()


async def test_on_aws_an_on_demand_instance_is_stopped_and_started_again_with_its_id(aws: Any,
                                                                                     aws_executor: Any) -> None:
    instance = run_on_aws(spot=False)
    executor = await aws_executor("execute")
    [stopped] = await executor.execute([schedule_decision(instance, Action.HIBERNATE, Lifecycle.ON_DEMAND,
                                                          Lifecycle.STOPPED)])
    assert stopped.outcome is Outcome.APPLIED and aws_states()[instance] == "stopped"
    [woken] = await executor.execute([schedule_decision(instance, Action.WAKE, Lifecycle.STOPPED, Lifecycle.ON_DEMAND)])
    assert woken.outcome is Outcome.APPLIED and woken.instance_id is None  # the same instance runs again
    assert aws_states()[instance] == "running"
    assert [action for action, _ in aws.proxy.calls if action in MUTATING] == ["StopInstances", "StartInstances"]


async def test_on_aws_a_spot_instance_is_let_go_and_a_new_one_launched_at_the_wake(aws: Any, aws_executor: Any) -> None:
    instance = run_on_aws(spot=True)
    executor = await aws_executor("execute")
    [gone] = await executor.execute([schedule_decision(instance, Action.HIBERNATE, Lifecycle.SPOT, Lifecycle.STOPPED)])
    assert gone.outcome is Outcome.APPLIED and aws_states()[instance] == "terminated"
    [woken] = await executor.execute([schedule_decision(instance, Action.WAKE, Lifecycle.STOPPED, Lifecycle.SPOT,
                                                        to_zone="us-east-1b")])
    assert woken.outcome is Outcome.APPLIED and woken.instance_id not in (None, instance)
    assert aws_states()[woken.instance_id] == "running"
    assert [action for action, _ in aws.proxy.calls if action in MUTATING] == ["TerminateInstances", "RunInstances"]


async def test_on_aws_a_dry_run_hibernation_checks_permissions_and_changes_nothing(aws: Any, aws_executor: Any) -> None:
    instance = run_on_aws(spot=False)
    executor = await aws_executor("dry_run")
    keep = replace(schedule_decision(instance, Action.KEEP, Lifecycle.ON_DEMAND, Lifecycle.ON_DEMAND),
                   rule=Rule.BEST_ALREADY)
    results = await executor.execute([keep, schedule_decision(instance, Action.HIBERNATE, Lifecycle.ON_DEMAND,
                                                              Lifecycle.STOPPED)])
    assert [r.outcome for r in results] == [Outcome.SKIPPED, Outcome.SKIPPED]
    assert aws_states()[instance] == "running"
    [(action, params)] = [(a, p) for a, p in aws.proxy.calls if a in MUTATING]
    assert action == "StopInstances" and params.get("DryRun") == "true"


async def test_observing_carries_no_hibernation_out() -> None:
    from actors.executor import make_executor

    decision = schedule_decision("i-1", Action.HIBERNATE, Lifecycle.SPOT, Lifecycle.STOPPED)
    [observed] = await make_executor("observe").execute([decision])
    [simulated] = await make_executor("simulated").execute([decision])
    assert (observed.outcome, simulated.outcome) == (Outcome.SKIPPED, Outcome.APPLIED)


# -- the region engine: a week on a schedule ------------------------------------------------------------------

ZONES = ("us-east-1a", "us-east-1c", "us-east-1d")
POOLS = tuple(Pool("p3.2xlarge", z) for z in ZONES)


def scheduled_engine(*schedules: str, policy: str = "lowest_price") -> RegionEngine:
    engine = RegionEngine("us-east-1", policy=make_policy(policy))
    for pool in POOLS:
        engine.add_pool(pool, 3.06)
    engine.hibernation.set_schedules(schedules)
    return engine


def tick(engine: RegionEngine, now_s: float, prices: tuple[float, ...] = (1.0, 1.1, 1.2)) -> list[Decision]:
    """Observe, decide and carry out every decision (as the simulated cloud does)."""
    engine.observe([PricePoint(p, v, now_s) for p, v in zip(POOLS, prices, strict=True)], [], now_s)
    decisions = engine.decide(now_s)
    for decision in decisions:
        engine.apply(decision, now_s)
    return decisions


def test_the_engine_hibernates_outside_the_window_and_wakes_through_placement_when_it_opens() -> None:
    engine = scheduled_engine(OFFICE)
    start = utc("2026-06-05 12:00")  # Friday noon
    engine.upsert_instance(Instance("i-spot", POOLS[0], launched_at_s=start), start)
    engine.upsert_instance(Instance("i-od", POOLS[1], Lifecycle.ON_DEMAND, launched_at_s=start), start)
    actions: list[tuple[float, str, Action]] = []
    for hour in range(0, 24 * 3 + 7):  # Friday noon to Monday 18:00
        now_s = start + hour * 3600.0
        cheapest_last = (1.3, 1.2, 0.9) if hour > 48 else (1.0, 1.1, 1.2)  # the market moved over the weekend
        actions += [(now_s, d.instance_id, d.action) for d in tick(engine, now_s, cheapest_last)
                    if d.action is not Action.KEEP]
    moves = [(t, iid, a) for t, iid, a in actions if a in (Action.HIBERNATE, Action.WAKE)]
    assert moves == [
        (utc("2026-06-05 17:00"), "i-od", Action.HIBERNATE), (utc("2026-06-05 17:00"), "i-spot", Action.HIBERNATE),
        (utc("2026-06-08 09:00"), "i-od", Action.WAKE), (utc("2026-06-08 09:00"), "i-spot", Action.WAKE),
        (utc("2026-06-08 17:00"), "i-od", Action.HIBERNATE), (utc("2026-06-08 17:00"), "i-spot", Action.HIBERNATE),
    ]
    assert [i.lifecycle for i in engine.fleet()] == [Lifecycle.STOPPED, Lifecycle.STOPPED]


def test_a_woken_instance_goes_where_the_policy_places_it_now() -> None:
    engine = scheduled_engine(OFFICE)
    friday = utc("2026-06-05 16:00")
    engine.upsert_instance(Instance("i-1", POOLS[0], launched_at_s=friday), friday)
    tick(engine, friday)
    [gone] = tick(engine, utc("2026-06-05 17:00"))
    assert (gone.action, gone.rule, gone.from_lifecycle, gone.to_lifecycle) == (
        Action.HIBERNATE, Rule.SCHEDULE, Lifecycle.SPOT, Lifecycle.STOPPED)
    assert gone.reason.startswith(f"outside {OFFICE}: let the spot instance go")
    assert "saves $1.0000/h" in gone.reason and gone.saving_usd_per_hour == 1.0
    [asleep] = tick(engine, utc("2026-06-06 12:00"))
    assert (asleep.action, asleep.rule, asleep.to_lifecycle) == (Action.KEEP, Rule.SCHEDULE, Lifecycle.STOPPED)
    assert "stays stopped; wakes Mon 2026-06-08 09:00 UTC" in asleep.reason
    [woken] = tick(engine, utc("2026-06-08 09:00"), prices=(1.3, 1.2, 0.9))
    assert (woken.action, woken.rule, woken.from_lifecycle) == (Action.WAKE, Rule.SCHEDULE, Lifecycle.STOPPED)
    assert (woken.to_pool, woken.to_lifecycle) == (POOLS[2], Lifecycle.SPOT)  # the cheapest pool now
    assert woken.reason.startswith(f"inside {OFFICE}: start spot {POOLS[2].key}")
    assert engine.fleet()[0].pool == POOLS[2] and engine.fleet()[0].lifecycle is Lifecycle.SPOT


def test_a_stopped_instance_is_taken_back_by_no_pool_and_kept_when_discovery_no_longer_sees_it() -> None:
    engine = scheduled_engine(OFFICE)
    saturday = utc("2026-06-06 12:00")
    engine.upsert_instance(Instance("i-1", POOLS[0], launched_at_s=saturday), saturday)
    engine.upsert_instance(Instance("i-2", POOLS[1], launched_at_s=saturday), saturday)
    tick(engine, saturday)
    assert engine.observe([], [AvailabilityPoint(POOLS[0], False, saturday + 60)], saturday + 60) == []
    assert engine.sync_fleet([], saturday + 120) == ([], [])  # stopped: the cloud shows neither
    assert [i.instance_id for i in engine.fleet()] == ["i-1", "i-2"]


def test_without_schedules_the_engine_decides_as_before() -> None:
    with_none, plain = scheduled_engine(), RegionEngine("us-east-1", policy=make_policy("lowest_price"))
    for pool in POOLS:
        plain.add_pool(pool, 3.06)
    now = utc("2026-06-06 12:00")
    for e in (with_none, plain):
        e.upsert_instance(Instance("i-1", POOLS[1], launched_at_s=now - 86400), now)
    assert tick(with_none, now) == tick(plain, now)


def test_a_checkpoint_keeps_the_schedules_and_who_is_stopped() -> None:
    engine = scheduled_engine(f"env=dev {OFFICE}")
    saturday = utc("2026-06-06 12:00")
    engine.hibernation.set_tags({"i-1": {"env": "dev"}})
    engine.upsert_instance(Instance("i-1", POOLS[0], launched_at_s=saturday), saturday)
    tick(engine, saturday)
    restored = RegionEngine.restore(engine.snapshot())
    assert [str(s) for s in restored.hibernation.schedules] == [f"env=dev {OFFICE}"]
    assert restored.fleet()[0].lifecycle is Lifecycle.STOPPED and restored.hibernation.tags["i-1"] == {"env": "dev"}


# -- REST: GET/PUT /accounts/{a}/schedules reach the account's region actors ----------------------------------


class ActorHandle:
    """A plain region actor called the way the API calls a Ray handle (``actor.method.remote(...)``)."""

    def __init__(self, actor: RegionActor) -> None:
        self.actor = actor

    def __getattr__(self, name: str) -> Any:
        return SimpleNamespace(remote=getattr(self.actor, name))


@pytest.fixture
async def schedules_api(tmp_path: Path) -> Any:
    """The app over a real store and tenancy, one tenant owning a replay account whose us-east-1 region
    actor is a plain object: (client, actor, the other tenant's headers)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'api.db'}"
    store = await Store.open(url)
    tenancy = Tenancy(store.engine)
    keys = []
    for name in ("owner", "other"):
        tenant = await tenancy.create_tenant(name, 0.0)
        keys.append((await tenancy.create_key(tenant.id, "test", 0.0))[1])
        if name == "owner":
            await tenancy.create_account(Account("acme", tenant.id, ("us-east-1",), "replay", "simulated",
                                                 "risk_aware"))
    actor = RegionActor(RegionConfig("acme", "us-east-1", database_url=url, checkpoint_interval_s=0))
    runtime = SimpleNamespace(settings=settings_for_test(tmp_path), store=store, tenancy=tenancy,
                              limiter=TokenBucket(1000.0, 1000),
                              registry=SimpleNamespace(supervisor=SimpleNamespace(
                                  actors={("acme", "us-east-1"): ActorHandle(actor)})))
    app = create_app(settings_for_test(tmp_path))
    app.state.runtime = runtime
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                                 headers=bearer_headers(keys[0])) as client:
        yield client, actor, bearer_headers(keys[1])
    await actor.close()
    await store.close()


async def test_put_schedules_stores_them_canonical_and_hands_them_to_the_region_actor(schedules_api: Any) -> None:
    client, actor, _ = schedules_api
    assert (await client.get("/api/v1/accounts/acme/schedules")).json() == {"account": "acme", "schedules": []}
    put = await client.put("/api/v1/accounts/acme/schedules", json={"schedules": [
        "mon-fri 8:00-19:00 Europe/Berlin except 2026-12-24..2026-12-26", "env=dev Mon-Fri 09:00-17:00 UTC"]})
    assert put.status_code == 200, put.text
    expected = [
        {"spec": "Mon-Fri 08:00-19:00 Europe/Berlin except 2026-12-24..2026-12-26",
         "windows": "Mon-Fri 08:00-19:00 Europe/Berlin", "selector": None},
        {"spec": "env=dev Mon-Fri 09:00-17:00 UTC", "windows": "Mon-Fri 09:00-17:00 UTC", "selector": "env=dev"},
    ]
    assert put.json()["schedules"] == expected
    assert (await client.get("/api/v1/accounts/acme/schedules")).json()["schedules"] == expected
    assert [str(s) for s in actor.engine.hibernation.schedules] == [e["spec"] for e in expected]


async def test_a_bad_schedule_is_a_422_naming_it_and_changes_nothing(schedules_api: Any) -> None:
    client, actor, _ = schedules_api
    good = {"schedules": ["Mon-Fri 09:00-17:00 UTC"]}
    assert (await client.put("/api/v1/accounts/acme/schedules", json=good)).status_code == 200
    for body, named in [
        ({"schedules": ["Sat 10:00-12:00 UTC", "Mon-Fry 09:00-17:00 UTC"]},
         "body.schedules.1: window 1: unknown day 'Fry'"),
        ({"schedules": ["Mon 09:00-17:00 Mars/Olympus"]}, "body.schedules.0: time zone 'Mars/Olympus' is unknown"),
        ({"schedules": ["Mon 09:00-17:00 UTC", "Tue 09:00-17:00 UTC"]},
         "body.schedules.1: schedules.0 already applies to every instance"),
        ({"schedules": "Mon 09:00-17:00 UTC"}, "body.schedules"),
        ({"schedules": ["Mon 09:00-17:00 UTC\n"]}, "body.schedules.0"),
    ]:
        response = await client.put("/api/v1/accounts/acme/schedules", json=body)
        assert response.status_code == 422, response.text
        assert response.json()["error"] == "validation_error" and named in response.json()["detail"]
    assert (await client.get("/api/v1/accounts/acme/schedules")).json()["schedules"][0]["spec"] == good["schedules"][0]
    assert [str(s) for s in actor.engine.hibernation.schedules] == good["schedules"]


async def test_another_tenants_schedules_are_a_404_like_a_missing_account(schedules_api: Any) -> None:
    client, _, other = schedules_api
    for response in (await client.get("/api/v1/accounts/acme/schedules", headers=other),
                     await client.put("/api/v1/accounts/acme/schedules", headers=other, json={"schedules": []}),
                     await client.get("/api/v1/accounts/nope/schedules")):
        assert response.status_code == 404 and response.json()["error"] == "not_found"


async def test_a_restarted_actor_reads_its_schedules_from_the_store(schedules_api: Any, tmp_path: Path) -> None:
    client, _, _ = schedules_api
    await client.put("/api/v1/accounts/acme/schedules", json={"schedules": ["Sat-Sun 10:00-12:00 UTC"]})
    fresh = RegionActor(RegionConfig("acme", "us-east-1", database_url=f"sqlite+aiosqlite:///{tmp_path / 'api.db'}",
                                     checkpoint_interval_s=0))
    await fresh.ready()
    assert [str(s) for s in fresh.engine.hibernation.schedules] == ["Sat-Sun 10:00-12:00 UTC"]
    await fresh.close()


# -- done when: the replay demo follows "Mon-Fri 09:00-17:00 UTC" on the replayed clock ------------------------


async def test_the_replay_demo_hibernates_and_wakes_on_the_replayed_clock_explained_and_stored(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
    await (await Store.open(url)).close()  # migrated, as the app does at start
    market = bundled_market()  # starts Wednesday 2023-02-15 00:00 UTC
    cloud = SimulatedCloud()
    actor = RegionActor(RegionConfig("demo", "us-east-1", policy="risk_aware", database_url=url,
                                     checkpoint_interval_s=0), executor=cloud)
    await actor.add_pools([(p.key, 3.06) for p in market.pools if p.region == "us-east-1"])
    await actor.set_fleet(demo_fleet(market, "p3.2xlarge", "us-east-1", 4), market.start_s)
    await actor.set_schedules(["Mon-Fri 09:00-17:00 UTC"])

    async def send(region: str, ticks: list) -> None:
        if region == "us-east-1":
            await actor.ingest_many(ticks)

    feed = ReplayFeed(market, send, speed=7200.0, interval_s=1.0, loop=False)  # two replayed hours a step
    while feed.now_s(feed.next_tick) < market.start_s + 5 * 86400 + 18 * 3600:  # Wednesday to Monday 18:00
        await feed.step()
    await actor.flush()
    assert actor.stats["tick_errors"] == 0
    office = Schedule.parse("Mon-Fri 09:00-17:00 UTC")
    store = await Store.open(url, migrate=False)
    stored = [r.decision for r in await store.list_decisions("demo", "us-east-1", limit=1000)][::-1]
    await store.close()
    moves = [d for d in stored if d.action in (Action.HIBERNATE, Action.WAKE)]
    day = lambda d: dt.datetime.fromtimestamp(d.decided_at_s, dt.UTC).strftime("%a %H")  # noqa: E731
    by_tick = [(day(d), d.action) for d in moves if d.instance_id == "i-demo-0000"]
    assert by_tick == [
        ("Wed 00", Action.HIBERNATE), ("Wed 09", Action.WAKE), ("Wed 17", Action.HIBERNATE),
        ("Thu 09", Action.WAKE), ("Thu 17", Action.HIBERNATE), ("Fri 09", Action.WAKE), ("Fri 17", Action.HIBERNATE),
        ("Mon 09", Action.WAKE), ("Mon 17", Action.HIBERNATE),
    ]
    for d in moves:  # on the replayed clock: each at the first tick after the window closed or opened
        assert office.is_open(d.decided_at_s) is (d.action is Action.WAKE)
        if d.decided_at_s > market.start_s:
            assert office.is_open(d.decided_at_s - market.tick_s) is (d.action is Action.HIBERNATE)
        assert d.rule is Rule.SCHEDULE
    hibernated = [d for d in moves if d.action is Action.HIBERNATE]
    woken = [d for d in moves if d.action is Action.WAKE]
    assert all(d.reason.startswith("outside Mon-Fri 09:00-17:00 UTC: ") and "saves $" in d.reason for d in hibernated)
    assert all(d.to_lifecycle is Lifecycle.STOPPED for d in hibernated)
    assert all(d.reason.startswith("inside Mon-Fri 09:00-17:00 UTC: start ") for d in woken)
    assert all(d.from_lifecycle is Lifecycle.STOPPED and d.to_lifecycle is not Lifecycle.STOPPED for d in woken)
    assert len(hibernated) == 4 * 5 and len(woken) == 4 * 4
    assert {d.action for d in cloud.calls} >= {Action.HIBERNATE, Action.WAKE}


# -- backtests: the fleet kernel follows a schedule on each run's trace clock ---------------------------------


def week_market(start: str = "2026-06-01 00:00", tick_s: float = 600.0, days: int = 14) -> FleetMarket:
    """Two always-available p3.2xlarge pools at a constant $0.9/h spot, $3.06/h on demand."""
    pools = (Pool("p3.2xlarge", "us-east-1a"), Pool("p3.2xlarge", "us-east-1c"))
    n = round(days * 86400 / tick_s)
    trace = MarketTrace(pools, utc(start), tick_s, np.ones((n, 2), bool), np.full((n, 2), 0.9), np.full(2, 3.06),
                        "test")
    return FleetMarket.of(trace, np.zeros((n, 2)), 3600.0)


@pytest.mark.parametrize(("policy", "price", "saving_per_instance"), [
    ("on_demand", 3.06, 9 * 0.9 + 119 * 3.06),  # the 9 h before its first placement: at the cheapest it could run
    ("lowest_price", 0.9, 128 * 0.9),
])
def test_a_scheduled_fleet_runs_and_pays_only_inside_its_windows(policy: str, price: float,
                                                                  saving_per_instance: float) -> None:
    market = week_market().with_schedule(Schedule.parse(OFFICE))
    week = round(7 * 86400 / market.trace.tick_s)
    starts = np.array([0, round(86400 / market.trace.tick_s)])  # from Monday 00:00 and from Tuesday 00:00
    out = simulate_fleet(market, make_policy(policy), starts, week, fleet_size=3, decision_interval_s=0)
    assert out.hibernated_hours.tolist() == pytest.approx([3 * 128.0, 3 * 128.0])  # 168 h - 5 x 8 h
    assert out.instance_hours.tolist() == pytest.approx([3 * 40.0, 3 * 40.0])
    assert out.up_hours.tolist() == pytest.approx([3 * 40.0, 3 * 40.0])  # woken without downtime
    assert out.cost_usd.tolist() == pytest.approx([3 * 40 * price] * 2)
    assert out.hibernation_saving_usd.tolist() == pytest.approx([3 * saving_per_instance] * 2)
    assert out.replacements.tolist() == [0, 0] and out.fallbacks.tolist() == [0, 0]  # a wake is no replacement
    metrics = fleet_metrics(out)
    assert metrics["schedule"] == OFFICE and metrics["hibernated_hours"] == pytest.approx(768.0)
    assert metrics["on_demand_cost"] == pytest.approx(2 * 3 * 168 * 3.06)  # the always-on fleet on demand


def test_without_a_schedule_the_fleet_kernel_reports_as_before() -> None:
    market = week_market(days=2)
    out = simulate_fleet(market, make_policy("lowest_price"), np.array([0]), 144, fleet_size=2)
    assert out.hibernated_hours.tolist() == [0.0] and "schedule" not in fleet_metrics(out)
    assert out.cost_usd.tolist() == pytest.approx([2 * 24 * 0.9])


def test_the_schedule_mask_agrees_with_the_schedule_across_a_daylight_saving_change() -> None:
    berlin = Schedule.parse("Mon-Fri 08:00-19:00 Europe/Berlin")
    times = utc("2026-03-25 00:00") + np.arange(0, 10 * 86400, 300.0)
    assert open_mask(berlin, times).tolist() == [berlin.is_open(float(t)) for t in times]


def test_simulate_fleet_refuses_a_bad_schedule_naming_the_option(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from api.cli import app

    result = CliRunner().invoke(app, ["simulate", "fleet", "--availability", str(tmp_path / "none.json"),
                                      "--spot-price", "1", "--on-demand-price", "3", "--json", str(tmp_path / "f.json"),
                                      "--schedule", "Mon-Fry 09:00-17:00 UTC"])
    assert result.exit_code == 2
    assert "--schedule: window 1: unknown day 'Fry'" in " ".join(result.output.split())


@pytest.mark.ray
def test_simulate_fleet_with_a_schedule_reports_hibernated_hours(tmp_path: Path, ray_session: object) -> None:
    from typer.testing import CliRunner

    from api.cli import app

    day = {"metadata": {"gap_seconds": 600}, "data": [1] * 144}  # 24 h from the epoch: Thursday 1970-01-01
    bundle = {"convention": "available", "traces": {"us-west-2a_v100_1.json": day, "us-west-2b_v100_1.json": day}}
    (tmp_path / "bundle.json").write_text(json.dumps(bundle))
    out = tmp_path / "f.json"
    result = CliRunner().invoke(app, [
        "simulate", "fleet", "--availability", str(tmp_path / "bundle.json"), "--spot-price", "0.9",
        "--on-demand-price", "3.06", "--fleet-size", "2", "--runs", "1", "--hours", "24", "--policy", "on_demand",
        "--schedule", "Mon-Fri 09:00-17:00 UTC", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["settings"]["schedule"] == "Mon-Fri 09:00-17:00 UTC"
    od = report["policies"]["on_demand"]
    assert od["hibernated_hours"] == pytest.approx(2 * 16.0)
    assert od["total_cost"] == pytest.approx(2 * 8 * 3.06)
    # 00:00-09:00 before its first placement counts at the cheapest it could have run (spot), 17:00-24:00 on demand
    assert od["hibernation_saving"] == pytest.approx(2 * (9 * 0.9 + 7 * 3.06))
