"""Every trace, price-file and wire reader under arbitrary and damaged input.

A reader either returns a valid result or refuses with its own error type (TraceError, WireError,
BatchRejected) whose message names the file (or the tick, or the batch entry) and the field; nothing else
escapes, and a refused engine batch changes nothing. Damaged input is arbitrary bytes, text and JSON, and
valid documents with a few mutations: a key dropped, a value swapped for a wrong type, NaN, inf, a negative
or huge number, an array emptied, cut, duplicated or reversed, a gzip stream cut or flipped.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import gzip
import io
import json
import math
import pickle
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.wire import WireError, pack_ticks, unpack, unpack_ticks
from engine.market import MarketTrace
from engine.policy import make_policy
from engine.price_history import FIELDS, points_of_json, price_points_to_market_trace, read_price_history
from engine.region import BatchRejected, RegionEngine
from engine.traces import TraceError, Windows, load_availability, load_joint_prices, load_market, read_windows
from engine.types import AvailabilityPoint, Pool, PricePoint

T = TypeVar("T")
FUZZ = settings(max_examples=250, deadline=None)

FEB_15_2023_S = 1676419200.0
ZONES = ("us-east-1a", "us-east-1c", "us-east-1d", "us-west-2a")
HUGE_INT, DEEP = "__huge_int__", "__deep__"  # stand-ins written as text json.dumps cannot produce
BAD_VALUES: list[Any] = [
    math.nan, math.inf, -math.inf, -1, -1e-300, 0, 0.0, 1e308, 10**400, -(10**400), 2**64, True, False, None,
    "", " ", "abc", "1e400", "NaN", "0.5", [], {}, [1, 2], {"a": 1}, "2023-02-30T00:00:00Z",
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00", "2023-02-15T00:00:00", "us-east-1", "us-east-1a",
    "aws-13-45-2023", "aws-02-16-2023", "preempted", "Available", "sometimes", HUGE_INT, DEEP,
]
KEYS = st.sampled_from([
    "metadata", "data", "prices", "traces", "windows", "gap_seconds", "convention", "source", "start_time",
    "instance_type", "availability_zone", "on_demand_usd_per_hour", "SpotPriceHistory", "us-east-1a_v100_1.json",
    *FIELDS, *FIELDS.values(),
]) | st.text(max_size=8)
BAD_SCALARS = st.sampled_from(BAD_VALUES).map(copy.deepcopy)  # a copy: mutations edit documents in place
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | BAD_SCALARS
JSON_VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4), max_leaves=12
)
BAD = BAD_SCALARS | JSON_VALUES


# --- documents --------------------------------------------------------------------------------------


def dump(doc: Any) -> bytes:
    text = json.dumps(doc, allow_nan=True)
    text = text.replace(json.dumps(HUGE_INT), "1" * 5000).replace(json.dumps(DEEP), "[" * 50_000 + "]" * 50_000)
    return text.encode()


def unreadable(value: Any) -> bool:
    """Whether ``value`` holds a stand-in whose text Python's JSON reader refuses, whatever its place."""
    text = json.dumps(value, allow_nan=True)
    return HUGE_INT in text or DEEP in text


def encode(data: st.DataObject, raw: bytes) -> bytes:
    """Plain, UTF-16, gzipped, or a gzip stream cut short or with one byte flipped."""
    how = data.draw(st.sampled_from(["plain", "plain", "gzip", "cut", "flip", "utf-16"]), label="encoding")
    if how == "plain":
        return raw
    if how == "utf-16":
        return raw.decode().encode("utf-16")
    packed = gzip.compress(raw, mtime=0)
    if how == "cut":
        return packed[: data.draw(st.integers(0, len(packed) - 1), label="cut at")]
    if how == "flip":
        i = data.draw(st.integers(2, len(packed) - 1), label="flip at")
        return packed[:i] + bytes([packed[i] ^ data.draw(st.integers(1, 255))]) + packed[i + 1 :]
    return packed


