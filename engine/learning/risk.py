"""Interruption risk per pool, learned online: P(the pool is unavailable at some probe in (t, t + H]).

One tick of probes for many pools goes in (:meth:`RiskModel.observe`); per tick the model

1. matures the predictions whose horizon has passed (:mod:`labels`) and learns from them only;
2. folds the probes into the pools' features (:mod:`features`);
3. predicts for the probed pools and queues those predictions for their labels.

The forecast is a per-pool loss-weighted mixture (:mod:`mixture`) of four hierarchical count models
(:mod:`hierarchy`: per-pool counts backed off to the counts of all pools, so a new pool starts from the
shared prior) and an online logistic regression stacked on the hazard features and the count models'
logits (:mod:`linear`). One count model, ``counts_state``, is calibrated persistence itself (the state
alone, the pool's own labels counted per probe): on a short trace of rare events the hazard contexts,
counted in horizons of evidence, leave their prior slowly, and this component lets the mixture follow
persistence there instead of losing to it. The logistic layer starts from the mean of the count
models' log-odds (an offset its weights correct), so it is never a blind 0.5 while it learns. The
mixture's pooled prior is worth a few horizons of loss, so a pool's own record takes over quickly.
The model's own alarm (for F1) uses one cut per state chosen online (:class:`StateF1Threshold`), which
starts as, and can always fall back to, "positive iff unavailable now". A Page-Hinkley detector per
pool (:mod:`drift`) watches the mixture's loss; on drift the pool forgets its own counts and mixture
weights and leans on the shared prior while it relearns. Everything works on arrays over pools, so the
simulator's whole-trace pass (:func:`engine.learning.series.risk_series`) runs this same code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.learning import contexts, snapshot
from engine.learning.drift import PoolDriftDetector
from engine.learning.features import AGE_OFFSET_H, COLUMN, EXTRAS, FEATURES, FeatureState, PoolIndex
from engine.learning.hierarchy import HierarchicalCounts
from engine.learning.labels import DelayedLabelQueue, Matured, Pending
from engine.learning.linear import OnlineLogistic, logit
from engine.learning.metrics import PERSISTENCE_CUTS, StateF1Threshold
from engine.learning.mixture import LossWeightedMixture, pointwise_log_loss

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

COUNT_MODELS: tuple[str, ...] = ("counts_age", "counts_share", "counts_run", "counts_state")
COMPONENTS: tuple[str, ...] = (*COUNT_MODELS, "logistic")

_AVAILABLE_SIDE = [COLUMN[n] for n in FEATURES if n != "unavailable"]
_UNAVAILABLE_SIDE = [COLUMN[n] for n in ("log_age", "run_rel", "share_1h", "share_6h", "share_24h", "changes_24h")]
N_STACK_INPUTS = 1 + len(_AVAILABLE_SIDE) + len(_UNAVAILABLE_SIDE) + len(COUNT_MODELS)
# The F1 threshold is re-chosen from matured predictions once per this many matured labels.
THRESHOLD_REFRESH = 64


def stack_inputs(x: FloatArray, count_probabilities: FloatArray, count_logits: FloatArray | None = None
                 ) -> FloatArray:
    """The logistic layer's inputs: each hazard feature split by the current state, plus count logits
    (``count_logits``, when the caller has them already, is ``logit(count_probabilities)``)."""
    u = x[:, COLUMN["unavailable"] : COLUMN["unavailable"] + 1]
    out = np.empty((x.shape[0], N_STACK_INPUTS))
    a, b = 1, 1 + len(_AVAILABLE_SIDE)
    c = b + len(_UNAVAILABLE_SIDE)
    out[:, :a] = u
    np.multiply(1.0 - u, x[:, _AVAILABLE_SIDE], out=out[:, a:b])
    np.multiply(u, x[:, _UNAVAILABLE_SIDE], out=out[:, b:c])
    out[:, c:] = logit(count_probabilities) if count_logits is None else count_logits
    return out


@dataclass(frozen=True, slots=True)
class _Served:
    """The risk the last observed tick predicted for its rows.

    Nothing learns between an observation and the decision that follows it at the same time, so a
    prediction for those rows at that time is this one: the decision reads it instead of recomputing
    every component. Any new observation replaces it (the model may have learned).
    """

    at_s: float = math.nan
    rows: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    risk: FloatArray = field(default_factory=lambda: np.zeros(0))

    def lookup(self, now_s: float, rows: IntArray) -> FloatArray | None:
        """The served risk of ``rows`` at ``now_s``, or None unless every row was served then."""
        if now_s != self.at_s or not rows.size:
            return None
        if rows.size == self.rows.size and np.array_equal(rows, self.rows):
            return self.risk.copy()
        if rows.min() < 0:
            return None
        position = np.full(int(max(rows.max(), self.rows.max(initial=0))) + 1, -1, dtype=np.intp)
        position[self.rows] = np.arange(self.rows.size)
        at = position[rows]
        if at.min() < 0:
            return None
        out: FloatArray = self.risk[at]
        return out


class RiskModel:
    """Online interruption-risk model over any number of pools (see the module docstring)."""

    def __init__(
        self,
        horizon_s: float = 3600.0,
        seed: int = 0,
        *,
        count_prior_strength: float = 4.0,
        count_half_life_h: float = 24.0 * 14,
        mixture_half_life_h: float = 24.0 * 7,
        mixture_prior_horizons: float = 4.0,
        learning_rate: float = 0.1,
        drift_threshold: float = 50.0,
        drift_keep: float = 0.1,
    ) -> None:
        if horizon_s <= 0:
            raise ValueError(f"horizon_s must be positive, got {horizon_s}")
        self.horizon_s = float(horizon_s)
        self.seed = seed  # the model draws no random numbers today; kept so callers can pin one
        self.drift_keep = drift_keep
        self.pools = PoolIndex()
        self.features = FeatureState(self.horizon_s)
        self.queue = DelayedLabelQueue(self.horizon_s)
        self.count_models: dict[str, HierarchicalCounts] = {
            "counts_age": HierarchicalCounts(
                contexts.state_age, contexts.N_STATE_AGE, contexts.state_of_state_age,
                self.horizon_s, count_prior_strength, count_half_life_h,
            ),
            "counts_share": HierarchicalCounts(
                contexts.state_age_share, contexts.N_STATE_AGE_SHARE, contexts.state_of_state_age_share,
                self.horizon_s,
                count_prior_strength, count_half_life_h,
            ),
            "counts_run": HierarchicalCounts(
                contexts.state_age_run, contexts.N_STATE_AGE_RUN, contexts.state_of_state_age_run,
                self.horizon_s,
                count_prior_strength, count_half_life_h,
            ),
            "counts_state": HierarchicalCounts(
                contexts.state_only, contexts.N_STATE, contexts.state_of_state_only, self.horizon_s,
                count_prior_strength, count_half_life_h, per_probe=True,
            ),
        }  # fmt: skip
        self.logistic = OnlineLogistic(N_STACK_INPUTS, learning_rate=learning_rate)
        self.mixture = LossWeightedMixture(len(COMPONENTS), self.horizon_s, mixture_half_life_h, mixture_prior_horizons)
        self.drift = PoolDriftDetector(threshold=drift_threshold)
        self.drift_events: list[tuple[float, str, str]] = []
        self.f1 = StateF1Threshold()
        self.threshold_by_state = np.array(PERSISTENCE_CUTS)  # (available, unavailable); see StateF1Threshold
        self.labels_learned = 0
        self.last_now_s: float | None = None
        self._since_threshold = 0
        self._served = _Served()
        self._grow(1)  # arrays are never empty, so an unknown pool reads the shared prior

    # ---- the batch path (arrays over pools) -------------------------------------------------------

    def rows_of(self, pool_keys: Sequence[str], add: bool = True) -> IntArray:
        """Row numbers of pools (new pools get a row when ``add``; unknown ones are -1 otherwise)."""
        rows = self.pools.rows(pool_keys, add)
        if add:
            self._grow(len(self.pools))
        return rows

    def _grow(self, n_rows: int) -> None:
        self.features.ensure(n_rows)
        for model in self.count_models.values():
            model.ensure(n_rows)
        self.mixture.ensure(n_rows)

    def components_many(self, rows: IntArray, x: FloatArray) -> FloatArray:
        """Each component's probability and, last, the mixture's: shape (n, len(COMPONENTS) + 1)."""
        counts = np.empty((rows.size, len(COUNT_MODELS)))
        for j, name in enumerate(COUNT_MODELS):
            counts[:, j] = self.count_models[name].predict_many(rows, x)
        count_logits = logit(counts)
        comp = np.empty((rows.size, len(COMPONENTS)))
        comp[:, : len(COUNT_MODELS)] = counts
        comp[:, -1] = self.logistic.predict_many(stack_inputs(x, counts, count_logits), count_logits.mean(axis=1))
        out = np.empty((rows.size, len(COMPONENTS) + 1))
        out[:, :-1] = comp
        out[:, -1] = self.mixture.predict_many(rows, comp)
        return out

    def observe_rows(
        self,
        now_s: float,
        rows: IntArray,
        unavailable: FloatArray,
        extras: Mapping[str, FloatArray] | None = None,
    ) -> FloatArray:
        """One tick for the given rows (unique); returns the risk predicted now for those rows."""
        if self.last_now_s is not None and now_s < self.last_now_s:
            raise ValueError(f"time went backwards: now_s={now_s} after {self.last_now_s}")
        self.last_now_s = now_s
        self._served = _Served()  # the model changes below; nothing served before stands
        fs = self.features
        before = self.queue.mature(now_s, fs.cum_unavailable, fs.cum_observed, inclusive=False)
        if before is not None:
            self._learn(before, now_s)
        gap_s = fs.update(now_s, rows, unavailable, extras)
        after = self.queue.mature(now_s, fs.cum_unavailable, fs.cum_observed, inclusive=True)
        if after is not None:
            self._learn(after, now_s)
        x = fs.matrix(now_s, rows)
        comp = self.components_many(rows, x)
        self._served = _Served(now_s, rows.copy(), comp[:, -1].copy())
        self.queue.push(
            Pending(
                now_s,
                rows.copy(),
                x,
                comp,
                fs.cum_unavailable[rows].copy(),
                fs.cum_observed[rows].copy(),
                np.minimum(gap_s / self.horizon_s, 1.0),
            )
        )
        return comp[:, -1].copy()

    def predict_rows(self, now_s: float, rows: IntArray) -> FloatArray:
        """Risk for rows (-1 = a pool never seen: the shared prior's view of a fresh, available pool)."""
        served = self._served.lookup(now_s, rows)
        if served is not None:
            return served
        known = rows >= 0
        x = np.zeros((rows.size, len(FEATURES)))
        x[:, COLUMN["log_age"]] = np.log(AGE_OFFSET_H)
        if known.any():
            x[known] = self.features.matrix(now_s, rows[known])
        return self.components_many(rows, x)[:, -1]

    def _learn(self, batch: Matured, now_s: float) -> None:
        if batch.size == 0:
            return
        for model in self.count_models.values():
            model.learn_many(batch, now_s)
        counts = batch.components[:, : len(COUNT_MODELS)]
        count_logits = logit(counts)
        self.logistic.learn_many(stack_inputs(batch.x, counts, count_logits), batch.y, count_logits.mean(axis=1))
        comp = batch.components[:, : len(COMPONENTS)]
        self.mixture.learn_many(batch.rows, comp, batch.y, batch.weight, now_s)
        final = batch.components[:, -1]
        self.f1.learn_many(final, batch.y, batch.x[:, COLUMN["unavailable"]])
        self.labels_learned += batch.size
        self._since_threshold += batch.size
        if self._since_threshold >= THRESHOLD_REFRESH:
            self.threshold_by_state = np.array(self.f1.choose())
            self._since_threshold = 0
        for row in self.drift.update_many(batch.rows, pointwise_log_loss(final, batch.y), batch.weight):
            self._on_drift(now_s, row)

    def positive_rows(self, rows: IntArray, risk: FloatArray) -> npt.NDArray[np.bool_]:
        """The model's own alarm for rows given the risk served to them: risk >= the F1 cut of the row's state."""
        state = (self.features.state[rows] > 0.5).astype(np.intp)
        return np.asarray(risk >= self.threshold_by_state[state])

    def _on_drift(self, now_s: float, row: int) -> None:
        for model in self.count_models.values():
            model.forget_pool(row, self.drift_keep)
        self.mixture.forget_pool(row)
        self.drift_events.append(
            (now_s, self.pools.keys[row], "page-hinkley: log-loss rose; pool statistics shrunk to the prior")
        )

    # ---- the mapping API (one tick of many pools) --------------------------------------------------

    def observe(
        self,
        now_s: float,
        available: Mapping[str, bool],
        extras: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        """One tick of probes: ``available[pool_key]``; ``extras[pool_key]`` may carry live features
        (``price_ratio``, ``advisor_band``, ``placement_score``); unknown names are ignored."""
        keys = list(available)
        unavailable = np.array([0.0 if available[k] else 1.0 for k in keys])
        extra_arrays: dict[str, FloatArray] | None = None
        if extras:
            columns: dict[str, list[float]] = {name: [math.nan] * len(keys) for name in EXTRAS}
            for i, key in enumerate(keys):
                for name, value in extras.get(key, {}).items():
                    column = columns.get(name)
                    if column is not None:
                        column[i] = float(value)
            extra_arrays = {name: np.array(column) for name, column in columns.items()}
        self.observe_keys(now_s, keys, unavailable, extra_arrays)

    def observe_keys(
        self,
        now_s: float,
        pool_keys: Sequence[str],
        unavailable: FloatArray,
        extras: Mapping[str, FloatArray] | None = None,
    ) -> None:
        """One tick of probes as arrays over ``pool_keys`` (1.0 = unavailable); ``extras[name]`` holds a
        live feature per pool (NaN when unknown), as in :meth:`observe`."""
        if not pool_keys:
            return
        if len(set(pool_keys)) != len(pool_keys):
            raise ValueError("a pool appears twice in one tick")
        rows = self.rows_of(pool_keys)
        self.observe_rows(float(now_s), rows, np.asarray(unavailable, dtype=np.float64), extras)

    def predict(self, now_s: float, pool_keys: Sequence[str]) -> FloatArray:
        """P(unavailable at some probe in (now, now + H]) per pool; unknown pools get the shared prior."""
        if not pool_keys:
            return np.zeros(0)
        return self.predict_rows(float(now_s), self.rows_of(pool_keys, add=False))

    # ---- checkpoints ------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_served", None)  # a cache, not state: checkpoints stay as they were without it
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._served = _Served()

    def snapshot(self) -> bytes:
        """A versioned pickle of the whole model (features, pending labels, learners)."""
        return snapshot.dump(self)

    @classmethod
    def restore(cls, blob: bytes) -> RiskModel:
        return snapshot.load(blob, cls)
