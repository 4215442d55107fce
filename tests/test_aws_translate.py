"""The AWS adapter's pure parts: translating AWS answers, building RunInstances, classifying errors."""

from __future__ import annotations

import datetime as dt
import doctest
import json
import pickle
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.validate import validate_parameters
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.aws import errors, translate
from actors.aws.errors import AwsError, CapacityError, CredentialsError, ThrottledError, classify, redact
from actors.aws.translate import (
    InterruptionNotice,
    LaunchRequest,
    Lifecycle,
    MalformedMessage,
    NoticeKind,
    TranslateError,
    parse_event,
    parse_instances,
    parse_messages,
    parse_spot_prices,
    product_of_platform,
    run_instances_params,
    tag_filter,
)

T0 = dt.datetime(2023, 2, 15, tzinfo=dt.UTC)


@pytest.mark.parametrize("module", [translate, errors])
def test_docstring_examples_run(module: Any) -> None:
    assert doctest.testmod(module).failed == 0


# -- spot prices -----------------------------------------------------------------------------------------
def price_item(**overrides: Any) -> dict[str, Any]:
    item = {"InstanceType": "p3.2xlarge", "AvailabilityZone": "us-east-1a", "ProductDescription": "Linux/UNIX",
            "SpotPrice": "0.918000", "Timestamp": T0}
    return {**item, **overrides}


def test_spot_prices_accept_datetimes_and_iso_strings_alike() -> None:
    from_datetime, from_text = parse_spot_prices([price_item(), price_item(Timestamp="2023-02-15T00:00:00.000Z")])
    assert from_datetime == from_text
    assert from_datetime.price_usd_per_hour == pytest.approx(0.918)
    assert from_datetime.timestamp_s == T0.timestamp()


def test_spot_price_product_drops_the_vpc_suffix_and_defaults_to_linux() -> None:
    vpc, missing = parse_spot_prices([price_item(ProductDescription="Windows (Amazon VPC)"),
                                      price_item(ProductDescription=None)])
    assert (vpc.product_description, missing.product_description) == ("Windows", "Linux/UNIX")


@pytest.mark.parametrize(("overrides", "field"), [
    ({"SpotPrice": None}, "SpotPrice"),
    ({"SpotPrice": "cheap"}, "SpotPrice"),
    ({"SpotPrice": "-1"}, "SpotPrice"),
    ({"SpotPrice": "nan"}, "SpotPrice"),
    ({"Timestamp": "yesterday"}, "Timestamp"),
    ({"Timestamp": 1676419200}, "Timestamp"),
    ({"AvailabilityZone": ""}, "AvailabilityZone"),
    ({"InstanceType": None}, "InstanceType"),
])
def test_a_bad_spot_price_names_its_index_and_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(TranslateError, match=rf"spot price 1: field '{field}'"):
        parse_spot_prices([price_item(), price_item(**overrides)])


# -- instances -------------------------------------------------------------------------------------------
def instance_item(**overrides: Any) -> dict[str, Any]:
    """An instance as botocore returns it from DescribeInstances (the fields we read, and some we do not)."""
    item = {
        "InstanceId": "i-0123456789abcdef0",
        "InstanceType": "p3.2xlarge",
        "Placement": {"AvailabilityZone": "us-east-1c", "Tenancy": "default"},
        "State": {"Code": 16, "Name": "running"},
        "LaunchTime": T0,
        "ImageId": "ami-0abc",
        "SubnetId": "subnet-1",
        "VpcId": "vpc-1",
        "InstanceLifecycle": "spot",
        "SecurityGroups": [{"GroupId": "sg-2", "GroupName": "b"}, {"GroupId": "sg-1", "GroupName": "a"}],
        "IamInstanceProfile": {"Arn": "arn:aws:iam::123456789012:instance-profile/ml", "Id": "AIPA"},
        "KeyName": "ops",
        "PlatformDetails": "Red Hat Enterprise Linux",
        "Tags": [
            {"Key": "team", "Value": "ml"},
            {"Key": "aws:ec2launchtemplate:id", "Value": "lt-0abc"},
            {"Key": "aws:ec2launchtemplate:version", "Value": "3"},
            {"Key": "aws:autoscaling:groupName", "Value": "trainers"},
        ],
    }
    return {**item, **overrides}


