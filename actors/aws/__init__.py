"""The AWS adapter: the one place that owns aioboto3 clients, calls AWS, classifies its errors and
translates its answers into plain typed values (see ``session``, ``gateway``, ``errors``, ``translate``)."""

from actors.aws.errors import AwsError, CapacityError, CredentialsError, ThrottledError, classify
from actors.aws.gateway import AwsGateway
from actors.aws.session import AwsAccess, AwsSessions
from actors.aws.translate import (
    DiscoveredInstance,
    InterruptionNotice,
    LaunchRequest,
    Lifecycle,
    MalformedMessage,
    NoticeKind,
    QueueMessage,
    SpotPrice,
    TranslateError,
    parse_event,
    parse_instances,
    parse_spot_prices,
    run_instances_params,
    tag_filter,
)

__all__ = [
    "AwsAccess",
    "AwsError",
    "AwsGateway",
    "AwsSessions",
    "CapacityError",
    "CredentialsError",
    "DiscoveredInstance",
    "InterruptionNotice",
    "LaunchRequest",
    "Lifecycle",
    "MalformedMessage",
    "NoticeKind",
    "QueueMessage",
    "SpotPrice",
    "ThrottledError",
    "TranslateError",
    "classify",
    "parse_event",
    "parse_instances",
    "parse_spot_prices",
    "run_instances_params",
    "tag_filter",
]
