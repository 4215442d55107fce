"""What can go wrong when we talk to AWS, as four types a caller can act on.

The tree::

    AwsError                  anything else: a bad parameter, a missing resource, an unknown failure
    ├── ThrottledError        try again later: rate limits, HTTP 5xx, timeouts, dropped connections
    ├── CapacityError         AWS has no room for this launch here: try another pool, not the same one
    └── CredentialsError      nobody can fix this by retrying: missing, expired or refused credentials

Callers never see botocore's exceptions: :func:`classify` turns them into this tree, keeping the AWS
error code, the operation and a message with anything that looks like a credential removed.
"""

from __future__ import annotations

import re

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

THROTTLING_CODES = frozenset({
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
})
CAPACITY_CODES = frozenset({
    "InsufficientInstanceCapacity",
    "MaxSpotInstanceCountExceeded",
    "SpotMaxPriceTooLow",
    "InsufficientCapacity",
    "InsufficientHostCapacity",
    "InsufficientReservedInstanceCapacity",
    "Unsupported",
    "InsufficientFreeAddressesInSubnet",
})
CREDENTIALS_CODES = frozenset({
    "AuthFailure",
    "UnauthorizedOperation",
    "AccessDenied",
    "AccessDeniedException",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
})
_TRANSIENT_EXCEPTIONS = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)
_CREDENTIALS_EXCEPTIONS = (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)

# AWS echoes request details in some messages (SignatureDoesNotMatch prints the canonical request, which
# carries the session token header); access key ids and token values must never reach a log line.
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}\b")
_SECRET_HEADER = re.compile(r"(x-amz-security-token|authorization)\s*[:=]\s*\S+", re.IGNORECASE)
_ECHOED_REQUEST = re.compile(r"\s*The Canonical String for this request.*", re.DOTALL)
MAX_MESSAGE_CHARS = 500


class AwsError(Exception):
    """A failed AWS call: the AWS error ``code``, the ``operation`` that failed and a safe ``message``."""

    def __init__(self, code: str, operation: str, message: str = "") -> None:
        self.code = code
        self.operation = operation
        self.message = message
        super().__init__(f"{operation}: {code}: {message}")

    def __reduce__(self) -> tuple[type[AwsError], tuple[str, str, str]]:
        # Errors cross Ray's process boundary; the default pickling would call __init__ with one argument.
        return (type(self), (self.code, self.operation, self.message))


class ThrottledError(AwsError):
    """AWS or the network asked us to slow down or failed transiently: the same call may succeed later."""


class CapacityError(AwsError):
    """AWS cannot place this instance in this pool now: another pool (or later) may work."""


class CredentialsError(AwsError):
    """The credentials are missing, expired or not allowed to do this: retrying will not help."""


def redact(message: str) -> str:
    """``message`` without access key ids, token headers or an echoed canonical request.

    >>> redact("Credential=AKIAIOSFODNN7EXAMPLE/20230215/us-east-1 is bad")
    'Credential=[redacted]/20230215/us-east-1 is bad'
    """
    message = _ECHOED_REQUEST.sub("", message)
    message = _SECRET_HEADER.sub(lambda match: f"{match.group(1)}: [redacted]", message)
    message = _ACCESS_KEY_ID.sub("[redacted]", message)
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS] + "..."
    return message


def error_of_code(code: str, operation: str, message: str, http_status: int | None = None) -> AwsError:
    """The error class an AWS error code belongs to; an unknown code with HTTP 5xx is transient.

    The code wins over the status: EC2 answers ``InsufficientInstanceCapacity`` with HTTP 500, and that
    is a capacity problem, not a reason to hammer the same pool.

    >>> type(error_of_code("InsufficientInstanceCapacity", "RunInstances", "", 500)).__name__
    'CapacityError'
    >>> type(error_of_code("InternalError", "RunInstances", "", 500)).__name__
    'ThrottledError'
    """
    message = redact(message)
    if code in CREDENTIALS_CODES:
        return CredentialsError(code, operation, message)
    if code in CAPACITY_CODES:
        return CapacityError(code, operation, message)
    if code in THROTTLING_CODES or (http_status is not None and 500 <= http_status <= 599):
        return ThrottledError(code, operation, message)
    return AwsError(code, operation, message)


def classify(exc: BaseException, operation: str) -> AwsError:
    """The :class:`AwsError` a botocore (or any) exception stands for, raised from ``operation``."""
    if isinstance(exc, AwsError):
        return exc
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = str(error.get("Code") or (f"HTTP{status}" if status else "Unknown"))
        return error_of_code(code, operation, str(error.get("Message") or ""), status)
    if isinstance(exc, _CREDENTIALS_EXCEPTIONS):
        return CredentialsError(type(exc).__name__, operation, redact(str(exc)))
    if isinstance(exc, _TRANSIENT_EXCEPTIONS):
        return ThrottledError(type(exc).__name__, operation, redact(str(exc)))
    return AwsError(type(exc).__name__, operation, redact(str(exc)))
