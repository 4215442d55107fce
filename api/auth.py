"""Who is calling: API keys per tenant, an admin key from settings, short-lived WebSocket tokens, and a
token bucket per key.

* ``Authorization: Bearer <key>``: the admin key (settings) or a tenant's API key (stored hashed).
* Browsers cannot set headers on a WebSocket, so a tenant trades its key for a token
  (``POST /api/v1/ws-tokens``) and opens ``/ws?token=...``. The token is an HMAC over (tenant, expiry)
  with a secret that lives in the app (from settings, or random per process): no database row, and it
  dies with its TTL.
* Rate limiting is a token bucket per key, in this process: ``rate_per_s`` sustained, ``burst`` at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
from collections import OrderedDict
from dataclasses import dataclass, field

ADMIN_KEY_ID = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: the admin, or one tenant (``tenant_id``); ``key_id`` is what rate limits count."""

    key_id: str
    tenant_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.tenant_id is None


def bearer(header: str | None) -> str | None:
    """The credential of an ``Authorization: Bearer <x>`` header.

    >>> bearer("Bearer abc"), bearer("bearer  abc "), bearer("Basic abc"), bearer(None)
    ('abc', 'abc', None, None)
    """
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def is_admin_key(given: str, admin_key: str | None) -> bool:
    return bool(admin_key) and hmac.compare_digest(given.encode(), (admin_key or "").encode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint_token(secret: bytes, tenant_id: str, now_s: float, ttl_s: float) -> str:
    """A signed token naming the tenant, valid until ``now_s + ttl_s``."""
    payload = _b64(json.dumps({"t": tenant_id, "exp": round(now_s + ttl_s, 3)}, separators=(",", ":")).encode())
    signature = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}"


def verify_token(secret: bytes, token: str, now_s: float) -> str | None:
    """The tenant id of a valid, unexpired token; None for anything else.

    >>> token = mint_token(b"k", "t_1", now_s=100.0, ttl_s=60.0)
    >>> verify_token(b"k", token, 159.0), verify_token(b"k", token, 161.0), verify_token(b"x", token, 120.0)
    ('t_1', None, None)
    """
    payload, _, signature = token.partition(".")
    if not payload or not signature:
        return None
    expected = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signature):
        return None
    try:
        doc = json.loads(_unb64(payload))
        tenant_id, expires_s = doc["t"], float(doc["exp"])
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(tenant_id, str) or not now_s < expires_s:
        return None
    return tenant_id


@dataclass(slots=True)
class TokenBucket:
    """``rate_per_s`` tokens per second up to ``burst``; ``take`` answers how long to wait (0: go).

    >>> bucket = TokenBucket(rate_per_s=1.0, burst=2)
    >>> [bucket.take("k", now_s=0.0) for _ in range(3)]
    [0.0, 0.0, 1.0]
    >>> bucket.take("k", now_s=1.0)
    0.0
    """

    rate_per_s: float
    burst: int
    max_keys: int = 100_000
    _state: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)

    def take(self, key: str, now_s: float) -> float:
        tokens, at_s = self._state.pop(key, (float(self.burst), now_s))
        tokens = min(float(self.burst), tokens + max(0.0, now_s - at_s) * self.rate_per_s)
        if tokens >= 1.0:
            self._state[key] = (tokens - 1.0, now_s)
            wait_s = 0.0
        else:
            self._state[key] = (tokens, now_s)
            wait_s = (1.0 - tokens) / self.rate_per_s if self.rate_per_s > 0 else math.inf
        while len(self._state) > self.max_keys:  # forget the least recently seen keys
            self._state.popitem(last=False)
        return wait_s
