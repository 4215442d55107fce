"""An AWS account end to end: the real server, real Ray, and moto's EC2 and SQS over HTTP (through the
fault-injecting proxy), reached only through AWS_ENDPOINT_URL.

Registered with ``executor_mode: execute``, the account's tagged fleet is discovered, its pools priced, and
an interruption warning put on its queue is decided on and carried out in moto (a tagged replacement
running, the old instance terminated, the message deleted); after a PATCH to ``observe`` a second warning
is decided on and nothing changes in moto. Throttling leaves the data stale and says so; refused
credentials are a clear status on the account.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import boto3
import httpx
import pytest
import websockets

from api.app import create_app
from api.testing import LiveServer, bearer_headers, eventually, new_tenant, settings_for_test

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REGION = "us-east-1"
TAG_KEY, TAG_VALUE = "spot-optimizer:managed", "true"


@pytest.fixture(scope="module")
def server(ray_session, aws_endpoint, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = settings_for_test(tmp_path_factory.mktemp("aws"), replay=False, aws_price_poll_s=1.0,
                                 aws_discovery_s=1.0)
    with LiveServer(create_app(settings)) as live:
        yield live


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        _, key = await new_tenant(http)
        http.headers.update(bearer_headers(key))
        yield http


def ec2() -> Any:
    return boto3.client("ec2", region_name=REGION)


def sqs() -> Any:
    return boto3.client("sqs", region_name=REGION)


def launch_fleet(count: int = 4, tagged: bool = True) -> list[str]:
    """``count`` spot m5.large instances over two zones, tagged as managed (or not)."""
    client = ec2()
    images = client.describe_images(Owners=["amazon"])["Images"]
    image = next(i["ImageId"] for i in images if i.get("Platform") != "windows")  # Linux: Linux/UNIX prices
    subnets = {s["AvailabilityZone"]: s["SubnetId"] for s in client.describe_subnets()["Subnets"]}
    tags = [{"ResourceType": "instance",
             "Tags": [{"Key": TAG_KEY, "Value": TAG_VALUE}, {"Key": "team", "Value": "ml"}]}]
    ids = []
    for k in range(count):
        zone = f"{REGION}{'ab'[k % 2]}"
        reservation = client.run_instances(
            ImageId=image, MinCount=1, MaxCount=1, InstanceType="m5.large", SubnetId=subnets[zone],
            InstanceMarketOptions={"MarketType": "spot"}, TagSpecifications=tags if tagged else [])
        ids.append(reservation["Instances"][0]["InstanceId"])
    return ids


def instance_states() -> dict[str, tuple[str, dict[str, str]]]:
    """Every instance in moto: id -> (state, tags)."""
    out = {}
    for reservation in ec2().describe_instances()["Reservations"]:
        for item in reservation["Instances"]:
            out[item["InstanceId"]] = (item["State"]["Name"], {t["Key"]: t["Value"] for t in item.get("Tags", [])})
    return out


def interruption_warning(instance_id: str) -> str:
    """The EventBridge event AWS sends two minutes before it reclaims a spot instance."""
    return json.dumps({
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "EC2 Spot Instance Interruption Warning",
        "source": "aws.ec2", "account": "123456789012", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": REGION, "resources": [f"arn:aws:ec2:{REGION}a:instance/{instance_id}"],
        "detail": {"instance-id": instance_id, "instance-action": "terminate"}})


def queue_is_empty(queue_url: str) -> bool:
    attributes = sqs().get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    return all(v == "0" for v in attributes["Attributes"].values())


async def settled(fetch, done, timeout_s: float = 90.0):  # type: ignore[no-untyped-def]
    value = await eventually(fetch, done, timeout_s, every_s=0.2)
    assert done(value), f"not within {timeout_s} s: {value!r}"
    return value


async def register(client: httpx.AsyncClient, name: str, queue_url: str | None, mode: str) -> dict[str, Any]:
    response = await client.post("/api/v1/accounts", json={
        "name": name, "regions": [REGION], "credentials_mode": "aws_default", "executor_mode": mode,
        "aws": {"interruption_queue_url": queue_url, "managed_tag": f"{TAG_KEY}={TAG_VALUE}"}})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def next_decision_for(socket: Any, instance_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        message = json.loads(await asyncio.wait_for(socket.recv(), max(0.1, deadline - time.monotonic())))
        if message.get("type") == "decision" and message["data"]["instance_id"] == instance_id:
            return dict(message["data"])


async def test_an_interruption_warning_is_decided_and_carried_out_in_execute_then_only_decided_in_observe(
        server: LiveServer, client: httpx.AsyncClient, aws) -> None:
    fleet = launch_fleet(4)
    outsider = launch_fleet(1, tagged=False)[0]
    queue_url = sqs().create_queue(QueueName=f"spot-events-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    name = f"aws-{uuid.uuid4().hex[:6]}"
    body = await register(client, name, queue_url, "execute")
    assert body["executor_mode"] == "execute" and body["aws"]["interruption_queue_url"] == queue_url
    base = f"/api/v1/accounts/{name}/regions/{REGION}"

    async def fleet_ids() -> set[str]:
        return {i["instance_id"] for i in (await client.get(f"{base}/instances")).json()["instances"]}

    assert await settled(fleet_ids, lambda ids: ids == set(fleet), 90) == set(fleet)  # not the untagged one
    assert outsider not in await fleet_ids()

    async def priced() -> set[str]:
        return {p["pool"] for p in (await client.get(f"{base}/prices")).json()["prices"]}

    pools = await settled(priced, lambda keys: {f"m5.large@{REGION}a", f"m5.large@{REGION}b"} <= keys, 90)
    assert all(key.split("@")[1].startswith(REGION) for key in pools)
    async def feed_state() -> str:
        return str((await client.get(f"{base}/prices")).json()["feed"]["state"])

    await settled(feed_state, lambda state: state == "ok", 90)

    token = (await client.post("/api/v1/ws-tokens")).json()["token"]
    async with websockets.connect(f"{server.ws_url}?token={token}") as socket:
        await socket.send(json.dumps({"type": "subscribe", "account": name, "regions": [REGION],
                                      "topics": ["decisions"]}))
        victim = fleet[0]
        sqs().send_message(QueueUrl=queue_url, MessageBody=interruption_warning(victim))
        decision = await next_decision_for(socket, victim)
    assert decision["rule"] == "interrupted" and decision["action"] in {"replace", "fallback_on_demand"}

    def replaced() -> bool:
        states = instance_states()
        new = [i for i, (state, tags) in states.items() if tags.get("spot-optimizer:replaces") == victim]
        return states[victim][0] == "terminated" and len(new) == 1 and states[new[0]][0] == "running"

    await settled(lambda: asyncio.to_thread(replaced), bool, 90)
    states = instance_states()
    replacement = next(i for i, (_, tags) in states.items() if tags.get("spot-optimizer:replaces") == victim)
    assert states[replacement][1][TAG_KEY] == TAG_VALUE and states[replacement][1]["team"] == "ml"
    await settled(lambda: asyncio.to_thread(queue_is_empty, queue_url), bool, 90)
    assert await settled(fleet_ids, lambda ids: replacement in ids and victim not in ids, 90)
    alerts = await asyncio.to_thread(server.call, server.runtime.store.events_after(name, REGION, "alerts", 0,
                                                                                    limit=100))
    steps = [json.loads(e.payload).get("step") for e in alerts]
    assert {"launched", "running", "terminated"} <= set(steps)

    patched = await client.patch(f"/api/v1/accounts/{name}", json={"executor_mode": "observe"})
    assert patched.status_code == 200 and patched.json()["executor_mode"] == "observe"
    before = instance_states()
    second = fleet[1]
    async with websockets.connect(f"{server.ws_url}?token={token}") as socket:
        await socket.send(json.dumps({"type": "subscribe", "account": name, "regions": [REGION],
                                      "topics": ["decisions"]}))
        sqs().send_message(QueueUrl=queue_url, MessageBody=interruption_warning(second))
        decision = await next_decision_for(socket, second)
    assert decision["rule"] == "interrupted"
    await settled(lambda: asyncio.to_thread(queue_is_empty, queue_url), bool, 90)
    await asyncio.sleep(2.0)  # a wrongly executing actor would have launched by now
    assert instance_states() == before
    await client.delete(f"/api/v1/accounts/{name}")


async def test_throttled_prices_leave_the_data_stale_and_say_so_until_they_recover(
        server: LiveServer, client: httpx.AsyncClient, aws) -> None:
    launch_fleet(1)
    name = f"aws-{uuid.uuid4().hex[:6]}"
    await register(client, name, None, "observe")
    base = f"/api/v1/accounts/{name}/regions/{REGION}"

    async def prices() -> dict[str, Any]:
        return dict((await client.get(f"{base}/prices")).json())

    await settled(prices, lambda body: body["prices"] and body["feed"]["state"] == "ok", 90)
    aws.proxy.fail("DescribeSpotPriceHistory", code="RequestLimitExceeded", status=503, times=1_000_000)
    stale = await settled(prices, lambda body: body["feed"]["state"] == "stale", 90)
    source = stale["feed"]["sources"]["prices"]
    assert "RequestLimitExceeded" in source["error"] and source["stale_since_s"] is not None
    assert stale["prices"], "the last prices are still served while the feed is stale"
    ready = (await client.get("/readyz")).json()
    assert ready["status"] == "not_ready" and any(name in key for key in ready["checks"]["cloud_feeds"]["stale"])
    aws.proxy.reset()
    await settled(prices, lambda body: body["feed"]["state"] == "ok", 60)
    await client.delete(f"/api/v1/accounts/{name}")


async def test_refused_credentials_are_a_clear_status_on_the_account_not_a_crash(
        server: LiveServer, client: httpx.AsyncClient, aws) -> None:
    aws.proxy.fail("DescribeInstances", code="AuthFailure", status=401, times=1_000_000,
                   message="AWS was not able to validate the provided access credentials")
    name = f"aws-{uuid.uuid4().hex[:6]}"
    await register(client, name, None, "observe")

    async def account() -> dict[str, Any]:
        return dict((await client.get(f"/api/v1/accounts/{name}")).json())

    body = await settled(account, lambda a: a["status"].get(REGION, {}).get("state") == "error", 90)
    detail = body["status"][REGION]["detail"]
    assert "AuthFailure" in detail and "credentials" in detail
    assert "testing" not in json.dumps(body)  # the secret key never shows
    aws.proxy.reset()
    await settled(account, lambda a: a["status"][REGION]["state"] in {"ok", "starting"}, 60)
    await client.delete(f"/api/v1/accounts/{name}")


async def test_aws_settings_and_executor_modes_are_validated_per_credentials_mode(
        server: LiveServer, client: httpx.AsyncClient) -> None:
    def post(**extra: Any) -> Any:
        return client.post("/api/v1/accounts", json={"name": f"v-{uuid.uuid4().hex[:6]}", "regions": [REGION],
                                                     **extra})

    simulated = await post(credentials_mode="aws_default", executor_mode="simulated")
    assert simulated.status_code == 422 and "body.executor_mode" in simulated.json()["detail"]
    bad_tag = await post(credentials_mode="aws_default", aws={"managed_tag": "no-equals-sign"})
    assert bad_tag.status_code == 422 and "managed_tag" in bad_tag.text
    on_replay = await post(credentials_mode="replay", aws={"managed_tag": "a=b"})
    assert on_replay.status_code in {422}, on_replay.text
    default = await post(credentials_mode="aws_default")
    assert default.status_code == 201 and default.json()["executor_mode"] == "observe"
    assert default.json()["aws"] == {"interruption_queue_url": None, "managed_tag": "spot-optimizer:managed=true"}
    await client.delete(f"/api/v1/accounts/{default.json()['account']}")
