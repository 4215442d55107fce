"""RegionEngine: the one stateful core object of an (account, region).

It holds the latest price and availability of every pool, the fleet's instances, the online models and
the policy's memory. ``observe`` takes a whole batch (validated first, applied only if all of it is
valid, so a bad batch changes nothing), ``decide(now_s)`` returns one explained Decision per instance,
``apply`` records that a decision was carried out. ``snapshot``/``restore`` checkpoint everything.
No clock, no I/O: time comes in as ``now_s``. The fleet's bookkeeping (placements, dwell clock, return-to-spot
memory, the budget window) is a :class:`~engine.fleet_state.FleetState`, the same object the fleet simulator
keeps, so a backtest follows the rules this engine does. Hibernation schedules (``engine/hibernation.py``) stop
instances outside their windows and wake them through the policy's placement, on the same ``now_s``.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn, Protocol

import numpy as np

from engine.capacity import CAPACITY_WINDOW_S, updated_capacity
from engine.fleet_state import FleetState
from engine.hibernation import Hibernation, asleep_decision, hibernate_decision, wake_decision
from engine.policy import Policy, PolicyParams, make_policy
from engine.policy.base import FleetView, MarketView
from engine.policy.explain import explain
from engine.types import Action, AvailabilityPoint, Decision, Instance, Lifecycle, Pool, PricePoint

SNAPSHOT_VERSION = 3  # 2: the fleet as a FleetState; 3: hibernation (a version 2 snapshot restores, none stopped)


class BatchRejected(ValueError):
    """A batch of observations that was refused whole; the message names the entry and the field."""


class RiskEstimator(Protocol):
    """What the engine needs of an online interruption-risk model (engine.learning.risk.RiskModel).

    A tick goes in as arrays over pool keys: the engine keeps its pools in a fixed order, so it hands
    the same key tuple every tick and builds no per-pool mappings.
    """

    def observe_keys(self, now_s: float, pool_keys: Sequence[str], unavailable: Any,
                     extras: Mapping[str, Any] | None = None) -> None: ...

    def predict(self, now_s: float, pool_keys: Sequence[str]) -> Any: ...


class PriceEstimator(Protocol):
    """What the engine needs of an online price forecaster (engine.learning.price.PriceForecaster)."""

    def observe_array(self, now_s: float, pool_keys: Sequence[str], prices: Any) -> None: ...

    def predict(self, now_s: float, pool_keys: Sequence[str], horizon_s: float) -> Any: ...


@dataclass(slots=True)
class PoolState:
    """What the engine knows about one pool right now."""

    pool: Pool
    on_demand_usd_per_hour: float
    price_usd_per_hour: float = math.nan
    price_at_s: float = math.nan
    available: bool = True
    availability_at_s: float = math.nan
    capacity_score: float = 1.0  # time-weighted recent availability share (engine.capacity)


@dataclass(frozen=True, slots=True)
class PoolOrder:
    """The pools in column order with what every tick reads of them, rebuilt only when a pool is added
    (pools are never removed), so a tick neither re-derives keys nor hashes every pool again."""

    states: tuple[PoolState, ...]
    pools: tuple[Pool, ...]
    keys: tuple[str, ...]
    column: dict[Pool, int]

    @classmethod
    def of(cls, pools: Mapping[Pool, PoolState]) -> PoolOrder:
        states = tuple(pools.values())
        return cls(states, tuple(s.pool for s in states), tuple(s.pool.key for s in states),
                   {s.pool: i for i, s in enumerate(states)})


_BOOLS = (bool, np.bool_)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool | np.bool_)


@dataclass(frozen=True, slots=True)
class InstanceState:
    """One instance as the engine holds it now (a copy: changing it changes nothing)."""

    instance: Instance
    last_move_s: float
    spot_better_since_s: float = math.nan


class FleetInstances(Mapping[str, InstanceState]):
    """The engine's instances by id, read from its FleetState when asked (a live view, read-only)."""

    __slots__ = ("_engine",)

    def __init__(self, engine: RegionEngine) -> None:
        self._engine = engine

    def __getitem__(self, instance_id: str) -> InstanceState:
        engine = self._engine
        row = engine._rows[instance_id]
        state = engine.fleet_state
        return InstanceState(engine._instance(row), float(state.last_move_s[row]),
                             float(state.spot_better_since_s[row]))

    def __contains__(self, instance_id: object) -> bool:
        return instance_id in self._engine._rows

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._engine.instance_ids))

    def __len__(self) -> int:
        return len(self._engine.instance_ids)


