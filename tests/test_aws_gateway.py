"""The AWS gateway against a fake cloud over real HTTP: moto's server behind a fault-injecting proxy.

Real recorded spot prices are served by the proxy (moto only has placeholders), so pagination and
incremental StartTime run over HTTP on real data; faults are injected per AWS action.
"""

from __future__ import annotations

import pickle
import random
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiobotocore.credentials import AioRefreshableCredentials
from aws_fakes import FakeAws, recorded_spot_prices

from actors.aws import (
    AwsAccess,
    AwsError,
    AwsGateway,
    AwsSessions,
    CapacityError,
    CredentialsError,
    LaunchRequest,
    Lifecycle,
    ThrottledError,
    parse_event,
)
from engine.price_history import parse_timestamp_s

REGION = "us-east-1"
DEFAULT = AwsAccess("aws_default")
ROLE = AwsAccess("aws_assume_role", role_arn="arn:aws:iam::123456789012:role/spot-optimizer", external_id="ext-42")
MANAGED = ("spot-optimizer", "managed")


@pytest.fixture
async def sessions(aws: FakeAws) -> AsyncIterator[AwsSessions]:
    opened = AwsSessions()
    yield opened
    await opened.close()


def make_gateway(sessions: AwsSessions, access: AwsAccess = DEFAULT, **options: Any) -> AwsGateway:
    return AwsGateway(sessions, access, REGION, **{"base_delay_s": 0.01, "max_delay_s": 0.05,
                                                   "rng": random.Random(7), **options})


@pytest.fixture
def gateway(sessions: AwsSessions) -> AwsGateway:
    return make_gateway(sessions)


@pytest.fixture
def sdk_single_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore does not retry underneath (clients read this when created: list this fixture first)."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")


@pytest.fixture
async def ec2(sessions: AwsSessions) -> Any:
    """A raw EC2 client for arranging the fake cloud (the gateway is what is under test)."""
    return await sessions.client(DEFAULT, "ec2", REGION)


async def an_image(ec2: Any) -> str:
    images = (await ec2.describe_images(Owners=["amazon"]))["Images"]
    return str(sorted(image["ImageId"] for image in images)[0])


async def a_subnet(gateway: AwsGateway, zone: str = "us-east-1a") -> str:
    return (await gateway.subnets(zone, None))[0]


def launch(image: str, subnet: str, *, token: str, spot: bool = False,
           tags: tuple[tuple[str, str], ...] = (MANAGED,)) -> LaunchRequest:
    return LaunchRequest(client_token=token, instance_type="t3.micro", subnet_id=subnet, spot=spot,
                         image_id=image, tags=tags)


def us_east_1(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["AvailabilityZone"].startswith(REGION)]


def as_tuples(records: list[dict[str, Any]]) -> set[tuple[str, str, float, float]]:
    return {(r["InstanceType"], r["AvailabilityZone"], float(r["SpotPrice"]), parse_timestamp_s(r["Timestamp"]))
            for r in records}


