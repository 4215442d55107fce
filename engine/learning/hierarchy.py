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

import numpy as np
import numpy.typing as npt

from engine.learning.labels import Matured
from engine.learning.linear import logit, sigmoid

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
ContextFn = Callable[[FloatArray], IntArray]


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
        self.last_learn_s: float | None = None

    def ensure(self, n_rows: int) -> None:
        if n_rows > self.pos.shape[0]:
            grow = max(n_rows, 2 * self.pos.shape[0], 8) - self.pos.shape[0]
            self.pos = np.vstack([self.pos, np.zeros((grow, self.n_contexts))])
            self.total = np.vstack([self.total, np.zeros((grow, self.n_contexts))])

    def _by_state(self, counts: FloatArray) -> FloatArray:
        """Sum counts (..., contexts) into (..., 2) by the state of each context."""
        return np.stack([counts[..., self.state_of == s].sum(axis=-1) for s in (0, 1)], axis=-1)

    def predict_many(self, rows: IntArray, x: FloatArray) -> FloatArray:
        m = self.prior_strength
        ctx = self.context(x)
        state = self.state_of[ctx]
        overall = (self.pooled_pos.sum() + 1.0) / (self.pooled_total.sum() + 2.0)
        pooled_state = smoothed_share(
            self._by_state(self.pooled_pos), self._by_state(self.pooled_total), np.full(2, overall), m
        )
        pooled_ctx = smoothed_share(self.pooled_pos[ctx], self.pooled_total[ctx], pooled_state[state], m)
        known = rows >= 0
        r = np.where(known, rows, 0)
        pool_pos = np.where(known[:, None], self._by_state(self.pos[r]), 0.0)
        pool_total = np.where(known[:, None], self._by_state(self.total[r]), 0.0)
        idx = np.arange(rows.size)
        pool_state = smoothed_share(pool_pos[idx, state], pool_total[idx, state], pooled_state[state], m)
        prior = sigmoid(logit(pooled_ctx) + logit(pool_state) - logit(pooled_state[state]))
        pos = np.where(known, self.pos[r, ctx], 0.0)
        total = np.where(known, self.total[r, ctx], 0.0)
        return smoothed_share(pos, total, prior, m)

    def learn_many(self, batch: Matured, now_s: float) -> None:
        if self.last_learn_s is not None and now_s > self.last_learn_s:
            fade = float(np.exp(-(now_s - self.last_learn_s) / self.tau_s))
            for arr in (self.pos, self.total, self.pooled_pos, self.pooled_total):
                arr *= fade
        self.last_learn_s = now_s
        ctx = self.context(batch.x)
        w = batch.weight
        own = np.ones_like(w) if self.per_probe else w
        np.add.at(self.pos, (batch.rows, ctx), batch.y * own)
        np.add.at(self.total, (batch.rows, ctx), own)
        self.pooled_pos += np.bincount(ctx, weights=batch.y * w, minlength=self.n_contexts)
        self.pooled_total += np.bincount(ctx, weights=w, minlength=self.n_contexts)

    def forget_pool(self, row: int, keep: float) -> None:
        """Shrink one pool's own counts (after drift) so it leans on the shared prior again."""
        self.pos[row] *= keep
        self.total[row] *= keep
