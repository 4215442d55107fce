"""``capacity_optimized``: AWS's strategy that launches into the pool with the most spare capacity.

We see capacity as the pool's recent availability share. Like AWS, it chooses at launch (interruption
or return) and never rebalances a running instance. Price only breaks ties.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from engine.policy.base import FleetView, FloatArray, MarketView
from engine.policy.strategy import RankingStrategy, spot_mask, with_on_demand


class CapacityOptimized(RankingStrategy):
    name: ClassVar[str] = "capacity_optimized"
    proactive: ClassVar[bool] = False

    def rank(self, market: MarketView, fleet: FleetView) -> FloatArray:
        rows = fleet.market_row
        price = market.spot_price[rows]
        od = fleet.on_demand_price[:, None]
        # Scaled so that capacity always dominates and any spot pool ranks below on-demand.
        score = (1.0 - np.clip(market.capacity_score[rows], 0.0, 1.0)) * 0.5 * od + 1e-6 * price
        spot = np.where(spot_mask(market, fleet), np.minimum(score, 0.99 * od), np.inf)
        return with_on_demand(spot, fleet.on_demand_price)