def paths_of(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield from paths_of(child, (*prefix, key))


def mutated(data: st.DataObject, doc: Any) -> Any:
    """``doc`` after one to three mutations at random places of its tree."""
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        path = data.draw(st.sampled_from(list(paths_of(doc))), label="at")
        op = data.draw(st.sampled_from(["replace", "drop", "empty", "duplicate", "reverse", "truncate"]), label="op")
        doc = mutate(data, doc, path, op)
    return doc


def mutate(data: st.DataObject, doc: Any, path: tuple[Any, ...], op: str) -> Any:
    node = doc
    for key in path:
        node = node[key]
    match op, node:
        case "replace", _:
            new = data.draw(BAD, label="value")
        case "drop", _:
            if not path:
                return {}
            parent = doc
            for key in path[:-1]:
                parent = parent[key]
            del parent[path[-1]]
            return doc
        case "empty", list() | dict() | str():
            new = type(node)()
        case "duplicate", list() if node:
            i = data.draw(st.integers(0, len(node) - 1))
            new = [*node[: i + 1], copy.deepcopy(node[i]), *node[i + 1 :]]
        case "duplicate", dict() if node:  # a second name for one entry: one pool twice, one key in two spellings
            key = data.draw(st.sampled_from(sorted(node)))
            new = {**node, f"{key}.gz": copy.deepcopy(node[key])}
        case "reverse", list():
            new = node[::-1]
        case "reverse", dict():
            new = dict(reversed(node.items()))
        case "truncate", list() | str():
            new = node[: data.draw(st.integers(0, max(0, len(node) - 1)))]
        case _:
            new = [node, node]
    if not path:
        return new
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = new
    return doc


def iso(timestamp_s: float, offset_h: int = 0) -> str:
    zone = dt.timezone(dt.timedelta(hours=offset_h))
    text = dt.datetime.fromtimestamp(timestamp_s, tz=zone).isoformat()
    return text.replace("+00:00", "Z")


@st.composite
def bundles(draw: st.DrawFn) -> dict[str, Any]:
    """A valid spot-traces bundle (or single trace) of 2023-02-15 at 300 s ticks."""
    n_ticks = draw(st.integers(1, 5))
    with_prices = draw(st.booleans())

    def trace() -> dict[str, Any]:
        length = draw(st.integers(n_ticks, n_ticks + 2))  # a bundle is cut to its shortest trace
        doc: dict[str, Any] = {
            "metadata": {"gap_seconds": 300},
            "data": draw(st.lists(st.integers(0, 3), min_size=length, max_size=length)),
        }
        if with_prices:
            doc["prices"] = draw(st.lists(st.floats(0, 10), min_size=length, max_size=length))
        return doc

    convention = draw(st.sampled_from(["available", "preempted: 1 = preempted"]))
    if draw(st.booleans()):  # a single trace; the file's name is its pool
        return {"convention": convention, **trace()}
    zones = draw(st.lists(st.sampled_from(ZONES), min_size=1, max_size=3, unique=True))
    return {
        "source": "spot-traces availability/aws-02-15-2023",
        "convention": convention,
        "traces": {f"aws-02-15-2023/{zone}_v100_1.json": trace() for zone in zones},
    }


@st.composite
def windows_docs(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 3))
    return {
        "convention": "preempted",
        "windows": [
            {
                "index": i,
                "metadata": {"gap_seconds": 600, "start_time": iso(FEB_15_2023_S + 3600 * i)},
                "data": draw(st.lists(st.integers(0, 1), min_size=1, max_size=5)),
            }
            for i in range(n)
        ],
    }


BASE = MarketTrace(
    pools=(Pool("p3.2xlarge", "us-east-1a"), Pool("p3.2xlarge", "us-east-1c")),
    start_s=FEB_15_2023_S,
    tick_s=300.0,
    available=np.ones((4, 2), dtype=np.bool_),
)


