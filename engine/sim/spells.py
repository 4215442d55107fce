"""How long spot stays and stays away, learned online per run from the ticks it has seen.

Per run and state (available, unavailable): the ticks seen in that state and the spells of it that ended.
The mean spell length is their ratio, behind one prior spell of ``prior_mean_ticks`` so that the first
transitions override the prior rather than the other way round. Causal and nothing fitted to a trace.

Spells of real spot capacity are not memoryless (a spell that has just begun ends sooner than an old one),
but per-run counts by spell age proved too sparse to act on within one job; the mean is what one run can
learn reliably.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

PRIOR_SPELLS = 1.0  # pseudo-observations behind the prior mean; weak on purpose


class SpellRates:
    """Per run: ticks seen and spells ended in each state; the implied mean spell lengths.

    >>> rates = SpellRates(1, prior_mean_ticks=6.0)
    >>> for now in [1, 1, 1, 0, 0, 1, 1, 1, 1, 1]:
    ...     rates.learn_one(np.array([now], bool))
    >>> down, up = rates.mean_ticks()[:, 0]
    >>> (float(down), float(up))  # (6 + 2) / (1 + 1), (6 + 7) / (1 + 1)
    (4.0, 6.5)
    """

    def __init__(self, n_runs: int, prior_mean_ticks: float) -> None:
        self._prior_ticks = float(prior_mean_ticks)
        self._runs = np.arange(n_runs)
        self.ticks = np.zeros((2, n_runs))  # (state, run): ticks after which the spell went on or ended
        self.ends = np.zeros((2, n_runs))
        self._previous: npt.NDArray[np.intp] | None = None

    def learn_one(self, available: npt.NDArray[np.bool_]) -> None:
        """One tick of availability per run."""
        now = available.astype(np.intp)
        if self._previous is not None:
            self.ticks[self._previous, self._runs] += 1.0
            self.ends[self._previous, self._runs] += now != self._previous
        self._previous = now

    def mean_ticks(self) -> npt.NDArray[np.float64]:
        """``(2, runs)``: mean (unavailable, available) spell lengths, ticks."""
        return np.asarray((self._prior_ticks + self.ticks) / (PRIOR_SPELLS + self.ends), np.float64)
