"""Drift detection per pool: the Page-Hinkley test on the model's matured log-loss.

A rise in a pool's loss means the pool stopped behaving as it used to (a new capacity regime); the risk
model then forgets that pool's own statistics so it leans on the shared prior while it relearns, and the
event is reported so an operator can see why its forecasts moved. Losses of neighbouring probes are
nearly the same sample, so the detector sees one value per horizon of evidence: the weighted mean loss
of the pool's predictions over that horizon.

The test is river's ``drift.PageHinkley(mode="up")``, the same arithmetic (a test checks they agree), kept
here because ``river.drift`` imports scipy.stats, which a region actor's process otherwise never loads.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


class PageHinkley:
    """Page-Hinkley test for an increase of the mean: an alarm once the cumulative deviation above the
    running mean (less ``delta`` per value, faded by ``alpha``) rises ``threshold`` over its minimum.

    >>> detector = PageHinkley(min_instances=10, delta=0.005, threshold=5.0)
    >>> for i, x in enumerate([0.0] * 100 + [1.0] * 100):
    ...     detector.update(x)
    ...     if detector.drift_detected:
    ...         break
    >>> i  # the mean stepped up at 100; five values later the evidence passes the threshold
    105
    """

    __slots__ = ("_max_decrease", "_mean", "_min_increase", "_n", "_sum_decrease", "_sum_increase", "alpha",
                 "delta", "drift_detected", "min_instances", "threshold")

    def __init__(self, min_instances: int = 30, delta: float = 0.005, threshold: float = 50.0,
                 alpha: float = 1 - 0.0001) -> None:
        self.min_instances = min_instances
        self.delta = delta
        self.threshold = threshold
        self.alpha = alpha
        self._reset()

    def _reset(self) -> None:
        self.drift_detected = False
        self._n = 0.0
        self._mean = 0.0
        self._sum_increase = 0.0
        self._sum_decrease = 0.0
        self._min_increase = float("inf")
        self._max_decrease = -1.0

    def update(self, x: float) -> None:
        """Feed one value (after an alarm, the test starts afresh with it)."""
        if self.drift_detected:
            self._reset()
        self._n += 1.0
        self._mean += (1.0 / self._n) * (x - self._mean)
        deviation = x - self._mean
        self._sum_increase = self.alpha * self._sum_increase + deviation - self.delta
        self._sum_decrease = self.alpha * self._sum_decrease + deviation + self.delta
        self._min_increase = min(self._min_increase, self._sum_increase)
        self._max_decrease = max(self._max_decrease, self._sum_decrease)
        if self._n >= self.min_instances:
            self.drift_detected = self._sum_increase - self._min_increase > self.threshold


class PoolDriftDetector:
    """One Page-Hinkley detector per pool, watching for an increase of the mean loss."""

    def __init__(self, threshold: float = 8.0, min_instances: int = 48, delta: float = 0.05) -> None:
        self.threshold = threshold
        self.min_instances = min_instances
        self.delta = delta
        self._detectors: dict[int, Any] = {}
        self._loss: dict[int, float] = {}
        self._weight: dict[int, float] = {}

    def _new(self) -> Any:
        return PageHinkley(min_instances=self.min_instances, delta=self.delta, threshold=self.threshold)

    def update(self, row: int, loss: float, weight: float = 1.0) -> bool:
        """Feed one matured loss of a pool; True when a drift is detected (the detector then restarts)."""
        acc_loss = self._loss.get(row, 0.0) + loss * weight
        acc_weight = self._weight.get(row, 0.0) + weight
        if acc_weight < 1.0:
            self._loss[row], self._weight[row] = acc_loss, acc_weight
            return False
        self._loss[row], self._weight[row] = 0.0, 0.0
        detector = self._detectors.get(row)
        if detector is None:
            detector = self._detectors[row] = self._new()
        detector.update(acc_loss / acc_weight)
        if detector.drift_detected:
            self._detectors[row] = self._new()
            return True
        return False

    def update_many(
        self, rows: npt.NDArray[np.intp], losses: npt.NDArray[np.float64], weights: npt.NDArray[np.float64]
    ) -> list[int]:
        """Feed a batch; the rows whose detector fired."""
        return [
            row
            for row, loss, weight in zip(rows.tolist(), losses.tolist(), weights.tolist(), strict=True)
            if self.update(row, loss, weight)
        ]
