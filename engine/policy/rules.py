"""The shared rules that turn a strategy's ranking into safe decisions, vectorized over instances.

Order of precedence, per instance:

1. interrupted (or homeless) instances must move: best-ranked usable placement, no dwell, no budget; a
   homeless instance (a new one, not placed yet) has ``pool = -1`` and no column to leave;
2. on-demand instances return to spot once a spot pool has beaten on-demand by the threshold for
   ``return_after_s`` (hysteresis), subject to dwell and budget;
3. spot instances move voluntarily (proactive strategies only) when the saving beats the threshold and
   pays back the migration, subject to dwell and budget; a move to on-demand is a fallback;
4. every move respects the spread cap (a fleet's share in one pool); a mover whose best pool is full
   tries its next best, and interrupted instances always end somewhere (on-demand has no cap).

Budget and spread rejections are "not now", recorded as the rule of a KEEP, never errors.
"""

from __future__ import annotations

import numpy as np

from engine.policy.base import (
    ACTION_CODE,
    RULE_CODE,
    BoolArray,
    Choice,
    FleetView,
    FloatArray,
    IntArray,
    MarketView,
    PolicyParams,
    expected_cost_matrix,
)
from engine.types import Action, Rule


def pool_caps(fleet: FleetView, n_pools: int, max_pool_share: float) -> IntArray:
    """Instances each fleet may hold per pool: ``ceil(share x fleet size)``, at least 1.

    >>> import numpy as np
    >>> f = FleetView(np.zeros(4, np.intp), np.array([0, 0, 0, 1]), np.zeros(4, np.intp),
    ...               np.zeros(4, bool), np.zeros(4, bool), np.ones((4, 2), bool), np.ones(4),
    ...               np.zeros(4), np.full(4, np.nan), np.array([9, 9]))
    >>> pool_caps(f, 2, 0.5).tolist()
    [[2, 2], [1, 1]]
    """
    sizes = np.bincount(fleet.fleet, minlength=fleet.n_fleets)
    caps = np.maximum(1, np.ceil(sizes * max_pool_share - 1e-9)).astype(np.intp)
    return np.repeat(caps[:, None], n_pools, axis=1)


def occupancy(fleet: FleetView, n_pools: int) -> IntArray:
    """How many of each fleet's spot instances (not interrupted) sit in each pool: (F, P)."""
    counts = np.zeros((fleet.n_fleets, n_pools), dtype=np.intp)
    staying = ~fleet.on_demand & ~fleet.interrupted & (fleet.pool >= 0)
    np.add.at(counts, (fleet.fleet[staying], fleet.pool[staying]), 1)
    return counts


def _finite_or(values: FloatArray, *, nan: float, posinf: float, neginf: float) -> FloatArray:
    """``np.nan_to_num`` with these replacements, skipping its cost when every value is finite already.

    >>> _finite_or(np.array([1.0, np.nan, np.inf]), nan=0.0, posinf=9.0, neginf=-9.0).tolist()
    [1.0, 0.0, 9.0]
    """
    if np.isfinite(values).all():
        return values
    out: FloatArray = np.nan_to_num(values, nan=nan, posinf=posinf, neginf=neginf)
    return out


def _rank_within_fleet(fleet_ids: IntArray, priority: FloatArray) -> IntArray:
    """0-based position of each entry within its fleet, highest priority first."""
    order = np.lexsort((-priority, fleet_ids))
    sorted_fleets = fleet_ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_fleets[1:] != sorted_fleets[:-1]])
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    positions = np.empty(len(order), dtype=np.intp)
    positions[order] = np.arange(len(order)) - run_start
    return positions


