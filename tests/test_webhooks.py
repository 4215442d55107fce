"""Webhooks end to end against a real HTTP receiver on loopback: signed, retried with the same idempotency
key, resumed after a restart of the consumer, never in the way of a tick.

The store-level tests run on SQLite and PostgreSQL (the ``store`` fixture); the API tests on a live server
with real Ray and the replay demo.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_store_codec import T0_S, make_decision

from actors.notify.dispatcher import DispatchSettings, WebhookDispatcher
from actors.notify.matching import WEBHOOK_EVENTS
from actors.notify.retry import RetryPolicy
from actors.notify.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from actors.notify.testing import Received, Receiver
from actors.store import Store, StreamEvent
from actors.store.tenancy import Account, Tenancy
from actors.store.webhooks import Webhooks
from api.app import create_app
from api.testing import LiveServer, bearer_headers, demo_key, eventually, new_tenant, settings_for_test
from api.webhook_schemas import WebhookEvent
from engine.types import Action, Lifecycle, Rule

ACCOUNT, REGION = "hooked", "us-east-1"
FAST_RETRY = RetryPolicy(base_s=0.01, max_delay_s=0.02, max_attempts=3)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


def verified(secret: str, request: Received) -> bool:
    """What a receiver does with a delivery: check the signature over timestamp + body."""
    return verify(secret, request.headers[TIMESTAMP_HEADER], request.headers[SIGNATURE_HEADER], request.body,
                  now_s=time.time())


def closed_port_url() -> str:
    """A loopback URL nobody listens on (the receiver is down)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


# --- the store and the consumer ---------------------------------------------------------------------


@pytest.fixture
async def webhooks(store: Store) -> Webhooks:
    tenancy = Tenancy(store.engine)
    tenant = await tenancy.create_tenant(f"t-{uuid.uuid4().hex[:6]}", 0.0)
    await tenancy.create_account(Account(ACCOUNT, tenant.id, (REGION,), "replay", "simulated", "risk_aware"))
    return Webhooks(store.engine)


def dispatcher(webhooks: Webhooks, **overrides: Any) -> WebhookDispatcher:
    settings = {"poll_s": 0.01, "timeout_s": 5.0, "retry": FAST_RETRY, **overrides}
    return WebhookDispatcher(webhooks, DispatchSettings(**settings))


async def until_settled(consumer: WebhookDispatcher, webhooks: Webhooks, webhook_id: str,
                        rounds: int = 200) -> None:
    """Step the consumer until none of the webhook's deliveries is pending (retries are ~10 ms apart)."""
    for _ in range(rounds):
        await consumer.step()
        await consumer.drain()
        if not await webhooks.deliveries(webhook_id, status="pending"):
            return
        await asyncio.sleep(0.01)


async def save(store: Store, first_seq: int, *decisions: Any) -> None:
    await store.save_tick(ACCOUNT, REGION, [(first_seq + i, d) for i, d in enumerate(decisions)], [])


def fallback(instance_id: str, at_s: float = T0_S) -> Any:
    return make_decision(instance_id, Action.FALLBACK_ON_DEMAND, Rule.FALLBACK, decided_at_s=at_s,
                         to_lifecycle=Lifecycle.ON_DEMAND)


async def test_a_fallback_reaches_the_receiver_signed_and_nothing_else_does(
        store: Store, webhooks: Webhooks, receiver: Receiver) -> None:
    webhook, secret = await webhooks.create(ACCOUNT, receiver.url, ["fallback"], time.time())
    await save(store, 1, make_decision("i-keep", Action.KEEP, Rule.BEST_ALREADY), fallback("i-fall"),
               make_decision("i-int", Action.REPLACE, Rule.INTERRUPTED))
    consumer = dispatcher(webhooks)
    await until_settled(consumer, webhooks, webhook.id)
    await consumer.close()

    assert len(receiver.received) == 1
    request = receiver.received[0]
    assert verified(secret, request)
    assert not verified("whsec_someone-else", request)
    doc = request.doc
    assert doc["event"] == "fallback" and doc["account"] == ACCOUNT and doc["region"] == REGION
    assert doc["data"]["seq"] == 2 and doc["data"]["action"] == "fallback_on_demand"
    assert request.headers[IDEMPOTENCY_HEADER] == doc["id"]
    [delivery] = await webhooks.deliveries(webhook.id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)


