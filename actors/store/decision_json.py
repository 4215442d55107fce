"""The one JSON shape of a decision event: what REST, the WebSocket and webhooks send of a decision.

The region actor publishes :func:`decision_to_json` live before the row is written, and REST and the
WebSocket replay read rows back through :meth:`DecisionRecord.to_json`; both go through the same function,
so a client sees byte-for-byte the same event either way. It is checked with the same field checks as the
row (``actors/store/fields.py``), so what is shown is what can be stored. The database rows are
``actors/store/codec.py``; every other event and view a client sees is ``actors/views.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from actors.store.errors import InvalidRecordError
from actors.store.fields import (
    candidate_from_json,
    check_decision,
    check_enum,
    check_pool,
    decision_values,
    required,
    stream_position,
)
from engine.types import Action, Decision, Lifecycle, Pool, Rule


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A stored decision: the engine's Decision placed at ``seq`` in the (account, region) stream."""

    account: str
    region: str
    seq: int
    decision: Decision

    def to_json(self) -> dict[str, Any]:
        """The JSON sent by REST and the WebSocket (see :func:`decision_to_json`)."""
        return decision_to_json(self.account, self.region, self.seq, self.decision)


def iso_utc(epoch_s: float) -> str:
    """Epoch seconds as ISO-8601 in UTC with a ``Z``, for people; ``decided_at_s`` stays the exact value.

    >>> iso_utc(0)
    '1970-01-01T00:00:00Z'
    >>> iso_utc(1676419200.25)
    '2023-02-15T00:00:00.250000Z'
    """
    return datetime.fromtimestamp(epoch_s, tz=UTC).isoformat().replace("+00:00", "Z")


def decision_to_json(account: str, region: str, seq: int, decision: Decision) -> dict[str, Any]:
    """The one JSON shape of a decision event; raises InvalidRecordError if it could not be stored."""
    account, region, seq = stream_position(account, region, seq)
    values = decision_values(decision, "decision")
    return {
        "seq": seq,
        "account": account,
        "region": region,
        "instance_id": values["instance_id"],
        "action": values["action"],
        "rule": values["rule"],
        "reason": values["reason"],
        "decided_at": iso_utc(values["decided_at_s"]),
        "decided_at_s": values["decided_at_s"],
        "from": _placement_json(values["from_instance_type"], values["from_availability_zone"],
                                values["from_lifecycle"]),
        "to": _placement_json(values["to_instance_type"], values["to_availability_zone"], values["to_lifecycle"]),
        "saving_usd_per_hour": values["saving_usd_per_hour"],
        "numbers": dict(values["numbers"]),
        "candidates": [dict(c) for c in values["candidates"]],
        "policy": values["policy"],
    }


def decision_from_json(doc: Mapping[str, Any]) -> Decision:
    """Parse the JSON of :func:`decision_to_json` back into the engine's Decision, checking every field."""
    if not isinstance(doc, Mapping):
        raise InvalidRecordError("decision", f"must be a JSON object, got {type(doc).__name__}")
    from_pool, from_lifecycle = _placement_from_json(required(doc, "from", ""), "from")
    to_pool, to_lifecycle = _placement_from_json(required(doc, "to", ""), "to")
    raw_candidates = required(doc, "candidates", "")
    if not isinstance(raw_candidates, list):
        raise InvalidRecordError("candidates", "must be a list")
    candidates = tuple(candidate_from_json(c, f"candidates[{i}]") for i, c in enumerate(raw_candidates))
    decision = Decision(
        instance_id=required(doc, "instance_id", ""),
        action=check_enum(Action, required(doc, "action", ""), "action"),
        rule=check_enum(Rule, required(doc, "rule", ""), "rule"),
        reason=required(doc, "reason", ""),
        decided_at_s=required(doc, "decided_at_s", ""),
        from_pool=from_pool,
        from_lifecycle=from_lifecycle,
        to_pool=to_pool,
        to_lifecycle=to_lifecycle,
        saving_usd_per_hour=required(doc, "saving_usd_per_hour", ""),
        numbers=required(doc, "numbers", ""),
        candidates=candidates,
        policy=required(doc, "policy", ""),
    )
    return check_decision(decision, where="")


def record_from_json(doc: Mapping[str, Any]) -> DecisionRecord:
    """A whole event back into a DecisionRecord (for clients and tests of the stream)."""
    decision = decision_from_json(doc)
    account, region, seq = stream_position(doc.get("account"), doc.get("region"), doc.get("seq"))
    return DecisionRecord(account, region, seq, decision)


def _placement_json(instance_type: str, zone: str, lifecycle: str) -> dict[str, str]:
    return {
        "pool": Pool(instance_type, zone).key,
        "instance_type": instance_type,
        "availability_zone": zone,
        "lifecycle": lifecycle,
    }


def _placement_from_json(doc: Any, where: str) -> tuple[Pool, Lifecycle]:
    if not isinstance(doc, Mapping):
        raise InvalidRecordError(where, "must be an object with instance_type, availability_zone, lifecycle")
    pool = Pool(required(doc, "instance_type", where), required(doc, "availability_zone", where))
    if "pool" in doc and doc["pool"] != check_pool(pool, where).key:
        raise InvalidRecordError(f"{where}.pool", f"{doc['pool']!r} disagrees with its parts ({pool.key!r})")
    return pool, check_enum(Lifecycle, required(doc, "lifecycle", where), f"{where}.lifecycle")
