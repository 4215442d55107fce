"""Database rows of decisions and instances: the engine's values to the columns of ``decisions`` and
``instances`` and back. Every field is checked on the way in (``actors/store/fields.py``), so a row
comes back exactly as it went; the JSON clients see of a decision is ``actors/store/decision_json.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actors.store import tables
from actors.store.decision_json import DecisionRecord
from actors.store.errors import InvalidRecordError
from actors.store.fields import (
    candidate_from_json,
    check_enum,
    check_epoch,
    check_numbers,
    check_pool,
    check_string,
    decision_values,
    placed_under,
    stream_position,
)
from engine.types import Action, Decision, Instance, Lifecycle, Pool, Rule

# --- decisions <-> rows ------------------------------------------------------------------------------


def decision_to_row(account: str, region: str, seq: int, decision: Decision) -> dict[str, Any]:
    """Column values of a ``decisions`` row (no ``id``); validates everything first."""
    account, region, seq = stream_position(account, region, seq)
    return {"account": account, "region": region, "seq": seq, **decision_values(decision, "decision")}


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
            action=check_enum(Action, row["action"], "action"),
            rule=check_enum(Rule, row["rule"], "rule"),
            reason=row["reason"],
            decided_at_s=row["decided_at_s"],
            from_pool=Pool(row["from_instance_type"], row["from_availability_zone"]),
            from_lifecycle=check_enum(Lifecycle, row["from_lifecycle"], "from_lifecycle"),
            to_pool=Pool(row["to_instance_type"], row["to_availability_zone"]),
            to_lifecycle=check_enum(Lifecycle, row["to_lifecycle"], "to_lifecycle"),
            saving_usd_per_hour=row["saving_usd_per_hour"],
            numbers=check_numbers(row["numbers"], "numbers"),
            candidates=tuple(candidate_from_json(c, f"candidates[{i}]") for i, c in enumerate(candidates)),
            policy=row["policy"],
        )
    except InvalidRecordError as exc:
        where = f"decisions row {row.get('account')!r}/{row.get('region')!r} seq {row.get('seq')}"
        raise placed_under(where, exc) from None
    return DecisionRecord(row["account"], row["region"], int(row["seq"]), decision)


# --- instances <-> rows ------------------------------------------------------------------------------


def instance_to_row(account: str, region: str, instance: Instance, now_s: float) -> dict[str, Any]:
    """Column values of an ``instances`` row (no ``id``); validates everything first."""
    where = f"instance {getattr(instance, 'instance_id', '?')!r}"
    if not isinstance(instance, Instance):
        raise InvalidRecordError(where, f"must be an engine Instance, got {type(instance).__name__}")
    pool = check_pool(instance.pool, f"{where}.pool")
    if not isinstance(instance.interrupted, bool):
        raise InvalidRecordError(f"{where}.interrupted", f"must be a bool, got {instance.interrupted!r}")
    return {
        "account": check_string(account, "account", tables.ACCOUNT_MAX_LEN),
        "region": check_string(region, "region", tables.REGION_MAX_LEN),
        "instance_id": check_string(instance.instance_id, f"{where}.instance_id", tables.INSTANCE_ID_MAX_LEN),
        "instance_type": pool.instance_type,
        "availability_zone": pool.availability_zone,
        "lifecycle": check_enum(Lifecycle, instance.lifecycle, f"{where}.lifecycle").value,
        "launched_at_s": check_epoch(instance.launched_at_s, f"{where}.launched_at_s"),
        "fleet": check_string(instance.fleet, f"{where}.fleet", tables.FLEET_MAX_LEN),
        "interrupted": instance.interrupted,
        "updated_at_s": check_epoch(now_s, "now_s"),
    }


def instance_from_row(row: Mapping[Any, Any]) -> Instance:
    """An ``instances`` row back into the engine's Instance."""
    where = f"instances row {row.get('account')!r}/{row.get('region')!r} {row.get('instance_id')!r}"
    return Instance(
        instance_id=row["instance_id"],
        pool=Pool(row["instance_type"], row["availability_zone"]),
        lifecycle=check_enum(Lifecycle, row["lifecycle"], f"{where}.lifecycle"),
        launched_at_s=float(row["launched_at_s"]),
        fleet=row["fleet"],
        interrupted=bool(row["interrupted"]),
    )