async def test_interruptions_and_execution_failures_reach_the_webhooks_subscribed_to_them(
        store: Store, webhooks: Webhooks, receiver: Receiver) -> None:
    both, _ = await webhooks.create(ACCOUNT, receiver.url, ["interruption", "execution_failure"], time.time())
    interrupted = make_decision("i-int", Action.FALLBACK_ON_DEMAND, Rule.INTERRUPTED,
                                to_lifecycle=Lifecycle.ON_DEMAND)
    failed = {"at_s": T0_S, "kind": "execution", "step": "failed", "instance_ids": ["i-x"], "error": "Boom"}
    launched = {"at_s": T0_S, "kind": "execution", "step": "launched", "instance_ids": ["i-y"]}
    await store.save_tick(ACCOUNT, REGION, [(1, interrupted)],
                          [StreamEvent("alerts", 1, T0_S, json.dumps(failed)),
                           StreamEvent("alerts", 2, T0_S, json.dumps(launched))])
    consumer = dispatcher(webhooks)
    await until_settled(consumer, webhooks, both.id)
    await consumer.close()

    got = sorted((r.doc["event"], r.doc["data"]["seq"]) for r in receiver.received)
    assert got == [("execution_failure", 1), ("interruption", 1)]
    assert next(r.doc for r in receiver.received if r.doc["event"] == "execution_failure")["data"]["error"] == "Boom"


async def test_a_500_is_retried_with_the_same_idempotency_key_and_body_until_it_succeeds(
        store: Store, webhooks: Webhooks, receiver: Receiver) -> None:
    receiver.statuses = [500]
    webhook, secret = await webhooks.create(ACCOUNT, receiver.url, ["fallback"], time.time())
    await save(store, 1, fallback("i-1"))
    consumer = dispatcher(webhooks)

    await consumer.step()
    await consumer.drain()
    [after_500] = await webhooks.deliveries(webhook.id)
    assert (after_500.status, after_500.attempts, after_500.last_status_code) == ("pending", 1, 500)
    assert after_500.last_error and "500" in after_500.last_error and after_500.next_attempt_at_s is not None

    await until_settled(consumer, webhooks, webhook.id)
    await consumer.close()
    first, second = receiver.received
    assert first.headers[IDEMPOTENCY_HEADER] == second.headers[IDEMPOTENCY_HEADER]
    assert first.body == second.body and verified(secret, first) and verified(secret, second)
    [delivered] = await webhooks.deliveries(webhook.id)
    assert (delivered.status, delivered.attempts, delivered.last_error) == ("delivered", 2, None)


async def test_a_receiver_that_stays_down_is_given_up_after_the_last_attempt_and_shown_failed(
        store: Store, webhooks: Webhooks) -> None:
    webhook, _ = await webhooks.create(ACCOUNT, closed_port_url(), ["fallback"], time.time())
    await save(store, 1, fallback("i-1"))
    consumer = dispatcher(webhooks)
    await until_settled(consumer, webhooks, webhook.id)
    await consumer.close()
    [failed] = await webhooks.deliveries(webhook.id)
    assert (failed.status, failed.attempts, failed.next_attempt_at_s) == ("failed", FAST_RETRY.max_attempts, None)
    assert failed.last_error and "Connect" in failed.last_error


async def test_a_receiver_that_hangs_holds_only_its_own_slots_and_the_others_are_served(
        store: Store, webhooks: Webhooks, receiver: Receiver) -> None:
    hanging = Receiver(hang=True)
    try:
        stuck, _ = await webhooks.create(ACCOUNT, hanging.url, ["fallback"], time.time())
        served, _ = await webhooks.create(ACCOUNT, receiver.url, ["fallback"], time.time())
        await save(store, 1, *[fallback(f"i-{n}") for n in range(12)])
        consumer = dispatcher(webhooks, concurrency=4, per_webhook=2, timeout_s=60.0)
        stop = asyncio.Event()
        running = asyncio.create_task(consumer.run(stop))

        async def delivered() -> list[Any]:
            return await webhooks.deliveries(served.id, status="delivered")

        assert len(await eventually(delivered, lambda d: len(d) == 12, timeout_s=60)) == 12
        assert len(hanging.received) == 2  # its two slots, held; the rest of its deliveries wait
        assert len(await webhooks.deliveries(stuck.id, status="pending")) == 12
        stop.set()
        await running
    finally:
        hanging.close()