@st.composite
def joint_prices(draw: st.DrawFn) -> dict[str, Any]:
    prices = st.lists(st.floats(0, 10), min_size=4, max_size=6)
    return {
        "instance_type": "p3.2xlarge",
        "on_demand_usd_per_hour": 3.06,
        "prices": {"us-east-1a_v100_1": draw(prices), "us-east-1c_v100_1.json": draw(prices)},
    }


def records() -> st.SearchStrategy[list[dict[str, Any]]]:
    """Valid AWS price history records of both of BASE's pools, around its first hour."""
    record = st.fixed_dictionaries(
        {
            "AvailabilityZone": st.sampled_from(["us-east-1a", "us-east-1c"]),
            "InstanceType": st.just("p3.2xlarge"),
            "SpotPrice": st.floats(0, 10).map(lambda v: f"{v:.6f}") | st.floats(0, 10),
            "Timestamp": st.builds(iso, st.floats(FEB_15_2023_S - 600, FEB_15_2023_S + 3600), st.integers(-5, 5)),
        },
        optional={"ProductDescription": st.just("Linux/UNIX")},
    )
    return st.lists(record, min_size=1, max_size=6).map(
        lambda rs: [{**rs[0], "AvailabilityZone": "us-east-1a"}, {**rs[0], "AvailabilityZone": "us-east-1c"}, *rs]
    )


def csv_text(rows: list[dict[str, Any]], snake: bool) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = list(FIELDS)
    writer.writerow([FIELDS[c] if snake else c for c in columns])
    writer.writerows([[row.get(c, "") for c in columns] for row in rows])
    return out.getvalue()


# --- checks -----------------------------------------------------------------------------------------


def read_or_refuse(read: Callable[[], T], path: Path, error: type[Exception] = TraceError) -> T | None:
    """The result, or None when the reader refused with its own error naming the file; anything else fails."""
    try:
        return read()
    except error as exc:
        message = str(exc)
        assert message.startswith(f"{path}: ") and len(message) > len(f"{path}: "), message
        return None


def check_market(trace: MarketTrace) -> None:
    n_ticks, n_pools = trace.available.shape
    assert n_ticks >= 1 and n_pools >= 1 and trace.available.dtype == np.bool_
    assert len(set(trace.pools)) == n_pools
    assert math.isfinite(trace.start_s) and math.isfinite(trace.tick_s) and trace.tick_s > 0
    if trace.spot_price is not None:
        assert trace.spot_price.shape == (n_ticks, n_pools)
        assert np.isfinite(trace.spot_price).all() and (trace.spot_price >= 0).all()
    if trace.on_demand_usd_per_hour is not None:
        assert trace.on_demand_usd_per_hour.shape == (n_pools,)
        assert np.isfinite(trace.on_demand_usd_per_hour).all() and (trace.on_demand_usd_per_hour > 0).all()


def check_windows(windows: Windows) -> None:
    assert len(windows) >= 1 and len(windows.start_s) == len(windows)
    assert math.isfinite(windows.tick_s) and windows.tick_s > 0
    assert all(math.isfinite(s) for s in windows.start_s)
    assert all(w.ndim == 1 and w.size >= 1 and w.dtype == np.bool_ for w in windows.available)


def check_points(points: list[PricePoint]) -> None:
    assert points
    times = [p.timestamp_s for p in points]
    assert all(math.isfinite(t) for t in times) and times == sorted(times)
    assert all(math.isfinite(p.price_usd_per_hour) and p.price_usd_per_hour >= 0 for p in points)
    assert all(p.pool.instance_type and p.pool.region and p.product_description for p in points)


