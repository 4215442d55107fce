"""The delayed-label queue: a prediction made at ``t`` is learned from only once ``t + H`` has passed.

The label of a prediction at ``t`` for a pool is "the pool was seen unavailable at some probe in
``(t, t + H]``". The queue keeps, per prediction, the pool's running counts of probes and of unavailable
probes at ``t``; when the horizon has passed the label is the difference of the counts, so maturing costs
no per-tick scan. Maturing runs in two phases around each new observation (``t + H < now`` before the
probe at ``now`` is counted, ``t + H <= now`` after), so a probe later than ``t + H`` never leaks in.
A prediction whose window held no probe of its pool (a feed gap) has no label and is dropped.

Labels of predictions a few seconds apart share almost all of their window, so they are not independent
evidence: each prediction carries a weight ``min(1, gap since the pool's previous probe / H)``, and the
learners count evidence in horizons rather than in probes. That keeps a pseudo-count or a loss sum
meaning the same thing whether a trace probes every 30 s or every 10 min.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

# Float times: a window end equal to a probe time up to this tolerance counts as reached.
TIME_EPS_S = 1e-6


@dataclass(frozen=True, slots=True)
class Pending:
    """Predictions made at one time for some pools, waiting for their labels."""

    t_s: float
    rows: IntArray
    x: FloatArray  # (n, features) as seen at t
    components: FloatArray  # (n, components) each component's probability at t
    cum_unavailable: npt.NDArray[np.int64]
    cum_observed: npt.NDArray[np.int64]
    weight: FloatArray  # evidence of each prediction in horizons (see the module docstring)


@dataclass(frozen=True, slots=True)
class Matured:
    """Predictions whose labels are known, concatenated over the pending entries that matured."""

    t_s: FloatArray
    rows: IntArray
    x: FloatArray
    components: FloatArray
    y: FloatArray
    weight: FloatArray

    @property
    def size(self) -> int:
        return int(self.rows.size)


class DelayedLabelQueue:
    """FIFO of :class:`Pending` entries, matured against the pools' running probe counts."""

    __slots__ = ("horizon_s", "pending")

    def __init__(self, horizon_s: float) -> None:
        self.horizon_s = float(horizon_s)
        self.pending: deque[Pending] = deque()

    def push(self, entry: Pending) -> None:
        if self.pending and entry.t_s < self.pending[-1].t_s:
            raise ValueError(f"time went backwards: {entry.t_s} after {self.pending[-1].t_s}")
        self.pending.append(entry)

    def mature(
        self,
        now_s: float,
        cum_unavailable: npt.NDArray[np.int64],
        cum_observed: npt.NDArray[np.int64],
        inclusive: bool,
    ) -> Matured | None:
        """Pop every entry whose window ended before ``now_s`` (or at it, when ``inclusive``)."""
        done: list[Pending] = []
        limit = now_s + TIME_EPS_S if inclusive else now_s - TIME_EPS_S
        while self.pending and self.pending[0].t_s + self.horizon_s <= limit:
            done.append(self.pending.popleft())
        if not done:
            return None
        rows = np.concatenate([e.rows for e in done])
        unavailable = cum_unavailable[rows] - np.concatenate([e.cum_unavailable for e in done])
        observed = cum_observed[rows] - np.concatenate([e.cum_observed for e in done])
        keep = observed > 0
        t_s = np.concatenate([np.full(e.rows.size, e.t_s) for e in done])
        return Matured(
            t_s=t_s[keep],
            rows=rows[keep],
            x=np.concatenate([e.x for e in done])[keep],
            components=np.concatenate([e.components for e in done])[keep],
            y=(unavailable[keep] > 0).astype(np.float64),
            weight=np.concatenate([e.weight for e in done])[keep],
        )