async def test_deliveries_survive_a_restart_of_the_consumer_and_none_is_sent_twice(
        store: Store, webhooks: Webhooks, receiver: Receiver) -> None:
    receiver.statuses = [503]
    webhook, _ = await webhooks.create(ACCOUNT, receiver.url, ["fallback"], time.time())
    await save(store, 1, fallback("i-1"))
    first = dispatcher(webhooks, retry=RetryPolicy(base_s=0.2, max_delay_s=0.4, max_attempts=5))
    await first.step()  # matched, tried once, 503: pending in the store
    await first.drain()
    await first.close()  # the consumer goes away ...
    await save(store, 2, fallback("i-2"), fallback("i-3"))  # ... while the actors go on deciding

    restarted = dispatcher(Webhooks(store.engine), retry=RetryPolicy(base_s=0.2, max_delay_s=0.4, max_attempts=5))
    await until_settled(restarted, webhooks, webhook.id)
    await restarted.close()

    delivered = receiver.received[1:]
    assert sorted(r.doc["data"]["seq"] for r in delivered) == [1, 2, 3]
    assert receiver.received[0].headers[IDEMPOTENCY_HEADER] == next(
        r.headers[IDEMPOTENCY_HEADER] for r in delivered if r.doc["data"]["seq"] == 1)
    assert {d.status for d in await webhooks.deliveries(webhook.id)} == {"delivered"}
    assert await dispatcher(webhooks).match() == 0  # matching again owes nothing new


async def test_a_new_webhook_is_owed_what_happens_after_it_not_the_history(
        store: Store, webhooks: Webhooks, receiver: Receiver) -> None:
    await save(store, 1, fallback("i-old"))
    webhook, _ = await webhooks.create(ACCOUNT, receiver.url, ["fallback"], time.time())
    await save(store, 2, fallback("i-new"))
    consumer = dispatcher(webhooks)
    await until_settled(consumer, webhooks, webhook.id)
    await consumer.close()
    assert [r.doc["data"]["instance_id"] for r in receiver.received] == ["i-new"]


async def test_removing_a_webhook_cancels_what_it_was_still_owed(store: Store, webhooks: Webhooks) -> None:
    webhook, _ = await webhooks.create(ACCOUNT, closed_port_url(), ["fallback"], time.time())
    await save(store, 1, fallback("i-1"))
    consumer = dispatcher(webhooks, retry=RetryPolicy(base_s=60.0, max_delay_s=60.0, max_attempts=5))
    await consumer.step()
    await consumer.drain()
    assert await webhooks.delete(ACCOUNT, webhook.id, time.time())
    assert not await webhooks.delete(ACCOUNT, webhook.id, time.time())
    assert [d.status for d in await webhooks.deliveries(webhook.id)] == ["cancelled"]
    assert await webhooks.get(ACCOUNT, webhook.id) is None and await webhooks.of_account(ACCOUNT) == []
    await consumer.close()


async def test_daily_reports_follow_the_streams_own_clock_one_per_completed_day(
        store: Store, webhooks: Webhooks, receiver: Receiver) -> None:
    asked: list[tuple[str, str, float, float]] = []

    async def report(account: str, region: str, start_s: float, end_s: float) -> dict[str, Any]:
        asked.append((account, region, start_s, end_s))
        return {"savings_usd": 12.5}

    webhook, secret = await webhooks.create(ACCOUNT, receiver.url, ["daily_report"], time.time())
    day = 86_400.0
    first_day = T0_S // day * day

    async def tick(seq: int, at_s: float) -> None:
        await store.save_tick(ACCOUNT, REGION, [], [StreamEvent("prices", seq, at_s, '{"prices":[]}')])

    consumer = WebhookDispatcher(webhooks, DispatchSettings(poll_s=0.01, retry=FAST_RETRY), daily_report=report)
    await tick(1, first_day + 3600)  # seen first during the first day: nothing owed yet
    await until_settled(consumer, webhooks, webhook.id)
    await tick(2, first_day + day + 60)  # the first day is over
    await until_settled(consumer, webhooks, webhook.id)
    await tick(3, first_day + 3 * day + 60)  # two more days are over
    await until_settled(consumer, webhooks, webhook.id)
    await consumer.close()

    assert asked == [(ACCOUNT, REGION, first_day + n * day, first_day + (n + 1) * day) for n in range(3)]
    docs = [r.doc for r in receiver.received]
    assert sorted((d["event"], d["data"]["day_start_s"], d["data"]["savings_usd"]) for d in docs) == [
        ("daily_report", first_day + n * day, 12.5) for n in range(3)]
    assert all(verified(secret, r) for r in receiver.received)


