"""AWS responses in, plain typed values out (and our launch requests out as RunInstances arguments).

Pure functions, no I/O, so the shapes AWS answers with are tested without a cloud. A response that does
not have the shape we rely on raises :class:`TranslateError` (an SQS message that is not an event we
know raises :class:`MalformedMessage`) naming the item and the field: a silently skipped price or
instance would make the optimizer decide on a market or a fleet that does not exist.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.price_history import parse_timestamp_s

VPC_SUFFIX = " (Amazon VPC)"
LAUNCH_TEMPLATE_ID_TAG = "aws:ec2launchtemplate:id"
LAUNCH_TEMPLATE_VERSION_TAG = "aws:ec2launchtemplate:version"
AUTO_SCALING_GROUP_TAG = "aws:autoscaling:groupName"
RESERVED_TAG_PREFIX = "aws:"
MAX_CLIENT_TOKEN_CHARS = 64


class TranslateError(ValueError):
    """An AWS response without the shape we rely on; the message names the item and the field."""


class MalformedMessage(ValueError):
    """A queue message that is not an EC2 event we understand; the message names the field."""


class Lifecycle(enum.StrEnum):
    SPOT = "spot"
    ON_DEMAND = "on_demand"


class NoticeKind(enum.StrEnum):
    SPOT_INTERRUPTION = "spot_interruption"
    REBALANCE = "rebalance"
    STATE_CHANGE = "state_change"


@dataclass(frozen=True, slots=True)
class SpotPrice:
    instance_type: str
    availability_zone: str
    product_description: str  # without " (Amazon VPC)": both names price the same instances
    price_usd_per_hour: float
    timestamp_s: float


@dataclass(frozen=True, slots=True)
class DiscoveredInstance:
    instance_id: str
    instance_type: str
    availability_zone: str
    subnet_id: str | None
    vpc_id: str | None
    lifecycle: Lifecycle
    state: str
    launch_time_s: float
    image_id: str | None
    launch_template_id: str | None
    launch_template_version: str | None
    security_group_ids: tuple[str, ...]
    iam_instance_profile_arn: str | None
    key_name: str | None
    tags: tuple[tuple[str, str], ...]  # sorted by key
    auto_scaling_group: str | None
    product_description: str  # the spot price history product this instance pays


@dataclass(frozen=True, slots=True)
class InterruptionNotice:
    kind: NoticeKind
    instance_id: str
    region: str
    at_s: float
    state: str | None  # state_change only
    action: str | None  # spot_interruption only: "terminate", "stop" or "hibernate"
    message_id: str | None  # the EventBridge event id: the same event may be delivered twice


@dataclass(frozen=True, slots=True)
class QueueMessage:
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    """One instance to launch. ``client_token`` makes the launch idempotent: AWS launches at most one
    instance per token, so a retried or repeated request cannot double the fleet. AWS allows at most 64
    ASCII characters; anything longer is refused here rather than by AWS mid-replacement."""

    client_token: str
    instance_type: str
    subnet_id: str
    spot: bool
    image_id: str | None = None
    launch_template_id: str | None = None
    launch_template_version: str | None = None
    security_group_ids: tuple[str, ...] = ()
    iam_instance_profile_arn: str | None = None
    key_name: str | None = None
    tags: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        token = self.client_token
        if not token or len(token) > MAX_CLIENT_TOKEN_CHARS or not token.isascii():
            raise ValueError(f"client_token must be 1-{MAX_CLIENT_TOKEN_CHARS} ASCII characters, got {token!r}")
        if self.image_id is None and self.launch_template_id is None:
            raise ValueError("image_id or launch_template_id is required")


def _epoch_s(value: Any) -> float:
    if isinstance(value, dt.datetime):
        stamp = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return stamp.timestamp()
    if isinstance(value, str):
        return parse_timestamp_s(value)
    raise ValueError(f"{value!r} is neither a datetime nor an ISO-8601 string")


def normalize_product(description: str) -> str:
    """The product name without the EC2-Classic era's VPC suffix.

    >>> normalize_product("Linux/UNIX (Amazon VPC)")
    'Linux/UNIX'
    """
    return description.removesuffix(VPC_SUFFIX)


def _field(item: Mapping[str, Any], name: str, where: str) -> Any:
    value = item.get(name) if isinstance(item, Mapping) else None
    if value is None or value == "":
        raise TranslateError(f"{where}: field {name!r} missing")
    return value


def parse_spot_prices(items: Iterable[Mapping[str, Any]]) -> list[SpotPrice]:
    """``SpotPriceHistory`` items -> prices, in the order given.

    >>> import datetime as dt
    >>> parse_spot_prices([{"InstanceType": "p3.2xlarge", "AvailabilityZone": "us-east-1a",
    ...     "ProductDescription": "Linux/UNIX (Amazon VPC)", "SpotPrice": "0.918000",
    ...     "Timestamp": dt.datetime(2023, 2, 15, tzinfo=dt.UTC)}])
    [SpotPrice(instance_type='p3.2xlarge', availability_zone='us-east-1a', product_description='Linux/UNIX', \
price_usd_per_hour=0.918, timestamp_s=1676419200.0)]
    """
    prices = []
    for index, item in enumerate(items):
        where = f"spot price {index}"
        raw_price = _field(item, "SpotPrice", where)
        try:
            price = float(raw_price)
        except (TypeError, ValueError):
            raise TranslateError(f"{where}: field 'SpotPrice' {raw_price!r} is not a number") from None
        if not math.isfinite(price) or price < 0:
            raise TranslateError(f"{where}: field 'SpotPrice' {raw_price!r} is not a price")
        try:
            timestamp_s = _epoch_s(_field(item, "Timestamp", where))
        except ValueError as exc:
            raise TranslateError(f"{where}: field 'Timestamp': {exc}") from None
        prices.append(SpotPrice(
            instance_type=str(_field(item, "InstanceType", where)),
            availability_zone=str(_field(item, "AvailabilityZone", where)),
            product_description=normalize_product(str(item.get("ProductDescription") or "Linux/UNIX")),
            price_usd_per_hour=price,
            timestamp_s=timestamp_s,
        ))
    return prices


def product_of_platform(platform_details: str | None, platform: str | None = None) -> str:
    """The spot price product an instance pays, from its ``PlatformDetails``. BYOL images pay the
    Linux/UNIX rate; Ubuntu Pro and other Linux flavours are priced as Linux/UNIX on the spot market.

    >>> product_of_platform("Red Hat Enterprise Linux with HA")
    'Red Hat Enterprise Linux'
    >>> product_of_platform("Windows BYOL")
    'Linux/UNIX'
    >>> product_of_platform(None, "windows")
    'Windows'
    """
    details = platform_details or ("Windows" if (platform or "").lower() == "windows" else "")
    if "BYOL" in details:
        return "Linux/UNIX"
    for prefix, product in (("Windows", "Windows"), ("Red Hat", "Red Hat Enterprise Linux"), ("SUSE", "SUSE Linux")):
        if details.startswith(prefix):
            return product
    return "Linux/UNIX"


def _instance(item: Mapping[str, Any], where: str) -> DiscoveredInstance:
    tags = dict(sorted(
        (str(tag["Key"]), str(tag.get("Value", ""))) for tag in item.get("Tags") or () if "Key" in tag
    ))
    placement = _field(item, "Placement", where)
    try:
        launch_time_s = _epoch_s(_field(item, "LaunchTime", where))
    except ValueError as exc:
        raise TranslateError(f"{where}: field 'LaunchTime': {exc}") from None
    profile = item.get("IamInstanceProfile") or {}
    return DiscoveredInstance(
        instance_id=str(_field(item, "InstanceId", where)),
        instance_type=str(_field(item, "InstanceType", where)),
        availability_zone=str(_field(placement, "AvailabilityZone", f"{where}: Placement")),
        subnet_id=item.get("SubnetId") or None,
        vpc_id=item.get("VpcId") or None,
        lifecycle=Lifecycle.SPOT if item.get("InstanceLifecycle") == "spot" else Lifecycle.ON_DEMAND,
        state=str(_field(_field(item, "State", where), "Name", f"{where}: State")),
        launch_time_s=launch_time_s,
        image_id=item.get("ImageId") or None,
        launch_template_id=tags.get(LAUNCH_TEMPLATE_ID_TAG),
        launch_template_version=tags.get(LAUNCH_TEMPLATE_VERSION_TAG),
        security_group_ids=tuple(str(group["GroupId"]) for group in item.get("SecurityGroups") or ()),
        iam_instance_profile_arn=profile.get("Arn") or None,
        key_name=item.get("KeyName") or None,
        tags=tuple(tags.items()),
        auto_scaling_group=tags.get(AUTO_SCALING_GROUP_TAG),
        product_description=product_of_platform(item.get("PlatformDetails"), item.get("Platform")),
    )


def parse_instances(reservations: Iterable[Mapping[str, Any]]) -> list[DiscoveredInstance]:
    """``DescribeInstances`` reservations -> one :class:`DiscoveredInstance` per instance."""
    return [
        _instance(item, f"reservation {r}: instance {i}")
        for r, reservation in enumerate(reservations)
        for i, item in enumerate(reservation.get("Instances") or ())
    ]


def parse_instance_types(items: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``DescribeInstanceTypes`` items -> ``{name: {"vcpus", "memory_mib", "architectures"}}``."""
    facts = {}
    for index, item in enumerate(items):
        where = f"instance type {index}"
        facts[str(_field(item, "InstanceType", where))] = {
            "vcpus": int(_field(_field(item, "VCpuInfo", where), "DefaultVCpus", f"{where}: VCpuInfo")),
            "memory_mib": int(_field(_field(item, "MemoryInfo", where), "SizeInMiB", f"{where}: MemoryInfo")),
            "architectures": tuple((item.get("ProcessorInfo") or {}).get("SupportedArchitectures") or ()),
        }
    return facts


