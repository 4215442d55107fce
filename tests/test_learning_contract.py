"""One contract over every online model (river's checks/common.py in spirit): learning does not mutate
its input, pickling round-trips before and after learning, the same seed gives the same predictions,
missing or new pools and features do not crash."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from engine.learning import contexts
from engine.learning.hierarchy import HierarchicalCounts
from engine.learning.labels import Matured
from engine.learning.linear import OnlineLogistic
from engine.learning.price import PriceForecaster
from engine.learning.risk import RiskModel

KEYS = ("p3.2xlarge@us-west-2a", "p3.2xlarge@us-west-2b", "p3.2xlarge@us-east-1a")
TICK_S = 600.0


def availability_ticks(n: int = 60, seed: int = 1) -> list[tuple[float, dict[str, bool], dict[str, dict[str, float]]]]:
    rng = np.random.default_rng(seed)
    state = dict.fromkeys(KEYS, True)
    out = []
    for t in range(n):
        for key in KEYS:
            if rng.random() < 0.15:
                state[key] = not state[key]
        extras = {key: {"price_ratio": 0.3 + 0.01 * (t % 5)} for key in KEYS}
        out.append((1_700_000_000.0 + t * TICK_S, dict(state), extras))
    return out


@dataclass(frozen=True)
class Adapter:
    """How the contract drives one kind of model."""

    name: str
    make: Callable[[int], Any]
    learn: Callable[[Any, int], Any]  # feed tick i, returns the input it was given
    predict: Callable[[Any], np.ndarray]


TICKS = availability_ticks()


def _risk_learn(model: RiskModel, i: int) -> Any:
    now, available, extras = TICKS[i]
    model.observe(now, available, extras)
    return (available, extras)


def _price_learn(model: PriceForecaster, i: int) -> Any:
    now, _, extras = TICKS[i]
    prices = {k: 3.06 * v["price_ratio"] for k, v in extras.items()}
    model.observe(now, prices)
    return prices


def _matured(i: int) -> Matured:
    rng = np.random.default_rng(i)
    x = rng.normal(size=(3, 15))
    x[:, 0] = rng.integers(0, 2, 3)
    return Matured(
        t_s=np.full(3, float(i)), rows=np.arange(3), x=x, components=rng.random((3, 5)),
        y=rng.integers(0, 2, 3).astype(float), weight=np.full(3, 0.5),
    )  # fmt: skip


def _counts_learn(model: HierarchicalCounts, i: int) -> Any:
    batch = _matured(i)
    model.learn_many(batch, float(i))
    return batch


def _logistic_learn(model: OnlineLogistic, i: int) -> Any:
    batch = _matured(i)
    model.learn_many(batch.x, batch.y)
    return batch


def _make_counts(seed: int) -> HierarchicalCounts:
    _ = seed
    model = HierarchicalCounts(contexts.state_age, contexts.N_STATE_AGE, contexts.state_of_state_age, 3600.0)
    model.ensure(3)
    return model


ADAPTERS = [
    Adapter(
        "risk",
        lambda seed: RiskModel(horizon_s=3600.0, seed=seed),
        _risk_learn,
        lambda m: m.predict(TICKS[-1][0], [*KEYS, "m5.large@us-east-1a"]),
    ),
    Adapter(
        "price",
        lambda _seed: PriceForecaster(horizons_s=(3600.0, 7200.0)),
        _price_learn,
        lambda m: np.concatenate([m.predict(0.0, list(KEYS), h) for h in (3600.0, 7200.0)]),
    ),
    Adapter("counts", _make_counts, _counts_learn, lambda m: m.predict_many(np.array([0, 1, -1]), _matured(99).x)),
    Adapter(
        "logistic",
        lambda _seed: OnlineLogistic(15),
        _logistic_learn,
        lambda m: m.predict_many(_matured(99).x),
    ),
]


@pytest.fixture(params=ADAPTERS, ids=lambda a: a.name)
def adapter(request: pytest.FixtureRequest) -> Adapter:
    return request.param


def test_learning_does_not_mutate_its_input(adapter: Adapter) -> None:
    model = adapter.make(0)
    for i in range(len(TICKS)):
        snapshot_before = copy.deepcopy(_input_of(adapter, i))
        given = adapter.learn(model, i)
        _assert_same(given, snapshot_before)


def _input_of(adapter: Adapter, i: int) -> Any:
    probe = adapter.make(0)
    return adapter.learn(probe, i)


def _assert_same(a: Any, b: Any) -> None:
    if isinstance(a, Matured):
        for field in ("t_s", "rows", "x", "components", "y", "weight"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    else:
        assert a == b


def test_pickling_round_trips_before_and_after_learning(adapter: Adapter) -> None:
    model = adapter.make(0)
    fresh = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(adapter.predict(fresh), adapter.predict(model))
    for i in range(len(TICKS) // 2):
        adapter.learn(model, i)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(adapter.predict(restored), adapter.predict(model))
    for i in range(len(TICKS) // 2, len(TICKS)):
        adapter.learn(model, i)
        adapter.learn(restored, i)
    np.testing.assert_array_equal(adapter.predict(restored), adapter.predict(model))


def test_same_seed_gives_the_same_predictions(adapter: Adapter) -> None:
    a, b = adapter.make(7), adapter.make(7)
    for i in range(len(TICKS)):
        adapter.learn(a, i)
        adapter.learn(b, i)
    np.testing.assert_array_equal(adapter.predict(a), adapter.predict(b))


def test_predictions_are_probabilities_or_prices(adapter: Adapter) -> None:
    model = adapter.make(0)
    for i in range(len(TICKS)):
        adapter.learn(model, i)
    out = adapter.predict(model)
    finite = out[np.isfinite(out)]
    assert finite.size > 0
    if adapter.name != "price":
        assert np.all((finite >= 0) & (finite <= 1))
    else:
        assert np.all(finite > 0)


@pytest.mark.parametrize("model_name", ["risk", "price"])
def test_pools_that_come_late_or_skip_ticks_do_not_crash(model_name: str) -> None:
    model = RiskModel(horizon_s=1800.0) if model_name == "risk" else PriceForecaster(horizons_s=(1800.0,))
    for i, (now, available, extras) in enumerate(TICKS):
        present = {k: v for j, (k, v) in enumerate(available.items()) if (i + j) % 3 != 0}
        if i > 30:
            present["c5.large@eu-west-1a"] = i % 4 != 0
        if model_name == "risk":
            some_extras = {k: ({} if i % 2 else extras.get(k, {"placement_score": 7.0})) for k in present}
            model.observe(now, present, some_extras)
        else:
            model.observe(now, dict.fromkeys(present, 1.0 + 0.01 * i))
    keys = [*KEYS, "c5.large@eu-west-1a", "never@seen-1a"]
    out = model.predict(TICKS[-1][0], keys) if model_name == "risk" else model.predict(0.0, keys, 1800.0)
    assert out.shape == (5,)
    assert np.isfinite(out[:4]).all()
