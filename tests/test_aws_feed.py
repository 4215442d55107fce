"""The AWS feed and the interruption consumer as plain objects driving a plain RegionActor, against moto's
server over HTTP (through the fault proxy): discovery by tag with joins and leaves, pools only where a zone
offers the type, incremental de-duplicated price polls over several pages of real recorded prices, and
queue messages acknowledged only once decided."""

from __future__ import annotations

import json
import time
import uuid
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from aws_fakes import recorded_spot_prices

from actors.aws.gateway import AwsGateway
from actors.aws.session import AwsAccess, AwsSessions
from actors.feeds.aws import AwsFeed, AwsFeedSettings
from actors.feeds.base import FeedKey
from actors.feeds.interruptions import InterruptionConsumer
from actors.region import RegionActor, RegionConfig
from engine.price_history import parse_timestamp_s

REGION = "us-east-1"
TAG = "spot-optimizer:managed=true"


class LocalHandle:
    """A plain actor called the way feeds call a Ray handle (``actor.method.remote(...)``)."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def __getattr__(self, name: str) -> Any:
        return SimpleNamespace(remote=getattr(self.actor, name))


@pytest.fixture
async def sessions() -> Any:
    opened = AwsSessions()
    yield opened
    await opened.close()


def region_actor(mode: str = "observe") -> RegionActor:
    return RegionActor(RegionConfig("acct", REGION, executor=mode, credentials_mode="aws_default"))


def feed_for(actor: RegionActor, sessions: AwsSessions, clock: Any = time.time) -> AwsFeed:
    feed = AwsFeed(FeedKey("aws", "acct", REGION), AwsAccess("aws_default"), TAG, sessions, AwsFeedSettings(),
                   clock=clock)
    feed.actor = LocalHandle(actor)
    return feed


def launch(instance_type: str = "m5.large", zone: str = "us-east-1a", tagged: bool = True) -> str:
    ec2 = boto3.client("ec2", region_name=REGION)
    images = ec2.describe_images(Owners=["amazon"])["Images"]
    image = next(i["ImageId"] for i in images if i.get("Platform") != "windows")  # Linux: Linux/UNIX prices
    subnet = next(s["SubnetId"] for s in ec2.describe_subnets()["Subnets"] if s["AvailabilityZone"] == zone)
    tags = [{"ResourceType": "instance", "Tags": [{"Key": "spot-optimizer:managed", "Value": "true"}]}]
    return str(ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType=instance_type,
                                 SubnetId=subnet, InstanceMarketOptions={"MarketType": "spot"},
                                 TagSpecifications=tags if tagged else [])["Instances"][0]["InstanceId"])


async def test_discovery_finds_the_tagged_fleet_and_follows_joins_and_leaves(aws, sessions) -> None:
    actor = region_actor()
    feed = feed_for(actor, sessions)
    first, second = launch(zone="us-east-1a"), launch(zone="us-east-1b")
    launch(tagged=False)
    result = await feed.discover_once()
    assert sorted(result["joined"]) == sorted([first, second]) and result["left"] == []
    assert {i.instance_id for i in actor.engine.fleet()} == {first, second}
    offered = {o["Location"] for o in boto3.client("ec2", region_name=REGION).describe_instance_type_offerings(
        LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": ["m5.large"]}],
    )["InstanceTypeOfferings"]}
    m5_zones = {p.availability_zone for p in actor.engine.pools if p.instance_type == "m5.large"}
    assert m5_zones == offered  # a zone that does not offer the type is no candidate
    assert len({p.instance_type for p in actor.engine.pools}) > 1  # compatible types are candidates too

    boto3.client("ec2", region_name=REGION).terminate_instances(InstanceIds=[first])
    third = launch(zone="us-east-1c")
    result = await feed.discover_once()
    assert result["joined"] == [third] and result["left"] == [first]
    assert {i.instance_id for i in actor.engine.fleet()} == {second, third}
    assert actor.launch_specs[third].subnet_id and actor.launch_specs[third].image_id


async def test_price_polls_page_through_real_prices_start_from_the_newest_seen_and_add_no_duplicates(
        aws, sessions) -> None:
    launch(zone="us-east-1a")
    records = [{**r, "InstanceType": "m5.large"} for r in recorded_spot_prices(hours=48)
               if r["AvailabilityZone"].startswith(REGION)]
    end_s = max(parse_timestamp_s(r["Timestamp"]) for r in records)
    now = {"s": end_s - 24 * 3600.0}
    aws.proxy.serve_spot_prices([r for r in records if parse_timestamp_s(r["Timestamp"]) <= now["s"]], page_size=5)
    actor = region_actor()
    feed = feed_for(actor, sessions, clock=lambda: now["s"])
    await feed.discover_once()
    first = await feed.poll_prices_once()
    calls = [params for action, params in aws.proxy.calls if action == "DescribeSpotPriceHistory"]
    assert first > 0 and len(calls) > 1  # several pages
    newest = feed.since_s
    assert newest is not None and newest <= now["s"]

    now["s"] = end_s + 60.0  # a day later AWS has a day more of price changes
    aws.proxy.serve_spot_prices(records, page_size=5)
    aws.proxy.calls.clear()
    second = await feed.poll_prices_once()
    start_times = {params.get("StartTime") for action, params in aws.proxy.calls
                   if action == "DescribeSpotPriceHistory"}
    assert len(start_times) == 1 and parse_timestamp_s(start_times.pop()) == pytest.approx(newest)
    expected_new = {(r["AvailabilityZone"], r["Timestamp"]) for r in records
                    if newest < parse_timestamp_s(r["Timestamp"]) <= end_s}
    assert second == len(expected_new)
    assert await feed.poll_prices_once() == 0  # nothing new: nothing sent twice

    latest = {p["pool"]: p for p in await actor.latest_prices()}
    for zone in {r["AvailabilityZone"] for r in records}:
        last = max((r for r in records if r["AvailabilityZone"] == zone), key=lambda r: r["Timestamp"])
        assert latest[f"m5.large@{zone}"]["price_usd_per_hour"] == pytest.approx(float(last["SpotPrice"]))


def warning(instance_id: str, region: str = REGION) -> str:
    return json.dumps({"detail-type": "EC2 Spot Instance Interruption Warning", "source": "aws.ec2",
                       "id": str(uuid.uuid4()), "time": "2026-11-30T08:00:00Z", "region": region,
                       "detail": {"instance-id": instance_id, "instance-action": "terminate"}})


async def test_queue_messages_are_deleted_only_once_decided_and_malformed_ones_are_left_alone(aws, sessions) -> None:
    victim = launch(zone="us-east-1a")
    actor = region_actor()
    feed = feed_for(actor, sessions)
    await feed.discover_once()
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}",
                             Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    for body in ("{not json", warning(victim), warning("i-0123456789abcdef0", region="eu-west-1")):
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    handle = LocalHandle(actor)
    consumer = InterruptionConsumer("acct", queue, AwsGateway(sessions, AwsAccess("aws_default"), REGION),
                                    lambda region: handle if region == REGION else None, wait_s=1)
    acknowledged = 0
    for _ in range(3):
        acknowledged += await consumer.poll_once()
    assert acknowledged == 2 and consumer.counts["malformed"] >= 1 and consumer.counts["handled"] == 1
    assert actor.engine.instances[victim].instance.interrupted
    assert actor.seq >= 1  # the decision for it was made (and numbered) before the message went
    time.sleep(1.2)
    left = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    assert [m["Body"] for m in left] == ["{not json"]  # redelivered until the dead-letter policy takes it


async def test_discovery_gives_a_restarted_actor_its_pools_back_before_its_fleet(aws, sessions) -> None:
    instance = launch(zone="us-east-1b")
    feed = feed_for(region_actor(), sessions)
    await feed.discover_once()
    restarted = region_actor()  # what Ray brings back after a crash with nothing restored
    feed.actor = LocalHandle(restarted)
    result = await feed.discover_once()
    assert result["joined"] == [instance] and len(restarted.engine.pools) == len(feed.pools)