def parse_messages(response: Mapping[str, Any]) -> list[QueueMessage]:
    """An SQS ``ReceiveMessage`` response -> messages (``ApproximateReceiveCount`` 1 when absent)."""
    messages = []
    for index, item in enumerate(response.get("Messages") or ()):
        where = f"message {index}"
        count = (item.get("Attributes") or {}).get("ApproximateReceiveCount", "1")
        messages.append(QueueMessage(
            message_id=str(_field(item, "MessageId", where)),
            receipt_handle=str(_field(item, "ReceiptHandle", where)),
            body=str(item.get("Body") or ""),
            receive_count=int(count),
        ))
    return messages


_KINDS: Mapping[str, NoticeKind] = {
    "EC2 Spot Instance Interruption Warning": NoticeKind.SPOT_INTERRUPTION,
    "EC2 Instance Rebalance Recommendation": NoticeKind.REBALANCE,
    "EC2 Instance State-change Notification": NoticeKind.STATE_CHANGE,
}


def _json_object(text: Any, what: str) -> dict[str, Any]:
    if not isinstance(text, str):
        raise MalformedMessage(f"{what} is not text")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        raise MalformedMessage(f"{what} is not JSON") from None
    if not isinstance(doc, dict):
        raise MalformedMessage(f"{what} is not a JSON object")
    return doc


