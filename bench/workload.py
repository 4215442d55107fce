"""The live-tick workload the latency benches share: one region's 100 spot pools compatible with m5.large."""

from __future__ import annotations

from engine.catalog import default_catalog
from engine.types import Pool

INSTANCE_TYPE = "m5.large"
POOLS = 100


def region_pools(region: str) -> list[tuple[Pool, float]]:
    """100 (pool, on-demand $/h) of types compatible with m5.large in the region's zones."""
    catalog = default_catalog()
    zones = sorted(catalog.zones(region))
    pools: list[tuple[Pool, float]] = []
    for instance_type in catalog.compatible_types(INSTANCE_TYPE, region):
        on_demand = catalog.on_demand_usd_per_hour(instance_type, region)
        if not on_demand:
            continue
        for zone in catalog.offered_zones(instance_type, region) or zones:
            pools.append((Pool(instance_type, zone), float(on_demand)))
            if len(pools) == POOLS:
                return pools
    raise SystemExit(f"only {len(pools)} pools compatible with {INSTANCE_TYPE} in {region}; need {POOLS}")
