"""An online mixture of probability forecasts, weighted per pool by each component's recent log-loss.

With weights ``exp(-cumulative log-loss)`` (a Bayesian mixture) the mixture's total log-loss exceeds the
best component's by at most ``log(K)``; fading the losses lets the weights follow a change of leader.
New pools start from the weights every pool taught (pseudo-samples of the pooled mean loss).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

EPS = 1e-6


def pointwise_log_loss(p: FloatArray, y: FloatArray) -> FloatArray:
    """Log-loss of each prediction (nats), clipped so one sure miss costs a bounded amount.

    >>> pointwise_log_loss(np.array([0.9, 0.9]), np.array([1.0, 0.0])).round(3).tolist()
    [0.105, 2.303]
    """
    q = np.minimum(np.maximum(p, EPS), 1.0 - EPS)  # np.clip's values, without its overhead
    return -(y * np.log(q) + (1.0 - y) * np.log1p(-q))


class LossWeightedMixture:
    """Per-pool exponential weights over ``n_components`` forecasts."""

    def __init__(self, n_components: int, horizon_s: float, half_life_h: float = 24.0 * 7, prior_samples: float = 20.0):
        self.n_components = n_components
        self.tau_s = half_life_h * horizon_s / np.log(2.0)
        self.prior_samples = prior_samples
        self.loss = np.zeros((0, n_components))
        self.samples = np.zeros(0)
        self.pooled_loss = np.zeros(n_components)
        self.pooled_samples = 0.0
        self.last_learn_s: float | None = None

    def ensure(self, n_rows: int) -> None:
        if n_rows > self.loss.shape[0]:
            grow = max(n_rows, 2 * self.loss.shape[0], 8) - self.loss.shape[0]
            self.loss = np.vstack([self.loss, np.zeros((grow, self.n_components))])
            self.samples = np.concatenate([self.samples, np.zeros(grow)])

    def weights(self, rows: IntArray) -> FloatArray:
        mean_pooled = self.pooled_loss / max(self.pooled_samples, 1.0)
        if rows.size and rows.min() >= 0:
            own = self.loss[rows]
        else:
            known = rows >= 0
            own = np.where(known[:, None], self.loss[np.where(known, rows, 0)], 0.0)
        score = own + self.prior_samples * mean_pooled
        score -= score.min(axis=1, keepdims=True)
        w = np.exp(-score)
        out: FloatArray = w / w.sum(axis=1, keepdims=True)
        return out

    def predict_many(self, rows: IntArray, components: FloatArray) -> FloatArray:
        out: FloatArray = np.einsum("ij,ij->i", self.weights(rows), components)
        return out

    def learn_many(
        self, rows: IntArray, components: FloatArray, y: FloatArray, weight: FloatArray, now_s: float
    ) -> None:
        if self.last_learn_s is not None and now_s > self.last_learn_s:
            fade = float(np.exp(-(now_s - self.last_learn_s) / self.tau_s))
            self.loss *= fade
            self.samples *= fade
            self.pooled_loss *= fade
            self.pooled_samples *= fade
        self.last_learn_s = now_s
        losses = pointwise_log_loss(components, y[:, None]) * weight[:, None]
        np.add.at(self.loss, rows, losses)
        np.add.at(self.samples, rows, weight)
        self.pooled_loss += losses.sum(axis=0)
        self.pooled_samples += float(weight.sum())

    def forget_pool(self, row: int) -> None:
        """Drop a pool's own loss history (after drift): it restarts from the pooled weights."""
        self.loss[row] = 0.0
        self.samples[row] = 0.0
