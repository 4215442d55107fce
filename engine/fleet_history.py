"""Where each instance of a stream was, over time, rebuilt from what a region actor stores.

A region actor stores an ``instances`` event (the whole fleet) whenever its fleet changes: after a
decision it carried out, an interruption, or a cloud's discovery. Those snapshots are the truth about
placements: a decision in ``observe`` or ``dry_run`` mode is a recommendation that changes nothing, so
decisions alone would claim moves that never happened. Decisions fill in the one thing snapshots miss,
the fleet before the first snapshot: each decision says where its instance was (``from``) when it was made.

The rules, so that a hand computation can follow them:

- From a snapshot's ``at_s`` on, the fleet is that snapshot's, until the next one (the newer of two at the
  same time wins) or the end of what is stored.
- Before the first snapshot (from the stream's first stored observation ``first_s``), the fleet is the
  first snapshot's, with every instance that a decision made at the first snapshot's time names put back
  where that decision says it was (``from``). With no snapshot at all, it is the stored fleet.
- A move (any action but ``keep``) was carried out when a snapshot at its decision's time shows its
  instance at the decision's ``to`` placement, or no longer shows it (a real cloud's replacement has a
  new id).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine.types import Action, Decision, Lifecycle, Pool

STOPPED = Lifecycle.STOPPED.value  # a hibernated instance: it exists, costs nothing, and runs again at WAKE


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an instance is and how it is bought: ``lifecycle`` is ``spot``, ``on_demand`` or ``stopped``."""

    pool: Pool
    lifecycle: str


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    """The whole fleet from ``at_s`` on: instance id -> placement."""

    at_s: float
    placements: Mapping[str, Placement]


@dataclass(frozen=True, slots=True)
class FleetSpan:
    """``[start_s, end_s)`` during which the fleet was ``placements``."""

    start_s: float
    end_s: float
    placements: Mapping[str, Placement]


def placement_before(decision: Decision) -> Placement:
    """Where the decision's instance was when it was made."""
    return Placement(decision.from_pool, str(decision.from_lifecycle))


def placement_after(decision: Decision) -> Placement:
    """Where the decision sends its instance."""
    return Placement(decision.to_pool, str(decision.to_lifecycle))


def fleet_spans(snapshots: Sequence[FleetSnapshot], decisions: Sequence[Decision], first_s: float,
                last_s: float, stored_fleet: Mapping[str, Placement]) -> list[FleetSpan]:
    """The fleet over ``[first_s, last_s)`` as consecutive spans (see the module docstring for the rules).

    ``snapshots`` in the order they were stored; ``stored_fleet`` is the fleet when there is no snapshot.

    >>> a, b = Pool("m5.large", "us-east-1a"), Pool("m5.large", "us-east-1b")
    >>> moved = FleetSnapshot(100.0, {"i-1": Placement(b, "spot")})
    >>> [(s.start_s, s.end_s, s.placements["i-1"].pool.availability_zone)
    ...  for s in fleet_spans([moved], [], 0.0, 300.0, {})]
    [(0.0, 100.0, 'us-east-1b'), (100.0, 300.0, 'us-east-1b')]
    """
    if not snapshots:
        return [FleetSpan(first_s, last_s, dict(stored_fleet))] if last_s > first_s else []
    spans: list[FleetSpan] = []
    first = snapshots[0]
    if first_s < first.at_s:
        before = dict(first.placements)
        for decision in decisions:
            if decision.decided_at_s == first.at_s:
                before[decision.instance_id] = placement_before(decision)
        spans.append(FleetSpan(first_s, first.at_s, before))
    for k, snapshot in enumerate(snapshots):
        end_s = snapshots[k + 1].at_s if k + 1 < len(snapshots) else max(last_s, snapshot.at_s)
        if end_s > snapshot.at_s:
            spans.append(FleetSpan(snapshot.at_s, end_s, snapshot.placements))
    return spans


def carried_out(decisions: Sequence[Decision], snapshots: Sequence[FleetSnapshot]) -> list[bool]:
    """For each decision, whether it was a move the stored snapshots show carried out (see the rules).

    >>> a, b = Pool("m5.large", "us-east-1a"), Pool("m5.large", "us-east-1b")
    >>> from engine.types import Lifecycle, Rule
    >>> move = Decision("i-1", Action.REPLACE, Rule.SAVING, "", 100.0, a, Lifecycle.SPOT, b, Lifecycle.SPOT)
    >>> carried_out([move], [FleetSnapshot(100.0, {"i-1": Placement(b, "spot")})])
    [True]
    >>> carried_out([move], [])  # observe mode: no snapshot, nothing moved
    [False]
    """
    at_time: dict[float, FleetSnapshot] = {}
    for snapshot in snapshots:
        at_time[snapshot.at_s] = snapshot  # the newest of those at one time wins
    done = []
    for decision in decisions:
        shown = at_time.get(decision.decided_at_s)
        if decision.action is Action.KEEP or shown is None:
            done.append(False)
            continue
        now = shown.placements.get(decision.instance_id)
        done.append(now is None or now == placement_after(decision))
    return done
