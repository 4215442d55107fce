"""Decision strategies, one per file, behind one vectorized interface (:mod:`engine.policy.base`)."""

from __future__ import annotations

from engine.policy.base import Choice, FleetView, MarketView, Policy, PolicyParams
from engine.policy.capacity_optimized import CapacityOptimized
from engine.policy.lowest_price import LowestPrice
from engine.policy.on_demand import OnDemand
from engine.policy.price_capacity_optimized import PriceCapacityOptimized
from engine.policy.reactive import Reactive
from engine.policy.risk_aware import RiskAware
from engine.policy.strategy import RankingStrategy

_STRATEGIES: dict[str, type[RankingStrategy]] = {
    cls.name: cls
    for cls in (RiskAware, LowestPrice, CapacityOptimized, PriceCapacityOptimized, Reactive, OnDemand)
}
POLICY_NAMES: tuple[str, ...] = tuple(_STRATEGIES)


class UnknownPolicy(ValueError):
    """A policy name that is not one of :data:`POLICY_NAMES`."""


def make_policy(name: str, params: PolicyParams | None = None) -> Policy:
    """Build a strategy by name.

    >>> make_policy("lowest_price").name
    'lowest_price'
    """
    try:
        cls = _STRATEGIES[name]
    except KeyError:
        raise UnknownPolicy(f"unknown policy {name!r}; choose one of {', '.join(POLICY_NAMES)}") from None
    return cls(params or PolicyParams())


__all__ = ["POLICY_NAMES", "Choice", "FleetView", "MarketView", "Policy", "PolicyParams", "UnknownPolicy",
           "make_policy"]
