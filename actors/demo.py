"""The demo account: a small fleet that the replay account owns, matching the bundled history, so the
first run has something to decide about."""

from __future__ import annotations

from engine.market import MarketTrace
from engine.region import pools_of_region
from engine.types import Instance, Lifecycle


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
