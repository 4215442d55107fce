"""``price_capacity_optimized``: AWS's default. The cheapest pool among those with high capacity.

"High capacity" is relative, as at AWS: pools whose recent availability is at least the median of the
instance's candidate pools. Chooses at launch only, like AWS.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from engine.policy.base import FleetView, FloatArray, MarketView
from engine.policy.strategy import RankingStrategy, spot_mask, with_on_demand


def price_capacity_rank(market: MarketView, fleet: FleetView) -> FloatArray:
    """(N, P + 1) AWS's ordering: high-capacity pools by price, then the rest, then on-demand."""
    rows = fleet.market_row
    mask = spot_mask(market, fleet)
    capacity = np.where(mask, market.capacity_score[rows], np.nan)
    with np.errstate(all="ignore"):
        if bool(np.any(mask)):
            has_any = np.any(mask, axis=1)
            median = np.nanmedian(np.where(has_any[:, None], capacity, 0.0), axis=1)
        else:
            median = np.zeros(fleet.n_instances)
    high = mask & (np.nan_to_num(capacity, nan=-1.0) >= median[:, None] - 1e-12)
    price = market.spot_price[rows]
    # High-capacity pools by price first; the rest only if none of those exist.
    spot = np.where(high, price, np.where(mask, price + fleet.on_demand_price[:, None], np.inf))
    spot = np.minimum(spot, 0.99 * fleet.on_demand_price[:, None] + 1e-6 * price)
    spot = np.where(mask, spot, np.inf)
    return with_on_demand(spot, fleet.on_demand_price)


class PriceCapacityOptimized(RankingStrategy):
    name: ClassVar[str] = "price_capacity_optimized"
    proactive: ClassVar[bool] = False

    def rank(self, market: MarketView, fleet: FleetView) -> FloatArray:
        return price_capacity_rank(market, fleet)
