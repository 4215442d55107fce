"""The price forecaster's guarantee against persistence, on synthetic series and on random ones."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.learning.price import SEED_SKILL, PriceForecaster

START_S = 1_700_000_000.0
HORIZONS_S = (3600.0, 6 * 3600.0)


def run(price: np.ndarray, tick_s: float = 600.0, horizons_s: tuple[float, ...] = HORIZONS_S) -> PriceForecaster:
    forecaster = PriceForecaster(horizons_s=horizons_s)
    keys = [f"p{i}@us-east-1a" for i in range(price.shape[1])]
    for t in range(price.shape[0]):
        forecaster.observe_array(START_S + t * tick_s, keys, price[t])
    return forecaster


def assert_never_behind_by_more_than_the_seed(forecaster: PriceForecaster) -> None:
    for horizon_s in forecaster.horizons_s:
        for key, e in forecaster.pool_errors(horizon_s).items():
            assert e["served_error"] <= e["persistence_error"] + e["seed"] + 1e-12, (key, horizon_s, e)
            assert e["seed"] <= SEED_SKILL * e["persistence_error"] + 1e-15


def test_a_steady_trend_is_learned_and_served_at_every_horizon_it_has_evidence_for() -> None:
    t = np.arange(4000)[:, None]
    forecaster = run(np.exp(0.0005 * t * np.ones((1, 2))))
    skills = {k: m["skill"] for k, m in forecaster.metrics().items()}
    assert skills["1h"] > 0.5
    assert skills["6h"] > 0.2


def test_a_noisy_trend_still_beats_persistence() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(6000)[:, None]
    forecaster = run(np.exp(0.0003 * t + rng.normal(0, 0.001, (6000, 2))))
    assert forecaster.metrics()["1h"]["skill"] > 0.05


@pytest.mark.parametrize("seed", range(3))
def test_random_walk_and_steps_never_fall_behind_persistence(seed: int) -> None:
    rng = np.random.default_rng(seed)
    walk = np.exp(np.cumsum(rng.normal(0, 0.01, (2000, 2)), axis=0))
    jumps = np.exp(np.cumsum(np.where(rng.random((2000, 2)) < 0.01, rng.normal(0, 0.05, (2000, 2)), 0.0), axis=0))
    step = np.where(np.arange(2000)[:, None] < 1000, 1.0, 1.3) * np.ones((1, 2))
    for price in (walk, jumps, step):
        forecaster = run(price)
        assert_never_behind_by_more_than_the_seed(forecaster)
        for m in forecaster.metrics().values():
            assert m["skill"] >= 0.0


def test_a_trend_that_reverses_keeps_the_bound_at_every_tick_and_is_learned_again() -> None:
    # A trend the correction learns and serves, then the opposite trend: forecasts in flight when it turns
    # lose, but the bound holds at every tick and the forgetting regression learns the new trend.
    t = np.arange(3000)
    log_price = np.where(t < 1500, 0.001 * t, 1.5 - 0.001 * (t - 1500))
    forecaster = PriceForecaster(horizons_s=(3600.0,))
    for i in range(t.size):
        forecaster.observe(START_S + i * 600.0, {"a@us-east-1a": float(np.exp(log_price[i]))})
        assert_never_behind_by_more_than_the_seed(forecaster)
    assert forecaster.metrics()["1h"]["skill"] > 0.0


def test_predict_returns_the_forecast_that_is_scored() -> None:
    forecaster = PriceForecaster(horizons_s=(3600.0,))
    for t in range(600):
        forecaster.observe(START_S + t * 600.0, {"a@us-east-1a": float(np.exp(0.001 * t))})
    served = forecaster.predict(START_S + 599 * 600.0, ["a@us-east-1a"], 3600.0)[0]
    pending = forecaster._horizons[3600.0].pending[-1]
    assert served == pending.served[0]
    assert served > float(np.exp(0.001 * 599))  # the trend is served, not the last price


def test_pool_errors_names_every_pool_and_rejects_an_unknown_horizon() -> None:
    forecaster = run(np.ones((50, 3)))
    assert set(forecaster.pool_errors(3600.0)) == {f"p{i}@us-east-1a" for i in range(3)}
    with pytest.raises(ValueError, match="not one of"):
        forecaster.pool_errors(60.0)


@st.composite
def price_series(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n_ticks = draw(st.integers(20, 400))
    n_pools = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["walk", "trend", "jumps", "flip", "spikes"]))
    t = np.arange(n_ticks)[:, None]
    if kind == "walk":
        log_price = np.cumsum(rng.normal(0, draw(st.floats(1e-4, 0.05)), (n_ticks, n_pools)), axis=0)
    elif kind == "trend":
        log_price = draw(st.floats(-0.003, 0.003)) * t + rng.normal(0, draw(st.floats(0, 0.01)), (n_ticks, n_pools))
    elif kind == "jumps":
        moves = np.where(rng.random((n_ticks, n_pools)) < 0.05, rng.normal(0, 0.1, (n_ticks, n_pools)), 0.0)
        log_price = np.cumsum(moves, axis=0)
    elif kind == "flip":  # a trend that reverses, the worst case for a learned drift
        half = n_ticks // 2
        log_price = np.where(t < half, 0.002 * t, 0.002 * half - 0.004 * (t - half)) * np.ones((1, n_pools))
    else:
        log_price = np.where(rng.random((n_ticks, n_pools)) < 0.05, 0.3, 0.0)
    gaps_s = rng.choice([60.0, 195.0, 600.0, 3600.0], size=n_ticks)
    missing = rng.random((n_ticks, n_pools)) < draw(st.floats(0, 0.3))
    price = np.where(missing, np.nan, np.exp(log_price))
    return START_S + np.cumsum(gaps_s), price


@settings(max_examples=60, deadline=None)
@given(price_series())
def test_served_error_never_exceeds_persistence_by_more_than_the_seed_at_any_moment(
    series: tuple[np.ndarray, np.ndarray],
) -> None:
    times_s, price = series
    forecaster = PriceForecaster(horizons_s=(3600.0, 4 * 3600.0))
    keys = [f"p{i}@us-east-1a" for i in range(price.shape[1])]
    for t in range(price.shape[0]):
        forecaster.observe_array(float(times_s[t]), keys, price[t])
        assert_never_behind_by_more_than_the_seed(forecaster)
