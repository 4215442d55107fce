"""What a stream's fleet cost, what the same fleet would have cost on demand, and what was saved, per UTC
day or month, from what a region actor stores (see :mod:`engine.fleet_history` for the fleet over time).

Every figure is charged per second, at these prices, so that a hand computation reproduces it:

- A **spot** instance pays, for every second, the spot price in force in its pool: the price of the newest
  stored price tick (``prices`` event) at or before that second that names the pool. Decisions' candidate
  prices are not used: they are the price model's forecasts, not prices paid.
- An **on-demand** instance pays its instance type's on-demand price: the newest one a stored decision
  states (``numbers.on_demand_usd_per_hour`` for its ``from`` type, or an on-demand candidate's price),
  else the catalog's.
- A **stopped** (hibernated) instance pays nothing; its saving is what it would have paid running, at the
  lifecycle it last ran with (spot: the price in force in its pool; on-demand: the on-demand price).
- The **on-demand cost** is every running second at the instance type's on-demand price; ``savings_usd`` is
  that minus the actual cost, ``savings_pct`` that as a percentage of the on-demand cost.
- A running second missing a price (a spot pool before its oldest stored tick, e.g. pruned by retention,
  or a type with no known on-demand price) is an **unpriced** second: it saves nothing, both costs count
  it at whichever of the two prices is known (nothing if neither).

Counts are of stored decisions made in the row: ``replacements``, ``fallbacks``, ``returns_to_spot``,
``hibernations`` and ``wakes`` are moves the fleet snapshots show carried out; ``interruptions`` are
decisions with rule ``interrupted``, once per episode (not when the instance's previous decision had
that rule too: a move not carried out is decided again every tick).

Nothing before the stream's first stored observation or after its newest is counted.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from engine.fleet_history import STOPPED, FleetSnapshot, FleetSpan, Placement, carried_out, fleet_spans
from engine.report_period import Bucket, Granularity, Period, buckets
from engine.types import Action, Decision, Lifecycle, Rule

HOUR_S = 3600.0
SPOT, ON_DEMAND = Lifecycle.SPOT.value, Lifecycle.ON_DEMAND.value
MOVE_COUNTS = {Action.REPLACE: "replacements", Action.FALLBACK_ON_DEMAND: "fallbacks",
               Action.RETURN_TO_SPOT: "returns_to_spot", Action.HIBERNATE: "hibernations", Action.WAKE: "wakes"}


@dataclass(frozen=True, slots=True)
class PriceTick:
    """The spot prices a stored ``prices`` event observed at ``at_s``: pool key -> USD/hour."""

    at_s: float
    prices_usd_per_hour: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class StreamHistory:
    """What the store holds about one (account, region), read up to a report's end."""

    first_s: float  # the stream's first stored observation (decision or event)
    last_s: float  # its newest
    decisions: Sequence[Decision]  # in seq order
    snapshots: Sequence[FleetSnapshot]  # ``instances`` events, in seq order
    price_ticks: Sequence[PriceTick]  # ``prices`` events, in time order
    stored_fleet: Mapping[str, Placement] = field(default_factory=dict)  # when there is no snapshot
    catalog_on_demand_usd_per_hour: Mapping[str, float] = field(default_factory=dict)  # type -> price


@dataclass(frozen=True, slots=True)
class SavingsRow:
    """One day, one month, or the whole period."""

    label: str
    start_s: float
    end_s: float
    spot_hours: float = 0.0
    on_demand_hours: float = 0.0
    hibernated_hours: float = 0.0
    unpriced_hours: float = 0.0
    actual_cost_usd: float = 0.0
    on_demand_cost_usd: float = 0.0
    hibernation_saving_usd: float = 0.0
    interruptions: int = 0
    replacements: int = 0
    fallbacks: int = 0
    returns_to_spot: int = 0
    hibernations: int = 0
    wakes: int = 0

    @property
    def savings_usd(self) -> float:
        return self.on_demand_cost_usd - self.actual_cost_usd

    @property
    def savings_pct(self) -> float | None:
        """Savings as a percentage of the on-demand cost; None when nothing ran."""
        return 100.0 * self.savings_usd / self.on_demand_cost_usd if self.on_demand_cost_usd > 0 else None


