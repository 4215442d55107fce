"""The demo account: a small fleet that the replay account owns, matching the bundled history, so the
first run has something to decide about, and the policy settings it runs with."""

from __future__ import annotations

from engine.market import MarketTrace
from engine.policy import PolicyParams
from engine.region import pools_of_region
from engine.types import Instance, Lifecycle

DEMO_POLICY = "risk_aware"
# The demo fleet is a service: four instances behind one endpoint. Losing all of them at once is an outage,
# worth far more than four separate interruptions, so the policy spreads the fleet whenever one pool
# holding all of it is risky enough for that to lower the expected cost.
DEMO_POLICY_OVERRIDES: dict[str, float] = {"fleet_outage_weight": 10.0}


def demo_policy_params() -> PolicyParams:
    """The demo account's policy parameters (the defaults with :data:`DEMO_POLICY_OVERRIDES`)."""
    return PolicyParams(**DEMO_POLICY_OVERRIDES)


def demo_fleet(trace: MarketTrace, instance_type: str, region: str, size: int, fleet: str = "demo",
               ) -> list[Instance]:
    """``size`` instances of ``instance_type`` spread round-robin over the region's pools in the trace."""
    pools = [p for p in pools_of_region(trace.pools, region) if p.instance_type == instance_type]
    if size and not pools:
        known = sorted({(p.instance_type, p.region) for p in trace.pools})
        raise ValueError(f"the replayed history has no {instance_type} pools in {region}; it has {known}")
    return [
        Instance(f"i-{fleet}-{k:04d}", pools[k % len(pools)], Lifecycle.SPOT, trace.start_s, fleet)
        for k in range(size)
    ]