def test_the_api_accepts_exactly_the_event_names_the_consumer_knows() -> None:
    assert tuple(e.value for e in WebhookEvent) == WEBHOOK_EVENTS


# --- the API, live --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(ray_session: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = settings_for_test(tmp_path_factory.mktemp("webhooks-api"), webhook_poll_s=0.1)
    with LiveServer(create_app(settings)) as live:
        yield live


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        http.headers.update(bearer_headers(await demo_key(http)))
        yield http


@pytest.mark.ray
async def test_webhooks_are_created_listed_and_removed_and_the_secret_is_shown_once(
        server: LiveServer, client: httpx.AsyncClient, receiver: Receiver) -> None:
    base = f"/api/v1/accounts/{server.runtime.settings.account}/webhooks"
    created = await client.post(base, json={"url": receiver.url, "events": ["fallback", "fallback", "interruption"]})
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["secret"].startswith("whsec_") and hook["events"] == ["fallback", "interruption"]
    listed = (await client.get(base)).json()["webhooks"]
    assert [(w["id"], w["secret"]) for w in listed] == [(hook["id"], None)]
    deliveries = await client.get(f"{base}/{hook['id']}/deliveries", params={"status": "pending"})
    assert deliveries.status_code == 200 and "deliveries" in deliveries.json()

    assert (await client.delete(f"{base}/{hook['id']}")).status_code == 204
    assert (await client.delete(f"{base}/{hook['id']}")).status_code == 404
    assert (await client.get(f"{base}/{hook['id']}/deliveries")).status_code == 404
    assert (await client.get(base)).json()["webhooks"] == []


@pytest.mark.ray
@pytest.mark.parametrize(("body", "field"), [
    ({"url": "ftp://example.com/x", "events": ["fallback"]}, "body.url"),
    ({"url": "not a url", "events": ["fallback"]}, "body.url"),
    ({"url": "http://", "events": ["fallback"]}, "body.url"),
    ({"url": "http://169.254.169.254/latest/meta-data/", "events": ["fallback"]}, "body.url"),
    ({"url": "http://[fe80::1]/x", "events": ["fallback"]}, "body.url"),
    ({"url": "https://example.com/x", "events": ["fallbacks"]}, "body.events.0"),
    ({"url": "https://example.com/x", "events": []}, "body.events"),
])
async def test_a_bad_url_or_event_is_a_422_naming_the_field_and_creates_nothing(
        server: LiveServer, client: httpx.AsyncClient, body: dict[str, Any], field: str) -> None:
    base = f"/api/v1/accounts/{server.runtime.settings.account}/webhooks"
    before = (await client.get(base)).json()["webhooks"]
    response = await client.post(base, json=body)
    assert response.status_code == 422 and response.json()["detail"].startswith(field + ":"), response.text
    assert (await client.get(base)).json()["webhooks"] == before
    bad_status = await client.get(f"{base}/wh_none/deliveries", params={"status": "lost"})
    assert bad_status.status_code == 422 and "query.status" in bad_status.json()["detail"]


@pytest.mark.ray
async def test_another_tenants_account_and_webhooks_are_a_404(server: LiveServer, client: httpx.AsyncClient,
                                                             receiver: Receiver) -> None:
    base = f"/api/v1/accounts/{server.runtime.settings.account}/webhooks"
    hook = (await client.post(base, json={"url": receiver.url, "events": ["fallback"]})).json()
    _, other_key = await new_tenant(client)
    other = bearer_headers(other_key)
    assert (await client.get(base, headers=other)).status_code == 404
    body = {"url": receiver.url, "events": ["fallback"]}
    assert (await client.post(base, json=body, headers=other)).status_code == 404
    assert (await client.delete(f"{base}/{hook['id']}", headers=other)).status_code == 404
    assert (await client.get(f"{base}/{hook['id']}/deliveries", headers=other)).status_code == 404
    assert (await client.delete(f"{base}/{hook['id']}")).status_code == 204


