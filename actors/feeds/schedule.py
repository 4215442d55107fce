"""Phase-spread feed schedules: every stream ticks once per period, but not all at the same instant.

Many account-regions polled on one period all at once would land a burst of work on the machine every
period: on a small host the last region's decision waits for every other region's tick, so the latency a
dashboard sees grows with the number of regions. Independent feeds are therefore given evenly spaced
phases within the period (as Prometheus spreads its scrape targets by a hash of the target), so each
region's tick finds the host idle and the burst becomes a steady trickle with the same throughput.

The phase of a stream depends only on its key and on the set of keys, so it is the same in every process
and across restarts.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable


def spread_offsets(keys: Iterable[str], period_s: float) -> dict[str, float]:
    """Per key, a start offset in ``[0, period_s)``: the keys evenly spaced over the period, in the
    order of a stable hash of the key (so neighbours by name are not neighbours in time).

    >>> spread_offsets(["a", "b", "c", "d"], 1.0) == {"c": 0.0, "b": 0.25, "d": 0.5, "a": 0.75}
    True
    >>> spread_offsets([], 1.0)
    {}
    """
    if not period_s > 0:
        raise ValueError(f"period_s must be positive, got {period_s!r}")
    unique = sorted(set(keys), key=lambda key: (zlib.crc32(key.encode()), key))
    return {key: period_s * rank / len(unique) for rank, key in enumerate(unique)}