def _place(
    movers: IntArray,
    rank: FloatArray,
    allowed: BoolArray,
    fleet: FleetView,
    priority: FloatArray,
    free: IntArray,
) -> tuple[IntArray, BoolArray]:
    """Assign each mover its best allowed column with room left; on-demand (last column) has no cap.

    Returns the chosen column per mover (-1: nothing allowed had room) and whether the mover's first
    choice was refused for room (to report the spread rule). ``free`` (F, P) is updated in place.
    """
    n_pools = free.shape[1]
    chosen = np.full(len(movers), -1, dtype=np.intp)
    spread_hit = np.zeros(len(movers), dtype=bool)
    pending = np.arange(len(movers))
    candidate = np.where(allowed[movers], rank[movers], np.inf)
    while pending.size:
        best = np.argmin(candidate[pending], axis=1)
        has_option = np.isfinite(candidate[pending, best])
        pending, best = pending[has_option], best[has_option]
        if not pending.size:
            break
        on_demand = best == n_pools
        chosen[pending[on_demand]] = n_pools
        spot, spot_cols = pending[~on_demand], best[~on_demand]
        if not spot.size:
            break
        fleets = fleet.fleet[movers[spot]]
        # Within each (fleet, pool), the highest-priority movers take the free slots first.
        slot_key = fleets * n_pools + spot_cols
        position = _rank_within_fleet(slot_key, priority[spot])
        fits = position < free[fleets, spot_cols]
        chosen[spot[fits]] = spot_cols[fits]
        np.subtract.at(free, (fleets[fits], spot_cols[fits]), 1)
        refused = spot[~fits]
        spread_hit[refused] = True
        candidate[refused, spot_cols[~fits]] = np.inf
        pending = refused
    return chosen, spread_hit


