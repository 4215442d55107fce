"""The webhook consumer: matches stored events to webhooks and POSTs them, signed, until each is delivered.

Where it runs, and why: it reads the **store**, not the stream host, and runs as an asyncio task beside
the API (``api/notify.py`` starts it in the runtime). The store is the one durable record of what region
actors decided (every decision and alert is stored, in the same transaction as its tick, before it is
streamed), so a consumer that reads it and keeps its cursors and deliveries in the same database resumes
after any restart with nothing skipped — the stream host's ring buffer is bounded and dies with the API
process. The region actors are untouched: they publish and store as before and never wait for a
receiver; a slow or dead receiver only holds this task's HTTP requests, each bounded by ``timeout_s``. A
task rather than another Ray actor: it needs no process of its own (the delivery work is a few queries a
second and some HTTP), and several API processes may each run one, since deliveries are claimed with a
lease (see ``actors/store/webhooks.py``); at least once, never silently dropped.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from actors.notify.matching import DAILY_REPORT, DAY_S, day_of, owed_daily_report
from actors.notify.retry import RetryPolicy
from actors.notify.signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature,
)
from actors.store.webhooks import DAILY_REPORT_TOPIC, DueDelivery, Subscriptions, Webhooks

log = logging.getLogger(__name__)

USER_AGENT = "spot-optimizer-webhooks/1"
MAX_REPORT_DAYS_PER_ROUND = 7  # a consumer that was away catches up a week per round
# (account, region, day_start_s, day_end_s) -> the day's savings report as JSON
DailyReportSource = Callable[[str, str, float, float], Awaitable[Mapping[str, Any]]]


@dataclass(frozen=True, slots=True)
class DispatchSettings:
    poll_s: float = 1.0  # how often the store is read for new events and due retries
    timeout_s: float = 10.0  # one attempt, connection to last byte
    concurrency: int = 8  # attempts in flight at once
    per_webhook: int = 2  # attempts in flight to one webhook at once
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def lease_s(self) -> float:
        """How long a claimed delivery is this consumer's: past it, it is due again (the sender died)."""
        return 2 * self.timeout_s + 5.0


