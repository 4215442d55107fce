"""The store's codec: decisions to JSON and rows and back, exactly, and a clear refusal of what cannot be.

Pure tests (no database). The builders here are reused by the database tests in test_store.py.
"""

from __future__ import annotations

import doctest
import importlib
import json
import math
from dataclasses import replace
from typing import Any

import pytest

from actors.store import codec
from actors.store.decision_json import DecisionRecord, decision_from_json, decision_to_json, record_from_json
from actors.store.errors import InvalidRecordError
from engine.types import Action, Candidate, Decision, Instance, Lifecycle, Pool, Rule

T0_S = 1_676_419_200.0  # 2023-02-15T00:00:00Z


def make_candidate(
    zone: str = "us-east-1b",
    lifecycle: Lifecycle = Lifecycle.SPOT,
    price_usd_per_hour: float = 0.9180,
    risk: float = 0.05,
    expected_cost_usd_per_hour: float = 1.02,
) -> Candidate:
    return Candidate(Pool("p3.2xlarge", zone), lifecycle, price_usd_per_hour, risk, expected_cost_usd_per_hour)


def make_decision(
    instance_id: str = "i-0a1",
    action: Action = Action.REPLACE,
    rule: Rule = Rule.SAVING,
    decided_at_s: float = T0_S,
    saving_usd_per_hour: float = 0.1234567890123,
    **overrides: Any,
) -> Decision:
    fields: dict[str, Any] = {
        "instance_id": instance_id,
        "action": action,
        "rule": rule,
        "reason": "us-east-1b is 0.12 $/h cheaper after risk; saving beats the 0.05 $/h threshold",
        "decided_at_s": decided_at_s,
        "from_pool": Pool("p3.2xlarge", "us-east-1a"),
        "from_lifecycle": Lifecycle.SPOT,
        "to_pool": Pool("p3.2xlarge", "us-east-1b"),
        "to_lifecycle": Lifecycle.SPOT,
        "saving_usd_per_hour": saving_usd_per_hour,
        "numbers": {"threshold_usd_per_hour": 0.05, "risk": 0.05, "dwell_s": 3600.0, "tiny": 1e-300},
        "candidates": (
            make_candidate(),
            make_candidate("us-east-1a", price_usd_per_hour=1.0405, risk=0.2),
            make_candidate("us-east-1a", Lifecycle.ON_DEMAND, 3.06, 0.0, 3.06),
        ),
        "policy": "risk_aware",
    }
    fields.update(overrides)
    return Decision(**fields)


def make_instance(
    instance_id: str = "i-0a1",
    zone: str = "us-east-1a",
    lifecycle: Lifecycle = Lifecycle.SPOT,
    interrupted: bool = False,
) -> Instance:
    return Instance(instance_id, Pool("p3.2xlarge", zone), lifecycle, T0_S - 3600, "gpu", interrupted)


def every_kind_of_decision() -> list[Decision]:
    """One decision per action, rule and lifecycle, so every enum value makes the round trip."""
    out = [make_decision(f"i-a{n}", action, Rule.SAVING) for n, action in enumerate(Action)]
    out += [make_decision(f"i-r{n}", Action.KEEP, rule) for n, rule in enumerate(Rule)]
    out.append(make_decision("i-od", Action.FALLBACK_ON_DEMAND, Rule.FALLBACK, to_lifecycle=Lifecycle.ON_DEMAND))
    out.append(make_decision("i-bare", Action.KEEP, Rule.BEST_ALREADY, numbers={}, candidates=(), policy=""))
    return out


# --- JSON -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("decision", every_kind_of_decision(), ids=lambda d: d.instance_id)
def test_json_round_trip_keeps_every_field(decision: Decision) -> None:
    doc = decision_to_json("demo", "us-east-1", 7, decision)
    wire = json.loads(json.dumps(doc, allow_nan=False))
    assert decision_from_json(wire) == decision
    assert record_from_json(wire) == DecisionRecord("demo", "us-east-1", 7, decision)


def test_json_has_the_one_documented_shape() -> None:
    doc = decision_to_json("demo", "us-east-1", 42, make_decision(decided_at_s=T0_S + 0.5))
    assert set(doc) == {
        "seq", "account", "region", "instance_id", "action", "rule", "reason", "decided_at", "decided_at_s",
        "from", "to", "saving_usd_per_hour", "numbers", "candidates", "policy",
    }  # fmt: skip
    assert doc["seq"] == 42
    assert doc["action"] == "replace"
    assert doc["rule"] == "saving"
    assert doc["decided_at"] == "2023-02-15T00:00:00.500000Z"
    assert doc["decided_at_s"] == T0_S + 0.5
    assert doc["from"] == {
        "pool": "p3.2xlarge@us-east-1a",
        "instance_type": "p3.2xlarge",
        "availability_zone": "us-east-1a",
        "lifecycle": "spot",
    }
    assert doc["to"]["pool"] == "p3.2xlarge@us-east-1b"
    assert doc["candidates"][2] == {
        "pool": "p3.2xlarge@us-east-1a",
        "lifecycle": "on_demand",
        "price_usd_per_hour": 3.06,
        "risk": 0.0,
        "expected_cost_usd_per_hour": 3.06,
    }
    assert all(type(v) is float for v in doc["numbers"].values())


