"""Starts the webhook consumer (``actors/notify/dispatcher.py``) beside the API, from the settings, with
the savings report (``actors/store/reports.py``, shaped as ``GET .../reports/savings`` answers) as the
body of ``daily_report`` deliveries."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from actors.notify.dispatcher import DispatchSettings, WebhookDispatcher
from actors.notify.retry import RetryPolicy
from actors.store import Store
from actors.store.webhooks import Webhooks
from api.report_schemas import iso_utc, savings_report
from api.settings import Settings
from engine.report_period import Granularity, Period


def dispatch_settings(settings: Settings) -> DispatchSettings:
    retry = RetryPolicy(base_s=settings.webhook_retry_base_s,
                        max_delay_s=max(settings.webhook_retry_max_s, settings.webhook_retry_base_s),
                        max_attempts=settings.webhook_max_attempts)
    return DispatchSettings(poll_s=settings.webhook_poll_s, timeout_s=settings.webhook_timeout_s,
                            concurrency=settings.webhook_concurrency, retry=retry)


async def daily_savings(store: Store, account: str, region: str, start_s: float, end_s: float) -> dict[str, Any]:
    """One stream's savings report for one UTC day: ``{"report": <the body of GET /api/v1/accounts/{account}
    /reports/savings?period=<day>&region=<region>>}``."""
    day = Period(iso_utc(start_s)[:10], start_s, end_s)
    body = await savings_report(store, account, [region], day, Granularity.DAILY)
    return {"report": body.model_dump(mode="json")}


def start_webhooks(store: Store, settings: Settings, stop: asyncio.Event) -> list[asyncio.Task[Any]]:
    """The consumer's task (none when ``webhooks_enabled`` is off); it runs until ``stop`` is set."""
    if not settings.webhooks_enabled:
        return []
    dispatcher = WebhookDispatcher(Webhooks(store.engine), dispatch_settings(settings),
                                   daily_report=functools.partial(daily_savings, store))
    return [asyncio.create_task(dispatcher.run(stop), name="webhooks")]