def test_an_instance_carries_its_launch_template_group_and_product() -> None:
    [found] = parse_instances([{"ReservationId": "r-1", "Instances": [instance_item()]}])
    assert found.lifecycle == Lifecycle.SPOT == "spot"
    assert (found.launch_template_id, found.launch_template_version) == ("lt-0abc", "3")
    assert found.auto_scaling_group == "trainers"
    assert found.product_description == "Red Hat Enterprise Linux"
    assert found.security_group_ids == ("sg-2", "sg-1")
    assert found.iam_instance_profile_arn == "arn:aws:iam::123456789012:instance-profile/ml"
    assert found.tags[0] == ("aws:autoscaling:groupName", "trainers")  # sorted by key
    assert (found.availability_zone, found.state, found.launch_time_s) == ("us-east-1c", "running", T0.timestamp())


def test_an_instance_without_optional_fields_is_on_demand_linux() -> None:
    bare = {key: value for key, value in instance_item().items()
            if key in {"InstanceId", "InstanceType", "Placement", "State", "LaunchTime"}}
    [found] = parse_instances([{"Instances": [bare]}])
    assert found.lifecycle == Lifecycle.ON_DEMAND
    assert found.product_description == "Linux/UNIX"
    assert (found.subnet_id, found.image_id, found.launch_template_id, found.key_name) == (None, None, None, None)
    assert (found.tags, found.security_group_ids) == ((), ())


def test_instances_of_every_reservation_are_returned() -> None:
    reservations = [{"Instances": [instance_item(InstanceId="i-1"), instance_item(InstanceId="i-2")]},
                    {"Instances": []}, {"Instances": [instance_item(InstanceId="i-3")]}]
    assert [i.instance_id for i in parse_instances(reservations)] == ["i-1", "i-2", "i-3"]


def test_an_instance_without_a_zone_names_reservation_instance_and_field() -> None:
    broken = instance_item(Placement={"Tenancy": "default"})
    with pytest.raises(TranslateError, match=r"reservation 1: instance 0: Placement: field 'AvailabilityZone'"):
        parse_instances([{"Instances": [instance_item()]}, {"Instances": [broken]}])


@pytest.mark.parametrize(("details", "platform", "product"), [
    ("Linux/UNIX", None, "Linux/UNIX"),
    ("Windows", "windows", "Windows"),
    ("Windows with SQL Server Standard", "windows", "Windows"),
    ("Windows BYOL", "windows", "Linux/UNIX"),
    ("Red Hat Enterprise Linux with HA", None, "Red Hat Enterprise Linux"),
    ("Red Hat BYOL Linux", None, "Linux/UNIX"),
    ("SUSE Linux", None, "SUSE Linux"),
    ("Ubuntu Pro", None, "Linux/UNIX"),
    (None, "windows", "Windows"),
    (None, None, "Linux/UNIX"),
])
def test_platform_details_map_to_the_spot_price_product(details: str | None, platform: str | None,
                                                        product: str) -> None:
    assert product_of_platform(details, platform) == product


# -- queue messages and events ---------------------------------------------------------------------------
def event(detail_type: str, detail: dict[str, Any], **overrides: Any) -> str:
    doc = {"version": "0", "id": "7bf73129-1428-4cd3-a780-95db273d1602", "detail-type": detail_type,
           "source": "aws.ec2", "account": "123456789012", "time": "2023-02-15T12:00:00Z", "region": "us-east-2",
           "resources": ["arn:aws:ec2:us-east-2:123456789012:instance/i-1234567890abcdef0"], "detail": detail}
    return json.dumps({**doc, **overrides})


