"""Readers for recorded spot-market history in the public spot-traces format.

Formats (all may be gzipped; the ``.gz`` suffix decides):

* a single trace: ``{"metadata": {"gap_seconds": N, ...}, "data": [...]}``
* a bundle: ``{"source": ..., "convention": ..., "traces": {NAME: trace, ...}}``, NAME like
  ``us-west-2a_v100_1.json`` (zone, accelerator, count)
* a windows bundle: ``{"convention": ..., "windows": [{"index", "metadata", "data"}, ...]}``
* joint prices: ``{"instance_type", "on_demand_usd_per_hour", "prices": {NAME: [usd_per_hour, ...]}}``

The *convention* says what a value means: ``available`` (number of instances available; 0 means the
pool cannot hold spot capacity) or ``preempted`` (1 = spot unavailable / preempted, 0 = available).
"""

from __future__ import annotations

import datetime as dt
import enum
import gzip
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.market import MarketTrace
from engine.types import Pool


class Convention(enum.StrEnum):
    AVAILABLE = "available"
    PREEMPTED = "preempted"


class TraceError(ValueError):
    """A trace file that cannot be read; the message names the file, the position and the field."""


# The spot-traces names accelerators, not instance types; these are the AWS types that carry them.
TRACE_INSTANCE_TYPES: Mapping[str, str] = {
    "v100_1": "p3.2xlarge",
    "v100_4": "p3.8xlarge",
    "v100_8": "p3.16xlarge",
    "k80_1": "p2.xlarge",
    "k80_8": "p2.8xlarge",
    "intel_64": "r5.16xlarge",
    "c3-88": "c3-highcpu-88",
}

_TRACE_NAME = re.compile(r"^(?:.*/)?(?P<zone>[a-z]+(?:-[a-z]+)+-\d+[a-z]?)_(?P<kind>[^/]+?)(?:\.json)?$")
_SOURCE_DATE = re.compile(r"(\d{2})-(\d{2})-(\d{4})")


