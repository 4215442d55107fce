"""Checks of the values a decision or an instance is made of, before they are stored or shown.

Validation lives here, not in the database, because the two backends disagree on what they reject
(SQLite stores a NaN or an over-long string that PostgreSQL refuses). Whatever would not come back
exactly as it went in is an :class:`InvalidRecordError` naming the field, raised before any write:
non-finite numbers, strings that are not members of Action / Rule / Lifecycle, empty ids, probabilities
outside [0, 1], negative prices, strings longer than their column, timestamps outside years 1970-9999.
A decision's row (``actors/store/codec.py``) and its JSON (``actors/views.py``) are both built from
:func:`decision_values`, so they cannot disagree on what is valid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import StrEnum
from numbers import Integral, Real
from typing import Any, TypeVar

from actors.store import tables
from actors.store.errors import InvalidRecordError
from engine.types import Action, Candidate, Decision, Lifecycle, Pool, Rule

MAX_SEQ = 2**63 - 1
MAX_EPOCH_S = 253_402_300_800.0  # 10000-01-01T00:00:00Z: datetime cannot go further

E = TypeVar("E", bound=StrEnum)


def stream_position(account: Any, region: Any, seq: Any) -> tuple[str, str, int]:
    """The (account, region, seq) a decision is placed at, checked."""
    return (check_string(account, "account", tables.ACCOUNT_MAX_LEN),
            check_string(region, "region", tables.REGION_MAX_LEN),
            check_seq(seq, "seq"))


def decision_values(decision: Decision, where: str) -> dict[str, Any]:
    """A decision's fields as checked plain values (enums as strings, numbers as floats, pools in parts,
    candidates as JSON objects): what its row and its JSON are both built from. Errors are placed under
    ``where``."""
    # Field names are plain constants on the hot path; the prefix is added only when something is wrong.
    try:
        if not isinstance(decision, Decision):
            raise InvalidRecordError("", f"must be an engine Decision, got {type(decision).__name__}")
        from_pool = check_pool(decision.from_pool, "from_pool")
        to_pool = check_pool(decision.to_pool, "to_pool")
        return {
            "instance_id": check_string(decision.instance_id, "instance_id", tables.INSTANCE_ID_MAX_LEN),
            "action": check_enum(Action, decision.action, "action").value,
            "rule": check_enum(Rule, decision.rule, "rule").value,
            "reason": check_string(decision.reason, "reason", None, allow_empty=True),
            "decided_at_s": check_epoch(decision.decided_at_s, "decided_at_s"),
            "from_instance_type": from_pool.instance_type,
            "from_availability_zone": from_pool.availability_zone,
            "from_lifecycle": check_enum(Lifecycle, decision.from_lifecycle, "from_lifecycle").value,
            "to_instance_type": to_pool.instance_type,
            "to_availability_zone": to_pool.availability_zone,
            "to_lifecycle": check_enum(Lifecycle, decision.to_lifecycle, "to_lifecycle").value,
            "saving_usd_per_hour": check_finite(decision.saving_usd_per_hour, "saving_usd_per_hour"),
            "numbers": check_numbers(decision.numbers, "numbers"),
            "candidates": check_candidates(decision.candidates, "candidates"),
            "policy": check_string(decision.policy, "policy", tables.POLICY_MAX_LEN, allow_empty=True),
        }
    except InvalidRecordError as exc:
        raise placed_under(where, exc) from None


def check_decision(decision: Decision, where: str = "decision") -> Decision:
    """Return the decision with enums and numbers normalised, or raise InvalidRecordError naming the field."""
    values = decision_values(decision, where)
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


def placed_under(where: str, exc: InvalidRecordError) -> InvalidRecordError:
    """The same error, its field placed under ``where`` (``candidates[0].risk`` -> ``decision.candidates...``).

    >>> placed_under("decision", InvalidRecordError("candidates[0].risk", "bad")).field
    'decision.candidates[0].risk'
    """
    if not where:
        return exc
    field = where if not exc.field else f"{where}{exc.field}" if exc.field.startswith("[") else f"{where}.{exc.field}"
    return InvalidRecordError(field, exc.message)


def candidate_from_json(doc: Any, where: str) -> Candidate:
    """A candidate's JSON object (as a decision's JSON and its ``candidates`` column hold it), checked."""
    if not isinstance(doc, Mapping):
        raise InvalidRecordError(where, "must be an object")
    key = required(doc, "pool", where)
    try:
        pool = Pool.from_key(key) if isinstance(key, str) else None
    except ValueError as exc:
        raise InvalidRecordError(f"{where}.pool", str(exc)) from exc
    if pool is None:
        raise InvalidRecordError(f"{where}.pool", f"must be a 'type@zone' string, got {key!r}")
    return Candidate(
        pool=pool,
        lifecycle=check_enum(Lifecycle, required(doc, "lifecycle", where), f"{where}.lifecycle"),
        price_usd_per_hour=required(doc, "price_usd_per_hour", where),
        risk=required(doc, "risk", where),
        expected_cost_usd_per_hour=required(doc, "expected_cost_usd_per_hour", where),
    )


def required(doc: Mapping[str, Any], key: str, where: str) -> Any:
    """``doc[key]``, or an InvalidRecordError naming ``where.key`` as missing."""
    if key not in doc:
        raise InvalidRecordError(f"{where}.{key}" if where else key, "missing")
    return doc[key]


# --- single fields -----------------------------------------------------------------------------------


def check_enum(kind: type[E], value: Any, where: str) -> E:
    if type(value) is kind:
        return value
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise InvalidRecordError(where, f"{value!r} is not a {kind.__name__} ({allowed})") from None


def check_string(value: Any, where: str, max_len: int | None, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidRecordError(where, f"must be a string, got {type(value).__name__}")
    if not value and not allow_empty:
        raise InvalidRecordError(where, "must not be empty")
    if max_len is not None and len(value) > max_len:
        raise InvalidRecordError(where, f"longer than {max_len} characters ({len(value)})")
    if "\x00" in value:
        raise InvalidRecordError(where, "contains a NUL character")
    return value


def check_finite(value: Any, where: str) -> float:
    if type(value) is float and math.isfinite(value):
        return value
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidRecordError(where, f"must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidRecordError(where, f"must be finite, got {number}")
    return number


def check_epoch(value: Any, where: str) -> float:
    number = check_finite(value, where)
    if not 0.0 <= number < MAX_EPOCH_S:
        raise InvalidRecordError(where, f"epoch seconds must be in [0, {MAX_EPOCH_S:.0f}), got {number}")
    return number


def check_seq(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise InvalidRecordError(where, f"must be an integer, got {type(value).__name__}")
    seq = int(value)
    if not 1 <= seq <= MAX_SEQ:
        raise InvalidRecordError(where, f"must be in [1, 2**63 - 1], got {seq}")
    return seq


def check_pool(value: Any, where: str) -> Pool:
    if type(value) is not Pool:
        raise InvalidRecordError(where, f"must be a Pool, got {type(value).__name__}")
    try:
        check_string(value.instance_type, "instance_type", tables.INSTANCE_TYPE_MAX_LEN)
        check_string(value.availability_zone, "availability_zone", tables.ZONE_MAX_LEN)
    except InvalidRecordError as exc:
        raise placed_under(where, exc) from None
    return value


def check_numbers(value: Any, where: str) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise InvalidRecordError(where, f"must be a mapping of name to number, got {type(value).__name__}")
    out: dict[str, float] = {}
    for key, number in value.items():
        if not isinstance(key, str) or not key:
            raise InvalidRecordError(where, f"keys must be non-empty strings, got {key!r}")
        try:
            out[key] = check_finite(number, "")
        except InvalidRecordError as exc:
            raise placed_under(f"{where}[{key!r}]", exc) from None
    return out


def check_candidates(value: Any, where: str) -> list[dict[str, Any]]:
    """Candidates as their JSON objects."""
    if not isinstance(value, tuple | list):
        raise InvalidRecordError(where, f"must be a sequence of Candidate, got {type(value).__name__}")
    out = []
    for i, c in enumerate(value):
        try:
            out.append(_candidate_json(c))
        except InvalidRecordError as exc:
            raise placed_under(f"{where}[{i}]", exc) from None
    return out


def _candidate_json(c: Any) -> dict[str, Any]:
    if not isinstance(c, Candidate):
        raise InvalidRecordError("", f"must be a Candidate, got {type(c).__name__}")
    price = check_finite(c.price_usd_per_hour, "price_usd_per_hour")
    if price < 0:
        raise InvalidRecordError("price_usd_per_hour", f"must be >= 0, got {price}")
    risk = check_finite(c.risk, "risk")
    if not 0.0 <= risk <= 1.0:
        raise InvalidRecordError("risk", f"is a probability, must be in [0, 1], got {risk}")
    return {
        "pool": check_pool(c.pool, "pool").key,
        "lifecycle": check_enum(Lifecycle, c.lifecycle, "lifecycle").value,
        "price_usd_per_hour": price,
        "risk": risk,
        "expected_cost_usd_per_hour": check_finite(c.expected_cost_usd_per_hour, "expected_cost_usd_per_hour"),
    }
