"""Online logistic regression (river-style ``learn_many``/``predict_many``) over standardised inputs.

Adagrad steps make the learning rate scale-free per input, and inputs are standardised with running
means and variances, so no feature needs hand scaling; an L2 pull keeps unused weights near zero.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def sigmoid(z: FloatArray) -> FloatArray:
    """The logistic function, safe for large inputs.

    >>> sigmoid(np.array([-800.0, 0.0, 800.0])).tolist()
    [0.0, 0.5, 1.0]
    """
    return np.exp(-np.logaddexp(0.0, -z))


def logit(p: FloatArray, eps: float = 1e-4) -> FloatArray:
    """log(p / (1 - p)) of a probability clipped away from 0 and 1.

    >>> logit(np.array([0.5, 0.9])).round(4).tolist()
    [0.0, 2.1972]
    """
    q = np.minimum(np.maximum(p, eps), 1.0 - eps)  # np.clip's values, without its Python-level overhead
    return np.log(q) - np.log1p(-q)


class OnlineLogistic:
    """Logistic regression learned one mini-batch of matured labels at a time."""

    def __init__(self, n_inputs: int, learning_rate: float = 0.1, l2: float = 1e-4) -> None:
        self.learning_rate = learning_rate
        self.l2 = l2
        self.weights = np.zeros(n_inputs + 1)  # last one is the intercept
        self.grad_sq = np.full(n_inputs + 1, 1e-8)
        self.count = 0.0
        self.mean = np.zeros(n_inputs)
        self.m2 = np.zeros(n_inputs)

    def _design(self, z: FloatArray) -> FloatArray:
        std = np.sqrt(self.m2 / max(self.count - 1.0, 1.0))
        scaled = (z - self.mean) / np.where(std > 1e-9, std, 1.0)
        design = np.empty((z.shape[0], z.shape[1] + 1))
        np.minimum(np.maximum(scaled, -8.0), 8.0, out=design[:, :-1])
        design[:, -1] = 1.0
        return design

    def predict_many(self, z: FloatArray, offset: FloatArray | None = None) -> FloatArray:
        """P(y = 1); ``offset`` is a base log-odds the weights correct (zero weights predict it exactly)."""
        logits = self._design(z) @ self.weights
        return sigmoid(logits if offset is None else logits + offset)

    def learn_many(self, z: FloatArray, y: FloatArray, offset: FloatArray | None = None) -> None:
        # Chan et al.'s parallel update of the running mean and variance by a whole batch.
        n = float(z.shape[0])
        if n == 0:
            return
        batch_mean = z.mean(axis=0)
        batch_m2 = ((z - batch_mean) ** 2).sum(axis=0)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + batch_m2 + delta**2 * self.count * n / total
        self.count = total
        design = self._design(z)
        logits = design @ self.weights
        err = sigmoid(logits if offset is None else logits + offset) - y
        grad = design.T @ err / n
        grad[:-1] += self.l2 * self.weights[:-1]
        self.grad_sq += grad**2
        self.weights -= self.learning_rate * grad / np.sqrt(self.grad_sq)