def test_a_spot_interruption_warning_becomes_a_notice() -> None:
    notice = parse_event(event("EC2 Spot Instance Interruption Warning",
                               {"instance-id": "i-1234567890abcdef0", "instance-action": "terminate"}))
    assert notice == InterruptionNotice(
        kind=NoticeKind.SPOT_INTERRUPTION, instance_id="i-1234567890abcdef0", region="us-east-2",
        at_s=dt.datetime(2023, 2, 15, 12, tzinfo=dt.UTC).timestamp(), state=None, action="terminate",
        message_id="7bf73129-1428-4cd3-a780-95db273d1602",
    )


def test_rebalance_and_state_change_events_become_notices() -> None:
    rebalance = parse_event(event("EC2 Instance Rebalance Recommendation", {"instance-id": "i-1"}))
    change = parse_event(event("EC2 Instance State-change Notification", {"instance-id": "i-2", "state": "stopping"}))
    assert (rebalance.kind, rebalance.instance_id, rebalance.state, rebalance.action) == (
        "rebalance", "i-1", None, None)
    assert (change.kind, change.instance_id, change.state) == ("state_change", "i-2", "stopping")


def test_an_event_inside_an_sns_envelope_is_unwrapped() -> None:
    inner = event("EC2 Instance Rebalance Recommendation", {"instance-id": "i-9"})
    envelope = json.dumps({"Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:us-east-2:1:t",
                           "Message": inner, "Timestamp": "2023-02-15T12:00:01.000Z"})
    assert parse_event(envelope) == parse_event(inner)


@pytest.mark.parametrize(("body", "message"), [
    (event("EC2 Spot Instance Interruption Warning", {"instance-action": "terminate"}),
     "field 'detail.instance-id' missing"),
    (event("EC2 Instance State-change Notification", {"instance-id": "i-1"}), "field 'detail.state' missing"),
    (event("EC2 Instance Rebalance Recommendation", {"instance-id": 7}), "field 'detail.instance-id' is not text"),
    (event("EC2 Instance Rebalance Recommendation", {"instance-id": "i-1"}, time="noon"), "field 'time'"),
    (event("EC2 Instance Rebalance Recommendation", {"instance-id": "i-1"}, region=None), "field 'region' missing"),
    (event("AWS API Call via CloudTrail", {}), "field 'detail-type'"),
    (event("EC2 Instance Rebalance Recommendation", []), "field 'detail' is not an object"),
    (json.dumps({"Type": "Notification", "Message": "{"}), "field 'Message' is not JSON"),
    ("[1, 2]", "not a JSON object"),
    ("not json", "body is not JSON"),
    ("[" * 100_000, "body is not JSON"),
])
def test_a_message_that_is_not_an_event_names_the_field(body: str, message: str) -> None:
    with pytest.raises(MalformedMessage, match=message):
        parse_event(body)


def _parses_or_is_malformed(body: str) -> None:
    try:
        assert isinstance(parse_event(body), InterruptionNotice)
    except MalformedMessage:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