def _text(doc: Mapping[str, Any], name: str, *, required: bool = True, prefix: str = "") -> str | None:
    value = doc.get(name)
    if value is None and not required:
        return None
    if value is None:
        raise MalformedMessage(f"field '{prefix}{name}' missing")
    if not isinstance(value, str) or not value:
        raise MalformedMessage(f"field '{prefix}{name}' is not text")
    return value


def parse_event(body: str) -> InterruptionNotice:
    """An EC2 EventBridge event delivered to SQS (directly or inside an SNS envelope) -> a notice.

    >>> parse_event('{"id": "e1", "detail-type": "EC2 Spot Instance Interruption Warning",'
    ...     ' "region": "us-east-1", "time": "2023-02-15T00:00:00Z",'
    ...     ' "detail": {"instance-id": "i-0abc", "instance-action": "terminate"}}').action
    'terminate'
    """
    doc = _json_object(body, "body")
    if doc.get("Type") == "Notification" and "Message" in doc:
        doc = _json_object(doc["Message"], "field 'Message'")
    detail_type = _text(doc, "detail-type")
    kind = _KINDS.get(detail_type or "")
    if kind is None:
        raise MalformedMessage(f"field 'detail-type' {detail_type!r} is not an EC2 instance event")
    detail = doc.get("detail")
    if not isinstance(detail, dict):
        raise MalformedMessage("field 'detail' missing" if detail is None else "field 'detail' is not an object")
    time_text = _text(doc, "time") or ""
    try:
        at_s = parse_timestamp_s(time_text)
    except (ValueError, OverflowError, OSError):
        raise MalformedMessage(f"field 'time' {time_text!r} is not an ISO-8601 time") from None
    event_id = doc.get("id")
    return InterruptionNotice(
        kind=kind,
        instance_id=_text(detail, "instance-id", prefix="detail.") or "",
        region=_text(doc, "region") or "",
        at_s=at_s,
        state=_text(detail, "state", prefix="detail.") if kind is NoticeKind.STATE_CHANGE else None,
        action=(
            _text(detail, "instance-action", required=False, prefix="detail.")
            if kind is NoticeKind.SPOT_INTERRUPTION else None
        ),
        message_id=event_id if isinstance(event_id, str) and event_id else None,
    )


