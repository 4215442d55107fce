"""Behaviour of the interruption-risk model: no peeking at labels, the shared prior, drift, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.learning import snapshot
from engine.learning.baselines import labels, window_ticks
from engine.learning.risk import RiskModel
from engine.learning.series import replay, risk_series
from engine.market import MarketTrace
from engine.types import Pool

START_S = 1_700_000_000.0


def make_trace(
    n_ticks: int = 400, n_pools: int = 3, tick_s: float = 600.0, flip: float = 0.1, seed: int = 0
) -> MarketTrace:
    """A Markov on/off availability trace with sticky states."""
    rng = np.random.default_rng(seed)
    available = np.ones((n_ticks, n_pools), dtype=bool)
    for t in range(1, n_ticks):
        flips = rng.random(n_pools) < flip
        available[t] = available[t - 1] ^ flips
    pools = tuple(Pool("p3.2xlarge", f"us-west-2{chr(ord('a') + i)}") for i in range(n_pools))
    return MarketTrace(pools=pools, start_s=START_S, tick_s=tick_s, available=available)


def test_no_label_is_learned_before_its_horizon_has_passed() -> None:
    horizon_s = 3600.0
    model = RiskModel(horizon_s=horizon_s)
    learned: list[tuple[float, np.ndarray]] = []
    counts = model.count_models["counts_age"]
    original = counts.learn_many

    def recording(batch, now_s):  # type: ignore[no-untyped-def]
        learned.append((now_s, batch.t_s.copy()))
        original(batch, now_s)

    counts.learn_many = recording  # type: ignore[method-assign]
    trace = make_trace(tick_s=195.0)
    for t in range(trace.n_ticks):
        now = START_S + t * 195.0
        model.observe(now, {p.key: bool(trace.available[t, i]) for i, p in enumerate(trace.pools)})
        assert model.labels_learned == sum(len(ts) for _, ts in learned)
    assert learned
    for now_s, t_s in learned:
        assert np.all(t_s + horizon_s <= now_s + 1e-6)
    # and nothing waits longer than one tick past its horizon
    for now_s, t_s in learned:
        assert np.all(now_s - (t_s + horizon_s) < 195.0)


def test_the_labels_learned_are_the_offline_labels_of_the_trace() -> None:
    trace = make_trace(tick_s=195.0)
    model = RiskModel(horizon_s=3600.0)
    got: dict[tuple[float, int], float] = {}
    original = model.count_models["counts_age"].learn_many

    def recording(batch, now_s):  # type: ignore[no-untyped-def]
        for t, r, y in zip(batch.t_s, batch.rows, batch.y, strict=True):
            got[(float(t), int(r))] = float(y)
        original(batch, now_s)

    model.count_models["counts_age"].learn_many = recording  # type: ignore[method-assign]
    replay(model, trace)
    window, _ = window_ticks(3600.0, 195.0)
    y, ok = labels(~trace.available, window)
    for t in range(trace.n_ticks):
        for p in range(trace.n_pools):
            key = (START_S + t * 195.0, p)
            if key in got:
                assert got[key] == y[t, p]
    assert len(got) >= int(ok.sum()) - trace.n_pools


def test_a_new_pool_starts_from_what_the_other_pools_taught() -> None:
    trace = make_trace(n_ticks=600, flip=0.3)
    model = RiskModel(horizon_s=3600.0)
    untrained = model.predict(START_S, ["new@us-east-1a"])[0]
    replay(model, trace)
    now = START_S + trace.n_ticks * 600.0
    prior = model.predict(now, ["new@us-east-1a"])[0]
    assert prior != pytest.approx(untrained, abs=1e-3)
    # pools that flip every few ticks are at high risk within an hour; the prior knows it
    assert prior > 0.6
    model.observe(now, {"new@us-east-1a": True})
    assert 0.0 <= model.predict(now, ["new@us-east-1a"])[0] <= 1.0


def test_drift_in_a_pool_is_detected_and_reported_with_its_key() -> None:
    calm = make_trace(n_ticks=1500, n_pools=2, flip=0.0)
    model = RiskModel(horizon_s=3600.0, drift_threshold=2.0)
    replay(model, calm)
    rng = np.random.default_rng(3)
    for t in range(1500, 2500):
        now = START_S + t * 600.0
        model.observe(now, {calm.pools[0].key: True, calm.pools[1].key: bool(rng.random() < 0.5)})
    keys = {key for _, key, _ in model.drift_events}
    assert calm.pools[1].key in keys
    assert all(isinstance(detail, str) and detail for _, _, detail in model.drift_events)


def test_snapshot_restores_the_same_model_and_refuses_other_versions() -> None:
    trace = make_trace()
    model = RiskModel()
    replay(model, trace)
    keys = [p.key for p in trace.pools]
    now = START_S + trace.n_ticks * 600.0
    restored = RiskModel.restore(model.snapshot())
    np.testing.assert_array_equal(restored.predict(now, keys), model.predict(now, keys))
    blob = model.snapshot()
    future = snapshot.MAGIC + (snapshot.FORMAT_VERSION + 1).to_bytes(2, "big") + blob[len(snapshot.MAGIC) + 2 :]
    with pytest.raises(snapshot.SnapshotError, match="version"):
        RiskModel.restore(future)
    with pytest.raises(snapshot.SnapshotError, match="magic"):
        RiskModel.restore(b"garbage")
    with pytest.raises(snapshot.SnapshotError, match="expected RiskModel"):
        RiskModel.restore(snapshot.dump([1, 2, 3]))


def test_time_going_backwards_is_refused() -> None:
    model = RiskModel()
    model.observe(START_S, {"a@us-east-1a": True})
    with pytest.raises(ValueError, match="backwards"):
        model.observe(START_S - 1.0, {"a@us-east-1a": True})


def test_risk_series_is_the_online_model_served_tick_by_tick() -> None:
    trace = make_trace(n_ticks=200)
    series = risk_series(trace, horizon_s=3600.0)
    model = RiskModel(horizon_s=3600.0)
    keys = [p.key for p in trace.pools]
    for t in range(trace.n_ticks):
        now = START_S + t * 600.0
        model.observe(now, {k: bool(trace.available[t, i]) for i, k in enumerate(keys)})
        np.testing.assert_allclose(model.predict(now, keys), series[t], rtol=1e-12, atol=1e-12)


def test_the_model_learns_that_flapping_pools_are_riskier() -> None:
    trace = make_trace(n_ticks=1500, n_pools=2, flip=0.0)
    available = trace.available.copy()
    available[::3, 1] = False  # pool 1 drops out every third tick
    model = RiskModel()
    replay(model, MarketTrace(trace.pools, START_S, 600.0, available))
    now = START_S + 1500 * 600.0
    calm, flappy = model.predict(now, [p.key for p in trace.pools])
    assert flappy > 0.8 > 0.2 > calm


@settings(max_examples=25, deadline=None)
@given(
    flips=st.lists(st.lists(st.booleans(), min_size=3, max_size=3), min_size=1, max_size=60),
    tick_s=st.sampled_from([30.0, 195.0, 600.0, 3600.0]),
)
def test_risk_is_a_probability_for_any_history(flips: list[list[bool]], tick_s: float) -> None:
    model = RiskModel(horizon_s=3600.0)
    keys = ["a@us-east-1a", "b@us-east-1b", "c@us-east-1c"]
    for t, row in enumerate(flips):
        model.observe(START_S + t * tick_s, dict(zip(keys, row, strict=True)))
        risk = model.predict(START_S + t * tick_s, keys)
        assert np.all((risk >= 0.0) & (risk <= 1.0))


def test_before_any_label_the_alarm_is_persistence_rule() -> None:
    model = RiskModel(horizon_s=3600.0)
    model.observe(START_S, {"a": True, "b": False})
    rows = model.rows_of(["a", "b"], add=False)
    assert model.positive_rows(rows, np.array([0.99, 0.0])).tolist() == [False, True]