def every_reader(path: Path) -> None:
    """Each file reader on ``path``; each returns something valid or refuses naming the file."""
    if (market := read_or_refuse(lambda: load_availability(path), path)) is not None:
        check_market(market)
    if (market := read_or_refuse(lambda: load_availability(path, convention="preempted"), path)) is not None:
        check_market(market)
    if (windows := read_or_refuse(lambda: read_windows(path), path)) is not None:
        check_windows(windows)
    if (market := read_or_refuse(lambda: load_joint_prices(path, BASE), path)) is not None:
        check_market(market)
    if (points := read_or_refuse(lambda: read_price_history(path), path)) is not None:
        check_points(points)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def availability(workdir: Path) -> Path:
    """A valid availability file over BASE's pools and ticks, for the price files to join."""
    path = workdir / "availability.json"
    trace = {"metadata": {"gap_seconds": 300}, "data": [1, 1, 0, 1]}
    path.write_text(json.dumps({
        "source": "aws-02-15-2023", "convention": "available",
        "traces": {"us-east-1a_v100_1.json": trace, "us-east-1c_v100_1.json": trace},
    }))
    return path


# --- arbitrary input into every file reader ---------------------------------------------------------


@FUZZ
@given(raw=st.binary(max_size=200) | st.binary(max_size=40).map(lambda b: b"\x1f\x8b" + b))
def test_arbitrary_bytes_are_read_or_refused_by_name(workdir: Path, raw: bytes) -> None:
    path = workdir / "us-east-1a_v100_1.json"
    path.write_bytes(raw)
    every_reader(path)


@FUZZ
@given(text=st.text(max_size=200) | st.text(alphabet=',"\r\n\x00 SpotPrice', max_size=60))
def test_arbitrary_text_is_read_or_refused_by_name(workdir: Path, text: str) -> None:
    path = workdir / "us-east-1a_v100_1.json"
    path.write_bytes(text.encode())
    every_reader(path)


@FUZZ
@given(doc=JSON_VALUES, data=st.data())
def test_arbitrary_json_is_read_or_refused_by_name(workdir: Path, doc: Any, data: st.DataObject) -> None:
    path = workdir / "us-east-1a_v100_1.json"
    path.write_bytes(encode(data, dump(doc)))
    every_reader(path)
    if (points := read_or_refuse(lambda: points_of_json(path, doc), path)) is not None:  # in memory
        check_points(points)


def test_huge_csv_fields_and_deep_json_are_refused_by_name(workdir: Path) -> None:
    for name, content in [
        ("deep.json", "[" * 100_000 + "]" * 100_000),
        ("digits.json", '{"SpotPriceHistory": [{"SpotPrice": ' + "9" * 5000 + "}]}"),
        ("field.csv", "AvailabilityZone,InstanceType,SpotPrice,Timestamp\n" + "x" * 200_000 + ",a,b,c\n"),
        ("nul.csv", "AvailabilityZone,InstanceType,SpotPrice,Timestamp\nus-east-1a,m5.large,0.1\x00,2023\n"),
    ]:
        path = workdir / name
        path.write_text(content)
        every_reader(path)


# --- mutations of valid documents -------------------------------------------------------------------


@FUZZ
@given(doc=bundles(), data=st.data())
def test_mutated_availability_bundles_are_read_or_refused_by_name(
    workdir: Path, doc: dict[str, Any], data: st.DataObject
) -> None:
    path = workdir / ("us-east-1a_v100_1.json.gz" if data.draw(st.booleans()) else "us-east-1a_v100_1.json")
    path.write_bytes(encode(data, dump(mutated(data, doc))))
    for convention in (None, data.draw(st.sampled_from(["available", " Preempted", "sometimes", ""]))):
        if (market := read_or_refuse(lambda c=convention: load_availability(path, c), path)) is not None:
            check_market(market)


