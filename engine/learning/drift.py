"""Drift detection per pool: river's Page-Hinkley test on the model's matured log-loss.

A rise in a pool's loss means the pool stopped behaving as it used to (a new capacity regime); the risk
model then forgets that pool's own statistics so it leans on the shared prior while it relearns, and the
event is reported so an operator can see why its forecasts moved. Losses of neighbouring probes are
nearly the same sample, so the detector sees one value per horizon of evidence: the weighted mean loss
of the pool's predictions over that horizon.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from river import drift


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
        return drift.PageHinkley(
            min_instances=self.min_instances, delta=self.delta, threshold=self.threshold, mode="up"
        )

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