# -- spot prices -----------------------------------------------------------------------------------------
async def test_price_history_follows_next_token_across_pages_of_real_prices(aws: FakeAws, gateway: AwsGateway) -> None:
    records = recorded_spot_prices()
    aws.proxy.serve_spot_prices(records, page_size=100)
    prices = await gateway.spot_price_history(["p3.2xlarge"], ["Linux/UNIX"], None)
    expected = us_east_1(records)
    assert len(expected) > 500  # several pages
    assert {(p.instance_type, p.availability_zone, p.price_usd_per_hour, p.timestamp_s) for p in prices} == as_tuples(
        expected)
    assert len(prices) == len(expected)
    assert [p.timestamp_s for p in prices] == sorted(p.timestamp_s for p in prices)
    pages = -(-len(expected) // 100)
    assert gateway.calls["DescribeSpotPriceHistory"] == pages == aws.proxy.actions().count("DescribeSpotPriceHistory")
    tokens = [params.get("NextToken") for action, params in aws.proxy.calls]
    assert tokens[0] is None and all(tokens[1:])


async def test_price_history_since_a_time_returns_the_changes_since_and_the_price_then(
        aws: FakeAws, gateway: AwsGateway) -> None:
    records = us_east_1(recorded_spot_prices())
    aws.proxy.serve_spot_prices(records, page_size=50)
    start_s = sorted(parse_timestamp_s(r["Timestamp"]) for r in records)[len(records) // 2]
    prices = await gateway.spot_price_history(["p3.2xlarge"], ["Linux/UNIX"], start_s)
    newer = [p for p in prices if p.timestamp_s >= start_s]
    older = [p for p in prices if p.timestamp_s < start_s]
    assert {(p.instance_type, p.availability_zone, p.price_usd_per_hour, p.timestamp_s) for p in newer} == as_tuples(
        [r for r in records if parse_timestamp_s(r["Timestamp"]) >= start_s])
    assert len({p.availability_zone for p in older}) == len(older)  # at most the price in force, per pool
    [(_, sent)] = [(a, params) for a, params in aws.proxy.calls if a == "DescribeSpotPriceHistory"][:1]
    assert parse_timestamp_s(sent["StartTime"]) == start_s
    # The next poll starts at the newest point seen: nothing new, only the prices in force come back.
    newest_s = prices[-1].timestamp_s
    again = await gateway.spot_price_history(["p3.2xlarge"], ["Linux/UNIX"], newest_s)
    assert [p for p in again if p.timestamp_s >= newest_s] == [p for p in prices if p.timestamp_s == newest_s]
    in_force = [p.availability_zone for p in again if p.timestamp_s < newest_s]
    assert len(in_force) == len(set(in_force)) <= 4


async def test_price_history_merges_vpc_named_duplicates(aws: FakeAws, gateway: AwsGateway) -> None:
    records = us_east_1(recorded_spot_prices(hours=48))
    vpc_copies = [{**r, "ProductDescription": "Linux/UNIX (Amazon VPC)"} for r in records]
    aws.proxy.serve_spot_prices(records + records + vpc_copies, page_size=20)
    prices = await gateway.spot_price_history(["p3.2xlarge"], ["Linux/UNIX (Amazon VPC)"], None)
    assert len(prices) == len(records)
    assert {p.product_description for p in prices} == {"Linux/UNIX"}
    sent = next(params for action, params in aws.proxy.calls if action == "DescribeSpotPriceHistory")
    assert {v for k, v in sent.items() if k.startswith("ProductDescription.")} == {
        "Linux/UNIX", "Linux/UNIX (Amazon VPC)"}


async def test_price_history_of_no_instance_types_asks_nothing(gateway: AwsGateway) -> None:
    assert await gateway.spot_price_history([], ["Linux/UNIX"], None) == []
    assert gateway.calls == {}


async def test_moto_placeholder_prices_parse_with_the_product_normalized(gateway: AwsGateway) -> None:
    prices = await gateway.spot_price_history(["m5.large"], ["Linux/UNIX"], None)
    assert prices and {p.product_description for p in prices} == {"Linux/UNIX"}
    assert {p.availability_zone[:-1] for p in prices} == {REGION}


# -- catalog facts ---------------------------------------------------------------------------------------
async def test_offerings_map_each_type_to_its_zones(gateway: AwsGateway) -> None:
    offered = await gateway.offerings(["m5.large", "t3.micro", "no-such.type"])
    assert offered["m5.large"] and all(zone.startswith(REGION) for zone in offered["m5.large"])
    assert offered["t3.micro"]
    assert offered["no-such.type"] == frozenset()


async def test_instance_types_skip_unknown_names_without_failing_the_batch(gateway: AwsGateway) -> None:
    facts = await gateway.instance_types(["m5.large", "no-such.type", "c6g.xlarge"])
    assert facts == {
        "m5.large": {"vcpus": 2, "memory_mib": 8192, "architectures": ("x86_64",)},
        "c6g.xlarge": {"vcpus": 4, "memory_mib": 8192, "architectures": ("arm64",)},
    }
    assert gateway.calls["DescribeInstanceTypes"] == 4  # the batch, then one by one


# -- the fleet -------------------------------------------------------------------------------------------
async def test_discovery_finds_running_tagged_instances_only(ec2: Any, gateway: AwsGateway) -> None:
    image, subnet = await an_image(ec2), await a_subnet(gateway)
    spot_id = await gateway.run_instance(launch(image, subnet, token="spot-1", spot=True,
                                                tags=(MANAGED, ("team", "ml"))))
    on_demand_id = await gateway.run_instance(launch(image, subnet, token="od-1"))
    await gateway.run_instance(launch(image, subnet, token="other-1", tags=(("spot-optimizer", "ignored"),)))
    gone_id = await gateway.run_instance(launch(image, subnet, token="gone-1"))
    assert gone_id is not None
    await gateway.terminate([gone_id])

    found = {i.instance_id: i for i in await gateway.managed_instances(*MANAGED)}
    assert set(found) == {spot_id, on_demand_id}
    spot = found[spot_id]
    assert (spot.lifecycle, found[on_demand_id].lifecycle) == (Lifecycle.SPOT, Lifecycle.ON_DEMAND)
    assert (spot.instance_type, spot.availability_zone, spot.subnet_id, spot.image_id) == (
        "t3.micro", "us-east-1a", subnet, image)
    assert spot.vpc_id and spot.state in {"pending", "running"}
    assert ("team", "ml") in spot.tags and MANAGED in spot.tags
    assert spot.product_description == "Linux/UNIX"


async def test_subnets_come_with_the_most_free_addresses_first(ec2: Any, gateway: AwsGateway) -> None:
    [default_subnet] = await gateway.subnets("us-east-1b", None)
    vpc_id = (await ec2.describe_subnets(SubnetIds=[default_subnet]))["Subnets"][0]["VpcId"]
    small = (await ec2.create_subnet(VpcId=vpc_id, CidrBlock="172.31.200.0/28", AvailabilityZone="us-east-1b"))
    assert await gateway.subnets("us-east-1b", vpc_id) == [default_subnet, small["Subnet"]["SubnetId"]]
    other_vpc = (await ec2.create_vpc(CidrBlock="10.1.0.0/16"))["Vpc"]["VpcId"]
    assert await gateway.subnets("us-east-1b", other_vpc) == []


async def test_a_dry_run_launch_succeeds_without_launching(ec2: Any, gateway: AwsGateway) -> None:
    image, subnet = await an_image(ec2), await a_subnet(gateway)
    assert await gateway.run_instance(launch(image, subnet, token="dry-1", spot=True), dry_run=True) is None
    assert await gateway.managed_instances(*MANAGED) == []
    instance_id = await gateway.run_instance(launch(image, subnet, token="real-1", spot=True))
    assert instance_id is not None and instance_id.startswith("i-")
    assert [i.instance_id for i in await gateway.managed_instances(*MANAGED)] == [instance_id]


async def test_terminate_stops_an_instance_and_a_dry_run_does_not(ec2: Any, gateway: AwsGateway) -> None:
    image, subnet = await an_image(ec2), await a_subnet(gateway)
    instance_id = await gateway.run_instance(launch(image, subnet, token="t-1"))
    assert instance_id is not None
    await gateway.wait_running(instance_id, timeout_s=10, poll_s=0.1)
    await gateway.terminate([instance_id], dry_run=True)
    assert await gateway.instance_states([instance_id]) == {instance_id: "running"}
    await gateway.terminate([instance_id])
    assert (await gateway.instance_states([instance_id]))[instance_id] in {"shutting-down", "terminated"}
    with pytest.raises(AwsError) as raised:
        await gateway.wait_running(instance_id, timeout_s=10, poll_s=0.1)
    assert raised.value.code in {"shutting-down", "terminated"}


async def test_instance_states_leave_out_unknown_ids_and_waiting_for_one_times_out(gateway: AwsGateway) -> None:
    assert await gateway.instance_states(["i-00000000000000000"]) == {}
    assert await gateway.instance_states([]) == {}
    started = time.monotonic()
    with pytest.raises(AwsError) as raised:
        await gateway.wait_running("i-00000000000000000", timeout_s=0.3, poll_s=0.1)
    assert raised.value.code == "WaitTimeout"
    assert time.monotonic() - started < 2


async def test_an_instance_is_attached_to_and_detached_from_its_group(
        sessions: AwsSessions, ec2: Any, gateway: AwsGateway) -> None:
    image, subnet = await an_image(ec2), await a_subnet(gateway)
    autoscaling = await sessions.client(DEFAULT, "autoscaling", REGION)
    await ec2.create_launch_template(LaunchTemplateName="trainers",
                                     LaunchTemplateData={"ImageId": image, "InstanceType": "t3.micro"})
    await autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="trainers", LaunchTemplate={"LaunchTemplateName": "trainers"},
        MinSize=0, MaxSize=3, DesiredCapacity=0, VPCZoneIdentifier=subnet)
    instance_id = await gateway.run_instance(launch(image, subnet, token="asg-1"))
    assert instance_id is not None

    async def group() -> dict[str, Any]:
        groups = await autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["trainers"])
        return dict(groups["AutoScalingGroups"][0])

    await gateway.attach_to_group("trainers", instance_id)
    attached = await group()
    assert [i["InstanceId"] for i in attached["Instances"]] == [instance_id]
    assert attached["DesiredCapacity"] == 1
    [found] = await gateway.managed_instances(*MANAGED)
    assert found.auto_scaling_group == "trainers"

    await gateway.detach_from_group("trainers", instance_id)
    detached = await group()
    assert detached["Instances"] == [] and detached["DesiredCapacity"] == 0


