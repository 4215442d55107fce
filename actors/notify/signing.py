"""How a webhook delivery is signed, and how a receiver verifies it.

The signature is HMAC-SHA256 with the webhook's secret over ``<timestamp>.<body>``: the timestamp (Unix
seconds, sent in :data:`TIMESTAMP_HEADER`) is inside the signature so a captured request cannot be replayed
later with a fresh timestamp; a receiver rejects timestamps too far from its clock. The body is signed as
the exact bytes sent, so a receiver must verify before parsing. The idempotency key
(:data:`IDEMPOTENCY_HEADER`, also the body's ``id``) is the same on every attempt of one event, so a receiver
that saw it already answers 2xx and does nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "X-Spot-Signature"
TIMESTAMP_HEADER = "X-Spot-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_HEADER = "X-Spot-Event"
DELIVERY_HEADER = "X-Spot-Delivery"
SCHEME = "v1"
SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_S = 300


def new_secret() -> str:
    """A random signing secret (256 bits), shown to the account's owner once."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The :data:`SIGNATURE_HEADER` value: ``v1=`` and the hex HMAC-SHA256 of ``<timestamp>.<body>``.

    >>> signature("whsec_test", 1700000000, b'{"a":1}')
    'v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789'
    """
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def verify(secret: str, timestamp_header: str, signature_header: str, body: bytes, now_s: float,
           tolerance_s: float = DEFAULT_TOLERANCE_S) -> bool:
    """What a receiver does: the signature matches (constant-time) and the timestamp is recent.

    >>> body = b'{"a":1}'
    >>> header = signature("s", 1000, body)
    >>> verify("s", "1000", header, body, now_s=1010), verify("s", "1000", header, b'{"a":2}', now_s=1010)
    (True, False)
    >>> verify("s", "1000", header, body, now_s=5000), verify("other", "1000", header, body, now_s=1010)
    (False, False)
    """
    try:
        timestamp = int(timestamp_header)
    except ValueError:
        return False
    if abs(now_s - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), signature_header.strip())
