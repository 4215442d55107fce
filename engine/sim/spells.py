"""How long spot stays and stays away, learned online per run from the ticks it has seen.

Three availability states (:mod:`engine.sim.deadline_plan`): unavailable, available for the first
``young_ticks`` ticks of a spell (fresh), available for longer (established). Per run and state: the ticks
seen in it and the times it ended. The mean unavailable and established spell lengths are their ratios,
behind one prior spell of ``prior_mean_ticks``; the fresh hazard (P(a spell ends after one of its young
ticks)) is the share of
fresh ticks that ended, behind one prior tick at the hazard of that same prior mean, so before any data
the model is memoryless and the first spells move it. Causal, and nothing fitted to a trace.

A run starts inside a spell of unknown age: an available first tick counts as established.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from engine.sim.deadline_plan import ESTABLISHED, FRESH, UNAVAILABLE

PRIOR_SPELLS = 1.0  # pseudo-observations behind the prior; weak on purpose


class SpellRates:
    """Per run: ticks seen and spells ended in each availability state; the implied model.

    >>> rates = SpellRates(1, prior_mean_ticks=6.0)
    >>> for now in [1, 1, 1, 0, 0, 1, 0, 1, 1, 1]:
    ...     rates.learn_one(np.array([now], bool))
    >>> rates.state.tolist(), rates.ticks[:, 0].tolist(), rates.ends[:, 0].tolist()
    ([2], [3.0, 2.0, 4.0], [2.0, 1.0, 1.0])
    >>> down, up = rates.mean_ticks()[:, 0]
    >>> float(down), float(up)  # (6 + 3) / (1 + 2), (6 + 4) / (1 + 1)
    (3.0, 5.0)
    """

    def __init__(self, n_runs: int, prior_mean_ticks: float, young_ticks: int = 1) -> None:
        self._young = int(young_ticks)
        self._prior_ticks = float(prior_mean_ticks)
        self._prior_hazard = float(-np.expm1(-1.0 / prior_mean_ticks))
        self._runs = np.arange(n_runs)
        self.ticks = np.zeros((3, n_runs))  # (state, run): ticks after which the spell went on or ended
        self.ends = np.zeros((3, n_runs))
        self.state = np.full(n_runs, -1, np.intp)  # the availability state now; -1 before any tick
        self.age = np.zeros(n_runs, np.int64)  # ticks the spot spell now has lasted (0: unavailable)

    def learn_one(self, available: npt.NDArray[np.bool_]) -> None:
        """One tick of availability per run."""
        seen = self.state >= 0
        was_up = self.state != UNAVAILABLE
        ended = seen & (available != was_up)
        rows = np.maximum(self.state, 0)
        self.ticks[rows[seen], self._runs[seen]] += 1.0
        self.ends[rows[ended], self._runs[ended]] += 1.0
        # a run's first spell is of unknown age: established
        self.age = np.where(available, np.where(seen, self.age + 1, self._young + 1), 0)
        self.state = np.where(available, np.where(self.age <= self._young, FRESH, ESTABLISHED), UNAVAILABLE)

    def mean_ticks(self) -> npt.NDArray[np.float64]:
        """``(2, runs)``: mean (unavailable, established available) spell lengths, ticks."""
        rows = [UNAVAILABLE, ESTABLISHED]
        return np.asarray((self._prior_ticks + self.ticks[rows]) / (PRIOR_SPELLS + self.ends[rows]), np.float64)

    def fresh_hazard(self) -> npt.NDArray[np.float64]:
        """``(runs,)``: P(a spell that has just begun ends after any one of its young ticks)."""
        return np.asarray(
            (self.ends[FRESH] + PRIOR_SPELLS * self._prior_hazard) / (self.ticks[FRESH] + PRIOR_SPELLS), np.float64
        )
