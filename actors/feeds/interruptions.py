"""An account's interruption warnings: long-poll its SQS queue (fed by EventBridge, as Karpenter and the
AWS Node Termination Handler do) and hand each notice to the region actor of the instance at once.

A message is deleted only after the actor answered, which means its decision (and execution, if any) is
stored: a crash in between redelivers it. A malformed message is logged, counted and left alone, so the
queue's redrive policy moves it to the dead-letter queue after its ``maxReceiveCount``; it never stops the
consumer or blocks the messages behind it. A notice for a region the account is not watched in, or an
instance the actor does not know, is acknowledged: nothing will ever handle it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actors.aws.errors import AwsError, CredentialsError
from actors.aws.gateway import AwsGateway
from actors.aws.translate import MalformedMessage, QueueMessage, parse_event
from actors.feeds.base import SourceHealth

log = logging.getLogger(__name__)

_SQS_HOST = re.compile(r"^https?://sqs[.-]([a-z0-9-]+)\.amazonaws\.com")
RETRY_BASE_S = 1.0
RETRY_MAX_S = 60.0


def queue_region(queue_url: str, default: str) -> str:
    """The region of an SQS queue URL (``default`` for endpoints that do not name one, such as a local
    emulator's).

    >>> queue_region("https://sqs.eu-west-1.amazonaws.com/123456789012/q", "us-east-1")
    'eu-west-1'
    >>> queue_region("http://127.0.0.1:5000/123456789012/q", "us-east-1")
    'us-east-1'
    """
    match = _SQS_HOST.match(queue_url)
    return match.group(1) if match else default


@dataclass(slots=True)
class InterruptionConsumer:
    """Consumes one account's interruption queue."""

    account: str
    queue_url: str
    gateway: AwsGateway
    route: Callable[[str], Any]  # region -> the region actor's handle, or None when not watched there
    clock: Callable[[], float] = time.time
    wait_s: int = 20
    health: SourceHealth = field(default_factory=SourceHealth)
    counts: dict[str, int] = field(default_factory=lambda: {"received": 0, "handled": 0, "malformed": 0,
                                                            "ignored": 0, "failed": 0})
    _task: asyncio.Task[None] | None = None
    _rng: random.Random = field(default_factory=random.Random)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"aws-interruptions:{self.account}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def run(self) -> None:
        while True:
            try:
                await self.poll_once()
                delay_s = 0.0
            except asyncio.CancelledError:
                raise
            except AwsError as exc:
                self.health.failed(self.clock(), str(exc))
                level = logging.ERROR if isinstance(exc, CredentialsError) else logging.WARNING
                log.log(level, "account=%s interruption queue: %s", self.account, exc)
                delay_s = self._rng.uniform(0, min(RETRY_MAX_S, RETRY_BASE_S * 2 ** self.health.failures))
            except Exception as exc:
                self.health.failed(self.clock(), f"{type(exc).__name__}: {exc}")
                log.exception("account=%s interruption queue failed", self.account)
                delay_s = self._rng.uniform(0, min(RETRY_MAX_S, RETRY_BASE_S * 2 ** self.health.failures))
            if delay_s:
                await asyncio.sleep(delay_s)

    async def poll_once(self) -> int:
        """One long poll (the first one short, so the queue shows as reachable at once); every message
        handled in turn. Returns how many were acknowledged."""
        wait_s = self.wait_s if self.health.last_ok_s is not None else 0
        messages = await self.gateway.receive_messages(self.queue_url, wait_s=wait_s)
        self.health.ok(self.clock())
        acknowledged = 0
        for message in messages:
            self.counts["received"] += 1
            if await self.handle(message):
                await self.gateway.delete_message(self.queue_url, message.receipt_handle)
                acknowledged += 1
        return acknowledged

    async def handle(self, message: QueueMessage) -> bool:
        """Decide on one message; True when it may be deleted."""
        try:
            notice = parse_event(message.body)
        except MalformedMessage as exc:
            self.counts["malformed"] += 1
            log.warning("account=%s: malformed message %s left to the dead-letter policy (received %d times): %s",
                        self.account, message.message_id, message.receive_count, exc)
            return False
        actor = self.route(notice.region)
        if actor is None:
            self.counts["ignored"] += 1
            log.info("account=%s: %s for %s in %s, a region not watched: acknowledged", self.account, notice.kind,
                     notice.instance_id, notice.region)
            return True
        try:
            result = await actor.notice.remote(notice.kind, notice.instance_id, max(self.clock(), notice.at_s),
                                               notice.state)
        except Exception:
            self.counts["failed"] += 1
            log.exception("account=%s: deciding on %s for %s failed; the message will be redelivered",
                          self.account, notice.kind, notice.instance_id)
            return False
        self.counts["handled" if result.get("known") else "ignored"] += 1
        return True