@FUZZ
@given(doc=bundles().filter(lambda d: "traces" in d), data=st.data())
def test_a_damaged_trace_field_is_named_with_its_trace(
    workdir: Path, doc: dict[str, Any], data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(sorted(doc["traces"])), label="trace")
    trace = doc["traces"][name]
    field = data.draw(st.sampled_from(["data", "prices", "metadata.gap_seconds", "metadata.start_time"]))
    head, _, leaf = field.rpartition(".")
    value = data.draw(BAD, label="value")
    (trace[head] if head else trace)[leaf] = value
    path = workdir / "bundle.json"
    path.write_bytes(dump(doc))
    try:
        check_market(load_availability(path))
    except TraceError as exc:
        message = str(exc)
        assert message.startswith(f"{path}: "), message
        if unreadable(value):
            assert "not valid JSON" in message, message
        elif "traces have different" not in message:  # gap or start now differ between traces: names groups
            assert f"trace {name!r}: " in message, message
            assert re.search(r"field '[\w.]+'|\b(data|prices)\[\d+\]", message), message


@FUZZ
@given(doc=windows_docs(), data=st.data())
def test_mutated_windows_are_read_or_refused_by_name(
    workdir: Path, doc: dict[str, Any], data: st.DataObject
) -> None:
    path = workdir / "windows.json"
    path.write_bytes(encode(data, dump(mutated(data, doc))))
    if (windows := read_or_refuse(lambda: read_windows(path), path)) is not None:
        check_windows(windows)


@FUZZ
@given(doc=joint_prices(), data=st.data())
def test_mutated_joint_prices_are_read_or_refused_by_name(
    workdir: Path, availability: Path, doc: dict[str, Any], data: st.DataObject
) -> None:
    path = workdir / "joint.json"
    path.write_bytes(encode(data, dump(mutated(data, doc))))
    if (market := read_or_refuse(lambda: load_joint_prices(path, BASE), path)) is not None:
        check_market(market)
        assert market.spot_price is not None and market.n_ticks <= BASE.n_ticks
    if (market := read_or_refuse(lambda: load_market(availability, path), path)) is not None:
        check_market(market)


@FUZZ
@given(rows=records(), data=st.data())
def test_mutated_price_history_json_is_read_or_refused_by_name(
    workdir: Path, availability: Path, rows: list[dict[str, Any]], data: st.DataObject
) -> None:
    doc = mutated(data, {"SpotPriceHistory": rows, "NextToken": ""} if data.draw(st.booleans()) else rows)
    path = workdir / "history.json"
    path.write_bytes(encode(data, dump(doc)))
    if (points := read_or_refuse(lambda: read_price_history(path), path)) is not None:
        check_points(points)
        try:
            check_market(price_points_to_market_trace(points, tick_s=300.0))
        except ValueError as exc:  # not a file reader: it may only refuse a mix of products or a vast span
            message = str(exc)
            assert "mixes products" in message or "more than" in message, message
    if (market := read_or_refuse(lambda: load_market(availability, path), path)) is not None:
        check_market(market)
        assert market.spot_price is not None
    if (points := read_or_refuse(lambda: points_of_json(path, doc), path)) is not None:  # in memory
        check_points(points)


@FUZZ
@given(rows=records(), snake=st.booleans(), data=st.data())
def test_mutated_price_history_csv_is_read_or_refused_by_name(
    workdir: Path, availability: Path, rows: list[dict[str, Any]], snake: bool, data: st.DataObject
) -> None:
    lines = csv_text(rows, snake).splitlines(keepends=True)
    i = data.draw(st.integers(0, len(lines) - 1), label="line")
    edit = data.draw(st.sampled_from(["drop", "duplicate", "swap", "cell", "text"]), label="edit")
    if edit == "drop":
        del lines[i]
    elif edit == "duplicate":
        lines.insert(i, lines[i])
    elif edit == "swap":
        lines[0], lines[i] = lines[i], lines[0]
    else:
        cells = next(csv.reader([lines[i]]))
        j = data.draw(st.integers(0, len(cells)), label="cell")
        new = data.draw(st.text(max_size=20) | st.sampled_from([str(v) for v in BAD_VALUES[:40]]), label="value")
        cells = [*cells[:j], new, *cells[j + 1 :]] if edit == "cell" else [*cells[:j], new]
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow(cells)
        lines[i] = out.getvalue()
    path = workdir / "history.csv"
    path.write_bytes(encode(data, "".join(lines).encode()))
    if (points := read_or_refuse(lambda: read_price_history(path), path)) is not None:
        check_points(points)
    if (market := read_or_refuse(lambda: load_market(availability, path), path)) is not None:
        check_market(market)


