"""``risk_aware``: ours. Ranks every placement by risk-adjusted expected cost per hour.

Expected cost of a spot pool = predicted price + P(interruption per hour) x (restart time at the on-demand
rate + the user's interruption penalty). It moves proactively when that saving beats the threshold and
pays back the migration, falls back to on-demand when no spot pool's risk-adjusted cost beats on-demand,
and returns once one does again for ``return_after_s`` (all via the shared rules).
"""

from __future__ import annotations

from typing import ClassVar

from engine.policy.base import Choice, FleetView, FloatArray, MarketView, expected_cost_matrix
from engine.policy.rules import apply_rules
from engine.policy.strategy import RankingStrategy


class RiskAware(RankingStrategy):
    name: ClassVar[str] = "risk_aware"
    proactive: ClassVar[bool] = True

    def rank(self, market: MarketView, fleet: FleetView) -> FloatArray:
        return expected_cost_matrix(market, fleet, self.params)

    def decide(self, market: MarketView, fleet: FleetView, now_s: float) -> Choice:
        # The ranking is the expected cost the shared rules weigh too: computed once, handed over as both.
        cost = self.rank(market, fleet)
        return apply_rules(market, fleet, self.params, cost, proactive=self.proactive, now_s=now_s, cost=cost)
