"""``reactive``: what AutoSpotting does. Cheapest spot pool, but an instance moves only when interrupted
(or to return from on-demand); no proactive rebalancing."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from engine.policy.base import FleetView, FloatArray, MarketView
from engine.policy.strategy import RankingStrategy, spot_mask, with_on_demand


class Reactive(RankingStrategy):
    name: ClassVar[str] = "reactive"
    proactive: ClassVar[bool] = False

    def rank(self, market: MarketView, fleet: FleetView) -> FloatArray:
        price = market.spot_price[fleet.market_row]
        return with_on_demand(np.where(spot_mask(market, fleet), price, np.inf), fleet.on_demand_price)
