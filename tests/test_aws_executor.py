"""Decisions carried out on AWS (moto over HTTP, through the fault proxy), by a plain RegionActor whose fleet
the AWS feed discovered: ``dry_run`` checks permissions and changes nothing, a capacity error falls through to
the next pool and becomes a risk label, an Auto Scaling group member is swapped inside its group, and every
step is an ``alerts`` event."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from test_aws_feed import feed_for, launch, region_actor

from actors.aws.executor import client_token, placements
from actors.aws.session import AwsSessions
from actors.stream import StreamHost, stream_key
from engine.types import Action, Lifecycle, Pool, Rule

REGION = "us-east-1"


@pytest.fixture
async def sessions() -> Any:
    opened = AwsSessions()
    yield opened
    await opened.close()


def moto_instances() -> dict[str, str]:
    ec2 = boto3.client("ec2", region_name=REGION)
    return {i["InstanceId"]: i["State"]["Name"]
            for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}


async def discovered_actor(sessions: AwsSessions, mode: str) -> Any:
    actor = region_actor(mode)
    actor.hub = StreamHost()
    feed = feed_for(actor, sessions)
    await feed.discover_once()
    await feed.poll_prices_once()
    return actor


async def streamed_alerts(actor: Any) -> list[dict[str, Any]]:
    """The ``alerts`` events the actor published to its (local) stream host."""
    listened = await actor.hub.listen({stream_key("acct", REGION, "alerts"): 0}, timeout_s=0.1)
    return [json.loads(text) for _, text in listened["events"].get(stream_key("acct", REGION, "alerts"), [])]


async def test_a_dry_run_checks_permissions_with_dry_run_calls_and_changes_nothing(aws, sessions) -> None:
    victim = launch(zone="us-east-1a")
    actor = await discovered_actor(sessions, "dry_run")
    before = moto_instances()
    aws.proxy.calls.clear()
    result = await actor.notice("spot_interruption", victim, time.time())
    assert result["known"] and result["decisions"]
    mutating = [(action, params) for action, params in aws.proxy.calls
                if action in {"RunInstances", "TerminateInstances"}]
    assert {action for action, _ in mutating} == {"RunInstances", "TerminateInstances"}
    assert all(params.get("DryRun") == "true" for _, params in mutating)
    assert moto_instances() == before
    assert victim in actor.engine.instances  # nothing was carried out, so the fleet is as it was


async def test_a_capacity_error_falls_through_to_the_next_pool_and_labels_the_refused_one(aws, sessions) -> None:
    victim = launch(zone="us-east-1a")
    actor = await discovered_actor(sessions, "execute")
    # EC2 answers ICE with HTTP 500, which the SDK retries (AWS_MAX_ATTEMPTS=2 here) with the same token first.
    aws.proxy.fail("RunInstances", code="InsufficientInstanceCapacity", status=500, times=2,
                   message="We currently do not have sufficient capacity in the Availability Zone you requested")
    aws.proxy.calls.clear()
    await actor.notice("spot_interruption", victim, time.time())
    launches = [dict(params) for action, params in aws.proxy.calls if action == "RunInstances"]
    tokens = [params["ClientToken"] for params in launches]
    assert len(launches) == 3 and tokens[0] == tokens[1] != tokens[2]
    refused = Pool(launches[0]["InstanceType"], _zone_of(launches[0]))
    placed = Pool(launches[2]["InstanceType"], _zone_of(launches[2]))
    assert refused != placed and refused in actor.engine.notices  # a label for the risk model
    assert victim not in actor.engine.instances
    [(new_id, state)] = [(i, s) for i, s in actor.engine.instances.items()]
    assert state.instance.pool == placed and moto_instances()[new_id] == "running"
    assert moto_instances()[victim] == "terminated"
    steps = [(a.get("step"), a.get("error")) for a in await streamed_alerts(actor) if a.get("kind") == "execution"]
    assert ("failed", "InsufficientInstanceCapacity") in steps and ("terminated", None) in steps


def _zone_of(params: dict[str, Any]) -> str:
    subnet = params["SubnetId"]
    ec2 = boto3.client("ec2", region_name=REGION)
    return str(ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]["AvailabilityZone"])


async def test_an_auto_scaling_group_member_is_replaced_inside_its_group(aws, sessions) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    images = ec2.describe_images(Owners=["amazon"])["Images"]
    image = next(i["ImageId"] for i in images if i.get("Platform") != "windows")
    subnet = next(s["SubnetId"] for s in ec2.describe_subnets()["Subnets"] if s["AvailabilityZone"] == "us-east-1a")
    ec2.create_launch_template(LaunchTemplateName="workers",
                               LaunchTemplateData={"ImageId": image, "InstanceType": "m5.large"})
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="workers", LaunchTemplate={"LaunchTemplateName": "workers"}, MinSize=0, MaxSize=4,
        DesiredCapacity=0, VPCZoneIdentifier=subnet)
    member = launch(zone="us-east-1a")  # a spot instance the group adopts, as AutoSpotting's groups hold them
    autoscaling.attach_instances(InstanceIds=[member], AutoScalingGroupName="workers")
    actor = await discovered_actor(sessions, "execute")
    assert actor.engine.instances[member].instance.fleet == "workers"  # the group is the budget's fleet
    await actor.notice("spot_interruption", member, time.time())
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["workers"])["AutoScalingGroups"][0]
    [new_member] = [i["InstanceId"] for i in group["Instances"]]
    assert new_member != member and group["DesiredCapacity"] == 1
    assert moto_instances()[member] == "terminated" and new_member in actor.engine.instances
    steps = [a.get("step") for a in await streamed_alerts(actor) if a.get("kind") == "execution"]
    assert steps == ["launched", "running", "group_swapped", "terminated"]


def test_a_launch_token_is_fixed_per_decision_and_placement_and_fits_aws_limit() -> None:
    from engine.types import Candidate, Decision

    a, b = Pool("m5.large", "us-east-1a"), Pool("m5.large", "us-east-1b")
    decision = Decision("i-1", Action.REPLACE, Rule.INTERRUPTED, "", 10.0, a, Lifecycle.SPOT, b, Lifecycle.SPOT,
                        candidates=(Candidate(a, Lifecycle.SPOT, 0.1, 0.9, 0.5),
                                    Candidate(b, Lifecycle.SPOT, 0.1, 0.1, 0.2),
                                    Candidate(Pool("m5.xlarge", "us-east-1c"), Lifecycle.SPOT, 0.2, 0.1, 0.3),
                                    Candidate(a, Lifecycle.ON_DEMAND, 0.096, 0.0, 0.096)))
    order = list(placements(decision))
    assert order[0] == (b, Lifecycle.SPOT) and (a, Lifecycle.SPOT) not in order  # never back where it was
    assert order[1:] == [(a, Lifecycle.ON_DEMAND), (Pool("m5.xlarge", "us-east-1c"), Lifecycle.SPOT)]
    tokens = {client_token(decision, pool, lifecycle) for pool, lifecycle in order}
    assert len(tokens) == len(order) and all(len(t) <= 64 and t.isascii() for t in tokens)
    assert client_token(decision, b, Lifecycle.SPOT) == client_token(decision, b, Lifecycle.SPOT)


