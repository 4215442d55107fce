"""Webhooks of an account: create (the signing secret is in this answer only), list, remove, and each
webhook's deliveries with their status, attempts, last error and next retry.

Same tenancy as the account routes: another tenant's account, or a webhook of another account, is a 404.
Delivery itself is the consumer's (``actors/notify/dispatcher.py``); these routes only read and write rows.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from actors.store.webhooks import DELIVERY_STATUSES, Delivery, Webhook, Webhooks
from api.deps import AccountDep, RuntimeDep
from api.errors import InvalidInput, NotFound
from api.schemas import ERRORS
from api.webhook_schemas import DeliveriesOut, DeliveryOut, WebhookIn, WebhookOut, WebhooksOut

router = APIRouter(prefix="/api/v1", tags=["webhooks"], responses=ERRORS)

MAX_DELIVERIES_PAGE = 1000
WebhookId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_]{1,32}$", examples=["wh_3f9a0c1d2e4b"])]


def webhook_out(webhook: Webhook, secret: str | None = None) -> WebhookOut:
    return WebhookOut(id=webhook.id, account=webhook.account, url=webhook.url, events=list(webhook.events),
                      created_at_s=webhook.created_at_s, secret=secret)


def delivery_out(d: Delivery) -> DeliveryOut:
    return DeliveryOut(id=d.id, event=d.event, idempotency_key=d.idempotency_key, status=d.status,
                       attempts=d.attempts, last_status_code=d.last_status_code, last_error=d.last_error,
                       next_attempt_at_s=d.next_attempt_at_s, last_attempt_at_s=d.last_attempt_at_s,
                       delivered_at_s=d.delivered_at_s, created_at_s=d.created_at_s)


@router.post("/accounts/{account}/webhooks", status_code=201)
async def create_webhook(body: WebhookIn, account: AccountDep, runtime: RuntimeDep) -> WebhookOut:
    """Subscribe a URL to events of this account. The answer carries ``secret``, which signs every delivery
    (see README, "Webhooks"); it is not shown again. The webhook is owed events from now on."""
    webhook, secret = await Webhooks(runtime.store.engine).create(account.name, body.url,
                                                                  [e.value for e in body.events], time.time())
    return webhook_out(webhook, secret)


@router.get("/accounts/{account}/webhooks")
async def list_webhooks(account: AccountDep, runtime: RuntimeDep) -> WebhooksOut:
    """The account's webhooks (without their secrets)."""
    return WebhooksOut(webhooks=[webhook_out(w) for w in await Webhooks(runtime.store.engine).of_account(account.name)])


@router.delete("/accounts/{account}/webhooks/{webhook_id}", status_code=204)
async def delete_webhook(webhook_id: WebhookId, account: AccountDep, runtime: RuntimeDep) -> Response:
    """Remove a webhook; what it was still owed is cancelled."""
    if not await Webhooks(runtime.store.engine).delete(account.name, webhook_id, time.time()):
        raise NotFound(f"unknown webhook {webhook_id!r} of account {account.name!r}")
    return Response(status_code=204)


@router.get("/accounts/{account}/webhooks/{webhook_id}/deliveries")
async def list_deliveries(
    webhook_id: WebhookId, account: AccountDep, runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=MAX_DELIVERIES_PAGE)] = 100,
    before: Annotated[int | None, Query(ge=1, le=2**62, description="ids below this (the next page)")] = None,
    status: Annotated[str | None, Query(description="pending, delivered, failed or cancelled")] = None,
) -> DeliveriesOut:
    """The webhook's deliveries, newest first: status, attempts, the last answer or error, the next retry."""
    if status is not None and status not in DELIVERY_STATUSES:
        raise InvalidInput(f"query.status: {status!r} is not one of {', '.join(DELIVERY_STATUSES)}")
    webhooks = Webhooks(runtime.store.engine)
    if await webhooks.get(account.name, webhook_id) is None:
        raise NotFound(f"unknown webhook {webhook_id!r} of account {account.name!r}")
    page = await webhooks.deliveries(webhook_id, limit=limit, before=before, status=status)
    return DeliveriesOut(deliveries=[delivery_out(d) for d in page],
                         next_before=page[-1].id if len(page) == limit else None)