# --- done when: the replay demo, a receiver subscribed to fallback -------------------------------------


async def prepare_demo_webhooks(data_dir: Path, account: str, hooks: list[tuple[str, list[str]]]) -> list[str]:
    """Before the server starts: the demo tenant, its replay account and webhooks on it (url, events), as if
    configured earlier, so everything of the replay is owed; returns each webhook's secret."""
    store = await Store.open(f"sqlite+aiosqlite:///{data_dir / 'api.db'}")
    try:
        tenancy = Tenancy(store.engine)
        tenant = await tenancy.create_tenant("demo", time.time())
        await tenancy.create_account(Account(account, tenant.id, ("us-east-1", "us-east-2", "us-west-2"),
                                             "replay", "simulated", "risk_aware"))
        return [(await Webhooks(store.engine).create(account, url, events, time.time()))[1] for url, events in hooks]
    finally:
        await store.close()


@pytest.mark.ray
async def test_the_replay_demo_sends_a_signed_event_for_every_stored_fallback_even_with_a_receiver_hanging(
        ray_session: Any, tmp_path: Path, receiver: Receiver) -> None:
    hanging, reports = Receiver(hang=True), Receiver()
    account = f"t{uuid.uuid4().hex[:8]}"
    secret, _, report_secret = await prepare_demo_webhooks(tmp_path, account, [
        (receiver.url, ["fallback"]), (hanging.url, ["fallback"]), (reports.url, ["daily_report"])])
    settings = settings_for_test(tmp_path, account=account, webhook_poll_s=0.1, webhook_timeout_s=30.0)
    try:
        with LiveServer(create_app(settings)) as server:
            runtime = server.runtime

            async def stored_fallbacks() -> set[tuple[str, int]]:
                async def one(region: str) -> set[tuple[str, int]]:
                    records = await runtime.store.list_decisions(account, region, limit=1000,
                                                                 action=Action.FALLBACK_ON_DEMAND)
                    return {(region, r.seq) for r in records}
                return set().union(*[server.call(one(r)) for r in ("us-east-1", "us-east-2", "us-west-2")])

            async def received() -> set[tuple[str, int]]:
                return {(r.doc["region"], r.doc["data"]["seq"]) for r in list(receiver.received)}

            # The replay goes on deciding while the hanging receiver holds its requests open.
            stored = await eventually(stored_fallbacks, lambda s: len(s) >= 5, timeout_s=120)
            assert len(stored) >= 5
            got = await eventually(received, lambda g: g >= stored, timeout_s=60)
            assert got >= stored  # every fallback stored by then was delivered ...
            assert got <= await stored_fallbacks()  # ... and nothing that is not a stored fallback
            requests = list(receiver.received)
            assert all(verified(secret, r) for r in requests)
            assert all(r.doc["event"] == "fallback" and r.doc["data"]["action"] == "fallback_on_demand"
                       for r in requests)
            assert len({r.headers[IDEMPOTENCY_HEADER] for r in requests}) == len(requests)  # each once
            assert hanging.received  # the hanging receiver was tried, and held the consumer's requests
            later = len(await stored_fallbacks())
            more = await eventually(stored_fallbacks, lambda s: len(s) > later, timeout_s=60)
            assert len(more) > later  # ticks went on while it held them

            # Each replayed UTC day, once over, is reported; the body is what the savings report route says.
            async def fleet_reports() -> list[Received]:
                return [r for r in list(reports.received) if r.doc["region"] == "us-east-1"]

            [first, *_] = await eventually(fleet_reports, bool, timeout_s=60)
            assert verified(report_secret, first) and first.doc["event"] == "daily_report"
            sent = first.doc["data"]["report"]
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                http.headers.update(bearer_headers(await demo_key(http)))
                asked = (await http.get(f"/api/v1/accounts/{account}/reports/savings",
                                        params={"period": sent["period"], "region": "us-east-1"})).json()
            assert sent["regions"][0]["rows"] == asked["regions"][0]["rows"]
            assert sent["regions"][0]["total"] == asked["regions"][0]["total"]
            assert sent["regions"][0]["total"]["spot_hours"] + sent["regions"][0]["total"]["on_demand_hours"] > 0
    finally:
        hanging.close()
        reports.close()
