"""``on_demand``: the baseline every saving is measured against. Spot is never a candidate."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from engine.policy.base import FleetView, FloatArray, MarketView
from engine.policy.strategy import RankingStrategy, with_on_demand


class OnDemand(RankingStrategy):
    name: ClassVar[str] = "on_demand"
    proactive: ClassVar[bool] = True

    def rank(self, market: MarketView, fleet: FleetView) -> FloatArray:
        spot = np.full((fleet.n_instances, market.n_pools), np.inf)
        return with_on_demand(spot, fleet.on_demand_price)
