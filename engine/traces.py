"""Readers for recorded spot-market history in the public spot-traces format, and the joins that turn
them into one :class:`MarketTrace`.

Formats (gzipped when the file starts with the gzip magic bytes, whatever its name):

* a single trace: ``{"metadata": {"gap_seconds": N, ...}, "data": [...], "prices"?: [...]}``
* a bundle: ``{"source": ..., "convention": ..., "traces": {NAME: trace, ...}}``, NAME like
  ``us-west-2a_v100_1.json`` (zone, accelerator, count), possibly under a group directory such as
  ``aws-04-22-2023/``; a trace may carry a per-tick ``prices`` list (USD/hour) beside ``data``
* a windows bundle: ``{"convention": ..., "windows": [{"index", "metadata", "data"}, ...]}``
* joint prices: ``{"instance_type", "on_demand_usd_per_hour", "prices": {NAME: [usd_per_hour, ...]}}``
* AWS spot price history (JSON or CSV), read by :mod:`engine.price_history`

The *convention* says what a value means: ``available`` (number of instances available; 0 means the
pool cannot hold spot capacity) or ``preempted`` (1 = spot unavailable / preempted, 0 = available).

Every error is a :class:`TraceError` whose message names the file, the trace or record, and the field:
a trace that is silently cut or misread makes every backtest on it wrong without anyone noticing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import gzip
import json
import math
import re
import sys
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from engine.market import MarketTrace
from engine.types import Pool

if TYPE_CHECKING:
    from engine.catalog import Catalog


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

# AWS zones (us-east-1a, ap-northeast-1a, us-gov-west-1a) and GCP zones (us-central1-a, us-east1-b).
_ZONE = re.compile(r"^[a-z]+(?:-[a-z]+\d*)*-(?:\d+[a-z]|[a-z])$")
_SOURCE_DATE = re.compile(r"(\d{2})-(\d{2})-(\d{4})")
_GZIP_MAGIC = b"\x1f\x8b"
_NUMBER_TYPES = frozenset({int, float})

BUNDLED_AVAILABILITY = "availability_aws_2023-02-15.json.gz"
BUNDLED_PRICES = "prices_p3.2xlarge_2023-02-15.json.gz"


def read_json(path: Path) -> Any:
    """Read JSON, gunzipping gzip data; errors name the file."""
    try:
        raw = path.read_bytes()
        if raw[:2] == _GZIP_MAGIC:
            raw = gzip.decompress(raw)
        return json.loads(raw)
    except FileNotFoundError:
        raise TraceError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise TraceError(f"{path}: is a directory, not a trace file") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise TraceError(f"{path}: not valid gzip data: {exc}") from None
    except OSError as exc:
        raise TraceError(f"{path}: cannot read: {exc}") from None
    # ValueError covers bad JSON, bad UTF-8 and integers past Python's digit limit; RecursionError, nesting.
    except (ValueError, RecursionError) as exc:
        raise TraceError(f"{path}: not valid JSON: {exc}") from None


def pool_of_trace_name(name: str) -> Pool:
    """Map a spot-traces name to the pool it probed.

    >>> pool_of_trace_name("us-west-2a_v100_1.json")
    Pool(instance_type='p3.2xlarge', availability_zone='us-west-2a')
    >>> pool_of_trace_name("aws-04-19-2023/us-east-1b_intel_64.json").instance_type
    'r5.16xlarge'
    >>> pool_of_trace_name("gcp-04-30-2023/us-central1-a_c3-88.json").availability_zone
    'us-central1-a'
    """
    base = name.rpartition("/")[2].removesuffix(".gz").removesuffix(".json")
    zone, sep, kind = base.partition("_")
    if not sep or not kind or _ZONE.match(zone) is None:
        raise TraceError(f"trace name {name!r} is not '<zone>_<kind>.json'")
    return Pool(TRACE_INSTANCE_TYPES.get(kind, kind), zone)


def group_of_trace_name(name: str) -> str:
    """The directory part of a bundle's trace name, with its slash; ``""`` at the top level.

    >>> group_of_trace_name("aws-04-22-2023/us-east-1c_v100_1.json")
    'aws-04-22-2023/'
    >>> group_of_trace_name("us-east-1c_v100_1.json")
    ''
    """
    head, sep, _ = name.rpartition("/")
    return head + sep


def start_time_of(source: str, metadata: Mapping[str, Any] | None = None) -> float:
    """Epoch seconds a trace starts at: ``metadata.start_time`` when given, else a date in the source
    name (``aws-02-15-2023``, month first as spot-traces writes it), else 0.

    >>> start_time_of("spot-traces availability/1-node/aws-02-15-2023")
    1676419200.0
    """
    if metadata and isinstance(metadata.get("start_time"), str):
        stamp = dt.datetime.fromisoformat(metadata["start_time"].replace("Z", "+00:00"))
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.UTC)
        return stamp.timestamp()
    match = _SOURCE_DATE.search(source)
    if match is None:
        return 0.0
    month, day, year = (int(g) for g in match.groups())
    return dt.datetime(year, month, day, tzinfo=dt.UTC).timestamp()


def _values(path: Path, where: str, data: Any, field: str = "data") -> npt.NDArray[np.float64]:
    """A non-empty list of non-negative finite numbers as float64; the error names the position."""
    if not isinstance(data, list) or not data:
        raise TraceError(f"{path}: {where}: field {field!r} must be a non-empty list")
    if not set(map(type, data)) <= _NUMBER_TYPES:  # bools, strings, nulls: find the first one
        for i, value in enumerate(data):
            if type(value) not in _NUMBER_TYPES:
                raise TraceError(f"{path}: {where}: {field}[{i}] = {_shown(value)} is not a number")
    try:
        values = np.asarray(data, dtype=np.float64)
    except OverflowError:  # an integer past float64's range
        i = next(i for i, value in enumerate(data) if abs(value) > sys.float_info.max)
        raise TraceError(f"{path}: {where}: {field}[{i}] = {_shown(data[i])} is not a finite number") from None
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise TraceError(f"{path}: {where}: {field}[{bad[0]}] = {data[bad[0]]!r} is not a finite number")
    negative = np.flatnonzero(values < 0)
    if negative.size:
        raise TraceError(f"{path}: {where}: {field}[{negative[0]}] = {data[negative[0]]!r} is negative")
    return values


def _shown(value: Any, width: int = 60) -> str:
    """A value's repr for an error message, cut to ``width`` characters."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _positive(value: Any) -> float | None:
    """A JSON value as a finite positive float, else None (bools, strings, NaN, inf, huge integers).

    >>> _positive(60), _positive(True), _positive(float("inf")), _positive(10**400)
    (60.0, None, None, None)
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if number > 0 and math.isfinite(number) else None


def _gap_seconds(path: Path, where: str, trace: Mapping[str, Any]) -> float:
    metadata = trace.get("metadata")
    if not isinstance(metadata, dict) or "gap_seconds" not in metadata:
        raise TraceError(f"{path}: {where}: field 'metadata.gap_seconds' is missing")
    gap = _positive(metadata["gap_seconds"])
    if gap is None:
        raise TraceError(
            f"{path}: {where}: field 'metadata.gap_seconds' = {_shown(metadata['gap_seconds'])} "
            "is not a positive number"
        )
    return gap


def available_from_values(values: npt.NDArray[np.float64], convention: Convention) -> npt.NDArray[np.bool_]:
    """Turn raw trace values into "spot capacity available" booleans.

    >>> available_from_values(np.array([0.0, 1.0, 2.0]), Convention.AVAILABLE).tolist()
    [False, True, True]
    >>> available_from_values(np.array([0.0, 1.0]), Convention.PREEMPTED).tolist()
    [True, False]
    """
    available: npt.NDArray[np.bool_] = values > 0 if convention is Convention.AVAILABLE else values == 0
    return available


def convention_of(path: Path, doc: Mapping[str, Any], override: Convention | str | None) -> Convention:
    """The override when given, else the convention the file states (``"preempted: ..."``)."""
    if override is not None:
        try:
            return Convention(str(override).strip().lower())
        except ValueError:
            raise TraceError(f"{path}: convention {override!r} is not 'available' or 'preempted'") from None
    text = str(doc.get("convention", "")).strip().lower()
    for convention in Convention:
        if text.startswith(convention.value):
            return convention
    raise TraceError(f"{path}: the file does not say its convention; pass --convention available|preempted")


def _start_s(path: Path, where: str, source: str, metadata: Mapping[str, Any]) -> float:
    """:func:`start_time_of`, its errors naming the file and the field."""
    try:
        return start_time_of(source, metadata)
    except (ValueError, OverflowError):
        if isinstance(metadata.get("start_time"), str):
            raise TraceError(
                f"{path}: {where}: field 'metadata.start_time' = {_shown(metadata['start_time'])} "
                "is not an ISO-8601 time"
            ) from None
        raise TraceError(f"{path}: {where}: the date in {_shown(source)} is not a month-day-year date") from None


def _pool_of(path: Path, name: str, trace: Mapping[str, Any]) -> Pool:
    metadata = trace.get("metadata") or {}
    instance_type, zone = metadata.get("instance_type"), metadata.get("availability_zone")
    if isinstance(instance_type, str) and isinstance(zone, str) and _ZONE.match(zone):
        return Pool(instance_type, zone)
    try:
        return pool_of_trace_name(name)
    except TraceError:
        raise TraceError(
            f"{path}: trace {name!r}: cannot tell its pool: name it '<zone>_<kind>.json' or give "
            "'metadata.instance_type' and 'metadata.availability_zone'"
        ) from None


def _select_traces(path: Path, traces: Mapping[str, Any], select: str | None) -> dict[str, Any]:
    if select is None:
        return dict(traces)
    chosen = {name: trace for name, trace in traces.items() if name.startswith(select)}
    if not chosen:
        groups = sorted({group_of_trace_name(name) or name for name in traces})
        raise TraceError(f"{path}: no trace name starts with {select!r}; the file holds {groups}")
    return chosen


def _mixed(path: Path, what: str, by_group: Mapping[str, set[float]], unit: str = "s") -> TraceError:
    def shown(value: float) -> str:
        return _iso(value) if unit == "time" else f"{value:g} {unit}"

    listed = "; ".join(
        f"{group or '(top level)'}: {', '.join(shown(v) for v in sorted(values))}"
        for group, values in sorted(by_group.items())
    )
    hint = next((group for group in sorted(by_group) if group), None)
    suggestion = f"; load one group with select={hint!r}" if hint else ""
    return TraceError(f"{path}: traces have different {what} ({listed}); cannot align them{suggestion}")


def load_availability(
    path: Path | str, convention: Convention | str | None = None, select: str | None = None
) -> MarketTrace:
    """Read a spot-traces bundle (or a single trace) into a :class:`MarketTrace`.

    ``select`` keeps only the traces whose name starts with it (``"aws-04-22-2023/"``), for bundles
    that mix groups recorded at different tick lengths or dates. The selected traces must share one
    tick length and start; they are cut to the shortest. When every one of them carries a per-tick
    ``prices`` list, it becomes ``spot_price``.
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
    traces = _select_traces(path, traces, select)

    pools: dict[Pool, str] = {}
    columns: list[npt.NDArray[np.bool_]] = []
    prices: list[npt.NDArray[np.float64] | None] = []
    gaps: dict[str, set[float]] = {}
    starts: dict[str, set[float]] = {}
    for name, trace in traces.items():
        where = f"trace {name!r}"
        if not isinstance(trace, dict):
            raise TraceError(f"{path}: {where}: expected an object with 'metadata' and 'data'")
        group = group_of_trace_name(name)
        gaps.setdefault(group, set()).add(_gap_seconds(path, where, trace))
        start_s = _start_s(path, where, name if _SOURCE_DATE.search(name) else source, trace["metadata"])
        starts.setdefault(group, set()).add(start_s)
        pool = _pool_of(path, name, trace)
        if pool in pools:
            raise TraceError(f"{path}: traces {pools[pool]!r} and {name!r} are both {pool.key}; pass select=")
        pools[pool] = name
        values = _values(path, where, trace.get("data"))
        columns.append(available_from_values(values, resolved))
        if "prices" in trace:
            series = _values(path, where, trace["prices"], field="prices")
            if len(series) != len(values):
                raise TraceError(
                    f"{path}: {where}: field 'prices' has {len(series)} values for {len(values)} ticks"
                )
            prices.append(series)
        else:
            prices.append(None)
    if len(set().union(*gaps.values())) != 1:
        raise _mixed(path, "gap_seconds", gaps)
    if len(set().union(*starts.values())) != 1:
        raise _mixed(path, "start times", starts, unit="time")
    n_ticks = min(len(c) for c in columns)
    spot_price = None
    if all(series is not None for series in prices):
        spot_price = np.stack([s[:n_ticks] for s in prices if s is not None], axis=1)
    return MarketTrace(
        pools=tuple(pools),
        start_s=next(iter(set().union(*starts.values()))),
        tick_s=next(iter(set().union(*gaps.values()))),
        available=np.stack([c[:n_ticks] for c in columns], axis=1),
        spot_price=spot_price,
        source=source + (f" {select}" if select else ""),
    )