# inf - inf (a pool that was taken back) is an expected NaN here; comparisons treat it as "no".
@np.errstate(invalid="ignore")
def apply_rules(
    market: MarketView,
    fleet: FleetView,
    params: PolicyParams,
    rank: FloatArray,
    *,
    proactive: bool,
    now_s: float,
    cost: FloatArray | None = None,
) -> Choice:
    """Turn a strategy's ``rank`` (N, P + 1; lower is better; inf = not a candidate) into a Choice.

    ``cost`` is :func:`expected_cost_matrix` of the same inputs when the caller has it already (a strategy
    that ranks by it); neither it nor ``rank`` is modified.
    """
    n, n_pools = fleet.n_instances, market.n_pools
    if cost is None:
        cost = expected_cost_matrix(market, fleet, params)
    usable = np.isfinite(cost) & np.isfinite(rank)
    idx = np.arange(n)
    homeless = (fleet.pool < 0) & ~fleet.on_demand  # a new instance: nowhere to leave, anything beats it
    current_col = np.where(fleet.on_demand, n_pools, fleet.pool)
    home_col = np.where(homeless, 0, current_col)  # a valid index; masked wherever it matters

    target_col = current_col.copy()
    action = np.full(n, ACTION_CODE[Action.KEEP], dtype=np.int8)
    rule = np.full(n, RULE_CODE[Rule.BEST_ALREADY], dtype=np.int8)
    better_since = fleet.spot_better_since_s.astype(np.float64, copy=True)

    current_rank = np.where(homeless, np.inf, rank[idx, home_col])
    current_cost = np.where(homeless, np.inf, cost[idx, home_col])
    # A move must beat the threshold in the strategy's own terms and pay back the migration (both the old
    # and the new instance run for the restart time) within the payback horizon.
    threshold = np.maximum(params.min_saving_usd_per_hour, params.min_saving_fraction * np.abs(current_rank))
    migration = params.restart_hours * 2.0 * np.abs(current_rank) / max(params.payback_hours, 1e-9)
    threshold = threshold + migration
    beats = usable & (rank < (current_rank - threshold)[:, None])
    # A placement the strategy will not hold at all (inf rank) is beaten by any usable one.
    beats |= usable & ~np.isfinite(current_rank)[:, None]
    beats[idx, home_col] &= homeless

    dwell_ok = (now_s - fleet.last_move_s) >= params.min_dwell_s
    forced = (fleet.interrupted | homeless) & ~fleet.on_demand

    # Return-to-spot memory: since when has some spot pool beaten on-demand for this instance.
    spot_beats_od = beats[:, :n_pools].any(axis=1) if n_pools else np.zeros(n, dtype=bool)
    od_now = fleet.on_demand
    better_since = np.where(od_now & spot_beats_od & np.isnan(better_since), now_s, better_since)
    better_since = np.where(od_now & ~spot_beats_od, np.nan, better_since)
    better_since = np.where(od_now, better_since, np.nan)
    returning_ready = od_now & spot_beats_od & ((now_s - better_since) >= params.return_after_s)

    voluntary = np.zeros(n, dtype=bool)
    if proactive:
        voluntary |= ~fleet.on_demand & ~forced & beats.any(axis=1)
    voluntary |= returning_ready
    waiting = od_now & spot_beats_od & ~returning_ready
    rule[waiting] = RULE_CODE[Rule.WAITING]
    below = ~forced & ~voluntary & ~waiting & usable.any(axis=1) & (
        np.min(np.where(usable, rank, np.inf), axis=1) < current_rank
    )
    rule[below] = RULE_CODE[Rule.BELOW_THRESHOLD]

    dwell_blocked = voluntary & ~dwell_ok
    rule[dwell_blocked] = RULE_CODE[Rule.DWELL]
    voluntary &= dwell_ok

    # Disruption budget: a fleet's voluntary moves, largest saving first, up to its budget.
    best_voluntary_rank = np.min(np.where(beats, rank, np.inf), axis=1)
    gain = np.where(voluntary, current_rank - best_voluntary_rank, -np.inf)
    if voluntary.any():
        movers = np.flatnonzero(voluntary)
        position = _rank_within_fleet(fleet.fleet[movers], gain[movers])
        over = movers[position >= fleet.budget_left[fleet.fleet[movers]]]
        voluntary[over] = False
        rule[over] = RULE_CODE[Rule.BUDGET]

    free = pool_caps(fleet, n_pools, params.max_pool_share) - occupancy(fleet, n_pools)
    free = np.maximum(free, 0)
    # Forced moves first (they have no other option), then voluntary moves by saving.
    for group, allowed_matrix in ((forced, usable), (voluntary, beats)):
        movers = np.flatnonzero(group)
        if not movers.size:
            continue
        allowed = allowed_matrix.copy()
        housed = movers[~homeless[movers]]
        allowed[housed, current_col[housed]] = False
        priority = np.where(group, current_cost - np.min(np.where(allowed, cost, np.inf), axis=1), 0.0)
        priority = _finite_or(priority, nan=0.0, posinf=1e12, neginf=-1e12)
        if group is forced:
            priority = priority + 1e12  # interrupted instances outrank everything
        chosen, spread_hit = _place(movers, rank, allowed, fleet, priority, free)
        placed = chosen >= 0
        target_col[movers[placed]] = chosen[placed]
        blocked = movers[~placed]
        rule[blocked[spread_hit[~placed]]] = RULE_CODE[Rule.SPREAD]
        if group is forced:
            rule[blocked] = RULE_CODE[Rule.NO_CAPACITY]

    moved = target_col != current_col
    to_od = moved & (target_col == n_pools)
    from_od = moved & fleet.on_demand
    action[moved] = ACTION_CODE[Action.REPLACE]
    action[to_od] = ACTION_CODE[Action.FALLBACK_ON_DEMAND]
    action[from_od] = ACTION_CODE[Action.RETURN_TO_SPOT]
    rule[moved & ~fleet.on_demand] = RULE_CODE[Rule.SAVING]
    rule[to_od] = RULE_CODE[Rule.FALLBACK]
    rule[from_od] = RULE_CODE[Rule.RETURN]
    rule[moved & forced] = RULE_CODE[Rule.INTERRUPTED]
    better_since = np.where(from_od, np.nan, better_since)

    target_on_demand = target_col == n_pools
    target_pool = np.where(target_on_demand, fleet.pool, target_col).astype(np.intp)  # -1: homeless on demand
    saving = np.where(moved, current_cost - cost[idx, np.maximum(target_col, 0)], 0.0)
    saving = _finite_or(saving, nan=0.0, posinf=0.0, neginf=0.0)
    return Choice(
        target_pool=target_pool,
        target_on_demand=target_on_demand,
        action=action,
        rule=rule,
        expected_cost=cost,
        rank=rank,
        saving_usd_per_hour=saving,
        spot_better_since_s=better_since,
    )