@FUZZ
@given(rows=records(), data=st.data())
def test_a_damaged_record_field_is_named_with_its_record_and_line(
    workdir: Path, rows: list[dict[str, Any]], data: st.DataObject
) -> None:
    i = data.draw(st.integers(0, len(rows) - 1), label="record")
    field = data.draw(st.sampled_from(sorted(FIELDS)), label="field")
    value = data.draw(BAD, label="value")
    rows[i][field] = value
    expected = f"field {FIELDS[field]!r}"
    path = workdir / "history.json"
    path.write_bytes(dump({"SpotPriceHistory": rows}))
    whole_file = unreadable(value)
    if read_or_refuse(lambda: read_price_history(path), path) is None:
        where = "not valid JSON" if whole_file else f"record {i + 1}: {expected}"
        with pytest.raises(TraceError, match=re.escape(f"{path}: {where}")):
            read_price_history(path)
    if isinstance(value, str) and not re.search(r"[\r\n\x00\"]|^\s*$", value) and not whole_file:
        path = workdir / "history.csv"
        path.write_text(csv_text(rows, snake=False))
        if read_or_refuse(lambda: read_price_history(path), path) is None:
            with pytest.raises(TraceError, match=re.escape(f"{path}: line {i + 2}: {expected}")):
                read_price_history(path)


def test_a_history_over_millennia_is_refused_before_it_is_resampled() -> None:
    pool = Pool("m5.large", "us-east-1a")
    points = [PricePoint(pool, 0.1, -6.2e10), PricePoint(pool, 0.1, 2.5e11)]
    with pytest.raises(ValueError, match="more than"):
        price_points_to_market_trace(points, tick_s=300.0)


# --- the packed wire format -------------------------------------------------------------------------

WIRE_POOLS = (Pool("p3.2xlarge", "us-east-1a"), Pool("p3.2xlarge", "us-east-1c"), Pool("m5.large", "eu-west-1b"))
FINITE = st.floats(allow_nan=False, allow_infinity=False)
TICKS = st.lists(
    st.tuples(
        FINITE,
        st.lists(st.builds(PricePoint, st.sampled_from(WIRE_POOLS), FINITE, FINITE), max_size=4),
        st.lists(st.builds(AvailabilityPoint, st.sampled_from(WIRE_POOLS), st.booleans(), FINITE), max_size=4),
    ),
    min_size=1,
    max_size=3,
)
PICKLABLE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | st.binary(max_size=24),
    lambda inner: st.lists(inner, max_size=7) | st.lists(inner, max_size=7).map(tuple)
    | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=16,
)


@FUZZ
@given(ticks=TICKS)
def test_packed_ticks_round_trip(ticks: list[Any]) -> None:
    assert unpack_ticks(pack_ticks(ticks)) == ticks
    assert unpack_ticks(pack_ticks(ticks), {p.key: p for p in WIRE_POOLS}) == ticks


@FUZZ
@given(blob=st.binary(max_size=120) | PICKLABLE.map(pickle.dumps) | PICKLABLE.map(lambda v: pickle.dumps((1, v))))
def test_arbitrary_blobs_unpack_or_raise_wire_error(blob: bytes) -> None:
    for read in (unpack, unpack_ticks):
        try:
            read(blob)
        except WireError as exc:
            message = str(exc)
            assert message