@dataclass(slots=True)
class RegionEngine:
    """Prices, availability, fleet, models and policy memory of one (account, region)."""

    region: str
    policy: Policy = field(default_factory=lambda: make_policy("risk_aware"))
    risk_model: RiskEstimator | None = None
    price_model: PriceEstimator | None = None
    compatible_types: Callable[[str], Collection[str]] = field(default=lambda t: (t,))
    capacity_window_s: float = CAPACITY_WINDOW_S  # the capacity score's memory (engine.capacity)
    pools: dict[Pool, PoolState] = field(default_factory=dict)
    fleet_state: FleetState = field(default_factory=FleetState.empty)  # rows in instance-id order
    instance_ids: list[str] = field(default_factory=list)  # sorted; row i of fleet_state
    launched_at_s: list[float] = field(default_factory=list)  # per row
    fleet_names: list[str] = field(default_factory=list)  # fleet index -> name; names are never dropped
    last_observed_s: float = -math.inf
    notices: dict[Pool, float] = field(default_factory=dict)  # pool -> until when a cloud's notice holds it
    hibernation: Hibernation = field(default_factory=Hibernation)  # the account's schedules, instance tags
    _order: PoolOrder | None = field(default=None, init=False, repr=False, compare=False)
    _rows: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    _fleet_index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._rows = {iid: row for row, iid in enumerate(self.instance_ids)}
        self._fleet_index = {name: i for i, name in enumerate(self.fleet_names)}

    @property
    def params(self) -> PolicyParams:
        return self.policy.params

    def pool_order(self) -> PoolOrder:
        """The pools in column order (a cache of ``pools``, which only ever grows)."""
        order = self._order
        if order is None or len(order.states) != len(self.pools):
            order = self._order = PoolOrder.of(self.pools)
        return order

    # -- pools and fleet -------------------------------------------------------------------------------
    def add_pool(self, pool: Pool, on_demand_usd_per_hour: float) -> None:
        """Register a pool (its on-demand price is that of its instance type in this region)."""
        if pool.region != self.region:
            raise ValueError(f"pool {pool.key} is not in region {self.region}")
        if not (on_demand_usd_per_hour > 0 and math.isfinite(on_demand_usd_per_hour)):
            raise ValueError(f"pool {pool.key}: on-demand price must be positive, got {on_demand_usd_per_hour}")
        if pool not in self.pools:
            self.pools[pool] = PoolState(pool, on_demand_usd_per_hour)

    @property
    def instances(self) -> FleetInstances:
        """The instances by id (read-only; change them through the methods below)."""
        return FleetInstances(self)

    def _instance(self, row: int) -> Instance:
        state = self.fleet_state
        return Instance(
            instance_id=self.instance_ids[row],
            pool=self.pool_order().pools[int(state.pool[row])],
            lifecycle=Lifecycle.STOPPED if state.stopped[row] else
            Lifecycle.ON_DEMAND if state.on_demand[row] else Lifecycle.SPOT,
            launched_at_s=self.launched_at_s[row],
            fleet=self.fleet_names[int(state.fleet[row])],
            interrupted=bool(state.interrupted[row]),
        )

    def _fleet_of(self, name: str) -> int:
        index = self._fleet_index.get(name)
        if index is None:
            index = self._fleet_index[name] = self.fleet_state.add_fleet()
            self.fleet_names.append(name)
        return index

    def _put(self, instance: Instance, now_s: float) -> None:
        """Add or overwrite one instance, leaving the rows to be put in id order by :meth:`_reorder`."""
        column = self.pool_order().column[instance.pool]
        on_demand = instance.lifecycle is Lifecycle.ON_DEMAND
        fleet = self._fleet_of(instance.fleet)
        row = self._rows.get(instance.instance_id)
        if row is None:
            row = self.fleet_state.append(column, on_demand, instance.interrupted,
                                          min(now_s, instance.launched_at_s), fleet)
            self._rows[instance.instance_id] = row
            self.instance_ids.append(instance.instance_id)
            self.launched_at_s.append(instance.launched_at_s)
        else:  # known: its dwell clock stays
            self.fleet_state.reset(row, column, on_demand, instance.interrupted, fleet)
            self.launched_at_s[row] = instance.launched_at_s
        if instance.lifecycle is Lifecycle.STOPPED:
            self.fleet_state.hibernate(np.array([row], dtype=np.intp))

    def _keep_rows(self, rows: Sequence[int]) -> None:
        """Keep these rows, put in instance-id order (the order decisions come in)."""
        ordered = sorted(rows, key=self.instance_ids.__getitem__)
        if ordered == list(range(len(self.instance_ids))):
            return
        self.fleet_state.take(np.asarray(ordered, dtype=np.intp))
        self.instance_ids = [self.instance_ids[r] for r in ordered]
        self.launched_at_s = [self.launched_at_s[r] for r in ordered]
        self._rows = {iid: row for row, iid in enumerate(self.instance_ids)}

    def upsert_instance(self, instance: Instance, now_s: float) -> None:
        if instance.pool not in self.pools:
            raise ValueError(f"instance {instance.instance_id}: unknown pool {instance.pool.key}")
        self._put(instance, now_s)
        self._keep_rows(range(len(self.instance_ids)))

    def remove_instance(self, instance_id: str) -> None:
        row = self._rows.get(instance_id)
        if row is not None:
            self._keep_rows([r for r in range(len(self.instance_ids)) if r != row])
        self.hibernation.forget([instance_id])

    def sync_fleet(self, instances: Iterable[Instance], now_s: float) -> tuple[list[str], list[str]]:
        """Make the fleet exactly ``instances`` (a cloud's discovery): returns (joined, left) ids.

        An instance already known keeps its engine state (dwell clock, an interruption seen but not yet
        acted on) unless the cloud reports it elsewhere (another pool or lifecycle: it was moved outside).
        An instance this engine hibernated stays though the cloud shows it no more (a cloud's discovery sees
        running instances; a spot one was let go): it is woken when its window opens.
        """
        wanted = {i.instance_id: i for i in instances}
        for instance in wanted.values():
            if instance.pool not in self.pools:
                raise ValueError(f"instance {instance.instance_id}: unknown pool {instance.pool.key}")
        stopped = self.fleet_state.stopped
        left = [iid for row, iid in enumerate(self.instance_ids) if iid not in wanted and not stopped[row]]
        if left:
            self._keep_rows([row for row, iid in enumerate(self.instance_ids) if iid in wanted or stopped[row]])
            self.hibernation.forget(left)
        joined = []
        for iid, instance in wanted.items():
            row = self._rows.get(iid)
            if row is None:
                joined.append(iid)
                self._put(instance, now_s)
            else:
                known = self._instance(row)
                if (known.pool, known.lifecycle) != (instance.pool, instance.lifecycle):
                    self._put(instance, now_s)
        self._keep_rows(range(len(self.instance_ids)))
        return sorted(joined), sorted(left)

    def rename_instance(self, old_id: str, new_id: str) -> None:
        """A replacement on a real cloud has its own id: the instance's engine state moves to it."""
        if old_id not in self._rows:
            raise KeyError(old_id)
        if new_id != old_id:
            self.remove_instance(new_id)
            row = self._rows.pop(old_id)
            self.instance_ids[row] = new_id
            self._rows[new_id] = row
            self._keep_rows(range(len(self.instance_ids)))

    # -- a cloud's notices -----------------------------------------------------------------------------
    def notice_unavailable(self, pool: Pool, now_s: float, hold_s: float) -> None:
        """A cloud says ``pool`` cannot give capacity (an interruption warning in it, a capacity error on
        launch): it is no placement for ``hold_s`` and the risk model sees it unavailable meanwhile. Unlike
        an availability observation, a notice does not reclaim the pool's other instances: the cloud warns
        each instance it takes back on its own."""
        state = self.pools.get(pool)
        if state is None:
            raise ValueError(f"unknown pool {pool.key} in {self.region}")
        if not (math.isfinite(now_s) and hold_s >= 0):
            raise ValueError(f"a notice needs a finite now_s and hold_s >= 0, got {now_s!r}, {hold_s!r}")
        self.notices[pool] = max(self.notices.get(pool, -math.inf), now_s + hold_s)
        state.available = False
        state.availability_at_s = now_s

    def report_interruption(self, instance_ids: Iterable[str], now_s: float, hold_s: float) -> list[str]:
        """A cloud's interruption warnings: the named spot instances must move, and their pools are
        noticed unavailable. Returns the ids that were newly interrupted (unknown or on-demand ids are
        ignored: a warning can outlive the instance it names)."""
        interrupted = []
        state, pools = self.fleet_state, self.pool_order().pools
        for iid in instance_ids:
            row = self._rows.get(iid)
            if row is None or state.on_demand[row] or state.stopped[row]:
                continue
            self.notice_unavailable(pools[int(state.pool[row])], now_s, hold_s)
            if state.interrupt_rows(np.array([row], dtype=np.intp))[0]:
                interrupted.append(iid)
        return interrupted

    def _expire_notices(self, now_s: float) -> None:
        """Pools whose notice ran out are available again (unless an observation since says otherwise)."""
        for pool, until_s in list(self.notices.items()):
            if until_s <= now_s:
                del self.notices[pool]
                state = self.pools[pool]
                state.available, state.availability_at_s = True, until_s

    # -- observations ----------------------------------------------------------------------------------
    def validate(self, prices: Sequence[PricePoint], availability: Sequence[AvailabilityPoint],
                  now_s: float) -> None:
        self._resolve(prices, availability, now_s)

    def _resolve(self, prices: Sequence[PricePoint], availability: Sequence[AvailabilityPoint],
                 now_s: float) -> tuple[list[PoolState], list[PoolState]]:
        """Validate a batch and look up the state of each point's pool (each pool hashed once).

        The loop only tests; a batch that fails is walked again by :meth:`_reject` to name the entry.
        """
        if not (isinstance(now_s, int | float) and math.isfinite(now_s)):
            raise BatchRejected(f"now_s must be a finite time, got {now_s!r}")
        if now_s < self.last_observed_s:  # the models learn in time order: refused before anything changes
            raise BatchRejected(f"now_s {now_s} is before the last observation at {self.last_observed_s}")
        get, finite = self.pools.get, math.isfinite
        resolved: list[list[PoolState]] = []
        try:  # a field of the wrong type (unhashable pool, text for a number) is a TypeError: refused too
            for points, kind in ((prices, PricePoint), (availability, AvailabilityPoint)):
                states = []
                for point in points:
                    if point.__class__ is not kind:
                        self._reject(prices, availability, now_s)
                    state = get(point.pool)
                    ts = point.timestamp_s
                    if state is None or not (finite(ts) and ts <= now_s) or (
                        not (finite(point.price_usd_per_hour) and point.price_usd_per_hour >= 0)
                        if isinstance(point, PricePoint) else not isinstance(point.available, _BOOLS)
                    ):
                        self._reject(prices, availability, now_s)
                    states.append(state)
                resolved.append(states)
        except TypeError:
            self._reject(prices, availability, now_s)
        return resolved[0], resolved[1]

    def _reject(self, prices: Sequence[PricePoint], availability: Sequence[AvailabilityPoint],
                now_s: float) -> NoReturn:
        """Raise BatchRejected naming the first bad entry and field of a batch known to be bad."""
        for name, kind, points in (("prices", PricePoint, prices), ("availability", AvailabilityPoint, availability)):
            for i, point in enumerate(points):
                where = f"{name}[{i}]"
                if point.__class__ is not kind:
                    raise BatchRejected(f"{where}: expected a {kind.__name__}, got {type(point).__name__}")
                if not isinstance(point.pool, Pool) or point.pool not in self.pools:
                    shown = point.pool.key if isinstance(point.pool, Pool) else repr(point.pool)
                    raise BatchRejected(f"{where}: field 'pool': unknown pool {shown} in {self.region}")
                if not (_is_number(point.timestamp_s) and math.isfinite(point.timestamp_s)):
                    raise BatchRejected(f"{where}: field 'timestamp_s': {point.timestamp_s!r} is not a time")
                if point.timestamp_s > now_s:
                    raise BatchRejected(f"{where}: field 'timestamp_s': {point.timestamp_s} is after now")
                if isinstance(point, PricePoint) and not (
                    _is_number(point.price_usd_per_hour) and math.isfinite(point.price_usd_per_hour)
                    and point.price_usd_per_hour >= 0
                ):
                    raise BatchRejected(
                        f"{where}: field 'price_usd_per_hour': {point.price_usd_per_hour!r} is not a price"
                    )
                if isinstance(point, AvailabilityPoint) and not isinstance(point.available, _BOOLS):
                    raise BatchRejected(f"{where}: field 'available': {point.available!r} is not a boolean")
        raise AssertionError("_reject called on a valid batch")

    def observe(self, prices: Sequence[PricePoint], availability: Sequence[AvailabilityPoint],
                now_s: float) -> list[str]:
        """Take one batch of observations; returns the ids of instances it interrupted.

        The whole batch is validated before anything changes: a bad entry rejects all of it.
        """
        price_states, availability_states = self._resolve(prices, availability, now_s)
        if self.notices:
            self._expire_notices(now_s)
        # Per pool the newest point wins, the later one on a tie; one pass in batch order does exactly
        # that (a point is taken when it is not older than what the pool holds), with no sort.
        for price, priced in zip(prices, price_states, strict=True):
            if not price.timestamp_s < priced.price_at_s:  # NaN-safe "not older"
                priced.price_usd_per_hour = price.price_usd_per_hour
                priced.price_at_s = price.timestamp_s
        for point, probed in zip(availability, availability_states, strict=True):
            if not point.timestamp_s < probed.availability_at_s:
                probed.available = point.available
                probed.availability_at_s = point.timestamp_s
                if self.notices:  # an observation replaces a notice
                    self.notices.pop(probed.pool, None)
        dt = 0.0 if not math.isfinite(self.last_observed_s) else max(0.0, now_s - self.last_observed_s)
        order = self.pool_order()
        states, keys = order.states, order.keys
        available = np.array([s.available for s in states], dtype=bool)
        scores = updated_capacity(np.array([s.capacity_score for s in states], dtype=np.float64), available, dt,
                                  self.capacity_window_s)
        for pool_state, score in zip(states, scores.tolist(), strict=True):
            pool_state.capacity_score = score
        self.last_observed_s = max(self.last_observed_s, now_s)

        # The risk model learns from the state of every pool at every tick, changed or not.
        spot_price = np.array([s.price_usd_per_hour for s in states], dtype=np.float64)  # NaN: never priced
        if self.risk_model is not None and states:
            unavailable = (~available).astype(np.float64)
            on_demand = np.array([s.on_demand_usd_per_hour for s in states], dtype=np.float64)
            self.risk_model.observe_keys(now_s, keys, unavailable, {"price_ratio": spot_price / on_demand})
        if self.price_model is not None and prices:
            finite = np.isfinite(spot_price)
            if finite.all():
                self.price_model.observe_array(float(now_s), keys, spot_price)
            elif finite.any():
                priced_keys = [k for k, p in zip(keys, finite, strict=True) if p]
                self.price_model.observe_array(float(now_s), priced_keys, spot_price[finite])

        if not self.instance_ids:
            return []
        # A pool whose capacity is gone takes back the spot instances in it; under a cloud's notice it does
        # not (the cloud warns each instance it takes back on its own).
        lost = ~available
        if self.notices:
            lost &= np.array([s.pool not in self.notices for s in states], dtype=bool)
        newly = self.fleet_state.interrupt(lost[None, :])
        return [self.instance_ids[row] for row in np.flatnonzero(newly)]

    # -- decisions -------------------------------------------------------------------------------------
    def market_view(self, now_s: float) -> MarketView:
        """The pools as the policy sees them: predicted price, risk, availability, capacity."""
        order = self.pool_order()
        states, keys = order.states, order.keys
        price = np.array([s.price_usd_per_hour for s in states], dtype=np.float64)
        if self.price_model is not None and keys:
            horizon_s = max(3600.0, self.params.risk_horizon_s)
            forecast = np.asarray(self.price_model.predict(now_s, keys, horizon_s), dtype=np.float64)
            price = np.where(np.isfinite(forecast), forecast, price)
        if self.risk_model is not None and keys:
            risk = np.asarray(self.risk_model.predict(now_s, keys), dtype=np.float64)
        else:
            risk = np.array([0.0 if s.available else 1.0 for s in states])
        if not np.isfinite(risk).all():
            risk = np.nan_to_num(risk, nan=0.5)
        return MarketView(
            pools=order.pools,
            spot_price=price[None, :],
            risk=risk[None, :],
            available=np.array([s.available for s in states], dtype=bool)[None, :],
            capacity_score=np.array([s.capacity_score for s in states])[None, :],
            on_demand_price=np.array([s.on_demand_usd_per_hour for s in states]),
        )

    def fleet_view(self, market: MarketView, now_s: float) -> tuple[FleetView, list[Instance]]:
        """The fleet as the policy sees it, against ``market`` (this engine's :meth:`market_view`), and
        the instances in row order."""
        order = self.pool_order()
        if market.pools is not order.pools and market.pools != order.pools:
            raise ValueError("the market's pools are not this engine's pools in its order")
        state = self.fleet_state
        n = state.n_instances
        pool_types = [p.instance_type for p in order.pools]
        compatible = np.zeros((n, len(order.pools)), dtype=bool)
        mask_of: dict[str, list[bool]] = {}  # instance type -> its compatible pools, once per type
        for i, column in enumerate(state.pool.tolist()):
            instance_type = pool_types[column]
            mask = mask_of.get(instance_type)
            if mask is None:
                allowed = set(self.compatible_types(instance_type))
                mask = mask_of[instance_type] = [t in allowed for t in pool_types]
            compatible[i] = mask
        od_price = market.on_demand_price[state.pool]
        view = state.view(now_s, self.params, np.zeros(n, dtype=np.intp), compatible, od_price)
        return view, [self._instance(row) for row in range(n)]

    def decide(self, now_s: float) -> list[Decision]:
        """One explained decision per instance (KEEPs included), in instance-id order."""
        if not self.instance_ids:
            return []
        market = self.market_view(now_s)
        fleet, instances = self.fleet_view(market, now_s)
        if self.hibernation.schedules or self.fleet_state.stopped.any():
            return self._decide_on_schedule(market, fleet, instances, now_s)
        choice = self.policy.decide(market, fleet, now_s)
        self.fleet_state.remember(choice)
        return [explain(choice, i, instance, market, fleet, now_s=now_s, policy=self.policy.name)
                for i, instance in enumerate(instances)]

    def _decide_on_schedule(self, market: MarketView, fleet: FleetView, instances: list[Instance],
                            now_s: float) -> list[Decision]:
        """Hibernate the running instances outside their window, keep the stopped ones asleep, and let the
        policy decide for the rest, the waking ones placed as instances with no home (no budget spent,
        any pool or on-demand): the normal placement path."""
        plan = self.hibernation.plan(instances, now_s)
        name = self.policy.name
        decided: dict[str, Decision] = {}
        for instance, schedule in plan.hibernate:
            cost = self._cost_now(self._rows[instance.instance_id], market, fleet)
            decided[instance.instance_id] = hibernate_decision(instance, schedule, cost, now_s, name)
        for instance, schedule in plan.asleep:
            decided[instance.instance_id] = asleep_decision(instance, schedule, now_s, name)
        waking = {instance.instance_id: schedule for instance, schedule in plan.wake}
        rows = np.array(sorted(self._rows[i.instance_id] for i in plan.for_policy), dtype=np.intp)
        if rows.size:
            homeless = np.array([self.instance_ids[r] in waking for r in rows], dtype=bool)
            shown = self.fleet_state.view(now_s, self.params, fleet.market_row[rows], fleet.compatible[rows],
                                          fleet.on_demand_price[rows], rows)
            placing = replace(shown, pool=np.where(homeless, -1, shown.pool),
                              on_demand=shown.on_demand & ~homeless, interrupted=shown.interrupted | homeless)
            choice = self.policy.decide(market, placing, now_s)
            self.fleet_state.remember(choice, rows)
            for i, row in enumerate(rows.tolist()):
                decision = explain(choice, i, instances[row], market, shown, now_s=now_s, policy=name)
                iid = self.instance_ids[row]
                decided[iid] = wake_decision(decision, waking[iid]) if iid in waking else decision
        return [decided[iid] for iid in self.instance_ids]

    def _cost_now(self, row: int, market: MarketView, fleet: FleetView) -> float:
        """What instance ``row`` costs per hour where it runs: its on-demand price, or its pool's latest
        spot price (the forecast when none was observed)."""
        if fleet.on_demand[row]:
            return float(fleet.on_demand_price[row])
        column = int(fleet.pool[row])
        observed = market.pools[column]
        price = self.pools[observed].price_usd_per_hour
        if not math.isfinite(price):
            price = float(market.spot_price[0, column])
        return price if math.isfinite(price) else 0.0

    def apply(self, decision: Decision, now_s: float) -> Instance:
        """Record that a decision was carried out: the instance now runs at its target placement (a move of
        an instance not interrupted is voluntary and spends its fleet's disruption budget)."""
        row = self._rows[decision.instance_id]
        if decision.action is Action.KEEP:
            return self._instance(row)
        rows = np.array([row], dtype=np.intp)
        if decision.action is Action.HIBERNATE:
            self.fleet_state.hibernate(rows)
            return self._instance(row)
        column = self.pool_order().column.get(decision.to_pool)
        if column is None:
            raise ValueError(f"decision for {decision.instance_id}: unknown pool {decision.to_pool.key}")
        on_demand = decision.to_lifecycle is Lifecycle.ON_DEMAND
        if decision.action is Action.WAKE:
            self.fleet_state.wake(rows, np.array([column], dtype=np.intp), np.array([on_demand]), now_s)
            self.launched_at_s[row] = now_s
            return self._instance(row)
        self.fleet_state.move(rows, np.array([column], dtype=np.intp), np.array([on_demand]), now_s)
        self.launched_at_s[row] = now_s
        return self._instance(row)

    # -- reads -----------------------------------------------------------------------------------------
    def latest_prices(self) -> list[PricePoint]:
        return [PricePoint(s.pool, s.price_usd_per_hour, s.price_at_s)
                for s in self.pools.values() if math.isfinite(s.price_usd_per_hour)]

    def pool_states(self) -> list[PoolState]:
        return list(self.pools.values())

    def fleet(self) -> list[Instance]:
        return [self._instance(row) for row in range(len(self.instance_ids))]

    # -- checkpoints -----------------------------------------------------------------------------------
    def snapshot(self) -> bytes:
        """Everything, models included, as a versioned pickle."""
        state = {name: getattr(self, name) for name in self.__slots__}
        state.pop("compatible_types")
        for derived in ("_order", "_rows", "_fleet_index"):  # rebuilt from ``pools``, the ids and the names
            state.pop(derived)
        return pickle.dumps({"version": SNAPSHOT_VERSION, "state": state})

    @classmethod
    def restore(cls, blob: bytes, compatible_types: Callable[[str], Collection[str]] | None = None
                ) -> RegionEngine:
        doc = pickle.loads(blob)
        if not isinstance(doc, dict) or doc.get("version") not in (2, SNAPSHOT_VERSION):
            found = doc.get("version") if isinstance(doc, dict) else type(doc).__name__
            raise ValueError(f"RegionEngine snapshot version {found!r} is not {SNAPSHOT_VERSION}")
        if doc["version"] == 2:  # before hibernation: nothing stopped, no schedules
            fleet_state = doc["state"]["fleet_state"]
            fleet_state.stopped = np.zeros(fleet_state.pool.shape, bool)
        engine = cls(**doc["state"])
        if not hasattr(engine.hibernation, "exempt"):  # written before schedules knew exempt instances
            engine.hibernation.exempt = set()
        if compatible_types is not None:
            engine.compatible_types = compatible_types
        return engine


def pools_of_region(pools: Iterable[Pool], region: str) -> list[Pool]:
    """The pools that lie in a region, in a stable order."""
    return sorted(p for p in pools if p.region == region)
