"""A market trace: per-pool spot availability and price on one common tick grid.

This is the one in-memory shape that the replay feed, the learning evaluation and the simulator all
consume, whatever file format the history came from (spot-traces bundles, AWS price history, joint
price + availability data). Arrays are tick-major: row ``t`` is the market at ``start_s + t * tick_s``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.types import Pool


@dataclass(frozen=True, slots=True, eq=False)
class MarketTrace:
    """Aligned history of ``P`` pools over ``T`` ticks.

    ``available[t, p]`` is True when pool ``p`` could hold spot capacity at tick ``t`` (a count of
    instances available > 0 in the spot-traces convention); ``spot_price[t, p]`` is USD/hour, or the
    whole array is ``None`` when the source had availability only.
    """

    pools: tuple[Pool, ...]
    start_s: float
    tick_s: float
    available: npt.NDArray[np.bool_]
    spot_price: npt.NDArray[np.float64] | None = None
    on_demand_usd_per_hour: npt.NDArray[np.float64] | None = None  # (P,), None when unknown
    source: str = ""

    def __post_init__(self) -> None:
        n_ticks, n_pools = self.available.shape
        if n_pools != len(self.pools):
            raise ValueError(f"available has {n_pools} columns for {len(self.pools)} pools")
        if self.spot_price is not None and self.spot_price.shape != (n_ticks, n_pools):
            raise ValueError(f"spot_price shape {self.spot_price.shape} != available {(n_ticks, n_pools)}")
        if self.on_demand_usd_per_hour is not None and self.on_demand_usd_per_hour.shape != (n_pools,):
            raise ValueError("on_demand_usd_per_hour must have one price per pool")
        if self.tick_s <= 0:
            raise ValueError(f"tick_s must be positive, got {self.tick_s}")

    @property
    def n_ticks(self) -> int:
        return int(self.available.shape[0])

    @property
    def n_pools(self) -> int:
        return int(self.available.shape[1])

    def timestamp_s(self, tick: int) -> float:
        """Epoch seconds of a tick."""
        return self.start_s + tick * self.tick_s

    def select(self, pool_indices: list[int]) -> MarketTrace:
        """A trace restricted to some pools, in the given order."""
        idx = np.asarray(pool_indices, dtype=np.intp)
        return MarketTrace(
            pools=tuple(self.pools[i] for i in pool_indices),
            start_s=self.start_s,
            tick_s=self.tick_s,
            available=self.available[:, idx],
            spot_price=None if self.spot_price is None else self.spot_price[:, idx],
            on_demand_usd_per_hour=(
                None if self.on_demand_usd_per_hour is None else self.on_demand_usd_per_hour[idx]
            ),
            source=self.source,
        )