@FUZZ
@given(ticks=TICKS, data=st.data())
def test_damaged_tick_columns_are_refused_naming_the_tick_and_the_field(
    ticks: list[Any], data: st.DataObject
) -> None:
    version, columns = pickle.loads(pack_ticks(ticks))
    t = data.draw(st.integers(0, len(columns) - 1), label="tick")
    tick = list(columns[t])
    c = data.draw(st.integers(0, 6), label="column")
    n = len(tick[1]) if c in (1, 2, 3) else len(tick[4])
    nan_times = b"".join([np.float64(1.0).tobytes()] * n + [np.float64(math.nan).tobytes()])
    keys = ["p3.2xlarge@us-east-1a"]
    bad: list[Any] = [None, 5, "x" * 8 * n, (0.0,) * n]  # wrong types for every column
    if c == 0:
        bad += [math.nan, math.inf, -math.inf, "60", [60.0], 10**400]
    elif c in (1, 4):
        bad += [[*tick[c], *keys], ["no-at-sign"] * n + [1], ["@"] * (n + 1), [b"x@y"] * (n + 1)]
    elif c == 5:
        bad += [n + 1, [1] * n, tick[5] + b"\x01", 10**12]
    else:
        bad += [nan_times, b"\0" * (8 * n + 3), tick[c] + b"\0" * 8, [0.0] * n]
    tick[c] = data.draw(st.sampled_from(bad), label="value")
    columns[t] = tuple(tick) if data.draw(st.booleans()) else tuple(tick[: data.draw(st.integers(0, 6))])
    with pytest.raises(WireError, match=rf"^ticks\[{t}\]: (.*field '[a-z_.]+'|expected a tuple of 7 columns)"):
        unpack_ticks(pickle.dumps((version, columns)))


def test_wire_refuses_what_only_a_damaged_or_foreign_blob_holds() -> None:
    foreign = pickle.dumps((1, [(0.0, [], b"", b"", [], b"", b"")], Pool("m5.large", "us-east-1a")))
    for blob, expected in [
        (pickle.dumps((True, [])), "version True"),
        (pickle.dumps((np.array([1, 2]), [])), "global numpy"),
        (pickle.dumps((1, 5)), "expected a list of ticks"),
        (pickle.dumps((1, [(0.0, [], b"", b"", [], 10**12, b"")])), r"ticks\[0\]: field 'availability.available'"),
        (pickle.dumps((1, [(math.nan, [], b"", b"", [], b"", b"")])), r"ticks\[0\]: field 'now_s'"),
        (foreign, "global engine.types.Pool"),
        (b"\x80\x05K\x01\x94.", "not a packed batch"),
        (pickle.dumps(1)[:-1], "not a packed batch"),
    ]:
        with pytest.raises(WireError, match=expected):
            unpack_ticks(blob)
    with pytest.raises(WireError, match="not a packed payload"):
        unpack(pickle.dumps({"a": 1})[:-2])
    assert unpack(foreign)[2] == Pool("m5.large", "us-east-1a")  # unpack reads any pickle of our own processes


# --- a refused engine batch changes nothing ---------------------------------------------------------

REGION_POOLS = tuple(Pool("p3.2xlarge", z) for z in ("us-east-1a", "us-east-1c", "us-east-1d"))
NOW_S = 100.0


def region_engine() -> RegionEngine:
    from engine.types import Instance

    e = RegionEngine("us-east-1", policy=make_policy("lowest_price"))
    for pool in REGION_POOLS:
        e.add_pool(pool, 3.06)
    e.observe([PricePoint(p, 1.0 + i, 0.0) for i, p in enumerate(REGION_POOLS)], [], now_s=0.0)
    e.upsert_instance(Instance("i-1", REGION_POOLS[0]), now_s=0.0)
    return e


def state_of(e: RegionEngine) -> tuple[Any, ...]:
    pools = [(s.pool, s.price_usd_per_hour, s.price_at_s, s.available, s.availability_at_s, s.capacity_score)
             for s in e.pool_states()]
    return repr(pools), e.fleet(), e.last_observed_s, e.snapshot()


