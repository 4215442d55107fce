"""Pure conversions of engine values to and from database rows and the one JSON shape of a decision.

The region actor publishes ``decision_to_json`` live before the row is written, and REST and the
WebSocket replay read rows back through ``DecisionRecord.to_json``; both go through the same function, so
a client sees byte-for-byte the same event either way.

Validation lives here, not in the database, because the two backends disagree on what they reject
(SQLite stores a NaN or an over-long string that PostgreSQL refuses). Whatever would not come back
exactly as it went in is an :class:`InvalidRecordError` naming the field, raised before any write:
non-finite numbers, strings that are not members of Action / Rule / Lifecycle, empty ids, probabilities
outside [0, 1], negative prices, strings longer than their column, timestamps outside years 1970-9999.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from numbers import Integral, Real
from typing import Any, TypeVar

from actors.store import tables
from actors.store.errors import InvalidRecordError
from engine.types import Action, Candidate, Decision, Instance, Lifecycle, Pool, Rule

MAX_SEQ = 2**63 - 1
MAX_EPOCH_S = 253_402_300_800.0  # 10000-01-01T00:00:00Z: datetime cannot go further

E = TypeVar("E", bound=StrEnum)


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


# --- decisions <-> JSON ------------------------------------------------------------------------------


def decision_to_json(account: str, region: str, seq: int, decision: Decision) -> dict[str, Any]:
    """The one JSON shape of a decision event; raises InvalidRecordError if it could not be stored."""
    row = decision_to_row(account, region, seq, decision)
    return {
        "seq": row["seq"],
        "account": row["account"],
        "region": row["region"],
        "instance_id": row["instance_id"],
        "action": row["action"],
        "rule": row["rule"],
        "reason": row["reason"],
        "decided_at": iso_utc(row["decided_at_s"]),
        "decided_at_s": row["decided_at_s"],
        "from": _placement_json(row["from_instance_type"], row["from_availability_zone"], row["from_lifecycle"]),
        "to": _placement_json(row["to_instance_type"], row["to_availability_zone"], row["to_lifecycle"]),
        "saving_usd_per_hour": row["saving_usd_per_hour"],
        "numbers": dict(row["numbers"]),
        "candidates": [dict(c) for c in row["candidates"]],
        "policy": row["policy"],
    }


def decision_from_json(doc: Mapping[str, Any]) -> Decision:
    """Parse the JSON of :func:`decision_to_json` back into the engine's Decision, checking every field."""
    if not isinstance(doc, Mapping):
        raise InvalidRecordError("decision", f"must be a JSON object, got {type(doc).__name__}")
    from_pool, from_lifecycle = _placement_from_json(_get(doc, "from", ""), "from")
    to_pool, to_lifecycle = _placement_from_json(_get(doc, "to", ""), "to")
    raw_candidates = _get(doc, "candidates", "")
    if not isinstance(raw_candidates, list):
        raise InvalidRecordError("candidates", "must be a list")
    candidates = tuple(_candidate_from_json(c, f"candidates[{i}]") for i, c in enumerate(raw_candidates))
    decision = Decision(
        instance_id=_get(doc, "instance_id", ""),
        action=_enum(Action, _get(doc, "action", ""), "action"),
        rule=_enum(Rule, _get(doc, "rule", ""), "rule"),
        reason=_get(doc, "reason", ""),
        decided_at_s=_get(doc, "decided_at_s", ""),
        from_pool=from_pool,
        from_lifecycle=from_lifecycle,
        to_pool=to_pool,
        to_lifecycle=to_lifecycle,
        saving_usd_per_hour=_get(doc, "saving_usd_per_hour", ""),
        numbers=_get(doc, "numbers", ""),
        candidates=candidates,
        policy=_get(doc, "policy", ""),
    )
    return check_decision(decision, where="")


def record_from_json(doc: Mapping[str, Any]) -> DecisionRecord:
    """A whole event back into a DecisionRecord (for clients and tests of the stream)."""
    decision = decision_from_json(doc)
    row = decision_to_row(doc.get("account"), doc.get("region"), doc.get("seq"), decision)  # type: ignore[arg-type]
    return DecisionRecord(row["account"], row["region"], row["seq"], decision)


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
    pool = Pool(_get(doc, "instance_type", where), _get(doc, "availability_zone", where))
    if "pool" in doc and doc["pool"] != _pool_key(pool, where):
        raise InvalidRecordError(f"{where}.pool", f"{doc['pool']!r} disagrees with its parts ({pool.key!r})")
    return pool, _enum(Lifecycle, _get(doc, "lifecycle", where), f"{where}.lifecycle")


