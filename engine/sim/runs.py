"""Turn recorded history into simulation runs: one column of availability (and risk) per run.

A windows bundle gives one run per window, as recorded. A trace (one pool or a bundle of pools) gives
``n_runs`` runs that start at random ticks (drawn with the caller's generator), taking the pools in turn,
so every pool of a bundle is exercised. Ticks past the end of the history count as spot unavailable:
only a run that is already late can reach them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.market import MarketTrace
from engine.sim.clock import JobError, WorkClock


@dataclass(frozen=True, slots=True, eq=False)
class DeadlineRuns:
    """``R`` runs, tick-major: ``available[t, r]``; ``risk[t, r]`` the causal risk prediction or None."""

    tick_s: float
    available: npt.NDArray[np.bool_]
    labels: tuple[str, ...]
    risk: npt.NDArray[np.float32] | None = None

    @property
    def n_runs(self) -> int:
        return int(self.available.shape[1])

    def shard(self, start: int, stop: int) -> DeadlineRuns:
        """Runs ``start:stop`` (contiguous copies, cheap to ship to a worker)."""
        return DeadlineRuns(
            self.tick_s,
            np.ascontiguousarray(self.available[:, start:stop]),
            self.labels[start:stop],
            None if self.risk is None else np.ascontiguousarray(self.risk[:, start:stop]),
        )


def runs_from_windows(windows: Sequence[npt.NDArray[np.bool_]], tick_s: float, clock: WorkClock) -> DeadlineRuns:
    """One run per window, each starting at the window's first tick.

    >>> clock = WorkClock(600.0, 600.0, 1, 0, 2, 3)
    >>> runs = runs_from_windows([np.array([True, False]), np.array([False] * 9)], 600.0, clock)
    >>> runs.available.shape, runs.available[:, 0].tolist()
    ((6, 2), [True, False, False, False, False, False])
    """
    horizon = clock.horizon_ticks
    available = np.zeros((horizon, len(windows)), dtype=np.bool_)
    for i, window in enumerate(windows):
        n = min(horizon, len(window))
        available[:n, i] = window[:n]
    return DeadlineRuns(tick_s, available, tuple(f"window {i}" for i in range(len(windows))))


def runs_from_trace(
    trace: MarketTrace,
    clock: WorkClock,
    n_runs: int,
    rng: np.random.Generator,
    risk: npt.NDArray[np.float64] | None = None,
) -> DeadlineRuns:
    """``n_runs`` runs at random start ticks, pool ``r % P`` for run ``r``; ``risk`` is ``(T, P)``."""
    if n_runs <= 0:
        raise JobError(f"runs must be positive, got {n_runs}")
    latest = trace.n_ticks - clock.deadline_ticks
    if latest < 0:
        raise JobError(
            f"the trace has {trace.n_ticks} ticks of {trace.tick_s:g} s, shorter than the deadline "
            f"({clock.deadline_ticks} ticks): no run fits"
        )
    pools = np.arange(n_runs) % trace.n_pools
    starts = rng.integers(0, latest + 1, size=n_runs)
    ticks = starts[None, :] + np.arange(clock.horizon_ticks)[:, None]  # (H, R)
    inside = ticks < trace.n_ticks
    clipped = np.minimum(ticks, trace.n_ticks - 1)
    available = trace.available[clipped, pools[None, :]] & inside
    run_risk = None
    if risk is not None:
        run_risk = np.where(inside, risk[clipped, pools[None, :]], 1.0).astype(np.float32)
    labels = tuple(f"{trace.pools[p].key} from tick {s}" for p, s in zip(pools.tolist(), starts.tolist(), strict=True))
    return DeadlineRuns(trace.tick_s, available, labels, run_risk)