TIMES = st.floats(0.0, NOW_S)
GOOD_PRICES = st.lists(st.builds(PricePoint, st.sampled_from(REGION_POOLS), st.floats(0, 10), TIMES), max_size=4)
GOOD_AVAILABILITY = st.lists(
    st.builds(AvailabilityPoint, st.sampled_from(REGION_POOLS), st.booleans(), TIMES), max_size=4
)
OTHER_POOLS = st.sampled_from([Pool("p3.2xlarge", "us-east-1f"), Pool("p3.2xlarge", "us-west-2a")])
BAD_PRICE_POINTS = st.one_of(
    st.builds(PricePoint, OTHER_POOLS, st.floats(0, 10), TIMES),
    st.builds(PricePoint, st.sampled_from(REGION_POOLS), st.sampled_from([math.nan, math.inf, -0.01, -1e9]), TIMES),
    st.builds(PricePoint, st.sampled_from(REGION_POOLS), st.floats(0, 10),
              st.sampled_from([math.nan, math.inf, -math.inf, NOW_S + 1e-6, 1e18])),
)
BAD_AVAILABILITY_POINTS = st.one_of(
    st.builds(AvailabilityPoint, OTHER_POOLS, st.booleans(), TIMES),
    st.builds(AvailabilityPoint, st.sampled_from(REGION_POOLS), st.booleans(),
              st.sampled_from([math.nan, math.inf, NOW_S + 1.0])),
)
NOT_POINTS = st.sampled_from([None, "p3.2xlarge@us-east-1a", 1.5, (REGION_POOLS[0], 1.0, 0.0)])


@FUZZ
@given(prices=GOOD_PRICES, availability=GOOD_AVAILABILITY, in_prices=st.booleans(), data=st.data())
def test_a_batch_with_one_bad_point_is_refused_whole_and_changes_nothing(
    prices: list[Any], availability: list[Any], in_prices: bool, data: st.DataObject
) -> None:
    e = region_engine()
    before = state_of(e)
    points, kind = (prices, "prices") if in_prices else (availability, "availability")
    i = data.draw(st.integers(0, len(points)), label="at")
    points.insert(i, data.draw((BAD_PRICE_POINTS if in_prices else BAD_AVAILABILITY_POINTS) | NOT_POINTS))
    with pytest.raises(BatchRejected, match=rf"^{kind}\[{i}\]: "):
        e.observe(prices, availability, now_s=NOW_S)
    assert state_of(e) == before




@pytest.mark.parametrize(
    ("prices", "availability"),
    [
        pytest.param([PricePoint(REGION_POOLS[0], "abc", 5.0)], [], id="price-str"),
        pytest.param([PricePoint(REGION_POOLS[0], 1.0, "5")], [], id="time-str"),
        pytest.param([PricePoint("p3.2xlarge@us-east-1a", 1.0, 5.0)], [], id="pool-str"),
        pytest.param([PricePoint(REGION_POOLS[0], 0.5, 5.0), AvailabilityPoint(REGION_POOLS[1], True, 5.0)], [],
                     id="availability-among-prices"),
        pytest.param([PricePoint(REGION_POOLS[0], 0.5, 5.0)], [PricePoint(REGION_POOLS[1], 0.5, 5.0)],
                     id="price-among-availability"),
        pytest.param([PricePoint(REGION_POOLS[0], 0.5, 5.0)], [AvailabilityPoint(REGION_POOLS[1], "yes", 5.0)],
                     id="available-str"),
    ],
)
def test_a_point_of_the_wrong_shape_is_refused_whole(prices: list[Any], availability: list[Any]) -> None:
    e = region_engine()
    before = state_of(e)
    with pytest.raises(BatchRejected):
        e.observe(prices, availability, now_s=NOW_S)
    assert state_of(e) == before
