"""The engine's Page-Hinkley test is river's, value for value (it is ours only to keep river.drift, and
the scipy.stats it imports, out of the region actors' processes)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from river import drift

from engine.learning.drift import PageHinkley, PoolDriftDetector


def stepped_series(seed: int, n: int = 3000) -> list[float]:
    """Noisy values whose mean steps up and down a few times."""
    rng = np.random.default_rng(seed)
    means = np.repeat(rng.uniform(0.0, 3.0, n // 500 + 1), 500)[:n]
    return [float(v) for v in means + rng.normal(0.0, rng.uniform(0.1, 1.5), n)]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(("min_instances", "delta", "threshold"), [(30, 0.005, 50.0), (48, 0.05, 8.0), (5, 0.0, 1.0)])
def test_page_hinkley_raises_the_same_alarms_as_rivers(seed: int, min_instances: int, delta: float,
                                                       threshold: float) -> None:
    ours = PageHinkley(min_instances=min_instances, delta=delta, threshold=threshold)
    theirs = drift.PageHinkley(min_instances=min_instances, delta=delta, threshold=threshold, mode="up")
    alarms = []
    for i, x in enumerate(stepped_series(seed)):
        ours.update(x)
        theirs.update(x)
        assert ours.drift_detected == theirs.drift_detected, f"value {i}"
        if ours.drift_detected:
            alarms.append(i)
    if threshold <= 1.0:  # the series do move: the comparison is not only of quiet detectors
        assert alarms


def test_a_pool_detector_pickles_with_its_state() -> None:
    detector = PoolDriftDetector(threshold=2.0, min_instances=5)
    for loss in [0.1] * 20:
        detector.update(3, loss)
    copy = pickle.loads(pickle.dumps(detector))
    assert [copy.update(3, 5.0) for _ in range(10)] == [detector.update(3, 5.0) for _ in range(10)]