def _candidate_from_json(doc: Any, where: str) -> Candidate:
    if not isinstance(doc, Mapping):
        raise InvalidRecordError(where, "must be an object")
    key = _get(doc, "pool", where)
    try:
        pool = Pool.from_key(key) if isinstance(key, str) else None
    except ValueError as exc:
        raise InvalidRecordError(f"{where}.pool", str(exc)) from exc
    if pool is None:
        raise InvalidRecordError(f"{where}.pool", f"must be a 'type@zone' string, got {key!r}")
    return Candidate(
        pool=pool,
        lifecycle=_enum(Lifecycle, _get(doc, "lifecycle", where), f"{where}.lifecycle"),
        price_usd_per_hour=_get(doc, "price_usd_per_hour", where),
        risk=_get(doc, "risk", where),
        expected_cost_usd_per_hour=_get(doc, "expected_cost_usd_per_hour", where),
    )


def _get(doc: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in doc:
        raise InvalidRecordError(f"{where}.{key}" if where else key, "missing")
    return doc[key]


# --- decisions <-> rows ------------------------------------------------------------------------------


def check_decision(decision: Decision, where: str = "decision") -> Decision:
    """Return the decision with enums and numbers normalised, or raise InvalidRecordError naming the field."""
    values = _decision_values(decision, where)
    return Decision(
        instance_id=values["instance_id"],
        action=Action(values["action"]),
        rule=Rule(values["rule"]),
        reason=values["reason"],
        decided_at_s=values["decided_at_s"],
        from_pool=Pool(values["from_instance_type"], values["from_availability_zone"]),
        from_lifecycle=Lifecycle(values["from_lifecycle"]),
        to_pool=Pool(values["to_instance_type"], values["to_availability_zone"]),
        to_lifecycle=Lifecycle(values["to_lifecycle"]),
        saving_usd_per_hour=values["saving_usd_per_hour"],
        numbers=values["numbers"],
        candidates=tuple(
            Candidate(
                Pool.from_key(c["pool"]),
                Lifecycle(c["lifecycle"]),
                c["price_usd_per_hour"],
                c["risk"],
                c["expected_cost_usd_per_hour"],
            )
            for c in values["candidates"]
        ),
        policy=values["policy"],
    )


def decision_to_row(account: str, region: str, seq: int, decision: Decision) -> dict[str, Any]:
    """Column values of a ``decisions`` row (no ``id``); validates everything first."""
    row = {
        "account": _string(account, "account", tables.ACCOUNT_MAX_LEN),
        "region": _string(region, "region", tables.REGION_MAX_LEN),
        "seq": _seq(seq, "seq"),
    }
    row.update(_decision_values(decision, "decision"))
    return row


def _decision_values(decision: Decision, where: str) -> dict[str, Any]:
    # Field names are plain constants on the hot path; the prefix is added only when something is wrong.
    try:
        if not isinstance(decision, Decision):
            raise InvalidRecordError("", f"must be an engine Decision, got {type(decision).__name__}")
        from_pool = _pool(decision.from_pool, "from_pool")
        to_pool = _pool(decision.to_pool, "to_pool")
        return {
            "instance_id": _string(decision.instance_id, "instance_id", tables.INSTANCE_ID_MAX_LEN),
            "action": _enum(Action, decision.action, "action").value,
            "rule": _enum(Rule, decision.rule, "rule").value,
            "reason": _string(decision.reason, "reason", None, allow_empty=True),
            "decided_at_s": _epoch(decision.decided_at_s, "decided_at_s"),
            "from_instance_type": from_pool.instance_type,
            "from_availability_zone": from_pool.availability_zone,
            "from_lifecycle": _enum(Lifecycle, decision.from_lifecycle, "from_lifecycle").value,
            "to_instance_type": to_pool.instance_type,
            "to_availability_zone": to_pool.availability_zone,
            "to_lifecycle": _enum(Lifecycle, decision.to_lifecycle, "to_lifecycle").value,
            "saving_usd_per_hour": _finite(decision.saving_usd_per_hour, "saving_usd_per_hour"),
            "numbers": _numbers(decision.numbers, "numbers"),
            "candidates": _candidates(decision.candidates, "candidates"),
            "policy": _string(decision.policy, "policy", tables.POLICY_MAX_LEN, allow_empty=True),
        }
    except InvalidRecordError as exc:
        raise _under(where, exc) from None


def _under(where: str, exc: InvalidRecordError) -> InvalidRecordError:
    """The same error, its field placed under ``where`` (``candidates[0].risk`` -> ``decision.candidates...``)."""
    if not where:
        return exc
    field = where if not exc.field else f"{where}{exc.field}" if exc.field.startswith("[") else f"{where}.{exc.field}"
    return InvalidRecordError(field, exc.message)


def record_from_row(row: Mapping[Any, Any]) -> DecisionRecord:
    """A ``decisions`` row back into a DecisionRecord; a corrupt row is an error naming its stream and seq.

    Rows were validated on the way in, so only what the database itself could have mangled (enum
    strings, the JSON columns) is checked again: this is the replay path, thousands of rows at a time.
    """
    try:
        candidates = row["candidates"]
        if not isinstance(candidates, list):
            raise InvalidRecordError("candidates", "must be a JSON list")
        decision = Decision(
            instance_id=row["instance_id"],
            action=_enum(Action, row["action"], "action"),
            rule=_enum(Rule, row["rule"], "rule"),
            reason=row["reason"],
            decided_at_s=row["decided_at_s"],
            from_pool=Pool(row["from_instance_type"], row["from_availability_zone"]),
            from_lifecycle=_enum(Lifecycle, row["from_lifecycle"], "from_lifecycle"),
            to_pool=Pool(row["to_instance_type"], row["to_availability_zone"]),
            to_lifecycle=_enum(Lifecycle, row["to_lifecycle"], "to_lifecycle"),
            saving_usd_per_hour=row["saving_usd_per_hour"],
            numbers=_numbers(row["numbers"], "numbers"),
            candidates=tuple(_candidate_from_json(c, f"candidates[{i}]") for i, c in enumerate(candidates)),
            policy=row["policy"],
        )
    except InvalidRecordError as exc:
        where = f"decisions row {row.get('account')!r}/{row.get('region')!r} seq {row.get('seq')}"
        raise _under(where, exc) from None
    return DecisionRecord(row["account"], row["region"], int(row["seq"]), decision)


# --- instances <-> rows ------------------------------------------------------------------------------


def instance_to_row(account: str, region: str, instance: Instance, now_s: float) -> dict[str, Any]:
    """Column values of an ``instances`` row (no ``id``); validates everything first."""
    where = f"instance {getattr(instance, 'instance_id', '?')!r}"
    if not isinstance(instance, Instance):
        raise InvalidRecordError(where, f"must be an engine Instance, got {type(instance).__name__}")
    pool = _pool(instance.pool, f"{where}.pool")
    if not isinstance(instance.interrupted, bool):
        raise InvalidRecordError(f"{where}.interrupted", f"must be a bool, got {instance.interrupted!r}")
    return {
        "account": _string(account, "account", tables.ACCOUNT_MAX_LEN),
        "region": _string(region, "region", tables.REGION_MAX_LEN),
        "instance_id": _string(instance.instance_id, f"{where}.instance_id", tables.INSTANCE_ID_MAX_LEN),
        "instance_type": pool.instance_type,
        "availability_zone": pool.availability_zone,
        "lifecycle": _enum(Lifecycle, instance.lifecycle, f"{where}.lifecycle").value,
        "launched_at_s": _epoch(instance.launched_at_s, f"{where}.launched_at_s"),
        "fleet": _string(instance.fleet, f"{where}.fleet", tables.FLEET_MAX_LEN),
        "interrupted": instance.interrupted,
        "updated_at_s": _epoch(now_s, "now_s"),
    }


def instance_from_row(row: Mapping[Any, Any]) -> Instance:
    """An ``instances`` row back into the engine's Instance."""
    where = f"instances row {row.get('account')!r}/{row.get('region')!r} {row.get('instance_id')!r}"
    return Instance(
        instance_id=row["instance_id"],
        pool=Pool(row["instance_type"], row["availability_zone"]),
        lifecycle=_enum(Lifecycle, row["lifecycle"], f"{where}.lifecycle"),
        launched_at_s=float(row["launched_at_s"]),
        fleet=row["fleet"],
        interrupted=bool(row["interrupted"]),
    )


# --- field checks ------------------------------------------------------------------------------------


def _enum(kind: type[E], value: Any, where: str) -> E:
    if type(value) is kind:
        return value
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise InvalidRecordError(where, f"{value!r} is not a {kind.__name__} ({allowed})") from None


def _string(value: Any, where: str, max_len: int | None, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidRecordError(where, f"must be a string, got {type(value).__name__}")
    if not value and not allow_empty:
        raise InvalidRecordError(where, "must not be empty")
    if max_len is not None and len(value) > max_len:
        raise InvalidRecordError(where, f"longer than {max_len} characters ({len(value)})")
    if "\x00" in value:
        raise InvalidRecordError(where, "contains a NUL character")
    return value


def _finite(value: Any, where: str) -> float:
    if type(value) is float and math.isfinite(value):
        return value
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidRecordError(where, f"must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidRecordError(where, f"must be finite, got {number}")
    return number


def _epoch(value: Any, where: str) -> float:
    number = _finite(value, where)
    if not 0.0 <= number < MAX_EPOCH_S:
        raise InvalidRecordError(where, f"epoch seconds must be in [0, {MAX_EPOCH_S:.0f}), got {number}")
    return number


def _seq(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise InvalidRecordError(where, f"must be an integer, got {type(value).__name__}")
    seq = int(value)
    if not 1 <= seq <= MAX_SEQ:
        raise InvalidRecordError(where, f"must be in [1, 2**63 - 1], got {seq}")
    return seq


def _pool(value: Any, where: str) -> Pool:
    if type(value) is not Pool:
        raise InvalidRecordError(where, f"must be a Pool, got {type(value).__name__}")
    try:
        _string(value.instance_type, "instance_type", tables.INSTANCE_TYPE_MAX_LEN)
        _string(value.availability_zone, "availability_zone", tables.ZONE_MAX_LEN)
    except InvalidRecordError as exc:
        raise _under(where, exc) from None
    return value


def _pool_key(pool: Pool, where: str) -> str:
    return _pool(pool, where).key


def _numbers(value: Any, where: str) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise InvalidRecordError(where, f"must be a mapping of name to number, got {type(value).__name__}")
    out: dict[str, float] = {}
    for key, number in value.items():
        if not isinstance(key, str) or not key:
            raise InvalidRecordError(where, f"keys must be non-empty strings, got {key!r}")
        try:
            out[key] = _finite(number, "")
        except InvalidRecordError as exc:
            raise _under(f"{where}[{key!r}]", exc) from None
    return out


def _candidates(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, tuple | list):
        raise InvalidRecordError(where, f"must be a sequence of Candidate, got {type(value).__name__}")
    out = []
    for i, c in enumerate(value):
        try:
            out.append(_candidate(c))
        except InvalidRecordError as exc:
            raise _under(f"{where}[{i}]", exc) from None
    return out


def _candidate(c: Any) -> dict[str, Any]:
    if not isinstance(c, Candidate):
        raise InvalidRecordError("", f"must be a Candidate, got {type(c).__name__}")
    price = _finite(c.price_usd_per_hour, "price_usd_per_hour")
    if price < 0:
        raise InvalidRecordError("price_usd_per_hour", f"must be >= 0, got {price}")
    risk = _finite(c.risk, "risk")
    if not 0.0 <= risk <= 1.0:
        raise InvalidRecordError("risk", f"is a probability, must be in [0, 1], got {risk}")
    return {
        "pool": _pool(c.pool, "pool").key,
        "lifecycle": _enum(Lifecycle, c.lifecycle, "lifecycle").value,
        "price_usd_per_hour": price,
        "risk": risk,
        "expected_cost_usd_per_hour": _finite(c.expected_cost_usd_per_hour, "expected_cost_usd_per_hour"),
    }
