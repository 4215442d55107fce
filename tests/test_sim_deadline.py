"""The deadline kernel: its rules, the paper's published numbers, the offline optimum, the policies."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from engine.market import MarketTrace
from engine.sim.backtest import run_deadline_shard
from engine.sim.clock import DeadlineJob, JobError, WorkClock
from engine.sim.deadline import Mode, Outlook, RunState, simulate_deadline
from engine.sim.deadline_plan import ESTABLISHED, FRESH, UNAVAILABLE, solve_plan, young_ticks
from engine.sim.deadline_policies import GreedyPolicy, OnDemandPolicy
from engine.sim.optimal import optimal_deadline
from engine.sim.risk_deadline import RiskAwareDeadlinePolicy
from engine.sim.runs import runs_from_trace, runs_from_windows
from engine.sim.spells import SpellRates
from engine.traces import read_windows
from engine.types import Pool

PAPER_JOB = DeadlineJob(
    job_hours=48, deadline_hours=52, restart_overhead_hours=0.1, spot_usd_per_hour=0.9731, on_demand_usd_per_hour=3.06
)


def job(
    job_hours: float = 1.0,
    deadline_hours: float = 1.5,
    overhead: float = 0.1,
    spot: float = 1.0,
    od: float = 3.0,
    delay: int = 0,
) -> DeadlineJob:
    return DeadlineJob(job_hours, deadline_hours, overhead, spot, od, delay_ticks=delay)


def sticky_columns(n_ticks: int, n_runs: int, seed: int, flip: float = 0.08) -> np.ndarray:
    """Availability that comes and goes in spells (each tick flips with probability ``flip``)."""
    rng = np.random.default_rng(seed)
    avail = np.zeros((n_ticks, n_runs), dtype=bool)
    state = rng.random(n_runs) < 0.5
    for t in range(n_ticks):
        state = state ^ (rng.random(n_runs) < flip)
        avail[t] = state
    return avail


def columns(*patterns: str, length: int = 40) -> np.ndarray:
    """Availability columns from strings like '1100..' (1 = spot available), padded unavailable."""
    out = np.zeros((length, len(patterns)), dtype=bool)
    for i, p in enumerate(patterns):
        out[: len(p), i] = [c == "1" for c in p]
    return out


def test_on_demand_pays_every_tick_and_the_restart_in_the_first_tick() -> None:
    j = job()
    clock = WorkClock.of(j, 600)
    out = simulate_deadline(j, clock, columns("1" * 40), OnDemandPolicy())
    # 3600 s of work, first tick gives 600 - 360 s: 7 ticks, each paid at $3/h for 1/6 h
    assert out.finish_tick.tolist() == [7]
    assert out.cost_usd.tolist() == pytest.approx([3.5])
    assert out.restarts.tolist() == [1]
    assert not out.missed.any()


def test_a_preemption_forces_a_restart_and_is_counted() -> None:
    j = job()
    clock = WorkClock.of(j, 600)
    out = simulate_deadline(j, clock, columns("11011111111"), GreedyPolicy())
    assert out.preemptions.tolist() == [1]
    assert out.restarts.tolist() == [2]
    # progress: 240 + 600 | idle | 240 + 4 x 600 = 3480 < 3600 -> one more tick: 9 ticks
    assert out.finish_tick.tolist() == [9]
    assert out.idle_ticks.tolist() == [1]


def test_greedy_falls_back_to_on_demand_before_it_is_too_late() -> None:
    j = job()
    clock = WorkClock.of(j, 600)
    out = simulate_deadline(j, clock, columns("0" * 40), GreedyPolicy())
    assert not out.missed.any()
    assert out.on_demand_ticks.tolist() == [7]
    assert out.idle_ticks.tolist() == [1]  # 9 ticks to the deadline, 7 on demand needed, 1 spare kept


def test_impossible_job_is_rejected_with_a_clear_message() -> None:
    with pytest.raises(JobError, match="impossible job"):
        DeadlineJob(10, 9, 0.1, 1.0, 3.0)


def test_a_policy_asking_for_missing_spot_is_an_error() -> None:
    class AlwaysSpot:
        name = "always_spot"

        def start(self, job, clock, n_runs, risk):
            return self

        def decide(self, tick, state, available):
            return np.full(available.shape, Mode.SPOT, np.int8)

    j = job()
    with pytest.raises(RuntimeError, match="always_spot asked for spot"):
        simulate_deadline(j, WorkClock.of(j, 600), columns("10"), AlwaysSpot())


class Scripted:
    """A policy that plays one fixed sequence of modes (on-demand after it)."""

    name = "scripted"

    def __init__(self, *modes: int) -> None:
        self.modes = modes

    def start(self, job, clock, n_runs, risk):
        return self

    def decide(self, tick, state, available):
        return np.array([self.modes[tick] if tick < len(self.modes) else Mode.ON_DEMAND], np.int8)


def test_a_delayed_choice_is_billed_and_progresses_from_the_tick_it_takes_effect() -> None:
    j, late = job(), job(delay=1)
    now = simulate_deadline(j, WorkClock.of(j, 600), columns("1" * 40), OnDemandPolicy())
    out = simulate_deadline(late, WorkClock.of(late, 600), columns("1" * 40), OnDemandPolicy())
    assert out.finish_tick.tolist() == [now.finish_tick[0] + 1]  # the first tick holds nothing
    assert out.idle_ticks.tolist() == [1]
    assert out.cost_usd.tolist() == pytest.approx(now.cost_usd.tolist())  # the idle tick is not billed


def test_a_delayed_spot_launch_fails_when_spot_is_gone_by_then() -> None:
    j = job(delay=1)
    clock = WorkClock.of(j, 600)
    # spot asked for at tick 0 (available) takes effect at tick 1, where it is gone: nothing is held,
    # nothing billed, no restart; spot asked for at tick 2 runs from tick 3 on
    out = simulate_deadline(j, clock, columns("10" + "1" * 38), Scripted(Mode.SPOT, Mode.IDLE, *[Mode.SPOT] * 20))
    assert out.restarts.tolist() == [1]
    assert out.idle_ticks.tolist() == [3]  # ticks 0, 1 (failed launch), 2
    assert out.spot_ticks.tolist() == [7]  # 360 s of restart, then 3600 s of work: 7 ticks from tick 3
    assert out.finish_tick.tolist() == [10]
    assert out.cost_usd.tolist() == pytest.approx([7 / 6])


def test_the_choice_takes_effect_delay_ticks_late_and_is_queued_in_order() -> None:
    j = job(job_hours=0.5, deadline_hours=3.0, delay=2)
    clock = WorkClock.of(j, 600)
    seen = []

    class Watch(Scripted):
        def decide(self, tick, state, available):
            seen.append(state.pending[:, 0].tolist())
            return super().decide(tick, state, available)

    simulate_deadline(j, clock, columns("1" * 40), Watch(Mode.ON_DEMAND, Mode.SPOT, Mode.IDLE))
    assert seen[:4] == [[0, 0], [0, 2], [2, 1], [1, 0]]


def test_a_negative_or_fractional_delay_is_refused_and_the_delay_counts_against_the_deadline() -> None:
    with pytest.raises(JobError, match="delay_ticks must be a whole number >= 0"):
        DeadlineJob(1, 2, 0.1, 1.0, 3.0, delay_ticks=-1)
    with pytest.raises(JobError, match="delay_ticks must be a whole number >= 0"):
        DeadlineJob(1, 2, 0.1, 1.0, 3.0, delay_ticks=0.5)  # type: ignore[arg-type]
    with pytest.raises(JobError, match="launch delay"):
        WorkClock.of(DeadlineJob(1, 1.1, 0.0, 1.0, 3.0, delay_ticks=1), 600)


def test_risk_aware_refuses_a_delay_its_tables_do_not_model() -> None:
    j = job(delay=2)
    with pytest.raises(JobError, match="at most 1 tick"):
        simulate_deadline(j, WorkClock.of(j, 600), columns("1" * 40), RiskAwareDeadlinePolicy())


def _brute_force_cost(j: DeadlineJob, clock: WorkClock, avail: np.ndarray) -> float:
    """Cheapest schedule by enumerating every mode sequence through the real kernel rules."""
    best = np.inf
    n = clock.deadline_ticks
    for seq in itertools.product((0, 1, 2), repeat=n):
        if any(m == 1 and not avail[t] for t, m in enumerate(seq)):
            continue

        class Fixed:
            name = "fixed"

            def start(self, job, clock, n_runs, risk, seq=seq):
                self.seq = seq
                return self

            def decide(self, tick, state, available):
                mode = self.seq[tick] if tick < len(self.seq) else Mode.ON_DEMAND
                return np.array([mode], np.int8)

        out = simulate_deadline(j, clock, avail[:, None], Fixed())
        if not out.missed[0]:
            best = min(best, float(out.cost_usd[0]))
    return best


@pytest.mark.parametrize(("seed", "delay"), [(s, d) for s in range(6) for d in (0, 1)])
def test_optimal_equals_brute_force_on_small_random_traces(seed: int, delay: int) -> None:
    j = job(job_hours=0.5, deadline_hours=1.0, overhead=0.1, delay=delay)
    clock = WorkClock.of(j, 600)
    rng = np.random.default_rng(seed)
    avail = rng.random(clock.horizon_ticks) < 0.6
    out = optimal_deadline(j, clock, avail[:, None])
    assert out.cost_usd[0] == pytest.approx(_brute_force_cost(j, clock, avail))
    assert not out.missed.any()


@pytest.mark.parametrize("delay", [0, 1])
def test_every_policy_makes_the_deadline_and_the_optimum_is_a_lower_bound(delay: int) -> None:
    j = job(job_hours=6, deadline_hours=8, overhead=0.2, delay=delay)
    clock = WorkClock.of(j, 600)
    avail = sticky_columns(clock.horizon_ticks, 64, seed=7)  # spells of a few hours on and off
    runs = runs_from_windows(list(avail.T), 600.0, clock)
    outs = run_deadline_shard(j, runs, ["on_demand", "greedy", "uniform_progress", "risk_aware", "optimal"])
    for name, out in outs.items():
        assert not out.missed.any(), name
        assert (outs["optimal"].cost_usd <= out.cost_usd + 1e-9).all(), name


def test_risk_aware_reads_the_risk_it_is_given() -> None:
    j = job(job_hours=6, deadline_hours=8, overhead=0.2)
    clock = WorkClock.of(j, 600)
    avail = columns("1" * 60, length=clock.horizon_ticks)
    calm = np.full(avail.shape, 0.001, np.float32)
    policy = RiskAwareDeadlinePolicy()
    controller = policy.start(j, clock, 1, calm)
    controller.observe(0, avail[0])
    up, _ = controller.mean_hours()
    assert up[0] > 100  # P(loss within 1 h) = 0.001 means spells of about 1000 h


def test_windows_and_trace_runs_have_the_kernel_shape() -> None:
    j = job()
    clock = WorkClock.of(j, 600)
    trace = MarketTrace(
        (Pool("p3.2xlarge", "us-west-2a"), Pool("p3.2xlarge", "us-west-2b")), 0.0, 600.0, np.ones((50, 2), dtype=bool)
    )
    runs = runs_from_trace(trace, clock, 5, np.random.default_rng(0))
    assert runs.available.shape == (clock.horizon_ticks, 5)
    assert runs.labels[1].startswith("p3.2xlarge@us-west-2b from tick ")
    short = MarketTrace(trace.pools, 0.0, 600.0, np.ones((3, 2), dtype=bool))
    with pytest.raises(JobError, match="shorter than the deadline"):
        runs_from_trace(short, clock, 5, np.random.default_rng(0))


def test_paper_numbers_reproduce_on_the_published_windows(shared_data: Path) -> None:
    windows = read_windows(shared_data / "traces" / "cant_be_late_windows_us-west-2a_v100_1.json.gz")
    clock = WorkClock.of(PAPER_JOB, windows.tick_s)
    runs = runs_from_windows(windows.available, windows.tick_s, clock)
    outs = run_deadline_shard(PAPER_JOB, runs, ["on_demand", "greedy", "uniform_progress", "optimal"])
    mean = {name: float(out.cost_usd.mean()) for name, out in outs.items()}
    assert mean["on_demand"] == pytest.approx(147.39, rel=0.02)
    assert mean["greedy"] == pytest.approx(109.61, rel=0.02)
    assert mean["optimal"] == pytest.approx(67.93, rel=0.02)
    # the paper: uniform progress closes about half of the greedy-to-optimal gap
    closed = (mean["greedy"] - mean["uniform_progress"]) / (mean["greedy"] - mean["optimal"])
    assert 0.35 < closed < 0.7
    assert all(not out.missed.any() for out in outs.values())


def test_risk_aware_beats_uniform_progress_on_the_published_windows(shared_data: Path) -> None:
    windows = read_windows(shared_data / "traces" / "cant_be_late_windows_us-west-2a_v100_1.json.gz")
    clock = WorkClock.of(PAPER_JOB, windows.tick_s)
    runs = runs_from_windows(windows.available, windows.tick_s, clock)
    outs = run_deadline_shard(PAPER_JOB, runs, ["uniform_progress", "risk_aware"])
    assert not outs["risk_aware"].missed.any()
    assert outs["risk_aware"].cost_usd.mean() < outs["uniform_progress"].cost_usd.mean()


@pytest.mark.parametrize("delay", [0, 1])
def test_risk_aware_closes_most_of_the_gap_on_the_published_windows(shared_data: Path, delay: int) -> None:
    # The paper's setting: the online plan gets most of the way from greedy to the omniscient optimum (which
    # pays the same restarts and delay), and never misses, also when every choice takes effect a tick late.
    windows = read_windows(shared_data / "traces" / "cant_be_late_windows_us-west-2a_v100_1.json.gz")
    j = DeadlineJob(48, 52, 0.1, 0.9731, 3.06, delay_ticks=delay)
    clock = WorkClock.of(j, windows.tick_s)
    runs = runs_from_windows(windows.available, windows.tick_s, clock)
    outs = run_deadline_shard(j, runs, ["greedy", "risk_aware", "optimal"])
    mean = {name: float(out.cost_usd.mean()) for name, out in outs.items()}
    closed = (mean["greedy"] - mean["risk_aware"]) / (mean["greedy"] - mean["optimal"])
    assert closed > (0.8 if delay == 0 else 0.5)
    assert not outs["risk_aware"].missed.any()


@pytest.mark.parametrize(("with_risk", "delay"), [(False, 0), (True, 0), (False, 1)])
def test_risk_aware_fast_path_matches_the_readable_plan_lookup(with_risk: bool, delay: int) -> None:
    j = job(job_hours=6, deadline_hours=8, overhead=0.2, delay=delay)
    clock = WorkClock.of(j, 600)
    rng = np.random.default_rng(3)
    n = 200
    avail = rng.random((clock.horizon_ticks, n)) < 0.7
    risk = rng.random(avail.shape).astype(np.float32) if with_risk else None
    policy = RiskAwareDeadlinePolicy()
    controller = policy.start(j, clock, n, risk)
    state = RunState.start(n, clock)
    for t in range(clock.deadline_ticks + 2):
        state.mode[:] = np.where(avail[t], rng.integers(0, 3, n), rng.choice([0, 2], n)).astype(np.int8)
        state.work_left_u[:] = rng.integers(-3, clock.job_u + 1, n)
        state.overhead_left_u[:] = rng.integers(0, clock.overhead_u + 1, n)
        state.pending[:] = np.where(avail[t], rng.integers(0, 3, n), rng.choice([0, 2], n))
        fast = controller.decide(t, state, avail[t]).copy()
        up, down = controller.mean_hours()
        plan = controller._plan
        model = plan.model_index(up, down, controller._spells.fresh_hazard())
        ahead = Outlook.of(t, state, avail[t], clock)
        tau = np.full(n, clock.deadline_ticks - ahead.tick, np.int64)
        slack = tau * clock.tick_u - ahead.work_left_u - ahead.overhead_left_u
        slow = plan.lookup(model, tau, slack, ahead.mode, controller.avail_state())
        assert np.array_equal(fast, slow), t


def test_the_plan_waits_for_a_new_spell_to_last_when_new_spells_tend_to_end_at_once() -> None:
    # From on-demand, a restart onto spot pays off only if the spell outlives it: the same slack and spell
    # means, and the plan hops onto a spell that has just begun only when such spells rarely end at once.
    j = job(job_hours=6, deadline_hours=8, overhead=0.2)
    clock = WorkClock.of(j, 600)
    plan = solve_plan(j, clock)
    tau, slack, on_demand = np.array([40]), np.array([20]), np.array([Mode.ON_DEMAND], np.int8)

    def action(fresh_hazard: float, state: int) -> int:
        model = plan.model_index(np.array([20.0]), np.array([0.5]), np.array([fresh_hazard]))
        return int(plan.lookup(model, tau, slack, on_demand, np.array([state]))[0])

    assert action(0.02, FRESH) == Mode.SPOT
    assert action(0.6, FRESH) != Mode.SPOT
    assert action(0.6, ESTABLISHED) == Mode.SPOT


def test_spell_counts_learn_that_new_spells_end_sooner() -> None:
    blips = np.array([1, 0, 0] * 20 + [1] * 30, bool)  # spells of one tick, then one long spell
    rates = SpellRates(1, prior_mean_ticks=6.0)
    for now in blips:
        rates.learn_one(np.array([now]))
    assert rates.fresh_hazard()[0] > 0.9  # every fresh tick but the last spell's ended
    down, up = rates.mean_ticks()[:, 0]
    assert up > 15 and down < 3  # (6 + 29) / (1 + 1): the first tick, of unknown age, counts as established


def test_a_spell_stays_fresh_for_as_many_ticks_as_a_restart_takes() -> None:
    # Spells of two ticks between outages: with a restart of two ticks, both ticks are fresh and every
    # spell ends while young (a restart onto one never finishes); counted by first ticks only, no fresh
    # spell would ever seem to end at once.
    clock = WorkClock.of(job(job_hours=6, deadline_hours=8, overhead=0.2), 600)
    assert young_ticks(clock) == 2
    pairs = np.array([0, 0, 0, 1, 1] * 20, bool)
    rates, by_first_tick = SpellRates(1, 6.0, young_ticks(clock)), SpellRates(1, 6.0)
    states = []
    for now in pairs:
        rates.learn_one(np.array([now]))
        by_first_tick.learn_one(np.array([now]))
        states.append(int(rates.state[0]))
    assert states[2:6] == [UNAVAILABLE, FRESH, FRESH, UNAVAILABLE]
    assert rates.fresh_hazard()[0] > 0.45  # 19 ends in 40 young ticks
    assert by_first_tick.fresh_hazard()[0] < 0.05