# -- interruption messages -------------------------------------------------------------------------------
async def test_queue_messages_are_received_counted_and_deleted(
        aws: FakeAws, sessions: AwsSessions, gateway: AwsGateway) -> None:
    sqs = await sessions.client(DEFAULT, "sqs", REGION)
    queue_url = (await sqs.create_queue(QueueName="interruptions", Attributes={"VisibilityTimeout": "0"}))["QueueUrl"]
    body = ('{"id": "e-1", "detail-type": "EC2 Spot Instance Interruption Warning", "region": "us-east-1", '
            '"time": "2023-02-15T00:00:00Z", "detail": {"instance-id": "i-1", "instance-action": "terminate"}}')
    await sqs.send_message(QueueUrl=queue_url, MessageBody=body)

    [first] = await gateway.receive_messages(queue_url, wait_s=1)
    assert (first.body, first.receive_count) == (body, 1)
    assert parse_event(first.body).instance_id == "i-1"
    [again] = await gateway.receive_messages(queue_url, wait_s=1)  # not deleted: delivered again
    assert (again.message_id, again.receive_count) == (first.message_id, 2)
    await gateway.delete_message(queue_url, again.receipt_handle)
    assert await gateway.receive_messages(queue_url, wait_s=0) == []
    sent = next(params for action, params in aws.proxy.calls if action == "AmazonSQS.ReceiveMessage")
    assert sent["WaitTimeSeconds"] == 1 and sent["AttributeNames"] == ["ApproximateReceiveCount"]


