"""Scores for probabilistic predictions of a binary label, and an accumulator for progressive validation.

Progressive validation: each prediction is scored against its label once the label has matured, and
only then learned from, so the running score is an honest estimate of the score on unseen data.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# Probabilities are clipped before the log so one confident miss costs a finite, large loss.
EPS = 1e-6


def log_loss(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    """Mean negative log-likelihood in nats.

    >>> round(log_loss([1, 0], [0.9, 0.2]), 4)
    0.1643
    >>> round(log_loss([1], [0.5]), 4)
    0.6931
    """
    y_arr = np.asarray(y, dtype=np.float64)
    p_arr = np.clip(np.asarray(p, dtype=np.float64), EPS, 1.0 - EPS)
    if y_arr.size == 0:
        return float("nan")
    return float(-np.mean(y_arr * np.log(p_arr) + (1.0 - y_arr) * np.log1p(-p_arr)))


def brier(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    """Mean squared error of the probability.

    >>> round(brier([1, 0], [0.9, 0.2]), 4)
    0.025
    """
    y_arr = np.asarray(y, dtype=np.float64)
    if y_arr.size == 0:
        return float("nan")
    return float(np.mean((np.asarray(p, dtype=np.float64) - y_arr) ** 2))


def roc_auc(y: npt.ArrayLike, score: npt.ArrayLike) -> float:
    """Area under the ROC curve, ties counted half (the Mann-Whitney statistic).

    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    >>> roc_auc([0, 1], [0.5, 0.5])
    0.5
    >>> import math; math.isnan(roc_auc([1, 1], [0.2, 0.3]))
    True
    """
    y_arr = np.asarray(y, dtype=bool)
    s = np.asarray(score, dtype=np.float64)
    n_pos = int(y_arr.sum())
    n_neg = int(y_arr.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    # Average ranks handle ties exactly: sort, then give every run of equal scores its mean rank.
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty(s.size, dtype=np.float64)
    boundaries = np.flatnonzero(np.diff(sorted_s)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [s.size]))
    mean_rank = (starts + ends + 1) / 2.0  # 1-based ranks averaged over each tie run
    ranks[order] = np.repeat(mean_rank, ends - starts)
    rank_sum = float(ranks[y_arr].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def f1_score(y: npt.ArrayLike, predicted: npt.ArrayLike) -> float:
    """F1 of boolean predictions (0 when nothing is predicted positive and nothing is positive).

    >>> round(f1_score([1, 1, 0, 0], [1, 0, 1, 0]), 4)
    0.5
    """
    y_arr = np.asarray(y, dtype=bool)
    hat = np.asarray(predicted, dtype=bool)
    tp = float(np.sum(y_arr & hat))
    denom = float(np.sum(y_arr) + np.sum(hat))
    return 0.0 if denom == 0 else 2.0 * tp / denom


def scores(y: npt.ArrayLike, p: npt.ArrayLike, positive: npt.ArrayLike | None = None) -> dict[str, float]:
    """log-loss, Brier, AUC and (when the positive calls are given) F1, as one JSON-ready dict.

    >>> scores([1, 0], [0.9, 0.2], positive=[True, False])["f1"]
    1.0
    """
    out = {"log_loss": log_loss(y, p), "brier": brier(y, p), "auc": roc_auc(y, p)}
    if positive is not None:
        out["f1"] = f1_score(y, positive)
    return out


class F1Threshold:
    """Chooses the probability threshold that maximised F1 on matured (prediction, label) pairs.

    Pairs go into a fixed histogram of predictions per label, so choosing is O(bins) whatever the history
    length; the choice is refreshed by the caller (``threshold`` is only read, never peeks ahead).

    >>> chooser = F1Threshold(bins=10)
    >>> chooser.learn_many(np.array([0.05, 0.15, 0.85, 0.95]), np.array([0, 0, 1, 1]))
    >>> 0.15 < chooser.choose() <= 0.85
    True
    """

    __slots__ = ("_neg", "_pos", "bins")

    def __init__(self, bins: int = 200) -> None:
        self.bins = bins
        self._pos = np.zeros(bins, dtype=np.float64)
        self._neg = np.zeros(bins, dtype=np.float64)

    def learn_many(self, p: FloatArray, y: npt.NDArray[np.generic]) -> None:
        b = np.minimum((np.asarray(p) * self.bins).astype(np.intp), self.bins - 1)
        yb = np.asarray(y, dtype=bool)
        self._pos += np.bincount(b[yb], minlength=self.bins)
        self._neg += np.bincount(b[~yb], minlength=self.bins)

    def choose(self) -> float:
        """The lower edge of the bin from which on predicting positive gave the best F1 (0.5 with no data)."""
        total_pos = self._pos.sum()
        if total_pos == 0:
            return 0.5
        # Predict positive for bins >= k: tp = suffix sum of positives, fp = suffix sum of negatives.
        tp = np.cumsum(self._pos[::-1])[::-1]
        fp = np.cumsum(self._neg[::-1])[::-1]
        f1 = 2 * tp / (tp + fp + total_pos)
        k = int(np.argmax(f1))
        return k / self.bins


# "Positive iff unavailable now" as cuts (available: above any probability, unavailable: zero): the
# rule the state cuts start from, before any label has said better.
PERSISTENCE_CUTS = (2.0, 0.0)


class StateF1Threshold:
    """Chooses one threshold per current state (available, unavailable) that jointly maximised F1.

    The decision "positive iff p >= t[state]" holds "positive iff unavailable now" (thresholds 1 and 0)
    as a special case, so on the matured history the chosen pair never does worse than persistence's
    rule, while a rare-event trace, whose probabilities in the two states sit on different scales, is
    not forced to one cut for both. Histograms per state and label keep choosing O(bins^2).

    >>> chooser = StateF1Threshold(bins=10)
    >>> chooser.learn_many(np.array([0.05, 0.35, 0.6, 0.95]), np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1]))
    >>> [0.05 < t <= 0.35 for t in chooser.choose()[:1]] + [0.6 < chooser.choose()[1] <= 0.95]
    [True, True]
    """

    __slots__ = ("_neg", "_pos", "bins")

    def __init__(self, bins: int = 100) -> None:
        self.bins = bins
        self._pos = np.zeros((2, bins + 1), dtype=np.float64)  # the last bin stays empty: "never positive"
        self._neg = np.zeros((2, bins + 1), dtype=np.float64)

    def learn_many(self, p: FloatArray, y: npt.NDArray[np.generic], state: npt.NDArray[np.generic]) -> None:
        b = np.minimum((np.asarray(p) * self.bins).astype(np.intp), self.bins - 1)
        s = (np.asarray(state) > 0.5).astype(np.intp)
        yb = np.asarray(y, dtype=bool)
        n = self.bins + 1
        self._pos += np.bincount(s[yb] * n + b[yb], minlength=2 * n).reshape(2, n)
        self._neg += np.bincount(s[~yb] * n + b[~yb], minlength=2 * n).reshape(2, n)

    def choose(self) -> tuple[float, float]:
        """(threshold when available, threshold when unavailable); persistence's rule with no positive yet."""
        total_pos = self._pos.sum()
        if total_pos == 0:
            return PERSISTENCE_CUTS
        # Predict positive for bins >= k in each state (k = bins: never); suffix sums give tp and fp.
        tp = np.cumsum(self._pos[:, ::-1], axis=1)[:, ::-1]
        fp = np.cumsum(self._neg[:, ::-1], axis=1)[:, ::-1]
        tp_pair = tp[0][:, None] + tp[1][None, :]
        f1 = 2 * tp_pair / (tp_pair + fp[0][:, None] + fp[1][None, :] + total_pos)
        ka, ku = np.unravel_index(int(np.argmax(f1)), f1.shape)
        return self._edge(int(ka)), self._edge(int(ku))

    def _edge(self, k: int) -> float:
        # Bin k's lower edge; the empty last bin means "never positive", a cut above any probability.
        return k / self.bins if k < self.bins else 2.0