@dataclass(frozen=True, slots=True)
class SavingsReport:
    """Rows per bucket of the period, their total, and the stored history's extent."""

    period: Period
    granularity: Granularity
    rows: tuple[SavingsRow, ...]
    total: SavingsRow
    first_s: float
    last_s: float


class _Prices:
    """Spot price steps per pool and on-demand prices per instance type."""

    def __init__(self, history: StreamHistory) -> None:
        steps: dict[str, dict[float, float]] = {}
        for tick in history.price_ticks:
            for key, price in tick.prices_usd_per_hour.items():
                if math.isfinite(price):
                    steps.setdefault(key, {})[tick.at_s] = price
        self.times = {key: sorted(points) for key, points in steps.items()}
        self.values = {key: [steps[key][t] for t in self.times[key]] for key in steps}
        self.on_demand = dict(history.catalog_on_demand_usd_per_hour)
        for decision in history.decisions:
            stated = decision.numbers.get("on_demand_usd_per_hour")
            if stated is not None and math.isfinite(stated):
                self.on_demand[decision.from_pool.instance_type] = float(stated)
            for candidate in decision.candidates:
                if candidate.lifecycle is Lifecycle.ON_DEMAND and math.isfinite(candidate.price_usd_per_hour):
                    self.on_demand[candidate.pool.instance_type] = candidate.price_usd_per_hour

    def spot_pieces(self, pool_key: str, start_s: float, end_s: float) -> list[tuple[float, float | None]]:
        """``[start_s, end_s)`` cut where the pool's price changes: (seconds, price in force or None)."""
        times, values = self.times.get(pool_key, []), self.values.get(pool_key, [])
        k = bisect.bisect_right(times, start_s) - 1
        pieces: list[tuple[float, float | None]] = []
        t = start_s
        while t < end_s:
            following = times[k + 1] if k + 1 < len(times) else math.inf
            until = min(end_s, following)
            pieces.append((until - t, values[k] if k >= 0 else None))
            t, k = until, k + 1
        return pieces


@dataclass(slots=True)
class _Tally:
    spot_s: float = 0.0
    on_demand_s: float = 0.0
    stopped_s: float = 0.0
    unpriced_s: float = 0.0
    actual: float = 0.0
    on_demand: float = 0.0
    hibernation: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)

    def running(self, seconds: float, price: float | None, on_demand: float | None) -> None:
        """``seconds`` paid at ``price`` (None: unknown) by an instance whose type costs ``on_demand``."""
        if price is None or on_demand is None:
            self.unpriced_s += seconds
            known = (on_demand if price is None else price) or 0.0
            self.actual += known * seconds / HOUR_S
            self.on_demand += known * seconds / HOUR_S
            return
        self.actual += price * seconds / HOUR_S
        self.on_demand += on_demand * seconds / HOUR_S

    def row(self, bucket: Bucket) -> SavingsRow:
        return SavingsRow(bucket.label, bucket.start_s, bucket.end_s, self.spot_s / HOUR_S,
                          self.on_demand_s / HOUR_S, self.stopped_s / HOUR_S, self.unpriced_s / HOUR_S,
                          self.actual, self.on_demand, self.hibernation, **self.counts)


def savings_report(history: StreamHistory, period: Period, granularity: Granularity) -> SavingsReport:
    """The report of ``history`` over ``period``, a row per bucket and a total (see the module docstring)."""
    prices = _Prices(history)
    spans = fleet_spans(history.snapshots, history.decisions, history.first_s, history.last_s,
                        history.stored_fleet)
    last_running = _last_running(spans, history.decisions)
    cuts = buckets(period, granularity)
    tallies = [_Tally() for _ in cuts]
    starts = [b.start_s for b in cuts]
    for span in spans:
        for k, bucket in enumerate(cuts):
            start_s, end_s = max(span.start_s, bucket.start_s), min(span.end_s, bucket.end_s)
            if end_s > start_s:
                for instance_id, placement in span.placements.items():
                    resumed = last_running.get((instance_id, span.start_s), ON_DEMAND)
                    _charge(tallies[k], prices, placement, resumed, start_s, end_s)
    _count(history, tallies, starts, period)
    rows = tuple(t.row(b) for t, b in zip(tallies, cuts, strict=True))
    total = _sum_rows(rows, Bucket(period.label, period.start_s, period.end_s))
    return SavingsReport(period, granularity, rows, total, history.first_s, history.last_s)