def read_json(path: Path) -> Any:
    """Read JSON, gunzipping when the name ends in ``.gz``; errors name the file."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                return json.load(fh)
        with path.open(encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise TraceError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError, gzip.BadGzipFile, EOFError) as exc:
        raise TraceError(f"{path}: not valid JSON: {exc}") from None


def pool_of_trace_name(name: str) -> Pool:
    """Map a spot-traces name to the pool it probed.

    >>> pool_of_trace_name("us-west-2a_v100_1.json")
    Pool(instance_type='p3.2xlarge', availability_zone='us-west-2a')
    >>> pool_of_trace_name("aws-04-19-2023/us-east-1b_intel_64.json").instance_type
    'r5.16xlarge'
    """
    match = _TRACE_NAME.match(name)
    if match is None:
        raise TraceError(f"trace name {name!r} is not '<zone>_<kind>.json'")
    kind = match["kind"]
    return Pool(TRACE_INSTANCE_TYPES.get(kind, kind), match["zone"])


def start_time_of(source: str, metadata: Mapping[str, Any] | None = None) -> float:
    """Epoch seconds a trace starts at: ``metadata.start_time`` when given, else a date in the source
    name (``aws-02-15-2023``), else 0."""
    if metadata and isinstance(metadata.get("start_time"), str):
        return dt.datetime.fromisoformat(metadata["start_time"].replace("Z", "+00:00")).timestamp()
    match = _SOURCE_DATE.search(source)
    if match is None:
        return 0.0
    month, day, year = (int(g) for g in match.groups())
    return dt.datetime(year, month, day, tzinfo=dt.UTC).timestamp()


def _values(path: Path, where: str, data: Any) -> npt.NDArray[np.float64]:
    if not isinstance(data, list) or not data:
        raise TraceError(f"{path}: {where}: field 'data' must be a non-empty list")
    for i, value in enumerate(data):
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
            raise TraceError(f"{path}: {where}: data[{i}] = {value!r} is not a number")
        if value < 0:
            raise TraceError(f"{path}: {where}: data[{i}] = {value!r} is negative")
    return np.asarray(data, dtype=np.float64)


def _gap_seconds(path: Path, where: str, trace: Mapping[str, Any]) -> float:
    metadata = trace.get("metadata")
    if not isinstance(metadata, dict) or "gap_seconds" not in metadata:
        raise TraceError(f"{path}: {where}: field 'metadata.gap_seconds' is missing")
    gap = metadata["gap_seconds"]
    if isinstance(gap, bool) or not isinstance(gap, int | float) or gap <= 0:
        raise TraceError(f"{path}: {where}: field 'metadata.gap_seconds' = {gap!r} is not a positive number")
    return float(gap)


def available_from_values(values: npt.NDArray[np.float64], convention: Convention) -> npt.NDArray[np.bool_]:
    """Turn raw trace values into "spot capacity available" booleans.

    >>> available_from_values(np.array([0.0, 1.0, 2.0]), Convention.AVAILABLE).tolist()
    [False, True, True]
    >>> available_from_values(np.array([0.0, 1.0]), Convention.PREEMPTED).tolist()
    [True, False]
    """
    if convention is Convention.AVAILABLE:
        return values > 0
    return values == 0


def convention_of(path: Path, doc: Mapping[str, Any], override: Convention | str | None) -> Convention:
    if override is not None:
        return Convention(override)
    text = str(doc.get("convention", "")).strip().lower()
    for convention in Convention:
        if text.startswith(convention.value):
            return convention
    raise TraceError(f"{path}: the file does not say its convention; pass --convention available|preempted")


def load_availability(path: Path | str, convention: Convention | str | None = None) -> MarketTrace:
    """Read a spot-traces bundle (or a single trace) into a :class:`MarketTrace`.

    All traces of a bundle must share one tick length; they are cut to the shortest.
    """
    path = Path(path)
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise TraceError(f"{path}: expected a JSON object at the top level")
    if "traces" in doc:
        traces = doc["traces"]
        if not isinstance(traces, dict) or not traces:
            raise TraceError(f"{path}: field 'traces' must be a non-empty object")
        source = str(doc.get("source", path.name))
    elif "data" in doc:
        traces = {path.name.removesuffix(".gz"): doc}
        source = path.name
    else:
        raise TraceError(f"{path}: expected field 'traces' (a bundle) or 'data' (a single trace)")
    resolved = convention_of(path, doc, convention)

    pools: list[Pool] = []
    columns: list[npt.NDArray[np.bool_]] = []
    gaps: set[float] = set()
    first_meta: Mapping[str, Any] | None = None
    for name, trace in traces.items():
        where = f"trace {name!r}"
        if not isinstance(trace, dict):
            raise TraceError(f"{path}: {where}: expected an object with 'metadata' and 'data'")
        gaps.add(_gap_seconds(path, where, trace))
        first_meta = first_meta or trace.get("metadata")
        try:
            pools.append(pool_of_trace_name(name))
        except TraceError:
            pools.append(Pool(name.removesuffix(".json"), "unknown-zone-1a"))
        columns.append(available_from_values(_values(path, where, trace.get("data")), resolved))
    if len(gaps) != 1:
        raise TraceError(f"{path}: traces have different gap_seconds {sorted(gaps)}; cannot align them")
    n_ticks = min(len(c) for c in columns)
    return MarketTrace(
        pools=tuple(pools),
        start_s=start_time_of(source, first_meta),
        tick_s=gaps.pop(),
        available=np.stack([c[:n_ticks] for c in columns], axis=1),
        source=source,
    )


def load_joint_prices(path: Path | str, trace: MarketTrace) -> MarketTrace:
    """Attach a joint-prices file (one price per availability tick and pool) to an availability trace."""
    path = Path(path)
    doc = read_json(path)
    prices = doc.get("prices") if isinstance(doc, dict) else None
    if not isinstance(prices, dict):
        raise TraceError(f"{path}: field 'prices' must be an object of per-pool price lists")
    by_pool: dict[Pool, npt.NDArray[np.float64]] = {}
    for name, series in prices.items():
        by_pool[pool_of_trace_name(name)] = _values(path, f"prices {name!r}", series)
    missing = [p.key for p in trace.pools if p not in by_pool]
    if missing:
        raise TraceError(f"{path}: no prices for pools {missing}")
    n_ticks = min(trace.n_ticks, *(len(by_pool[p]) for p in trace.pools))
    spot = np.stack([by_pool[p][:n_ticks] for p in trace.pools], axis=1)
    on_demand = doc.get("on_demand_usd_per_hour")
    od = None if on_demand is None else np.full(len(trace.pools), float(on_demand))
    return MarketTrace(
        pools=trace.pools,
        start_s=trace.start_s,
        tick_s=trace.tick_s,
        available=trace.available[:n_ticks],
        spot_price=spot,
        on_demand_usd_per_hour=od,
        source=trace.source,
    )


def load_windows(path: Path | str, convention: Convention | str | None = None) -> list[npt.NDArray[np.bool_]]:
    """Read a windows bundle: one availability array per window (True = spot available)."""
    path = Path(path)
    doc = read_json(path)
    windows = doc.get("windows") if isinstance(doc, dict) else None
    if not isinstance(windows, list) or not windows:
        raise TraceError(f"{path}: field 'windows' must be a non-empty list")
    resolved = convention_of(path, doc, convention)
    out = []
    for i, window in enumerate(windows):
        where = f"window {i}"
        if not isinstance(window, dict):
            raise TraceError(f"{path}: {where}: expected an object with 'metadata' and 'data'")
        _gap_seconds(path, where, window)
        out.append(available_from_values(_values(path, where, window.get("data")), resolved))
    return out
