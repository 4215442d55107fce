"""``lowest_price``: the cheapest compatible spot pool, moved to when the saving beats the threshold.

The foundation policy: price only, proactive, with the shared hysteresis (threshold, dwell, budget).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from engine.policy.base import FleetView, FloatArray, MarketView
from engine.policy.strategy import RankingStrategy, spot_mask, with_on_demand


class LowestPrice(RankingStrategy):
    name: ClassVar[str] = "lowest_price"
    proactive: ClassVar[bool] = True

    def rank(self, market: MarketView, fleet: FleetView) -> FloatArray:
        price = market.spot_price[fleet.market_row]
        spot = np.where(spot_mask(market, fleet), price, np.inf)
        return with_on_demand(spot, fleet.on_demand_price)
