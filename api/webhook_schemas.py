"""Request and response bodies of the webhook routes (``api/routes/webhooks.py``).

Beside ``api/schemas.py`` rather than in it, so the webhook bodies change without touching the shared
module; they follow its conventions (``Strict`` bodies, bounded strings, the failing field named).
"""

from __future__ import annotations

import enum
import ipaddress
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator

from api.schemas import Strict


class WebhookEvent(enum.StrEnum):
    INTERRUPTION = "interruption"  # a decision whose rule is ``interrupted``
    FALLBACK = "fallback"  # a decision whose action is ``fallback_on_demand``
    EXECUTION_FAILURE = "execution_failure"  # an executor step that failed (an ``alerts`` event)
    DAILY_REPORT = "daily_report"  # a region's savings report, once a UTC day of its tick time is over


WEBHOOK_URL_MAX_LEN = 2048


class WebhookIn(Strict):
    url: str = Field(max_length=WEBHOOK_URL_MAX_LEN, examples=["https://hooks.example.com/spot"],
                     description="http(s) URL the events are POSTed to")
    events: list[WebhookEvent] = Field(min_length=1, max_length=len(WebhookEvent), examples=[["fallback"]])

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
            raise ValueError("must be an http(s) URL without spaces or control characters")
        try:
            url.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must be valid UTF-8 text") from None
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018  (a bad port raises here)
        except ValueError as exc:
            raise ValueError(f"is not a valid URL: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        try:
            address = ipaddress.ip_address(parts.hostname)
        except ValueError:
            return url  # a name: resolved when delivering
        if address.is_link_local or address.is_multicast or address.is_unspecified:
            raise ValueError(f"must not point at a link-local, multicast or unspecified address ({address}): "
                             "a cloud's instance metadata lives there")
        return url

    @field_validator("events")
    @classmethod
    def _distinct(cls, events: list[WebhookEvent]) -> list[WebhookEvent]:
        return list(dict.fromkeys(events))


class WebhookOut(BaseModel):
    id: str = Field(examples=["wh_3f9a0c1d2e4b"])
    account: str
    url: str
    events: list[str]
    created_at_s: float
    secret: str | None = Field(default=None, description="the signing secret: in the answer to POST only")


class WebhooksOut(BaseModel):
    webhooks: list[WebhookOut]


class DeliveryOut(BaseModel):
    id: int
    event: str
    idempotency_key: str
    status: str = Field(examples=["pending"], description="pending, delivered, failed (gave up) or cancelled")
    attempts: int
    last_status_code: int | None = None
    last_error: str | None = None
    next_attempt_at_s: float | None = Field(default=None, description="the next retry (pending only)")
    last_attempt_at_s: float | None = None
    delivered_at_s: float | None = None
    created_at_s: float


class DeliveriesOut(BaseModel):
    deliveries: list[DeliveryOut]
    next_before: int | None = Field(default=None, description="pass as ``before`` for the next page")