# -- faults ----------------------------------------------------------------------------------------------
async def test_throttling_is_retried_with_backoff_until_it_passes(
        sdk_single_attempt: None, aws: FakeAws, gateway: AwsGateway) -> None:
    aws.proxy.fail("DescribeSubnets", code="RequestLimitExceeded", status=503, times=2)
    assert await gateway.subnets("us-east-1a", None)
    assert gateway.calls["DescribeSubnets"] == 3
    assert gateway.throttled == 2
    assert aws.proxy.actions() == ["DescribeSubnets"] * 3


async def test_throttling_past_max_attempts_raises_throttled(
        sdk_single_attempt: None, aws: FakeAws, sessions: AwsSessions) -> None:
    gateway = make_gateway(sessions, max_attempts=3)
    aws.proxy.fail("DescribeInstanceTypeOfferings", code="Throttling", status=400, times=10)
    with pytest.raises(ThrottledError) as raised:
        await gateway.offerings(["m5.large"])
    assert (raised.value.code, raised.value.operation) == ("Throttling", "DescribeInstanceTypeOfferings")
    assert gateway.calls["DescribeInstanceTypeOfferings"] == 3 and gateway.throttled == 3


async def test_botocore_retries_underneath_as_the_environment_says(aws: FakeAws, gateway: AwsGateway) -> None:
    aws.proxy.fail("DescribeSubnets", code="RequestLimitExceeded", status=503, times=1)
    assert await gateway.subnets("us-east-1a", None)  # AWS_MAX_ATTEMPTS=2: botocore's second attempt passes
    assert (gateway.calls["DescribeSubnets"], gateway.throttled) == (1, 0)
    assert aws.proxy.actions() == ["DescribeSubnets"] * 2


