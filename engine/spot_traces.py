"""Reader of recorded spot availability in the public spot-traces format: a bundle of traces, a single
trace, or a windows bundle (see ``engine/traces.py`` for the formats and the joins with prices).

The *convention* says what a value means: ``available`` (number of instances available; 0 means the
pool cannot hold spot capacity) or ``preempted`` (1 = spot unavailable / preempted, 0 = available).
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.market import MarketTrace
from engine.trace_files import TraceError, iso_or_seconds, nonnegative_values, positive, read_json, shown
from engine.types import Pool


class Convention(enum.StrEnum):
    AVAILABLE = "available"
    PREEMPTED = "preempted"


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


def _gap_seconds(path: Path, where: str, trace: Mapping[str, Any]) -> float:
    metadata = trace.get("metadata")
    if not isinstance(metadata, dict) or "gap_seconds" not in metadata:
        raise TraceError(f"{path}: {where}: field 'metadata.gap_seconds' is missing")
    gap = positive(metadata["gap_seconds"])
    if gap is None:
        raise TraceError(
            f"{path}: {where}: field 'metadata.gap_seconds' = {shown(metadata['gap_seconds'])} "
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
                f"{path}: {where}: field 'metadata.start_time' = {shown(metadata['start_time'])} "
                "is not an ISO-8601 time"
            ) from None
        raise TraceError(f"{path}: {where}: the date in {shown(source)} is not a month-day-year date") from None


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
    def in_unit(value: float) -> str:
        return iso_or_seconds(value) if unit == "time" else f"{value:g} {unit}"

    listed = "; ".join(
        f"{group or '(top level)'}: {', '.join(in_unit(v) for v in sorted(values))}"
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
        values = nonnegative_values(path, where, trace.get("data"))
        columns.append(available_from_values(values, resolved))
        if "prices" in trace:
            series = nonnegative_values(path, where, trace["prices"], field="prices")
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
        available.append(available_from_values(nonnegative_values(path, where, window.get("data")), resolved))
    return Windows(tick_s=gaps.pop(), start_s=tuple(starts), available=tuple(available))


def load_windows(path: Path | str, convention: Convention | str | None = None) -> list[npt.NDArray[np.bool_]]:
    """Read a windows bundle: one availability array per window (True = spot available)."""
    return list(read_windows(path, convention).available)