def test_json_accepts_enum_values_given_as_plain_strings() -> None:
    decision = make_decision(action="keep", rule="dwell", from_lifecycle="on_demand")
    back = decision_from_json(decision_to_json("demo", "us-east-1", 1, decision))
    assert back.action is Action.KEEP
    assert back.rule is Rule.DWELL
    assert back.from_lifecycle is Lifecycle.ON_DEMAND


def test_record_to_json_is_the_live_json() -> None:
    decision = make_decision()
    record = DecisionRecord("demo", "us-east-1", 3, decision)
    assert record.to_json() == decision_to_json("demo", "us-east-1", 3, decision)


# --- what cannot be stored ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"saving_usd_per_hour": math.nan}, "decision.saving_usd_per_hour"),
        ({"saving_usd_per_hour": math.inf}, "decision.saving_usd_per_hour"),
        ({"saving_usd_per_hour": "0.1"}, "decision.saving_usd_per_hour"),
        ({"action": "explode"}, "decision.action"),
        ({"rule": "because"}, "decision.rule"),
        ({"to_lifecycle": "reserved"}, "decision.to_lifecycle"),
        ({"instance_id": ""}, "decision.instance_id"),
        ({"instance_id": "i-" + "x" * 300}, "decision.instance_id"),
        ({"decided_at_s": -1.0}, "decision.decided_at_s"),
        ({"decided_at_s": True}, "decision.decided_at_s"),
        ({"numbers": {"risk": math.nan}}, "decision.numbers['risk']"),
        ({"numbers": {3: 1.0}}, "decision.numbers"),
        ({"candidates": (make_candidate(risk=1.5),)}, "decision.candidates[0].risk"),
        ({"candidates": (make_candidate(price_usd_per_hour=-1.0),)}, "decision.candidates[0].price_usd_per_hour"),
        ({"candidates": ("us-east-1b",)}, "decision.candidates[0]"),
        ({"to_pool": Pool("p3.2xlarge", "")}, "decision.to_pool.availability_zone"),
        ({"reason": "nul\x00byte"}, "decision.reason"),
    ],
)
def test_a_decision_that_would_not_round_trip_is_refused_naming_the_field(
    overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRecordError) as caught:
        decision_to_json("demo", "us-east-1", 1, make_decision(**overrides))
    assert caught.value.field == field
    assert str(caught.value).startswith(field + ":")


@pytest.mark.parametrize(
    ("account", "region", "seq", "field"),
    [
        ("", "us-east-1", 1, "account"),
        ("demo", None, 1, "region"),
        ("demo", "us-east-1", 0, "seq"),
        ("demo", "us-east-1", True, "seq"),
        ("demo", "us-east-1", 2**63, "seq"),
        ("demo", "us-east-1", 1.0, "seq"),
    ],
)
def test_stream_and_seq_are_checked(account: Any, region: Any, seq: Any, field: str) -> None:
    with pytest.raises(InvalidRecordError) as caught:
        decision_to_json(account, region, seq, make_decision())
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("to"), "to"),
        (lambda d: d["from"].update(lifecycle="reserved"), "from.lifecycle"),
        (lambda d: d["from"].update(pool="m5.large@us-east-1a"), "from.pool"),
        (lambda d: d.update(action="explode"), "action"),
        (lambda d: d["candidates"][1].update(pool="nozone"), "candidates[1].pool"),
        (lambda d: d["candidates"][0].pop("risk"), "candidates[0].risk"),
        (lambda d: d.update(candidates={}), "candidates"),
        (lambda d: d.update(saving_usd_per_hour=None), "saving_usd_per_hour"),
    ],
)
def test_bad_decision_json_names_the_field(mutate: Any, field: str) -> None:
    doc = decision_to_json("demo", "us-east-1", 1, make_decision())
    mutate(doc)
    with pytest.raises(InvalidRecordError) as caught:
        decision_from_json(doc)
    assert caught.value.field == field


def test_decision_json_must_be_an_object() -> None:
    with pytest.raises(InvalidRecordError, match="must be a JSON object"):
        decision_from_json([1, 2])  # type: ignore[arg-type]


# --- rows ---------------------------------------------------------------------------------------------


def test_row_round_trip_keeps_every_field() -> None:
    for decision in every_kind_of_decision():
        row = codec.decision_to_row("demo", "us-east-1", 5, decision)
        assert codec.record_from_row(row) == DecisionRecord("demo", "us-east-1", 5, decision)


def test_a_corrupt_row_names_its_stream_and_seq() -> None:
    row = codec.decision_to_row("demo", "us-east-1", 5, make_decision())
    row["action"] = "explode"
    with pytest.raises(InvalidRecordError, match=r"decisions row 'demo'/'us-east-1' seq 5\.action"):
        codec.record_from_row(row)


def test_instance_row_round_trip() -> None:
    for instance in (make_instance(), make_instance("i-2", "us-east-1c", Lifecycle.ON_DEMAND, True)):
        row = codec.instance_to_row("demo", "us-east-1", instance, T0_S)
        assert row["updated_at_s"] == T0_S
        assert codec.instance_from_row(row) == instance


def test_an_instance_with_a_bad_lifecycle_is_refused() -> None:
    with pytest.raises(InvalidRecordError, match=r"instance 'i-0a1'\.lifecycle"):
        codec.instance_to_row("demo", "us-east-1", replace(make_instance(), lifecycle="leased"), T0_S)


@pytest.mark.parametrize("module", ["actors.store.decision_json", "actors.store.fields", "actors.store.db"])
def test_store_doctests_pass(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
