"""Market traces from files: readers for recorded spot-market history and the joins that turn them into
one :class:`MarketTrace`. Callers import every reader from here; each format's reader is its own module.

Formats (gzipped when the file starts with the gzip magic bytes, whatever its name):

* a single trace: ``{"metadata": {"gap_seconds": N, ...}, "data": [...], "prices"?: [...]}``
* a bundle: ``{"source": ..., "convention": ..., "traces": {NAME: trace, ...}}``, NAME like
  ``us-west-2a_v100_1.json`` (zone, accelerator, count), possibly under a group directory such as
  ``aws-04-22-2023/``; a trace may carry a per-tick ``prices`` list (USD/hour) beside ``data``
* a windows bundle: ``{"convention": ..., "windows": [{"index", "metadata", "data"}, ...]}``
* joint prices: ``{"instance_type", "on_demand_usd_per_hour", "prices": {NAME: [usd_per_hour, ...]}}``
* AWS spot price history (JSON or CSV)

The first three are read by :mod:`engine.spot_traces`, the last by :mod:`engine.price_history`.

Every error is a :class:`TraceError` whose message names the file, the trace or record, and the field:
a trace that is silently cut or misread makes every backtest on it wrong without anyone noticing.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from engine import price_history
from engine.market import MarketTrace
from engine.spot_traces import (
    Convention,
    Windows,
    load_availability,
    load_windows,
    pool_of_trace_name,
    read_windows,
)
from engine.trace_files import TraceError, iso_or_seconds, nonnegative_values, positive, read_json, shown
from engine.types import Pool

if TYPE_CHECKING:
    from engine.catalog import Catalog

__all__ = [
    "BUNDLED_AVAILABILITY",
    "BUNDLED_PRICES",
    "Convention",
    "TraceError",
    "Windows",
    "bundled_market",
    "load_availability",
    "load_joint_prices",
    "load_market",
    "load_windows",
    "on_demand_from_catalog",
    "pool_of_trace_name",
    "read_json",
    "read_windows",
    "with_catalog_on_demand",
]

BUNDLED_AVAILABILITY = "availability_aws_2023-02-15.json.gz"
BUNDLED_PRICES = "prices_p3.2xlarge_2023-02-15.json.gz"


def _on_demand_of(path: Path, doc: Mapping[str, Any]) -> float | None:
    value = doc.get("on_demand_usd_per_hour")
    if value is None:
        return None
    price = positive(value)
    if price is None:
        raise TraceError(f"{path}: field 'on_demand_usd_per_hour' = {shown(value)} is not a positive number")
    return price


def _attach_joint_prices(path: Path, doc: Any, trace: MarketTrace) -> MarketTrace:
    prices = doc.get("prices") if isinstance(doc, dict) else None
    if not isinstance(prices, dict) or not prices:
        raise TraceError(f"{path}: field 'prices' must be an object of per-pool price lists")
    by_pool: dict[Pool, npt.NDArray[np.float64]] = {}
    for name, series in prices.items():
        try:
            pool = pool_of_trace_name(name)
        except TraceError as exc:
            raise TraceError(f"{path}: prices {name!r}: {exc}") from None
        by_pool[pool] = nonnegative_values(path, f"prices {name!r}", series, field="prices")
    missing = [p.key for p in trace.pools if p not in by_pool]
    if missing:
        raise TraceError(
            f"{path}: no prices for pools {missing} (the file has {sorted(p.key for p in by_pool)})"
        )
    n_ticks = min(trace.n_ticks, *(len(by_pool[p]) for p in trace.pools))
    on_demand = _on_demand_of(path, doc)
    return MarketTrace(
        pools=trace.pools,
        start_s=trace.start_s,
        tick_s=trace.tick_s,
        available=trace.available[:n_ticks],
        spot_price=np.stack([by_pool[p][:n_ticks] for p in trace.pools], axis=1),
        on_demand_usd_per_hour=(
            trace.on_demand_usd_per_hour if on_demand is None else np.full(len(trace.pools), on_demand)
        ),
        source=trace.source,
    )


def load_joint_prices(path: Path | str, trace: MarketTrace) -> MarketTrace:
    """Attach a joint-prices file (one price per availability tick and pool) to an availability trace."""
    path = Path(path)
    return _attach_joint_prices(path, read_json(path), trace)


def on_demand_from_catalog(
    pools: Sequence[Pool], catalog: Catalog | None = None
) -> npt.NDArray[np.float64] | None:
    """Each pool's on-demand price in its region from the catalog; None unless every one is known,
    because a partly filled array would let a NaN leak into cost sums."""
    from engine.catalog import UnknownInstanceType, default_catalog

    catalog = catalog or default_catalog()
    out = np.empty(len(pools), dtype=np.float64)
    for i, pool in enumerate(pools):
        try:
            price = catalog.on_demand_usd_per_hour(pool.instance_type, pool.region)
        except (UnknownInstanceType, ValueError):
            return None
        if price is None:
            return None
        out[i] = price
    return out


def _attach_price_history(path: Path, doc: Any, trace: MarketTrace) -> MarketTrace:
    points = (
        price_history.read_price_history(path) if doc is None else price_history.points_of_json(path, doc)
    )
    try:
        product = price_history.choose_product(points)
    except ValueError as exc:
        raise TraceError(f"{path}: {exc}") from None
    chosen = [p for p in points if p.product_description == product]
    first_s, last_s = chosen[0].timestamp_s, chosen[-1].timestamp_s
    end_s = trace.timestamp_s(trace.n_ticks - 1)
    if last_s < trace.start_s or first_s > end_s:
        raise TraceError(
            f"{path}: prices cover {iso_or_seconds(first_s)} .. {iso_or_seconds(last_s)}, the availability trace "
            f"{iso_or_seconds(trace.start_s)} .. {iso_or_seconds(end_s)}: they do not overlap"
        )
    timestamps_s = trace.start_s + np.arange(trace.n_ticks, dtype=np.float64) * trace.tick_s
    try:
        spot = price_history.resample(chosen, trace.pools, timestamps_s)
    except KeyError:
        have = {p.pool for p in chosen}
        missing = [p.key for p in trace.pools if p not in have]
        raise TraceError(f"{path}: no {product} prices for pools {missing}") from None
    return dataclasses.replace(trace, spot_price=spot)


def load_market(
    availability_path: Path | str,
    prices_path: Path | str | None = None,
    convention: Convention | str | None = None,
    select: str | None = None,
    catalog: Catalog | None = None,
) -> MarketTrace:
    """Availability joined with prices: a joint-prices file (one price per tick and pool) or an AWS
    spot price history (JSON or CSV, resampled onto the availability ticks and matched by pool).

    On-demand prices come from the prices file when it states them, else from the catalog (the
    region of each pool), else stay unknown.
    """
    trace = load_availability(availability_path, convention, select)
    if prices_path is not None:
        prices_path = Path(prices_path)
        text = price_history.read_text(prices_path)
        doc = None
        if text.lstrip()[:1] in ("{", "["):
            try:
                doc = json.loads(text)
            except (ValueError, RecursionError) as exc:  # as in read_json
                raise TraceError(f"{prices_path}: not valid JSON: {exc}") from None
        if isinstance(doc, dict) and "prices" in doc:
            trace = _attach_joint_prices(prices_path, doc, trace)
        else:
            trace = _attach_price_history(prices_path, doc, trace)
    return with_catalog_on_demand(trace, catalog)


def with_catalog_on_demand(trace: MarketTrace, catalog: Catalog | None = None) -> MarketTrace:
    """The trace with on-demand prices from the catalog when its source did not state them (and the
    catalog knows every pool's); otherwise the trace as it is."""
    if trace.on_demand_usd_per_hour is not None:
        return trace
    on_demand = on_demand_from_catalog(trace.pools, catalog)
    if on_demand is None:
        return trace
    return dataclasses.replace(trace, on_demand_usd_per_hour=on_demand)


@functools.lru_cache(maxsize=1)
def _bundled_market() -> MarketTrace:
    data = resources.files("engine") / "data"
    with (
        resources.as_file(data / BUNDLED_AVAILABILITY) as availability,
        resources.as_file(data / BUNDLED_PRICES) as prices,
    ):
        trace = load_market(availability, prices)
    for array in (trace.available, trace.spot_price, trace.on_demand_usd_per_hour):
        if array is not None:
            array.flags.writeable = False
    return trace


def bundled_market() -> MarketTrace:
    """The bundled joint price + availability history of p3.2xlarge in 9 zones (2023-02-15, 195 s
    ticks): the replay feed's default. Parsed once per process; its arrays are read-only because the
    one copy is shared."""
    return _bundled_market()