event_like = st.fixed_dictionaries(
    {"detail-type": st.sampled_from(["EC2 Spot Instance Interruption Warning", "EC2 Instance Rebalance Recommendation",
                                     "EC2 Instance State-change Notification"])},
    optional={
        "detail": st.dictionaries(st.sampled_from(["instance-id", "instance-action", "state"]), json_values)
        | json_values,
        "time": st.text(max_size=30) | st.datetimes().map(lambda d: d.isoformat()) | json_values,
        "region": json_values,
        "id": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_text_never_raises_anything_but_malformed_message(body: str) -> None:
    _parses_or_is_malformed(body)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_never_raises_anything_but_malformed_message(doc: Any) -> None:
    _parses_or_is_malformed(json.dumps(doc))


@settings(max_examples=300, deadline=None)
@given(event_like, st.booleans())
def test_event_shaped_json_never_raises_anything_but_malformed_message(doc: dict[str, Any], wrapped: bool) -> None:
    body = json.dumps(doc)
    _parses_or_is_malformed(json.dumps({"Type": "Notification", "Message": body}) if wrapped else body)


def test_queue_messages_carry_their_receive_count() -> None:
    response = {"Messages": [
        {"MessageId": "m-1", "ReceiptHandle": "h-1", "Body": "{}", "Attributes": {"ApproximateReceiveCount": "3"}},
        {"MessageId": "m-2", "ReceiptHandle": "h-2", "Body": "x"},
    ]}
    assert [(m.message_id, m.receipt_handle, m.body, m.receive_count) for m in parse_messages(response)] == [
        ("m-1", "h-1", "{}", 3), ("m-2", "h-2", "x", 1)]
    assert parse_messages({}) == []


# -- launches --------------------------------------------------------------------------------------------
def launch(**overrides: Any) -> LaunchRequest:
    fields: dict[str, Any] = {"client_token": "spot-opt-0123456789abcdef", "instance_type": "p3.2xlarge",
                              "subnet_id": "subnet-1", "spot": True, "image_id": "ami-0abc"}
    return LaunchRequest(**{**fields, **overrides})


EC2_MODEL = botocore.session.get_session().get_service_model("ec2")
RUN_INSTANCES_INPUT = EC2_MODEL.operation_model("RunInstances").input_shape


def test_a_spot_launch_asks_for_a_one_time_spot_instance_that_terminates() -> None:
    params = run_instances_params(launch(security_group_ids=("sg-1",), key_name="ops", tags=(("team", "ml"),),
                                         iam_instance_profile_arn="arn:aws:iam::1:instance-profile/p"), dry_run=False)
    assert params == {
        "MinCount": 1, "MaxCount": 1, "ClientToken": "spot-opt-0123456789abcdef", "SubnetId": "subnet-1",
        "InstanceType": "p3.2xlarge", "DryRun": False, "ImageId": "ami-0abc", "SecurityGroupIds": ["sg-1"],
        "IamInstanceProfile": {"Arn": "arn:aws:iam::1:instance-profile/p"}, "KeyName": "ops",
        "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "team", "Value": "ml"}]}],
        "InstanceMarketOptions": {"MarketType": "spot", "SpotOptions": {
            "SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"}},
    }
    validate_parameters(params, RUN_INSTANCES_INPUT)  # botocore's own model accepts it


def test_an_on_demand_launch_from_a_template_leaves_out_what_it_does_not_set() -> None:
    params = run_instances_params(launch(spot=False, image_id=None, launch_template_id="lt-0abc"), dry_run=True)
    assert params["LaunchTemplate"] == {"LaunchTemplateId": "lt-0abc", "Version": "$Default"}
    assert params["DryRun"] is True
    assert not {"ImageId", "InstanceMarketOptions", "SecurityGroupIds", "IamInstanceProfile", "KeyName",
                "TagSpecifications"} & params.keys()
    validate_parameters(params, RUN_INSTANCES_INPUT)


def test_a_template_version_is_kept_and_reserved_tags_are_not_copied() -> None:
    params = run_instances_params(launch(launch_template_id="lt-1", launch_template_version="7",
                                         tags=(("aws:ec2launchtemplate:id", "lt-1"), ("env", "prod"))), dry_run=False)
    assert params["LaunchTemplate"]["Version"] == "7"
    assert params["TagSpecifications"][0]["Tags"] == [{"Key": "env", "Value": "prod"}]


def test_botocore_refuses_a_launch_shape_it_does_not_know() -> None:
    # The check above would pass anything if the model lookup were wrong.
    with pytest.raises(ParamValidationError):
        validate_parameters({**run_instances_params(launch(), dry_run=False), "Spot": True}, RUN_INSTANCES_INPUT)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"client_token": "x" * 65}, "client_token"),
    ({"client_token": "tökén"}, "client_token"),
    ({"client_token": ""}, "client_token"),
    ({"image_id": None}, "image_id or launch_template_id"),
])
def test_a_launch_request_aws_would_refuse_is_refused_here(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        launch(**overrides)


def test_a_64_character_client_token_is_accepted() -> None:
    assert run_instances_params(launch(client_token="x" * 64), dry_run=False)["ClientToken"] == "x" * 64


@pytest.mark.parametrize(("text", "expected"), [
    ("spot-optimizer=managed", ("spot-optimizer", "managed")),
    (" team = ml ", ("team", "ml")),
    ("k=a=b", ("k", "a=b")),
])
def test_a_managed_tag_is_split_at_the_first_equals(text: str, expected: tuple[str, str]) -> None:
    assert tag_filter(text) == expected


@pytest.mark.parametrize("text", ["managed", "=x", "key=", ""])
def test_a_malformed_managed_tag_names_the_setting(text: str) -> None:
    with pytest.raises(ValueError, match="managed_tag"):
        tag_filter(text)


# -- errors ----------------------------------------------------------------------------------------------
def client_error(code: str, status: int, message: str = "boom") -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "RunInstances")