async def test_an_unknown_server_error_is_retried(sdk_single_attempt: None, aws: FakeAws, gateway: AwsGateway) -> None:
    aws.proxy.fail("AmazonSQS.ReceiveMessage", code="InternalError", status=500, times=1)
    sqs = await gateway.sessions.client(DEFAULT, "sqs", REGION)
    queue_url = (await sqs.create_queue(QueueName="q"))["QueueUrl"]
    assert await gateway.receive_messages(queue_url, wait_s=0) == []
    assert gateway.throttled == 1


async def test_no_capacity_is_a_capacity_error_and_is_not_retried(
        sdk_single_attempt: None, aws: FakeAws, ec2: Any, gateway: AwsGateway) -> None:
    image, subnet = await an_image(ec2), await a_subnet(gateway)
    aws.proxy.fail("RunInstances", code="InsufficientInstanceCapacity", status=500,
                   message="We currently do not have sufficient t3.micro capacity in the AZ you requested.")
    with pytest.raises(CapacityError) as raised:
        await gateway.run_instance(launch(image, subnet, token="cap-1", spot=True))
    assert raised.value.code == "InsufficientInstanceCapacity" and "capacity" in raised.value.message
    assert (gateway.calls["RunInstances"], gateway.throttled) == (1, 0)
    assert aws.proxy.actions().count("RunInstances") == 1


@pytest.mark.parametrize(("code", "status", "dry_run"), [
    ("AuthFailure", 401, False),
    ("UnauthorizedOperation", 403, True),
])
async def test_refused_credentials_are_a_credentials_error_and_are_not_retried(
        aws: FakeAws, ec2: Any, gateway: AwsGateway, code: str, status: int, dry_run: bool) -> None:
    image, subnet = await an_image(ec2), await a_subnet(gateway)
    aws.proxy.fail("RunInstances", code=code, status=status)
    with pytest.raises(CredentialsError) as raised:
        await gateway.run_instance(launch(image, subnet, token="auth-1"), dry_run=dry_run)
    assert raised.value.code == code
    assert gateway.calls["RunInstances"] == 1


async def test_a_plain_client_error_is_raised_at_once(gateway: AwsGateway) -> None:
    with pytest.raises(AwsError) as raised:
        await gateway.terminate(["not-an-instance-id"])
    assert type(raised.value) is AwsError and raised.value.code.startswith("InvalidInstanceID")
    assert gateway.calls["TerminateInstances"] == 1


async def test_an_unreachable_endpoint_is_throttled_after_retries(
        sdk_single_attempt: None, sessions: AwsSessions, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port}")
    gateway = make_gateway(sessions, max_attempts=2)
    with pytest.raises(ThrottledError) as raised:
        await gateway.subnets("us-east-1a", None)
    assert raised.value.code == "EndpointConnectionError"
    assert gateway.throttled == 2


async def test_a_delayed_answer_arrives_late_but_whole(aws: FakeAws, gateway: AwsGateway) -> None:
    aws.proxy.delay("DescribeSubnets", 0.3)
    started = time.monotonic()
    assert await gateway.subnets("us-east-1a", None)
    assert time.monotonic() - started >= 0.3


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    gateway = AwsGateway(AwsSessions(), DEFAULT, REGION, base_delay_s=0.2, max_delay_s=5.0, rng=random.Random(1))
    for attempt in range(10):
        caps = min(5.0, 0.2 * 2**attempt)
        delays = [gateway.backoff_s(attempt) for _ in range(200)]
        assert all(0 <= d <= caps for d in delays)
        assert max(delays) > 0.8 * caps and min(delays) < 0.2 * caps  # spread over the whole range
    same = AwsGateway(AwsSessions(), DEFAULT, REGION, rng=random.Random(3))
    again = AwsGateway(AwsSessions(), DEFAULT, REGION, rng=random.Random(3))
    assert [same.backoff_s(3) for _ in range(5)] == [again.backoff_s(3) for _ in range(5)]