def _on_demand_of(path: Path, doc: Mapping[str, Any]) -> float | None:
    value = doc.get("on_demand_usd_per_hour")
    if value is None:
        return None
    price = _positive(value)
    if price is None:
        raise TraceError(f"{path}: field 'on_demand_usd_per_hour' = {_shown(value)} is not a positive number")
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
        by_pool[pool] = _values(path, f"prices {name!r}", series, field="prices")
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


@dataclass(frozen=True, slots=True, eq=False)
class Windows:
    """Random-start availability windows of one pool, all on one tick length."""

    tick_s: float
    start_s: tuple[float, ...]  # per window; 0.0 when the file does not say
    available: tuple[npt.NDArray[np.bool_], ...]  # per window, True = spot available

    def __len__(self) -> int:
        return len(self.available)


def read_windows(path: Path | str, convention: Convention | str | None = None) -> Windows:
    """Read a windows bundle; all windows must share one tick length."""
    path = Path(path)
    doc = read_json(path)
    windows = doc.get("windows") if isinstance(doc, dict) else None
    if not isinstance(windows, list) or not windows:
        raise TraceError(f"{path}: field 'windows' must be a non-empty list")
    resolved = convention_of(path, doc, convention)
    gaps: set[float] = set()
    starts: list[float] = []
    available: list[npt.NDArray[np.bool_]] = []
    for i, window in enumerate(windows):
        where = f"window {i}"
        if not isinstance(window, dict):
            raise TraceError(f"{path}: {where}: expected an object with 'metadata' and 'data'")
        gaps.add(_gap_seconds(path, where, window))
        if len(gaps) > 1:
            raise TraceError(f"{path}: {where}: gap_seconds {sorted(gaps)} differ between windows")
        starts.append(_start_s(path, where, "", window["metadata"]))
        available.append(available_from_values(_values(path, where, window.get("data")), resolved))
    return Windows(tick_s=gaps.pop(), start_s=tuple(starts), available=tuple(available))


