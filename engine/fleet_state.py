"""FleetState: what a policy needs to remember about a fleet between ticks, as arrays over instances.

The live :class:`~engine.region.RegionEngine` (one fleet per name, a handful of instances) and the fleet
simulator (:func:`engine.sim.fleet.simulate_fleet`, one fleet per run, all runs at once) keep their fleets
in this one object, so a backtest runs the same bookkeeping the live actor does:

* placement: the pool of each instance (``-1``: not placed yet) and whether it runs on demand;
* ``interrupted``: its spot capacity was taken back (or it has no home yet), so it must move;
* the dwell clock ``last_move_s`` and the return-to-spot memory ``spot_better_since_s``;
* the disruption budget: a *sliding* window of voluntary moves per fleet (:class:`MoveWindow`);
* pool occupancy, derived from the placements (:meth:`FleetState.occupancy`);
* ``stopped``: hibernated by a schedule (:mod:`engine.hibernation`): it runs nowhere, costs nothing, is
  taken back by no pool and decided by no policy until it wakes, placed then as an instance with no home.

It builds the :class:`~engine.policy.base.FleetView` a policy decides on and applies what was decided. It
knows nothing of instance ids, prices or time sources: callers map their own identities onto rows and pass
time in. The arrays are updated in place where a few rows change, so a FleetView built without ``rows``
shares them and sees later moves: build a new view for every decision.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from engine.policy.base import Choice, FleetView, PolicyParams

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]


@dataclass(slots=True, eq=False)
class MoveWindow:
    """Voluntary moves per fleet in a sliding window: a move made at ``t`` counts while ``t > now - window``.

    Moves are kept as one entry per moment a move happened (the counts of every fleet at that moment), in
    time order, with their running sum, so reading the budget costs one pass over the fleets plus the
    entries that expired: exact for any tick spacing, and cheap for thousands of fleets at once.

    >>> w = MoveWindow.of(2)
    >>> w.spend(np.array([0, 0, 1]), 100.0)
    >>> w.left(150.0, per_window=2, window_s=60.0).tolist()
    [0, 1]
    >>> w.left(160.0, per_window=2, window_s=60.0).tolist()  # the moves at 100 s left the window at 160 s
    [2, 2]
    """

    used: npt.NDArray[np.int64]  # (F,) moves in the window, per fleet
    entries: deque[tuple[float, npt.NDArray[np.int64]]] = field(default_factory=deque)  # (when, counts (F,))

    @classmethod
    def of(cls, n_fleets: int) -> MoveWindow:
        return cls(np.zeros(n_fleets, np.int64))

    @property
    def n_fleets(self) -> int:
        return int(self.used.shape[0])

    def grow(self, n_fleets: int) -> None:
        """Make room for fleets added since (their counts start at zero)."""
        extra = n_fleets - self.n_fleets
        if extra > 0:
            self.used = np.concatenate([self.used, np.zeros(extra, np.int64)])
            self.entries = deque((t, np.concatenate([c, np.zeros(extra, np.int64)])) for t, c in self.entries)

    def expire(self, now_s: float, window_s: float) -> None:
        """Forget the moves that left the window."""
        entries = self.entries
        while entries and entries[0][0] <= now_s - window_s:
            self.used -= entries.popleft()[1]

    def left(self, now_s: float, per_window: int, window_s: float) -> IntArray:
        """(F,) voluntary moves each fleet may still make now."""
        self.expire(now_s, window_s)
        left: IntArray = np.maximum(per_window - self.used, 0).astype(np.intp)
        return left

    def spend(self, fleets: IntArray, now_s: float) -> None:
        """Record one voluntary move for each entry of ``fleets`` (fleet indices, repeats allowed) at ``now_s``."""
        if not fleets.size:
            return
        counts = np.bincount(fleets, minlength=self.n_fleets).astype(np.int64)
        self.used += counts
        if self.entries and self.entries[-1][0] == now_s:
            self.entries[-1][1][:] += counts
        else:
            self.entries.append((now_s, counts))


@dataclass(slots=True, eq=False)
class FleetState:
    """Placements, lifecycle, interruption, dwell clock, return-to-spot memory and budget of ``N`` instances
    in ``F`` fleets."""

    pool: IntArray  # (N,) current pool column; -1: not placed yet (an on-demand one: runs beside no pool)
    on_demand: BoolArray  # (N,)
    interrupted: BoolArray  # (N,) must move: its capacity was taken back, or it has no home yet
    last_move_s: FloatArray  # (N,) when its placement last changed (the dwell clock)
    spot_better_since_s: FloatArray  # (N,) since when spot has beaten on-demand for it; NaN when not
    fleet: IntArray  # (N,) fleet index of each instance
    moves: MoveWindow  # the fleets' voluntary moves in the budget window
    stopped: BoolArray = field(default_factory=lambda: np.zeros(0, bool))  # (N,) hibernated; pool: where it was

    def __post_init__(self) -> None:
        if self.stopped.shape != self.pool.shape:  # built without it: nothing is stopped
            self.stopped = np.zeros(self.pool.shape, bool)

    @classmethod
    def empty(cls) -> FleetState:
        """No instance, no fleet: the live engine's start."""
        return cls.homeless(np.zeros(0, np.intp), 0)

    @classmethod
    def homeless(cls, fleet: IntArray, n_fleets: int) -> FleetState:
        """New instances (``fleet[i]`` is the fleet of instance ``i``) that no policy has placed yet: each is
        'interrupted' with no pool, so the first decision places it without spending the budget.

        >>> s = FleetState.homeless(np.array([0, 0, 1]), 2)
        >>> s.pool.tolist(), s.interrupted.tolist(), s.n_fleets
        ([-1, -1, -1], [True, True, True], 2)
        """
        n = int(fleet.shape[0])
        return cls(
            pool=np.full(n, -1, np.intp),
            on_demand=np.zeros(n, bool),
            interrupted=np.ones(n, bool),
            last_move_s=np.full(n, -np.inf),
            spot_better_since_s=np.full(n, np.nan),
            fleet=np.asarray(fleet, np.intp).copy(),
            moves=MoveWindow.of(n_fleets),
        )

    @property
    def n_instances(self) -> int:
        return int(self.pool.shape[0])

    @property
    def n_fleets(self) -> int:
        return self.moves.n_fleets

    # -- membership (the live fleet changes as a cloud reports it) ------------------------------------------
    def add_fleet(self) -> int:
        """A new fleet with no instance and an unspent budget; returns its index."""
        self.moves.grow(self.n_fleets + 1)
        return self.n_fleets - 1

    def append(self, pool: int, on_demand: bool, interrupted: bool, last_move_s: float, fleet: int) -> int:
        """Add one instance (its return-to-spot memory empty); returns its row."""
        if not 0 <= fleet < self.n_fleets:
            raise ValueError(f"unknown fleet index {fleet}")
        self.pool = np.append(self.pool, np.intp(pool))
        self.on_demand = np.append(self.on_demand, bool(on_demand))
        self.interrupted = np.append(self.interrupted, bool(interrupted))
        self.last_move_s = np.append(self.last_move_s, float(last_move_s))
        self.spot_better_since_s = np.append(self.spot_better_since_s, np.nan)
        self.fleet = np.append(self.fleet, np.intp(fleet))
        self.stopped = np.append(self.stopped, False)
        return self.n_instances - 1

    def reset(self, row: int, pool: int, on_demand: bool, interrupted: bool, fleet: int) -> None:
        """An instance found elsewhere than the state says (moved outside the engine): take the cloud's word
        for its placement and fleet, keep its dwell clock, forget its return-to-spot memory."""
        if not 0 <= fleet < self.n_fleets:
            raise ValueError(f"unknown fleet index {fleet}")
        self.fleet[row] = fleet
        self.pool[row] = pool
        self.on_demand[row] = on_demand
        self.interrupted[row] = interrupted
        self.spot_better_since_s[row] = np.nan
        self.stopped[row] = False

    def take(self, rows: IntArray) -> None:
        """Keep only ``rows``, in that order (instances that left are dropped; fleets and budget stay)."""
        self.pool = self.pool[rows]
        self.on_demand = self.on_demand[rows]
        self.interrupted = self.interrupted[rows]
        self.last_move_s = self.last_move_s[rows]
        self.spot_better_since_s = self.spot_better_since_s[rows]
        self.fleet = self.fleet[rows]
        self.stopped = self.stopped[rows]

    # -- the cloud takes capacity back ----------------------------------------------------------------------
    def interrupt(self, lost_pool: BoolArray, market_row: IntArray | None = None) -> BoolArray:
        """Spot instances placed in a pool that lost its capacity are interrupted: ``lost_pool`` is (M, P)
        per market row (``market_row`` (N,) says each instance's row; None: row 0). Returns the rows newly
        interrupted (an instance already interrupted is not counted twice).

        >>> s = FleetState.homeless(np.array([0, 0]), 1)
        >>> s.pool[:], s.interrupted[:] = [0, 1], False
        >>> s.interrupt(np.array([[False, True]])).tolist()
        [False, True]
        """
        housed = self.pool >= 0
        at = np.maximum(self.pool, 0)
        lost_here = lost_pool[0, at] if market_row is None else lost_pool[market_row, at]
        lost: BoolArray = lost_here & housed & ~self.on_demand & ~self.interrupted & ~self.stopped
        if lost.any():
            self.interrupted |= lost
        return lost

    def interrupt_rows(self, rows: IntArray) -> BoolArray:
        """A cloud's warnings for these rows: the spot ones not yet interrupted are; returns which were newly."""
        newly: BoolArray = ~self.on_demand[rows] & ~self.interrupted[rows] & ~self.stopped[rows]
        self.interrupted[rows[newly]] = True
        return newly

    # -- schedules stop and start instances -----------------------------------------------------------------
    def awake(self) -> IntArray:
        """The rows that run (not hibernated), in row order."""
        rows: IntArray = np.flatnonzero(~self.stopped).astype(np.intp)
        return rows

    def hibernate(self, rows: IntArray) -> None:
        """Stop ``rows``: they keep their pool and lifecycle as where they were, and no placement memory.

        >>> s = FleetState.homeless(np.array([0, 0]), 1)
        >>> _ = s.move(np.arange(2), np.array([0, 1]), np.zeros(2, bool), 0.0)
        >>> s.hibernate(np.array([1])); s.awake().tolist(), s.occupancy(2).tolist()
        ([0], [[1, 0]])
        """
        self.stopped[rows] = True
        self.interrupted[rows] = False
        self.spot_better_since_s[rows] = np.nan

    def rehome(self, rows: IntArray) -> None:
        """Wake ``rows`` with no home: the next decision places them as new instances (any pool or on-demand,
        a forced move that spends no budget). The fleet simulator's wake."""
        self.stopped[rows] = False
        self.pool[rows] = -1
        self.on_demand[rows] = False
        self.interrupted[rows] = True

    def wake(self, rows: IntArray, target_pool: IntArray, target_on_demand: BoolArray, now_s: float) -> None:
        """``rows`` run again at the placement a policy chose for them (a wake is no voluntary move: it
        spends no budget), their dwell clock starting now."""
        self.stopped[rows] = False
        self.pool[rows] = target_pool
        self.on_demand[rows] = target_on_demand
        self.interrupted[rows] = False
        self.last_move_s[rows] = now_s

    # -- deciding -------------------------------------------------------------------------------------------
    def budget_left(self, now_s: float, params: PolicyParams) -> IntArray:
        """(F,) voluntary moves each fleet may still make in the window that ends now."""
        return self.moves.left(now_s, params.budget_per_window, params.budget_window_s)

    def view(
        self,
        now_s: float,
        params: PolicyParams,
        market_row: IntArray,
        compatible: BoolArray,
        on_demand_price: FloatArray,
        rows: IntArray | None = None,
    ) -> FleetView:
        """The FleetView of ``rows`` (None: every instance, sharing this state's arrays); ``market_row``,
        ``compatible`` (N, P) and ``on_demand_price`` (N,) are given for those rows, from the caller's market."""
        pick = slice(None) if rows is None else rows  # a slice shares the arrays, an index array copies
        return FleetView(
            market_row=market_row,
            fleet=self.fleet[pick],
            pool=self.pool[pick],
            on_demand=self.on_demand[pick],
            interrupted=self.interrupted[pick],
            compatible=compatible,
            on_demand_price=on_demand_price,
            last_move_s=self.last_move_s[pick],
            spot_better_since_s=self.spot_better_since_s[pick],
            budget_left=self.budget_left(now_s, params),
        )

    def remember(self, choice: Choice, rows: IntArray | None = None) -> None:
        """Keep the return-to-spot memory a decision updated (for every instance decided, moved or not)."""
        if rows is None:
            self.spot_better_since_s = np.array(choice.spot_better_since_s, np.float64)
        else:
            self.spot_better_since_s[rows] = choice.spot_better_since_s

    def move(self, rows: IntArray, target_pool: IntArray, target_on_demand: BoolArray, now_s: float) -> BoolArray:
        """Record that ``rows`` now run at their targets (a decision carried out). A move of an instance
        that was not interrupted is voluntary and spends its fleet's budget; returns which were voluntary."""
        voluntary: BoolArray = ~self.interrupted[rows]
        self.moves.spend(self.fleet[rows[voluntary]], now_s)
        self.pool[rows] = target_pool
        self.on_demand[rows] = target_on_demand
        self.interrupted[rows] = False
        self.last_move_s[rows] = now_s
        return voluntary

    def occupancy(self, n_pools: int) -> IntArray:
        """(F, P) how many of each fleet's spot instances, not interrupted, sit in each pool.

        >>> s = FleetState.homeless(np.array([0, 0, 1]), 2)
        >>> _ = s.move(np.arange(3), np.array([1, 1, 0]), np.zeros(3, bool), 0.0)
        >>> s.occupancy(2).tolist()
        [[0, 2], [1, 0]]
        """
        counts = np.zeros((self.n_fleets, n_pools), dtype=np.intp)
        staying = ~self.on_demand & ~self.interrupted & ~self.stopped & (self.pool >= 0)
        np.add.at(counts, (self.fleet[staying], self.pool[staying]), 1)
        return counts
