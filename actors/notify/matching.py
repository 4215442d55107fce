"""Which stored events a webhook is owed, and the exact body each delivery sends. Pure.

An event is a stored decision or alert, named by its place in a stream (account, region, topic, seq): that
place is stable across restarts, so the idempotency key derived from it (with the event name: one decision
can be both an ``interruption`` and a ``fallback``) is the same however often the consumer re-reads it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

INTERRUPTION = "interruption"  # a decision whose rule is ``interrupted``
FALLBACK = "fallback"  # a decision whose action is ``fallback_on_demand``
EXECUTION_FAILURE = "execution_failure"  # an ``alerts`` event: an executor step that failed
DAILY_REPORT = "daily_report"  # a stream's savings report, once a UTC day of its own time is over
WEBHOOK_EVENTS = (INTERRUPTION, FALLBACK, EXECUTION_FAILURE, DAILY_REPORT)
DECISION_EVENTS = frozenset({INTERRUPTION, FALLBACK})
ALERT_EVENTS = frozenset({EXECUTION_FAILURE})


@dataclass(frozen=True, slots=True)
class Owed:
    """One event owed to every webhook of its account subscribed to ``event``."""

    event: str
    idempotency_key: str
    body: str


def idempotency_key(event: str, account: str, region: str, topic: str, seq: int) -> str:
    """A key unique to one event of one stream place, the same on every read and attempt.

    >>> idempotency_key("fallback", "demo", "us-east-1", "decisions", 7)
    'evt_a75857762618ae185fc4f7b4da4deec7'
    """
    digest = hashlib.sha256(f"{event}\n{account}\n{region}\n{topic}\n{seq}".encode()).hexdigest()
    return f"evt_{digest[:32]}"


def decision_event_names(decision: Mapping[str, Any]) -> list[str]:
    """The webhook events a decision (its stored JSON) is.

    >>> decision_event_names({"action": "fallback_on_demand", "rule": "interrupted"})
    ['interruption', 'fallback']
    >>> decision_event_names({"action": "replace", "rule": "saving"})
    []
    """
    names = []
    if decision.get("rule") == "interrupted":
        names.append(INTERRUPTION)
    if decision.get("action") == "fallback_on_demand":
        names.append(FALLBACK)
    return names


def alert_event_names(alert: Mapping[str, Any]) -> list[str]:
    """The webhook events an alert is: an executor step that failed.

    >>> alert_event_names({"kind": "execution", "step": "failed"}), alert_event_names({"kind": "interruption"})
    (['execution_failure'], [])
    """
    return [EXECUTION_FAILURE] if alert.get("kind") == "execution" and alert.get("step") == "failed" else []


def body(key: str, event: str, account: str, region: str, occurred_at_s: float, data: Mapping[str, Any]) -> str:
    """The JSON text POSTed (and signed) on every attempt of one delivery.

    >>> body("evt_1", "fallback", "demo", "us-east-1", 0.0, {"seq": 3})
    '{"id":"evt_1","event":"fallback","account":"demo","region":"us-east-1","occurred_at_s":0.0,"data":{"seq":3}}'
    """
    return json.dumps({"id": key, "event": event, "account": account, "region": region,
                       "occurred_at_s": occurred_at_s, "data": dict(data)}, separators=(",", ":"))


def owed_for_decision(account: str, region: str, decision: Mapping[str, Any], wanted: frozenset[str]) -> list[Owed]:
    """The deliveries a stored decision (its JSON, with ``seq``) owes to webhooks wanting ``wanted``."""
    seq = int(decision["seq"])
    out = []
    for name in decision_event_names(decision):
        if name in wanted:
            key = idempotency_key(name, account, region, "decisions", seq)
            out.append(Owed(name, key, body(key, name, account, region, float(decision["decided_at_s"]), decision)))
    return out


def owed_for_alert(account: str, region: str, seq: int, alert: Mapping[str, Any],
                   wanted: frozenset[str]) -> list[Owed]:
    """The deliveries a stored alert (``alerts`` topic, at ``seq``) owes to webhooks wanting ``wanted``."""
    out = []
    for name in alert_event_names(alert):
        if name in wanted:
            key = idempotency_key(name, account, region, "alerts", seq)
            data = {"seq": seq, **alert}
            out.append(Owed(name, key, body(key, name, account, region, float(alert.get("at_s", 0.0)), data)))
    return out


DAY_S = 86_400.0


def day_of(t_s: float) -> int:
    """The UTC day number (days since the epoch) of ``t_s``: daily reports' cursor and key.

    >>> day_of(0.0), day_of(86_399.9), day_of(1676419200.0)
    (0, 0, 19403)
    """
    return int(t_s // DAY_S)


def owed_daily_report(account: str, region: str, day: int, report: Mapping[str, Any]) -> Owed:
    """The ``daily_report`` delivery of one stream's UTC day ``day`` (its report as ``data``)."""
    key = idempotency_key(DAILY_REPORT, account, region, DAILY_REPORT, day)
    data = {"day_start_s": day * DAY_S, "day_end_s": (day + 1) * DAY_S, **report}
    return Owed(DAILY_REPORT, key, body(key, DAILY_REPORT, account, region, (day + 1) * DAY_S, data))
