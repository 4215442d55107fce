"""The policy contract: every strategy, the shared safety rules, and their explanations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.policy import POLICY_NAMES, PolicyParams, UnknownPolicy, make_policy
from engine.policy.base import ACTIONS, RULES, FleetView, MarketView
from engine.types import Action, Pool, Rule

OD = 3.0


def market(
    prices: list[float] | None = None,
    risk: list[float] | None = None,
    available: list[bool] | None = None,
    capacity: list[float] | None = None,
) -> MarketView:
    prices = prices if prices is not None else [1.0, 0.8, 0.6]
    n = len(prices)
    return MarketView(
        pools=tuple(Pool("m5.large", f"us-east-1{'abcdef'[i]}") for i in range(n)),
        spot_price=np.array([prices], dtype=float),
        risk=np.array([risk if risk is not None else [0.0] * n], dtype=float),
        available=np.array([available if available is not None else [True] * n]),
        capacity_score=np.array([capacity if capacity is not None else [1.0] * n], dtype=float),
        on_demand_price=np.full(n, OD),
    )


def fleet(
    pools: list[int] | None = None,
    n_pools: int = 3,
    on_demand: list[bool] | None = None,
    interrupted: list[bool] | None = None,
    fleets: list[int] | None = None,
    last_move_s: float = -1e9,
    budget: list[int] | None = None,
    compatible: np.ndarray | None = None,
    better_since: list[float] | None = None,
) -> FleetView:
    pools = pools if pools is not None else [0]
    n = len(pools)
    fleets = fleets if fleets is not None else [0] * n
    n_fleets = max(fleets) + 1
    return FleetView(
        market_row=np.zeros(n, dtype=np.intp),
        fleet=np.array(fleets, dtype=np.intp),
        pool=np.array(pools, dtype=np.intp),
        on_demand=np.array(on_demand if on_demand is not None else [False] * n),
        interrupted=np.array(interrupted if interrupted is not None else [False] * n),
        compatible=compatible if compatible is not None else np.ones((n, n_pools), dtype=bool),
        on_demand_price=np.full(n, OD),
        last_move_s=np.full(n, last_move_s),
        spot_better_since_s=np.array(better_since if better_since is not None else [np.nan] * n),
        budget_left=np.array(budget if budget is not None else [100] * n_fleets, dtype=np.intp),
    )


def decide(name: str, m: MarketView, f: FleetView, now_s: float = 0.0, **params: float):
    return make_policy(name, PolicyParams(**params)).decide(m, f, now_s)


def test_lowest_price_moves_to_the_cheapest_pool_when_the_saving_beats_the_threshold() -> None:
    choice = decide("lowest_price", market([1.0, 0.8, 0.6]), fleet([0]))
    assert choice.actions() == [Action.REPLACE]
    assert choice.rules() == [Rule.SAVING]
    assert choice.target_pool.tolist() == [2]
    assert choice.saving_usd_per_hour[0] == pytest.approx(0.4)


def test_a_saving_below_the_threshold_keeps_the_instance() -> None:
    choice = decide("lowest_price", market([1.0, 0.97, 0.99]), fleet([0]), min_saving_fraction=0.05)
    assert choice.actions() == [Action.KEEP]
    assert choice.rules() == [Rule.BELOW_THRESHOLD]


def test_minimum_dwell_blocks_a_voluntary_move_until_it_has_passed() -> None:
    params = {"min_dwell_s": 3600.0}
    recent = decide("lowest_price", market(), fleet([0], last_move_s=0.0), now_s=600.0, **params)
    assert (recent.actions(), recent.rules()) == ([Action.KEEP], [Rule.DWELL])
    later = decide("lowest_price", market(), fleet([0], last_move_s=0.0), now_s=3600.0, **params)
    assert later.actions() == [Action.REPLACE]


def test_an_interrupted_instance_moves_even_inside_the_dwell_time_and_without_budget() -> None:
    m = market([0.5, 0.8, 0.9], available=[False, True, True])
    choice = decide("lowest_price", m, fleet([0], interrupted=[True], last_move_s=0.0, budget=[0]), now_s=1.0)
    assert choice.actions() == [Action.REPLACE]
    assert choice.rules() == [Rule.INTERRUPTED]
    assert choice.target_pool.tolist() == [1]


def test_an_interrupted_instance_falls_back_to_on_demand_when_no_pool_is_available() -> None:
    m = market(available=[False, False, False])
    choice = decide("risk_aware", m, fleet([1], interrupted=[True]))
    assert choice.actions() == [Action.FALLBACK_ON_DEMAND]
    assert choice.target_on_demand.tolist() == [True]


def test_risk_aware_prefers_a_safer_pool_over_a_cheaper_risky_one() -> None:
    m = market([1.0, 0.6, 0.7], risk=[0.0, 0.9, 0.02])
    risk_aware = decide("risk_aware", m, fleet([0]), restart_hours=0.5, pareto_guard=False)
    lowest = decide("lowest_price", m, fleet([0]), restart_hours=0.5)
    assert risk_aware.target_pool.tolist() == [2]
    assert lowest.target_pool.tolist() == [1]


def test_risk_aware_falls_back_when_no_spot_pool_beats_on_demand_after_risk() -> None:
    m = market([1.0, 1.1, 1.2], risk=[1.0, 1.0, 1.0])
    choice = decide("risk_aware", m, fleet([0]), restart_hours=1.0, interruption_penalty_usd=5.0)
    assert choice.actions() == [Action.FALLBACK_ON_DEMAND]
    assert choice.rules() == [Rule.FALLBACK]


def test_return_to_spot_waits_for_the_hysteresis_then_returns() -> None:
    m = market([1.0, 0.8, 0.6])
    first = decide("risk_aware", m, fleet([0], on_demand=[True]), now_s=100.0, return_after_s=1800.0)
    assert (first.actions(), first.rules()) == ([Action.KEEP], [Rule.WAITING])
    assert first.spot_better_since_s.tolist() == [100.0]
    still = decide("risk_aware", m, fleet([0], on_demand=[True], better_since=[100.0]), now_s=1000.0,
                   return_after_s=1800.0)
    assert still.actions() == [Action.KEEP]
    done = decide("risk_aware", m, fleet([0], on_demand=[True], better_since=[100.0]), now_s=1900.0,
                  return_after_s=1800.0)
    assert (done.actions(), done.rules()) == ([Action.RETURN_TO_SPOT], [Rule.RETURN])
    assert np.isnan(done.spot_better_since_s[0])


def test_the_disruption_budget_lets_only_the_largest_savings_move() -> None:
    m = market([1.0, 0.9, 0.2])
    f = fleet([0, 1, 0], budget=[1])
    choice = decide("lowest_price", m, f)
    assert choice.actions().count(Action.REPLACE) == 1
    assert choice.rules()[1] == Rule.BUDGET or choice.rules()[0] == Rule.BUDGET
    moved = int(np.flatnonzero(choice.action == ACTIONS.index(Action.REPLACE))[0])
    assert moved in (0, 2)  # the ones in the dearest pool gain the most


def test_the_spread_cap_sends_the_overflow_to_the_next_best_pool() -> None:
    m = market([1.0, 0.8, 0.6])
    choice = decide("lowest_price", m, fleet([0, 0, 0, 0]), max_pool_share=0.5)
    targets = choice.target_pool.tolist()
    assert targets.count(2) == 2
    assert targets.count(1) == 2


def test_capacity_optimized_picks_the_most_available_pool_on_interruption_only() -> None:
    m = market([1.0, 0.5, 0.9], available=[False, True, True], capacity=[0.1, 0.3, 0.95])
    choice = decide("capacity_optimized", m, fleet([0, 1], interrupted=[True, False]))
    assert choice.target_pool.tolist() == [2, 1]
    assert choice.actions() == [Action.REPLACE, Action.KEEP]


def test_price_capacity_optimized_takes_the_cheapest_of_the_high_capacity_pools() -> None:
    m = market([0.3, 0.5, 0.9], available=[True, True, True], capacity=[0.1, 0.9, 0.95])
    choice = decide("price_capacity_optimized", m, fleet([2], interrupted=[True], n_pools=3))
    assert choice.target_pool.tolist() == [1]


def test_reactive_never_moves_a_running_instance() -> None:
    choice = decide("reactive", market([1.0, 0.1, 0.1]), fleet([0]))
    assert choice.actions() == [Action.KEEP]


def test_on_demand_policy_moves_spot_instances_to_on_demand() -> None:
    choice = decide("on_demand", market(), fleet([0, 1]))
    assert choice.target_on_demand.tolist() == [True, True]
    assert choice.actions() == [Action.FALLBACK_ON_DEMAND] * 2


def test_unknown_policy_names_the_choices() -> None:
    with pytest.raises(UnknownPolicy, match="risk_aware"):
        make_policy("cheapest")


def test_invalid_params_are_refused() -> None:
    with pytest.raises(ValueError, match="max_pool_share"):
        PolicyParams(max_pool_share=0.0)


# --- properties over every policy -------------------------------------------------------------------


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[MarketView, FleetView, float]:
    n_pools = draw(st.integers(1, 5))
    n = draw(st.integers(1, 8))
    floats = st.floats(0.05, 5.0)
    m = market(
        prices=draw(st.lists(floats, min_size=n_pools, max_size=n_pools)),
        risk=draw(st.lists(st.floats(0.0, 1.0), min_size=n_pools, max_size=n_pools)),
        available=draw(st.lists(st.booleans(), min_size=n_pools, max_size=n_pools)),
        capacity=draw(st.lists(st.floats(0.0, 1.0), min_size=n_pools, max_size=n_pools)),
    )
    compatible = np.array(draw(st.lists(st.lists(st.booleans(), min_size=n_pools, max_size=n_pools),
                                        min_size=n, max_size=n)))
    pools = draw(st.lists(st.integers(0, n_pools - 1), min_size=n, max_size=n))
    compatible[np.arange(n), pools] = True  # an instance is compatible with where it runs
    f = fleet(
        pools=pools,
        n_pools=n_pools,
        on_demand=draw(st.lists(st.booleans(), min_size=n, max_size=n)),
        interrupted=draw(st.lists(st.booleans(), min_size=n, max_size=n)),
        fleets=draw(st.lists(st.integers(0, 1), min_size=n, max_size=n).filter(lambda x: 0 in x)),
        budget=draw(st.lists(st.integers(0, 3), min_size=2, max_size=2)),
        compatible=compatible,
        last_move_s=draw(st.sampled_from([-1e9, 0.0])),
    )
    return m, f, draw(st.floats(0.0, 7200.0))


@pytest.mark.parametrize("name", POLICY_NAMES)
@settings(max_examples=60, deadline=None)
@given(scenario=scenarios(), share=st.sampled_from([0.34, 0.5, 1.0]))
def test_every_policy_keeps_the_contract(name: str, scenario: tuple[MarketView, FleetView, float],
                                         share: float) -> None:
    m, f, now_s = scenario
    policy = make_policy(name, PolicyParams(max_pool_share=share, min_dwell_s=3600.0))
    choice = policy.decide(m, f, now_s)
    again = policy.decide(m, f, now_s)
    n = f.n_instances
    # Deterministic.
    assert np.array_equal(choice.target_pool, again.target_pool)
    assert np.array_equal(choice.action, again.action)
    actions = [ACTIONS[a] for a in choice.action]
    moved = np.array([a is not Action.KEEP for a in actions])
    spot_target = moved & ~choice.target_on_demand
    # Never an incompatible or unavailable spot pool.
    assert f.compatible[np.arange(n)[spot_target], choice.target_pool[spot_target]].all()
    assert m.available[0, choice.target_pool[spot_target]].all()
    # Voluntary moves never exceed the budget, nor happen inside the dwell time.
    voluntary = moved & ~(f.interrupted & ~f.on_demand)
    for k in range(f.n_fleets):
        assert int((voluntary & (f.fleet == k)).sum()) <= int(f.budget_left[k])
    assert not (voluntary & ((now_s - f.last_move_s) < 3600.0)).any()
    # The spread cap holds for every pool a move sends instances into.
    sizes = np.bincount(f.fleet, minlength=f.n_fleets)
    final_pool = np.where(moved, choice.target_pool, f.pool)
    final_spot = np.where(moved, ~choice.target_on_demand, ~f.on_demand & ~f.interrupted)
    for k in range(f.n_fleets):
        cap = max(1, int(np.ceil(sizes[k] * share - 1e-9)))
        for p in set(choice.target_pool[spot_target & (f.fleet == k)].tolist()):
            assert int((final_spot & (final_pool == p) & (f.fleet == k)).sum()) <= cap
    # An instance kept where it is carries a 'keep' rule, never a move rule.
    kept_rules = {RULES[r] for r, a in zip(choice.rule, actions, strict=True) if a is Action.KEEP}
    assert not kept_rules & {Rule.SAVING, Rule.INTERRUPTED, Rule.FALLBACK, Rule.RETURN}


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_every_policy_keeps_when_nothing_beats_the_threshold(name: str) -> None:
    m = market([1.0, 1.0, 1.0])
    choice = decide(name, m, fleet([0, 1, 2], on_demand=[False] * 3))
    if name == "on_demand":
        assert set(choice.actions()) == {Action.FALLBACK_ON_DEMAND}
    else:
        assert set(choice.actions()) == {Action.KEEP}


# --- risk_aware: the interruption cost, zone co-failure, the Pareto guard, spreading, the numbers ---------


def zoned_market(zones: list[str], prices: list[float], risk: list[float],
                 available: list[bool] | None = None) -> MarketView:
    n = len(zones)
    return MarketView(
        pools=tuple(Pool("m5.large", z) for z in zones),
        spot_price=np.array([prices], dtype=float),
        risk=np.array([risk], dtype=float),
        available=np.array([available if available is not None else [True] * n]),
        capacity_score=np.ones((1, n)),
        on_demand_price=np.full(n, OD),
    )


def watched_risk_aware(n_pools: int = 3, hours: float = 6.0, **params: float):
    """A risk_aware policy that has watched ``n_pools`` pools stay up for ``hours``: every pool has a record."""
    policy = make_policy("risk_aware", PolicyParams(**params))
    for k in range(int(hours * 6) + 1):
        policy.decide(market([1.0] * n_pools), fleet([0], n_pools=n_pools), -hours * 3600.0 + k * 600.0)
    return policy


def warm_decide(m: MarketView, f: FleetView, now_s: float = 0.0, **params: float):
    return watched_risk_aware(m.n_pools, **params).decide(m, f, now_s)


def test_an_interruption_costs_the_work_lost_the_restart_at_the_replacements_price_and_its_failing_too() -> None:
    from engine.policy.interruption import interruption_cost

    m = market([1.0, 2.0], risk=[0.5, 0.2])
    params = PolicyParams(restart_hours=0.5, lost_work_hours=0.25, interruption_penalty_usd=0.25)
    c = interruption_cost(m, fleet([0], n_pools=2), params, np.ones((1, 2), dtype=bool))
    assert c.work_lost_usd.tolist() == [0.75 * OD + 0.25]  # down and unsaved hours at the on-demand rate
    assert c.replacement.tolist() == [[1, 0]]  # each pool's replacement is the best other one
    assert c.restart_usd.tolist() == [[1.0, 0.5]]  # the restart paid at the replacement's price
    assert c.next_fails.tolist() == [[0.2, 0.5]]  # ... which fails within the horizon at its own risk
    assert c.total_usd[0].tolist() == pytest.approx([(2.5 + 1.0) * 1.2, (2.5 + 0.5) * 1.5])


def test_an_interruption_with_no_spot_replacement_restarts_on_demand_which_never_fails() -> None:
    from engine.policy.interruption import interruption_cost

    m = market([1.0, 2.0], risk=[0.5, 0.2], available=[True, False])
    c = interruption_cost(m, fleet([0], n_pools=2), PolicyParams(restart_hours=1.0), np.array([[True, False]]))
    assert c.replacement[0, 0] == 2  # column P: on-demand
    assert c.restart_usd[0, 0] == pytest.approx(OD)
    assert c.next_fails[0, 0] == 0.0


def test_zone_mates_that_go_down_together_are_learned_online() -> None:
    from engine.learning.zones import ZoneCoFailure

    pools = (Pool("a", "us-east-1a"), Pool("b", "us-east-1a"), Pool("c", "us-east-1b"), Pool("d", "us-east-1b"))
    model = ZoneCoFailure(3600.0)
    fresh = model.follow_probability(pools, rows=1)
    t = 0.0
    for _ in range(30):  # in us-east-1a the second pool follows the first down; us-east-1b fail alone
        for up in ([1, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 1], [1, 1, 1, 1], [1, 1, 1, 1]):
            model.learn_one(pools, np.array([up], dtype=bool), t)
            t += 600.0
    follow = model.follow_probability(pools)
    assert follow[0, 0] > 0.5 > follow[0, 2]
    assert follow[0, 0] > fresh[0, 0]


def test_a_replacement_in_the_failed_pools_zone_is_more_likely_to_fail_too() -> None:
    from engine.policy.interruption import interruption_cost

    m = zoned_market(["us-east-1a", "us-east-1a", "us-east-1b"], [1.0, 1.0, 1.05], [0.1, 0.1, 0.1])
    follow = np.full((1, 3), 0.6)
    c = interruption_cost(m, fleet([2], n_pools=3), PolicyParams(), np.ones((1, 3), dtype=bool), follow)
    assert c.replacement[0, 0] == 1  # the zone-mate is the cheapest replacement ...
    assert c.next_fails[0, 0] == pytest.approx(1 - 0.9 * 0.4)  # ... and follows the failed pool down
    assert c.next_fails[0, 2] == pytest.approx(0.1)  # another zone's replacement fails at its own risk


def test_the_pareto_guard_never_places_an_instance_dearer_or_riskier_than_aws_would() -> None:
    # AWS's pick among equally available pools is the cheapest (pool 1); pool 2 is safer but dearer.
    m = market([1.0, 0.6, 0.7], risk=[0.0, 0.9, 0.02], available=[False, True, True])
    guarded = warm_decide(m, fleet([0], interrupted=[True]), restart_hours=0.5)
    assert guarded.target_pool.tolist() == [1]
    assert guarded.details["pareto_guard_allows"][0].tolist() == [False, True, False, True]
    # A pool no dearer and no riskier is taken instead, when its expected cost is clearly lower.
    m = market([1.0, 0.6, 0.6], risk=[0.0, 0.9, 0.02], available=[False, True, True])
    better = warm_decide(m, fleet([0], interrupted=[True]), restart_hours=0.5)
    assert better.target_pool.tolist() == [2]
    unwatched = decide("risk_aware", m, fleet([0], interrupted=[True]), restart_hours=0.5)
    assert unwatched.target_pool.tolist() == [1]  # until the pools have a record, AWS's pick stands
    unguarded = decide("risk_aware", market([1.0, 0.6, 0.7], risk=[0.0, 0.9, 0.02], available=[False, True, True]),
                       fleet([0], interrupted=[True]), restart_hours=0.5, pareto_guard=False)
    assert unguarded.target_pool.tolist() == [2]


def test_a_running_instance_moves_for_a_price_saving_into_a_pool_no_riskier_but_never_for_risk_alone() -> None:
    for_risk = warm_decide(market([1.0, 1.0, 1.0], risk=[0.9, 0.0, 0.0]), fleet([0]))
    assert for_risk.actions() == [Action.KEEP]
    riskier = warm_decide(market([1.0, 0.5, 1.0], risk=[0.1, 0.3, 0.1]), fleet([0]))
    assert riskier.actions() == [Action.KEEP]
    cheaper = warm_decide(market([1.0, 0.5, 1.0], risk=[0.1, 0.05, 0.1]), fleet([0]))
    assert (cheaper.actions(), cheaper.target_pool.tolist()) == ([Action.REPLACE], [1])


def test_a_fleet_is_spread_when_losing_all_of_it_at_once_costs_more_than_moving_one_out() -> None:
    m = zoned_market(["us-east-1a", "us-east-1b", "us-east-1c"], [1.0, 1.02, 1.5], [0.6, 0.2, 0.1],
                     available=[True, True, True])
    homeless = fleet([-1, -1, -1, -1], n_pools=3)
    alone = decide("risk_aware", m, homeless, pareto_guard=False)
    assert set(alone.target_pool.tolist()) == {1}  # without an outage cost the whole fleet goes to the best
    spread = decide("risk_aware", m, homeless, pareto_guard=False, fleet_outage_weight=10.0)
    targets = spread.target_pool.tolist()
    assert targets.count(1) == 3 and len(set(targets)) == 2
    assert spread.rules().count(Rule.SPREAD) == 1
    moved = spread.rules().index(Rule.SPREAD)
    saving = spread.details["spread_outage_saving_usd_per_hour"][moved]
    extra = spread.details["spread_extra_cost_usd_per_hour"][moved]
    assert saving > extra > 0


def test_a_fleet_sitting_whole_in_a_pool_that_turned_risky_moves_one_instance_out() -> None:
    m = zoned_market(["us-east-1a", "us-east-1b"], [1.0, 1.0], [0.8, 0.05])
    f = fleet([0, 0, 0], n_pools=2, last_move_s=0.0)  # within the dwell time: spreading is no price flap
    choice = decide("risk_aware", m, f, now_s=60.0, fleet_outage_weight=10.0)
    assert choice.actions().count(Action.REPLACE) == 1
    assert choice.rules().count(Rule.SPREAD) == 1
    assert sorted(choice.target_pool.tolist()) == [0, 0, 1]
    spent = decide("risk_aware", m, fleet([0, 0, 0], n_pools=2, budget=[0]), fleet_outage_weight=10.0)
    assert spent.actions() == [Action.KEEP] * 3  # the disruption budget still holds


def test_a_risk_aware_decision_shows_every_number_it_weighed() -> None:
    from engine.policy.explain import explain
    from engine.types import Instance

    m = market([1.0, 0.6, 0.6], risk=[0.0, 0.9, 0.02], available=[False, True, True])
    f = fleet([0], interrupted=[True])
    choice = watched_risk_aware(restart_hours=0.5).decide(m, f, 0.0)
    decision = explain(choice, 0, Instance("i-1", m.pools[0], interrupted=True), m, f, now_s=0.0,
                       policy="risk_aware")
    numbers = decision.numbers
    for key in ("interruption_work_lost_usd", "target_interruption_restart_usd", "target_interruption_next_fails",
                "target_interruption_cost_usd", "target_replacement_price_usd_per_hour", "target_zone_follow",
                "baseline_price_usd_per_hour", "baseline_risk", "baseline_expected_cost_usd_per_hour",
                "target_pareto_guard_allows", "target_long_run_risk", "baseline_long_run_risk"):
        assert key in numbers, key
    assert numbers["interruption_work_lost_usd"] == pytest.approx(0.5 * OD)
    assert numbers["baseline_price_usd_per_hour"] == pytest.approx(0.6)  # AWS's pick: pool 1
    assert numbers["baseline_risk"] == pytest.approx(0.9)
    expected = 0.6 + 0.02 * numbers["target_interruption_cost_usd"]
    assert numbers["target_expected_cost_usd_per_hour"] == pytest.approx(expected)


def test_an_instance_is_never_placed_in_a_pool_with_a_worse_record_than_aws_pick() -> None:
    policy = make_policy("risk_aware")
    t = 0.0
    for _ in range(20):  # pool 2 keeps failing; pool 1 never does
        for up in ([True, True, True], [True, True, False]):
            policy.decide(market([1.0, 1.0, 1.0], available=up), fleet([1]), t)
            t += 600.0
    # Now the model rates pool 2 safer than AWS's pick (pool 1, the first available of equals) ...
    m = market([1.0, 1.0, 1.0], risk=[1.0, 0.3, 0.0], available=[False, True, True])
    placed = policy.decide(m, fleet([0], interrupted=[True]), t)
    assert placed.target_pool.tolist() == [1]  # ... but its record over the last hours is worse
    assert placed.details["long_run_risk"][0, 2] > placed.details["long_run_risk"][0, 1]
    clean = watched_risk_aware().decide(m, fleet([0], interrupted=[True]), 0.0)
    assert clean.target_pool.tolist() == [2]  # where pool 2's record is clean, the model's edge decides


def test_the_interruption_and_outage_knobs_are_account_settings_and_bad_values_name_the_field() -> None:
    from pydantic import ValidationError

    from api.schemas import PolicyParamsIn

    body = PolicyParamsIn.model_validate({"lost_work_hours": 0.5, "fleet_outage_weight": 3, "pareto_guard": False})
    params = PolicyParams(**body.overrides())
    assert (params.lost_work_hours, params.fleet_outage_weight, params.pareto_guard) == (0.5, 3.0, False)
    for field, value in (("lost_work_hours", -1), ("fleet_outage_weight", -0.5), ("pareto_guard", "maybe")):
        with pytest.raises(ValidationError, match=field):
            PolicyParamsIn.model_validate({field: value})
    with pytest.raises(ValueError, match="fleet_outage_weight"):
        PolicyParams(fleet_outage_weight=-1.0)


def test_in_a_backtest_risk_aware_learns_to_avoid_a_flapping_pool_aws_keeps_picking() -> None:
    from engine.learning.series import risk_series
    from engine.market import MarketTrace
    from engine.sim.fleet import FleetMarket, fleet_metrics, simulate_fleet

    # Equal prices and equal availability shares (90%): AWS's pick is the first pool, which drops one tick in
    # ten; the second drops ten ticks in a hundred, so it fails a tenth as often.
    ticks = np.arange(600)
    available = np.stack([(ticks % 10) != 9, (ticks % 100) < 90], axis=1)
    pools = (Pool("m5.large", "us-east-1a"), Pool("m5.large", "us-east-1b"))
    trace = MarketTrace(pools, 0.0, 600.0, available, np.full(available.shape, 0.3), np.full(2, 1.0))
    fleet_market = FleetMarket.of(trace, risk_series(trace, 3600.0), 3600.0)
    aws, ours = (fleet_metrics(simulate_fleet(fleet_market, make_policy(name), np.array([0]), 600, 4))
                 for name in ("price_capacity_optimized", "risk_aware"))
    assert ours["total_cost"] <= aws["total_cost"]
    assert ours["interruptions"] < aws["interruptions"]
    assert ours["availability"] > aws["availability"]
