"""The shape every strategy shares: rank placements, then let the shared rules decide."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from engine.policy.base import Choice, FleetView, FloatArray, MarketView, PolicyParams
from engine.policy.rules import apply_rules


def spot_mask(market: MarketView, fleet: FleetView) -> np.ndarray:
    """(N, P) pools an instance could be placed in right now: compatible, available, priced."""
    rows = fleet.market_row
    return fleet.compatible & market.available[rows] & np.isfinite(market.spot_price[rows])


def with_on_demand(spot_rank: FloatArray, on_demand_rank: FloatArray) -> FloatArray:
    """Append the on-demand column to a spot ranking."""
    return np.concatenate([spot_rank, on_demand_rank[:, None]], axis=1)


@dataclass(frozen=True, slots=True)
class RankingStrategy:
    """Base for strategies: subclasses define ``rank``; ``proactive`` says whether they move instances
    that were not interrupted."""

    params: PolicyParams = field(default_factory=PolicyParams)
    name: ClassVar[str] = ""
    proactive: ClassVar[bool] = False

    def rank(self, market: MarketView, fleet: FleetView) -> FloatArray:
        raise NotImplementedError

    def decide(self, market: MarketView, fleet: FleetView, now_s: float) -> Choice:
        return apply_rules(market, fleet, self.params, self.rank(market, fleet), proactive=self.proactive,
                           now_s=now_s)