def load_windows(path: Path | str, convention: Convention | str | None = None) -> list[npt.NDArray[np.bool_]]:
    """Read a windows bundle: one availability array per window (True = spot available)."""
    return list(read_windows(path, convention).available)


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
    from engine import price_history  # it imports TraceError from here

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
            f"{path}: prices cover {_iso(first_s)} .. {_iso(last_s)}, the availability trace "
            f"{_iso(trace.start_s)} .. {_iso(end_s)}: they do not overlap"
        )
    timestamps_s = trace.start_s + np.arange(trace.n_ticks, dtype=np.float64) * trace.tick_s
    try:
        spot = price_history.resample(chosen, trace.pools, timestamps_s)
    except KeyError:
        have = {p.pool for p in chosen}
        missing = [p.key for p in trace.pools if p not in have]
        raise TraceError(f"{path}: no {product} prices for pools {missing}") from None
    return dataclasses.replace(trace, spot_price=spot)


def _iso(timestamp_s: float) -> str:
    try:
        return dt.datetime.fromtimestamp(timestamp_s, tz=dt.UTC).isoformat().replace("+00:00", "Z")
    except (ValueError, OverflowError, OSError):  # past the calendar's years 1..9999
        return f"{timestamp_s:g} s"


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
        from engine.price_history import read_text

        text = read_text(prices_path)
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