class WebhookDispatcher:
    """Matches and delivers; :meth:`run` until ``stop`` is set, or call :meth:`step` (tests, tools)."""

    def __init__(self, webhooks: Webhooks, settings: DispatchSettings | None = None,
                 client: httpx.AsyncClient | None = None, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None, daily_report: DailyReportSource | None = None) -> None:
        """``daily_report``: computes a stream's report for a day; without it ``daily_report`` is not sent."""
        self.webhooks = webhooks
        self.daily_report = daily_report
        self.settings = settings or DispatchSettings()
        self._client = client
        self._owns_client = client is None
        self._clock = clock
        self._rng = rng or random.Random()
        self._inflight: set[asyncio.Task[None]] = set()
        self._per_webhook: dict[str, int] = {}
        self._slot_freed = asyncio.Event()
        self.stats = {"matched": 0, "attempts": 0, "delivered": 0, "failed_attempts": 0, "errors": 0}

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False, headers={"User-Agent": USER_AGENT})
        return self._client

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: match new events every ``poll_s``, and send what is due whenever a slot is free
        (an attempt that ends claims the next at once, so a busy webhook is not paced by the poll). A
        failing store is logged and retried, never fatal."""
        next_match = 0.0
        try:
            while not stop.is_set():
                self._slot_freed.clear()
                try:
                    if time.monotonic() >= next_match:
                        next_match = time.monotonic() + self.settings.poll_s
                        await self.match()
                    await self.deliver_due()
                except Exception:
                    self.stats["errors"] += 1
                    log.exception("webhook dispatch round failed; retrying in %.1f s", self.settings.poll_s)
                    self._slot_freed.clear()
                await _first_of(stop, self._slot_freed, max(0.0, next_match - time.monotonic()))
        finally:
            await self.close()

    async def close(self) -> None:
        """Cancel the attempts in flight (their leases run out, so they are sent again) and the client."""
        for task in self._inflight:
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)
        self._inflight.clear()
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    async def step(self) -> int:
        """One round: match new stored events, then start sending what is due. Returns the attempts started."""
        await self.match()
        return await self.deliver_due()

    async def match(self) -> int:
        """New stored events of every subscribed stream into deliveries; returns how many were added. A
        stream that fails (its report cannot be computed, say) is logged and tried again next round."""
        added = 0
        for subs in await self.webhooks.subscriptions():
            for region in subs.regions:
                try:
                    added += await self.webhooks.match_stream(subs, region, self._clock())
                    if DAILY_REPORT in subs.wanted and self.daily_report is not None:
                        added += await self._match_daily_reports(subs, region, self.daily_report)
                except Exception:
                    self.stats["errors"] += 1
                    log.exception("matching webhook events failed for account=%s region=%s", subs.account, region)
        self.stats["matched"] += added
        return added

    async def _match_daily_reports(self, subs: Subscriptions, region: str, source: DailyReportSource) -> int:
        """A report for each UTC day the stream's own clock has passed since the last one reported (tick
        time, so a replay reports its replayed days). Seen first, a stream starts with the day under way."""
        clock_s = await self.webhooks.stream_clock(subs.account, region)
        if clock_s is None:
            return 0
        last_done = day_of(clock_s) - 1
        reported = await self.webhooks.cursor(subs.account, region, DAILY_REPORT_TOPIC)
        if reported == 0:
            return await self.webhooks.owe(subs, region, DAILY_REPORT_TOPIC, [], last_done, self._clock())
        days = range(reported + 1, min(last_done, reported + MAX_REPORT_DAYS_PER_ROUND) + 1)
        if not days:
            return 0
        owed = [owed_daily_report(subs.account, region, day, await source(subs.account, region, day * DAY_S,
                                                                          (day + 1) * DAY_S))
                for day in days]
        return await self.webhooks.owe(subs, region, DAILY_REPORT_TOPIC, owed, days[-1], self._clock())

    async def deliver_due(self) -> int:
        """Start sending what is due, as far as the free slots allow (``concurrency`` in all, ``per_webhook``
        for one webhook, so a receiver that hangs holds only its own slots); returns how many started. The
        attempts run on as tasks: a slow receiver never holds up this round, nor the other webhooks."""
        self._inflight = {task for task in self._inflight if not task.done()}
        free = self.settings.concurrency - len(self._inflight)
        if free <= 0:
            return 0
        claimed = await self.webhooks.claim_due(self._clock(), self.settings.lease_s, free, self.settings.per_webhook,
                                                self._per_webhook)
        for due in claimed:
            self._per_webhook[due.webhook_id] = self._per_webhook.get(due.webhook_id, 0) + 1
            task = asyncio.create_task(self._attempt_then_free(due), name=f"webhook-delivery-{due.id}")
            self._inflight.add(task)
        return len(claimed)

    async def _attempt_then_free(self, due: DueDelivery) -> None:
        try:
            await self.attempt(due)
        except Exception:  # the store failed to record it: the lease runs out and it is sent again
            self.stats["errors"] += 1
            log.exception("recording webhook delivery %s failed", due.id)
        finally:
            left = self._per_webhook.get(due.webhook_id, 1) - 1
            if left > 0:
                self._per_webhook[due.webhook_id] = left
            else:
                self._per_webhook.pop(due.webhook_id, None)
            self._slot_freed.set()

    async def drain(self) -> None:
        """Wait for the attempts in flight (tests, and a graceful stop)."""
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        self._inflight = {task for task in self._inflight if not task.done()}

    async def attempt(self, due: DueDelivery) -> bool:
        """POST one delivery, signed now, and record the outcome; True when the receiver took it (2xx)."""
        body = due.payload.encode()
        timestamp = int(self._clock())
        headers = {"Content-Type": "application/json", EVENT_HEADER: due.event, DELIVERY_HEADER: str(due.id),
                   IDEMPOTENCY_HEADER: due.idempotency_key, TIMESTAMP_HEADER: str(timestamp),
                   SIGNATURE_HEADER: signature(due.secret, timestamp, body)}
        attempts = due.attempts + 1
        self.stats["attempts"] += 1
        status: int | None = None
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                response = await self.client.post(due.url, content=body, headers=headers,
                                                   timeout=self.settings.timeout_s)
            status = response.status_code
            error = "" if 200 <= status < 300 else f"HTTP {status} {response.reason_phrase}".strip()
        except TimeoutError:
            error = f"no answer within {self.settings.timeout_s:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        now_s = self._clock()
        if not error and status is not None:
            await self.webhooks.record_delivered(due.id, attempts, status, now_s)
            self.stats["delivered"] += 1
            return True
        self.stats["failed_attempts"] += 1
        retry_at = self.settings.retry.next_attempt_at(attempts, now_s, self._rng)
        await self.webhooks.record_failed_attempt(due.id, attempts, status, error, now_s, retry_at)
        if retry_at is None:
            log.warning("webhook %s gave up on delivery %s after %d attempts: %s", due.webhook_id, due.id,
                        attempts, error)
        return False


async def _first_of(first: asyncio.Event, second: asyncio.Event, timeout_s: float) -> None:
    """Wait until either event is set or ``timeout_s`` passes."""
    waiters = [asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