@pytest.mark.parametrize(("code", "status", "kind"), [
    ("RequestLimitExceeded", 503, ThrottledError),
    ("Throttling", 400, ThrottledError),
    ("ThrottlingException", 400, ThrottledError),
    ("TooManyRequestsException", 429, ThrottledError),
    ("SlowDown", 503, ThrottledError),
    ("InternalError", 500, ThrottledError),
    ("Unavailable", 503, ThrottledError),
    ("InsufficientInstanceCapacity", 500, CapacityError),
    ("MaxSpotInstanceCountExceeded", 400, CapacityError),
    ("SpotMaxPriceTooLow", 400, CapacityError),
    ("Unsupported", 400, CapacityError),
    ("InsufficientFreeAddressesInSubnet", 400, CapacityError),
    ("AuthFailure", 401, CredentialsError),
    ("UnauthorizedOperation", 403, CredentialsError),
    ("ExpiredToken", 400, CredentialsError),
    ("InvalidClientTokenId", 403, CredentialsError),
    ("SignatureDoesNotMatch", 403, CredentialsError),
    ("InvalidParameterValue", 400, AwsError),
    ("DryRunOperation", 412, AwsError),
])
def test_client_errors_are_classified_by_code_then_status(code: str, status: int, kind: type[AwsError]) -> None:
    error = classify(client_error(code, status), "RunInstances")
    assert type(error) is kind
    assert (error.code, error.operation, str(error)) == (code, "RunInstances", f"RunInstances: {code}: boom")


@pytest.mark.parametrize(("exc", "kind"), [
    (EndpointConnectionError(endpoint_url="https://ec2.us-east-1.amazonaws.com"), ThrottledError),
    (ConnectTimeoutError(endpoint_url="https://ec2.us-east-1.amazonaws.com"), ThrottledError),
    (ReadTimeoutError(endpoint_url="https://ec2.us-east-1.amazonaws.com"), ThrottledError),
    (NoCredentialsError(), CredentialsError),
    (PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"), CredentialsError),
    (RuntimeError("surprise"), AwsError),
])
def test_botocore_exceptions_are_classified(exc: Exception, kind: type[AwsError]) -> None:
    error = classify(exc, "DescribeInstances")
    assert type(error) is kind
    assert error.code == type(exc).__name__


def test_an_error_already_classified_is_kept() -> None:
    error = CapacityError("InsufficientInstanceCapacity", "RunInstances", "none left")
    assert classify(error, "Other") is error


def test_error_messages_never_carry_credentials() -> None:
    message = ("The request signature we calculated does not match. Credential=ASIAQWERTYUIOPASDFGH/20230215 "
               "x-amz-security-token: IQoJb3JpZ2luX2VjEXAMPLE\n\nThe Canonical String for this request should "
               "have been\n'POST\n/\n\nhost:ec2.amazonaws.com\nx-amz-security-token:IQoJb3JpZ2luX2VjEXAMPLE'")
    error = classify(client_error("SignatureDoesNotMatch", 403, message), "DescribeInstances")
    assert "ASIAQWERTYUIOPASDFGH" not in str(error)
    assert "IQoJb3JpZ2luX2VjEXAMPLE" not in str(error)
    assert "Canonical" not in error.message
    assert len(redact("x" * 10_000)) < 600


def test_errors_survive_pickling_as_they_cross_ray_processes() -> None:
    error = CapacityError("InsufficientInstanceCapacity", "RunInstances", "none left")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is CapacityError
    assert (copy.code, copy.operation, copy.message, str(copy)) == (
        error.code, error.operation, error.message, str(error))