def _charge(tally: _Tally, prices: _Prices, placement: Placement, resumed: str, start_s: float,
            end_s: float) -> None:
    """One instance's ``[start_s, end_s)`` in one bucket."""
    on_demand = prices.on_demand.get(placement.pool.instance_type)
    seconds = end_s - start_s
    if placement.lifecycle == STOPPED:
        tally.stopped_s += seconds
        if resumed == SPOT:
            for piece_s, price in prices.spot_pieces(placement.pool.key, start_s, end_s):
                tally.hibernation += (price if price is not None else on_demand or 0.0) * piece_s / HOUR_S
        else:
            tally.hibernation += (on_demand or 0.0) * seconds / HOUR_S
    elif placement.lifecycle == SPOT:
        tally.spot_s += seconds
        for piece_s, price in prices.spot_pieces(placement.pool.key, start_s, end_s):
            tally.running(piece_s, price, on_demand)
    else:
        tally.on_demand_s += seconds
        tally.running(seconds, on_demand, on_demand)


def _last_running(spans: Sequence[FleetSpan], decisions: Sequence[Decision]) -> dict[tuple[str, float], str]:
    """(instance id, span start) -> the lifecycle a stopped instance last ran with: the ``from`` of its
    newest hibernation decision at or before the span, else its latest running span's, else on-demand."""
    hibernated: dict[str, list[tuple[float, str]]] = {}
    for d in decisions:
        if d.action is Action.HIBERNATE:
            hibernated.setdefault(d.instance_id, []).append((d.decided_at_s, str(d.from_lifecycle)))
    seen: dict[str, str] = {}
    found: dict[tuple[str, float], str] = {}
    for span in spans:
        for instance_id, placement in span.placements.items():
            if placement.lifecycle != STOPPED:
                seen[instance_id] = placement.lifecycle
                continue
            stops = [ran for at_s, ran in hibernated.get(instance_id, ()) if at_s <= span.start_s]
            found[(instance_id, span.start_s)] = stops[-1] if stops else seen.get(instance_id, ON_DEMAND)
    return found


def _count(history: StreamHistory, tallies: list[_Tally], starts: list[float], period: Period) -> None:
    previous_rule: dict[str, Rule] = {}
    done = carried_out(history.decisions, history.snapshots)
    for decision, moved in zip(history.decisions, done, strict=True):
        episode_goes_on = previous_rule.get(decision.instance_id) is Rule.INTERRUPTED
        previous_rule[decision.instance_id] = decision.rule
        if not period.start_s <= decision.decided_at_s < period.end_s:
            continue
        counts = tallies[bisect.bisect_right(starts, decision.decided_at_s) - 1].counts
        if decision.rule is Rule.INTERRUPTED and not episode_goes_on:
            counts["interruptions"] = counts.get("interruptions", 0) + 1
        name = MOVE_COUNTS.get(decision.action)
        if moved and name is not None:
            counts[name] = counts.get(name, 0) + 1


def _sum_rows(rows: Sequence[SavingsRow], bucket: Bucket) -> SavingsRow:
    total = SavingsRow(bucket.label, bucket.start_s, bucket.end_s)
    sums = {name: sum(getattr(r, name) for r in rows) for name in _ADDITIVE}
    return SavingsRow(total.label, total.start_s, total.end_s, **sums)


_ADDITIVE = ("spot_hours", "on_demand_hours", "hibernated_hours", "unpriced_hours", "actual_cost_usd",
             "on_demand_cost_usd", "hibernation_saving_usd", "interruptions", "replacements", "fallbacks",
             "returns_to_spot", "hibernations", "wakes")