def run_instances_params(req: LaunchRequest, dry_run: bool) -> dict[str, Any]:
    """``RunInstances`` keyword arguments for one instance. Tags under the reserved ``aws:`` prefix are
    left out: AWS sets those itself (launch template, auto scaling group) and refuses them from us, and
    they arrive whenever a discovered instance's tags are copied onto its replacement.

    >>> params = run_instances_params(LaunchRequest("tok-1", "p3.2xlarge", "subnet-1", True, "ami-1",
    ...     tags=(("team", "ml"), ("aws:autoscaling:groupName", "g"))), dry_run=False)
    >>> params["InstanceMarketOptions"]["MarketType"], params["TagSpecifications"][0]["Tags"]
    ('spot', [{'Key': 'team', 'Value': 'ml'}])
    """
    params: dict[str, Any] = {
        "MinCount": 1,
        "MaxCount": 1,
        "ClientToken": req.client_token,
        "SubnetId": req.subnet_id,
        "InstanceType": req.instance_type,
        "DryRun": dry_run,
    }
    if req.image_id is not None:
        params["ImageId"] = req.image_id
    if req.launch_template_id is not None:
        params["LaunchTemplate"] = {
            "LaunchTemplateId": req.launch_template_id,
            "Version": req.launch_template_version or "$Default",
        }
    if req.security_group_ids:
        params["SecurityGroupIds"] = list(req.security_group_ids)
    if req.iam_instance_profile_arn is not None:
        params["IamInstanceProfile"] = {"Arn": req.iam_instance_profile_arn}
    if req.key_name is not None:
        params["KeyName"] = req.key_name
    tags = [{"Key": key, "Value": value} for key, value in req.tags if not key.startswith(RESERVED_TAG_PREFIX)]
    if tags:
        params["TagSpecifications"] = [{"ResourceType": "instance", "Tags": tags}]
    if req.spot:
        params["InstanceMarketOptions"] = {
            "MarketType": "spot",
            "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
        }
    return params


def tag_filter(managed_tag: str) -> tuple[str, str]:
    """``"key=value"`` -> ``(key, value)``; the value may itself contain ``=``.

    >>> tag_filter("spot-optimizer/managed=true")
    ('spot-optimizer/managed', 'true')
    """
    key, sep, value = managed_tag.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise ValueError(f"managed_tag must look like 'key=value', got {managed_tag!r}")
    return key.strip(), value.strip()
