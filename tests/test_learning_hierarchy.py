"""The shortcuts that make a live tick cheap must not change what the risk model says: the per-state
sums the count models keep as they learn equal a full recount, and the risk served right after an
observation equals a fresh prediction."""

from __future__ import annotations

import pickle

import numpy as np

from engine.learning import contexts
from engine.learning.features import FEATURES
from engine.learning.hierarchy import HierarchicalCounts
from engine.learning.labels import Matured
from engine.learning.risk import RiskModel

START_S = 1_700_000_000.0


def matured(rng: np.random.Generator, n: int = 40, n_rows: int = 6, t_s: float = 0.0) -> Matured:
    x = rng.normal(size=(n, len(FEATURES)))
    x[:, 0] = rng.integers(0, 2, n)
    x[:, 1] = rng.uniform(-4.0, 4.0, n)
    return Matured(
        t_s=np.full(n, t_s), rows=rng.integers(0, n_rows, n).astype(np.intp), x=x, components=rng.random((n, 6)),
        y=rng.integers(0, 2, n).astype(float), weight=rng.uniform(0.0, 1.0, n),
    )  # fmt: skip


def counts_model(per_probe: bool = False) -> HierarchicalCounts:
    return HierarchicalCounts(
        contexts.state_age, contexts.N_STATE_AGE, contexts.state_of_state_age, 3600.0, per_probe=per_probe
    )


def assert_sums_match_a_recount(model: HierarchicalCounts) -> None:
    np.testing.assert_allclose(model.pos_by_state, model._by_state(model.pos), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(model.total_by_state, model._by_state(model.total), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(model.pooled_pos_by_state, model._by_state(model.pooled_pos), rtol=1e-12)
    np.testing.assert_allclose(model.pooled_total_by_state, model._by_state(model.pooled_total), rtol=1e-12)


def test_state_sums_kept_while_learning_fading_forgetting_and_growing_equal_a_recount() -> None:
    rng = np.random.default_rng(3)
    for per_probe in (False, True):
        model = counts_model(per_probe)
        model.ensure(6)
        for i in range(200):
            if i == 120:
                model.ensure(40)  # grows past its capacity mid-way
            model.learn_many(matured(rng, n_rows=6 if i < 120 else 40), START_S + 600.0 * i)
            if i % 37 == 5:
                model.forget_pool(int(rng.integers(0, 6)), 0.1)
        assert model.total_by_state.sum() > 0
        assert_sums_match_a_recount(model)


def test_a_checkpoint_without_state_sums_derives_them_and_predicts_the_same() -> None:
    rng = np.random.default_rng(5)
    model = counts_model()
    model.ensure(6)
    for i in range(30):
        model.learn_many(matured(rng), START_S + 600.0 * i)
    old_state = dict(model.__dict__)
    for name in ("pos_by_state", "total_by_state", "pooled_pos_by_state", "pooled_total_by_state"):
        del old_state[name]
    old = HierarchicalCounts.__new__(HierarchicalCounts)
    old.__setstate__(old_state)
    probe = matured(rng, n=12)
    rows = np.r_[probe.rows[:-1], -1].astype(np.intp)
    np.testing.assert_allclose(old.predict_many(rows, probe.x), model.predict_many(rows, probe.x), rtol=1e-12)
    assert_sums_match_a_recount(old)


def observe_ticks(model: RiskModel, keys: list[str], ticks: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    state = np.ones(len(keys), dtype=bool)
    for t in range(ticks):
        state ^= rng.random(len(keys)) < 0.05
        extras = {k: {"price_ratio": 0.3 + 0.01 * (t % 7)} for k in keys}
        model.observe(START_S + 300.0 * t, dict(zip(keys, state.tolist(), strict=True)), extras)


def fresh_prediction(model: RiskModel, now_s: float, keys: list[str]) -> np.ndarray:
    """What the model predicts with nothing served to reuse (a restored copy serves nothing)."""
    return pickle.loads(pickle.dumps(model)).predict(now_s, keys)


def test_risk_served_right_after_an_observation_equals_a_fresh_prediction() -> None:
    keys = [f"m5.large@us-east-1{z}" for z in "abcdef"]
    model = RiskModel(horizon_s=3600.0)
    observe_ticks(model, keys, 40)
    now_s = START_S + 300.0 * 39
    for asked in (keys, keys[::-1], keys[2:4], [*keys[:2], "never@seen-1a"]):
        np.testing.assert_allclose(model.predict(now_s, asked), fresh_prediction(model, now_s, asked), rtol=1e-12)
    later = now_s + 60.0
    np.testing.assert_array_equal(model.predict(later, keys), fresh_prediction(model, later, keys))


def test_a_second_observation_at_the_same_time_replaces_what_was_served() -> None:
    keys = [f"m5.large@us-east-1{z}" for z in "abcd"]
    model = RiskModel(horizon_s=3600.0)
    observe_ticks(model, keys, 30)
    now_s = START_S + 300.0 * 29
    before = model.predict(now_s, keys)
    model.observe(now_s, dict.fromkeys(keys, False))  # every pool taken back, at the same time
    after = model.predict(now_s, keys)
    np.testing.assert_allclose(after, fresh_prediction(model, now_s, keys), rtol=1e-12)
    assert not np.allclose(after, before)


def test_a_checkpoint_carries_no_served_risk() -> None:
    keys = ["m5.large@us-east-1a", "m5.large@us-east-1b"]
    model = RiskModel(horizon_s=3600.0)
    observe_ticks(model, keys, 5)
    assert "_served" not in model.__getstate__()
    restored = RiskModel.restore(model.snapshot())
    now_s = START_S + 300.0 * 4
    np.testing.assert_allclose(restored.predict(now_s, keys), model.predict(now_s, keys), rtol=1e-12)