# -- sessions and credentials ----------------------------------------------------------------------------
async def test_an_assumed_role_is_used_and_refreshed_before_it_expires(aws: FakeAws) -> None:
    sessions = AwsSessions()
    try:
        east, west = make_gateway(sessions, ROLE), AwsGateway(sessions, ROLE, "us-west-2")
        assert await east.subnets("us-east-1a", None)
        assert await west.subnets("us-west-2a", None)
        assert aws.proxy.actions().count("AssumeRole") == 1  # one credentials set for every region
        sent = next(params for action, params in aws.proxy.calls if action == "AssumeRole")
        assert (sent["RoleArn"], sent["RoleSessionName"], sent["ExternalId"], sent["DurationSeconds"]) == (
            ROLE.role_arn, "spot-optimizer", "ext-42", "3600")
        credentials = await sessions.session(ROLE).get_credentials()
        assert isinstance(credentials, AioRefreshableCredentials)
        assert not credentials.refresh_needed(60)  # valid for about an hour,
        assert credentials.refresh_needed(3700)  # then due for a refresh
        frozen = await credentials.get_frozen_credentials()
        assert frozen.access_key != "testing" and frozen.token
    finally:
        await sessions.close()


async def test_credentials_close_to_expiry_are_refreshed_through_sts(aws: FakeAws) -> None:
    # 15-minute credentials are inside botocore's 15-minute advisory window at once: every call refreshes.
    sessions = AwsSessions(assume_role_duration_s=900)
    try:
        gateway = make_gateway(sessions, ROLE)
        for _ in range(3):
            await gateway.subnets("us-east-1a", None)
        assert aws.proxy.actions().count("AssumeRole") == 3
    finally:
        await sessions.close()


async def test_a_refused_role_is_a_credentials_error(aws: FakeAws) -> None:
    sessions = AwsSessions()
    try:
        aws.proxy.fail("AssumeRole", code="AccessDenied", status=403, times=10)
        with pytest.raises(CredentialsError) as raised:
            await make_gateway(sessions, ROLE).subnets("us-east-1a", None)
        assert raised.value.code == "AccessDenied"
    finally:
        await sessions.close()


async def test_missing_credentials_are_a_credentials_error(
        aws: FakeAws, sessions: AwsSessions, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(CredentialsError) as partial:
        await sessions.client(DEFAULT, "ec2", REGION)
    assert partial.value.code == "PartialCredentialsError"

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.setenv(name, str(tmp_path / "absent"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(CredentialsError) as missing:
        await AwsGateway(AwsSessions(), DEFAULT, REGION).subnets("us-east-1a", None)
    assert missing.value.code == "NoCredentialsError"


async def test_clients_are_shared_and_reopened_after_close(sessions: AwsSessions) -> None:
    first = await sessions.client(DEFAULT, "ec2", REGION)
    assert await sessions.client(DEFAULT, "ec2", REGION) is first
    assert await sessions.client(DEFAULT, "ec2", "us-west-2") is not first
    await sessions.close()
    reopened = await sessions.client(DEFAULT, "ec2", REGION)
    assert reopened is not first
    assert (await reopened.describe_availability_zones())["AvailabilityZones"]


@pytest.mark.parametrize(("fields", "message"), [
    ({"mode": "iam_user"}, "mode"),
    ({"mode": "aws_assume_role"}, "role_arn"),
    ({"mode": "aws_default", "role_arn": "arn:aws:iam::1:role/x"}, "role_arn"),
    ({"mode": "aws_default", "session_name": "x"}, "session_name"),
])
def test_an_access_that_cannot_work_is_refused_naming_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AwsAccess(**fields)


def test_an_access_pickles_for_ray_actors() -> None:
    assert pickle.loads(pickle.dumps(ROLE)) == ROLE
    assert hash(pickle.loads(pickle.dumps(ROLE))) == hash(ROLE)
