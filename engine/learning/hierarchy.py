"""Hierarchical counts: P(label | context) per pool, backed off to what all pools taught (the shared prior).

A context is a small integer: the pool's state (available or not) crossed with bucketed hazard features.
Estimates back off along two paths, each a Beta-smoothed share with ``prior_strength`` pseudo-observations:

* pooled: all pools in this state  <-  all pools in this context;
* per pool: the pool in this state  <-  the pool in this context, whose prior is the pooled context
  estimate shifted (in log-odds) by how this pool's state-level rate differs from all pools'.

So a new pool starts from the other pools' experience, a sparse context borrows the pool's own level,
and a pool with a long history speaks for itself. Labels normally count as evidence in horizons (see
:mod:`labels`); with ``per_probe`` a pool's own counts take every probe as one label, as calibrated
persistence does (fast to leave the prior on a short, finely probed trace), while the shared prior
still counts horizons, so one pool's many probes cannot make it overconfident for the others. Counts fade with time (a
half-life in horizons), so the model follows a market that changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.learning.labels import Matured
from engine.learning.linear import logit, sigmoid

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
ContextFn = Callable[[FloatArray], IntArray]
N_STATES = 2  # a context's state: 0 available, 1 unavailable


def smoothed_share(positives: FloatArray, total: FloatArray, prior: FloatArray, strength: float) -> FloatArray:
    """Beta-smoothed share: ``(positives + strength * prior) / (total + strength)``.

    >>> smoothed_share(np.array([0.0, 9.0]), np.array([0.0, 10.0]), np.array([0.2, 0.2]), 2.0).round(3).tolist()
    [0.2, 0.783]
    """
    return (positives + strength * prior) / (total + strength)


class HierarchicalCounts:
    """Per-pool counts over contexts with Bayesian backoff to pooled counts; river-style verbs."""

    def __init__(
        self,
        context: ContextFn,
        n_contexts: int,
        state_of_context: Callable[[IntArray], IntArray],
        horizon_s: float,
        prior_strength: float = 4.0,
        half_life_h: float = 24.0 * 14,
        per_probe: bool = False,
    ) -> None:
        self.context = context
        self.per_probe = per_probe
        self.n_contexts = n_contexts
        self.state_of = state_of_context(np.arange(n_contexts))
        self.prior_strength = prior_strength
        self.tau_s = half_life_h * horizon_s / np.log(2.0)
        self.pos = np.zeros((0, n_contexts))
        self.total = np.zeros((0, n_contexts))
        self.pooled_pos = np.zeros(n_contexts)
        self.pooled_total = np.zeros(n_contexts)
        # The same counts summed over the contexts of each state, kept as they change: predicting needs a
        # pool's state-level rate, and summing its context row at every prediction cost more than the rest.
        self.pos_by_state = np.zeros((0, N_STATES))
        self.total_by_state = np.zeros((0, N_STATES))
        self.pooled_pos_by_state = np.zeros(N_STATES)
        self.pooled_total_by_state = np.zeros(N_STATES)
        self.last_learn_s: float | None = None

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "pos_by_state" not in state:  # a checkpoint from before the sums were kept: derive them once
            self.pos_by_state = self._by_state(self.pos)
            self.total_by_state = self._by_state(self.total)
            self.pooled_pos_by_state = self._by_state(self.pooled_pos)
            self.pooled_total_by_state = self._by_state(self.pooled_total)

    def ensure(self, n_rows: int) -> None:
        if n_rows > self.pos.shape[0]:
            grow = max(n_rows, 2 * self.pos.shape[0], 8) - self.pos.shape[0]
            self.pos = np.vstack([self.pos, np.zeros((grow, self.n_contexts))])
            self.total = np.vstack([self.total, np.zeros((grow, self.n_contexts))])
            self.pos_by_state = np.vstack([self.pos_by_state, np.zeros((grow, N_STATES))])
            self.total_by_state = np.vstack([self.total_by_state, np.zeros((grow, N_STATES))])

    def _by_state(self, counts: FloatArray) -> FloatArray:
        """Sum counts (..., contexts) into (..., 2) by the state of each context."""
        return np.stack([counts[..., self.state_of == s].sum(axis=-1) for s in range(N_STATES)], axis=-1)

    def predict_many(self, rows: IntArray, x: FloatArray) -> FloatArray:
        m = self.prior_strength
        ctx = self.context(x)
        state = self.state_of[ctx]
        overall = (self.pooled_pos_by_state.sum() + 1.0) / (self.pooled_total_by_state.sum() + 2.0)
        pooled_state = smoothed_share(
            self.pooled_pos_by_state, self.pooled_total_by_state, np.full(N_STATES, overall), m
        )[state]
        pooled_ctx = smoothed_share(self.pooled_pos[ctx], self.pooled_total[ctx], pooled_state, m)
        if rows.size and rows.min() >= 0:
            pool_pos, pool_total = self.pos_by_state[rows, state], self.total_by_state[rows, state]
            pos, total = self.pos[rows, ctx], self.total[rows, ctx]
        else:
            known = rows >= 0
            r = np.where(known, rows, 0)
            pool_pos = np.where(known, self.pos_by_state[r, state], 0.0)
            pool_total = np.where(known, self.total_by_state[r, state], 0.0)
            pos = np.where(known, self.pos[r, ctx], 0.0)
            total = np.where(known, self.total[r, ctx], 0.0)
        pool_state = smoothed_share(pool_pos, pool_total, pooled_state, m)
        prior = sigmoid(logit(pooled_ctx) + logit(pool_state) - logit(pooled_state))
        return smoothed_share(pos, total, prior, m)

    def learn_many(self, batch: Matured, now_s: float) -> None:
        if self.last_learn_s is not None and now_s > self.last_learn_s:
            fade = float(np.exp(-(now_s - self.last_learn_s) / self.tau_s))
            for arr in (self.pos, self.total, self.pooled_pos, self.pooled_total, self.pos_by_state,
                        self.total_by_state, self.pooled_pos_by_state, self.pooled_total_by_state):
                arr *= fade
        self.last_learn_s = now_s
        ctx = self.context(batch.x)
        state = self.state_of[ctx]
        w = batch.weight
        own = np.ones_like(w) if self.per_probe else w
        own_pos = batch.y * own
        np.add.at(self.pos, (batch.rows, ctx), own_pos)
        np.add.at(self.total, (batch.rows, ctx), own)
        np.add.at(self.pos_by_state, (batch.rows, state), own_pos)
        np.add.at(self.total_by_state, (batch.rows, state), own)
        pooled_pos = batch.y * w
        self.pooled_pos += np.bincount(ctx, weights=pooled_pos, minlength=self.n_contexts)
        self.pooled_total += np.bincount(ctx, weights=w, minlength=self.n_contexts)
        self.pooled_pos_by_state += np.bincount(state, weights=pooled_pos, minlength=N_STATES)
        self.pooled_total_by_state += np.bincount(state, weights=w, minlength=N_STATES)

    def forget_pool(self, row: int, keep: float) -> None:
        """Shrink one pool's own counts (after drift) so it leans on the shared prior again."""
        self.pos[row] *= keep
        self.total[row] *= keep
        self.pos_by_state[row] *= keep
        self.total_by_state[row] *= keep
