"""Starts the webhook consumer (``actors/notify/dispatcher.py``) beside the API, from the settings."""

from __future__ import annotations

import asyncio
from typing import Any

from actors.notify.dispatcher import DispatchSettings, WebhookDispatcher
from actors.notify.retry import RetryPolicy
from actors.store import Store
from actors.store.webhooks import Webhooks
from api.settings import Settings


def dispatch_settings(settings: Settings) -> DispatchSettings:
    retry = RetryPolicy(base_s=settings.webhook_retry_base_s,
                        max_delay_s=max(settings.webhook_retry_max_s, settings.webhook_retry_base_s),
                        max_attempts=settings.webhook_max_attempts)
    return DispatchSettings(poll_s=settings.webhook_poll_s, timeout_s=settings.webhook_timeout_s,
                            concurrency=settings.webhook_concurrency, retry=retry)


def start_webhooks(store: Store, settings: Settings, stop: asyncio.Event) -> list[asyncio.Task[Any]]:
    """The consumer's task (none when ``webhooks_enabled`` is off); it runs until ``stop`` is set."""
    if not settings.webhooks_enabled:
        return []
    dispatcher = WebhookDispatcher(Webhooks(store.engine), dispatch_settings(settings))
    return [asyncio.create_task(dispatcher.run(stop), name="webhooks")]
