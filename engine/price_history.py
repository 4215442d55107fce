"""Reader for AWS spot price history, and its resampling onto a market-trace tick grid.

Accepted input (gzipped when the file starts with the gzip magic bytes, whatever its name):

* JSON as printed by ``aws ec2 describe-spot-price-history``:
  ``{"SpotPriceHistory": [{"AvailabilityZone", "InstanceType", "ProductDescription", "SpotPrice",
  "Timestamp"}, ...], "NextToken": ...}`` (a bare list of such records is accepted too);
* CSV with the same fields, the header in AWS case (``AvailabilityZone``) or snake_case
  (``availability_zone``).

``SpotPrice`` may be a string (as AWS prints it) or a number; ``Timestamp`` is ISO-8601 with ``Z`` or an
offset (a timestamp without one is read as UTC). ``ProductDescription`` is optional (``Linux/UNIX``).
Every malformed record raises :class:`engine.trace_files.TraceError` naming the file, the record (1-based
index in JSON, line number in CSV) and the field, because a silently skipped row shifts a backtest.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import math
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.market import MarketTrace
from engine.trace_files import TraceError
from engine.types import Pool, PricePoint

# AWS field name -> snake_case column name; both spellings are accepted.
FIELDS: Mapping[str, str] = {
    "AvailabilityZone": "availability_zone",
    "InstanceType": "instance_type",
    "ProductDescription": "product_description",
    "SpotPrice": "spot_price",
    "Timestamp": "timestamp",
}
REQUIRED = ("availability_zone", "instance_type", "spot_price", "timestamp")
DEFAULT_PRODUCT = "Linux/UNIX"
_SNAKE = {**FIELDS, **{snake: snake for snake in FIELDS.values()}}
_TOP_LEVEL = {"SpotPriceHistory", "NextToken", "ResponseMetadata"}
_GZIP_MAGIC = b"\x1f\x8b"
# Ticks x pools of one resampled trace (400 MB of float64 prices): past it the span or the tick is a mistake.
MAX_CELLS = 50_000_000


def _error(path: Path, where: str, message: str) -> TraceError:
    return TraceError(f"{path}: {where}: {message}" if where else f"{path}: {message}")


def read_text(path: Path) -> str:
    """The file's text, gunzipped when it is gzip data; errors name the file."""
    try:
        raw = path.read_bytes()
        if raw[:2] == _GZIP_MAGIC:
            raw = gzip.decompress(raw)
        return raw.decode("utf-8-sig")
    except FileNotFoundError:
        raise _error(path, "", "no such file") from None
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        raise _error(path, "", f"cannot read: {exc}") from None


def parse_timestamp_s(text: str) -> float:
    """Epoch seconds of an ISO-8601 timestamp; no offset means UTC.

    >>> parse_timestamp_s("2023-02-15T00:00:00.000Z")
    1676419200.0
    >>> parse_timestamp_s("2023-02-15T01:00:00+01:00")
    1676419200.0
    """
    stamp = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


def parse_record(path: Path, where: str, record: Mapping[str, Any]) -> PricePoint:
    """One history record (keys already snake_case) -> a price point; errors name the field."""
    for name in REQUIRED:
        value = record.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise _error(path, where, f"field {name!r} is missing")
    for name in ("availability_zone", "instance_type", "timestamp"):
        if not isinstance(record[name], str):
            raise _error(path, where, f"field {name!r}: {record[name]!r} is not a string")
    raw_price = record["spot_price"]
    try:
        if isinstance(raw_price, bool):
            raise ValueError
        price = float(raw_price)
    except (TypeError, ValueError):
        raise _error(path, where, f"field 'spot_price': {raw_price!r} is not a number") from None
    except OverflowError:  # an integer past float64's range
        price = math.inf
    if not math.isfinite(price):
        raise _error(path, where, f"field 'spot_price': {raw_price!r} is not a finite number")
    if price < 0:
        raise _error(path, where, f"field 'spot_price': {raw_price!r} is negative")
    try:
        timestamp_s = parse_timestamp_s(record["timestamp"])
    except ValueError:
        raise _error(
            path, where, f"field 'timestamp': {record['timestamp']!r} is not an ISO-8601 time"
        ) from None
    zone = record["availability_zone"].strip()
    try:
        pool = Pool(record["instance_type"].strip(), zone)
        if not pool.region:  # raises on a zone without its letter; a letter alone has no region
            raise ValueError(zone)
    except ValueError:
        raise _error(path, where, f"field 'availability_zone': {zone!r} is not a zone") from None
    product = record.get("product_description")
    if product is not None and not isinstance(product, str):
        raise _error(path, where, f"field 'product_description': {product!r} is not a string")
    return PricePoint(pool, price, timestamp_s, (product or "").strip() or DEFAULT_PRODUCT)


def _snake_keys(path: Path, where: str, record: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in record.items():
        name = _SNAKE.get(key)
        if name is None:
            raise _error(path, where, f"unknown field {key!r} (expected {', '.join(FIELDS)})")
        out[name] = value
    return out


def points_of_json(path: Path, doc: Any) -> list[PricePoint]:
    """Price points of a parsed ``describe-spot-price-history`` document (or a bare record list)."""
    if isinstance(doc, dict):
        unknown = sorted(set(doc) - _TOP_LEVEL)
        if unknown:
            raise _error(path, "", f"unknown top-level field {unknown[0]!r} (expected 'SpotPriceHistory')")
        records = doc.get("SpotPriceHistory")
    else:
        records = doc
    if not isinstance(records, list):
        raise _error(path, "", "field 'SpotPriceHistory' must be a list of records")
    points = []
    for i, record in enumerate(records, start=1):
        where = f"record {i}"
        if not isinstance(record, dict):
            raise _error(path, where, "expected an object")
        points.append(parse_record(path, where, _snake_keys(path, where, record)))
    return _sorted_nonempty(path, points)


def _sorted_nonempty(path: Path, points: list[PricePoint]) -> list[PricePoint]:
    if not points:
        raise _error(path, "", "the price history is empty")
    points.sort(key=lambda p: (p.timestamp_s, p.pool))
    return points


def _csv_rows(path: Path, text: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of each row; a row the csv module refuses names its line."""
    reader = csv.reader(io.StringIO(text))
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as exc:  # a NUL byte, a field past the size limit, a stray quote or line break
        raise _error(path, f"line {reader.line_num}", f"not valid CSV: {exc}") from None


def _csv_records(path: Path, text: str) -> Iterator[PricePoint]:
    header: list[str] | None = None
    for line, row in _csv_rows(path, text):
        if not row or all(not cell.strip() for cell in row):
            continue
        if header is None:
            header = [_SNAKE.get(cell.strip(), "") for cell in row]
            for cell, name in zip(row, header, strict=True):
                if not name:
                    raise _error(path, f"line {line}", f"unknown column {cell.strip()!r}")
            twice = next((name for i, name in enumerate(header) if name in header[:i]), None)
            if twice:
                raise _error(path, f"line {line}", f"column {twice!r} appears twice")
            missing = [name for name in REQUIRED if name not in header]
            if missing:
                raise _error(path, f"line {line}", f"missing column {missing[0]!r}")
            continue
        where = f"line {line}"
        if len(row) != len(header):
            raise _error(path, where, f"{len(row)} fields, the header has {len(header)}")
        yield parse_record(path, where, dict(zip(header, row, strict=True)))


def read_price_history(path: Path | str) -> list[PricePoint]:
    """Read a spot price history file (JSON or CSV, optionally gzipped), sorted by time then pool."""
    path = Path(path)
    text = read_text(path)
    if text.lstrip()[:1] in ("{", "["):
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError) as exc:  # also integers past the digit limit, deep nesting
            raise _error(path, "", f"not valid JSON: {exc}") from None
        return points_of_json(path, doc)
    return _sorted_nonempty(path, list(_csv_records(path, text)))


def choose_product(points: Sequence[PricePoint], product_description: str | None = None) -> str:
    """The one product whose prices make a pool's series: the one asked for, else the only one, else
    ``Linux/UNIX`` (what the catalog's on-demand prices are for).

    >>> from engine.types import Pool
    >>> p = Pool("m5.large", "us-east-1a")
    >>> choose_product([PricePoint(p, 0.1, 0.0, "Windows"), PricePoint(p, 0.05, 0.0, "Linux/UNIX")])
    'Linux/UNIX'
    """
    if product_description is not None:
        return product_description
    products = sorted({p.product_description for p in points})
    if len(products) == 1:
        return products[0]
    if DEFAULT_PRODUCT in products:
        return DEFAULT_PRODUCT
    raise ValueError(f"price history mixes products {products}; choose one with product_description=")


def resample(
    points: Iterable[PricePoint], pools: Sequence[Pool], timestamps_s: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Step-function prices of ``pools`` at ``timestamps_s``: the last price at or before each time;
    times before a pool's first price take that first price. ``(T, P)``; a pool without any point
    raises KeyError.

    >>> from engine.types import Pool
    >>> p = Pool("m5.large", "us-east-1a")
    >>> pts = [PricePoint(p, 1.0, 10.0), PricePoint(p, 2.0, 20.0)]
    >>> resample(pts, [p], np.array([0.0, 10.0, 15.0, 20.0, 99.0]))[:, 0].tolist()
    [1.0, 1.0, 1.0, 2.0, 2.0]
    """
    series: dict[Pool, list[tuple[float, float]]] = {}
    for point in points:
        series.setdefault(point.pool, []).append((point.timestamp_s, point.price_usd_per_hour))
    out = np.empty((len(timestamps_s), len(pools)), dtype=np.float64)
    for column, pool in enumerate(pools):
        if pool not in series:
            raise KeyError(pool.key)
        ordered = sorted(series[pool], key=lambda tp: tp[0])  # stable: a later record wins a tie
        times = np.fromiter((t for t, _ in ordered), dtype=np.float64, count=len(ordered))
        prices = np.fromiter((v for _, v in ordered), dtype=np.float64, count=len(ordered))
        index = np.searchsorted(times, timestamps_s, side="right") - 1
        out[:, column] = prices[np.clip(index, 0, None)]
    return out


def price_points_to_market_trace(
    points: Sequence[PricePoint],
    tick_s: float,
    start_s: float | None = None,
    end_s: float | None = None,
    product_description: str | None = None,
) -> MarketTrace:
    """Resample price points onto a regular grid: ticks ``start_s + k * tick_s`` up to ``end_s``
    (inclusive; defaults: the first and last timestamps). Price history says nothing about capacity,
    so every pool is available at every tick."""
    if not points:
        raise ValueError("no price points")
    if not (tick_s > 0 and math.isfinite(tick_s)):
        raise ValueError(f"tick_s must be positive, got {tick_s}")
    product = choose_product(points, product_description)
    chosen = [p for p in points if p.product_description == product]
    if not chosen:
        raise ValueError(f"no price points for product {product!r}")
    first = start_s if start_s is not None else min(p.timestamp_s for p in chosen)
    last = end_s if end_s is not None else max(p.timestamp_s for p in chosen)
    if last < first:
        raise ValueError(f"end_s {last} is before start_s {first}")
    n_ticks = math.floor((last - first) / tick_s + 1e-9) + 1
    pools = tuple(sorted({p.pool for p in chosen}))
    if n_ticks * len(pools) > MAX_CELLS:
        raise ValueError(
            f"{last - first:g} s of history at {tick_s:g} s ticks for {len(pools)} pools is more than "
            f"{MAX_CELLS} prices; pass start_s and end_s, or a longer tick_s"
        )
    timestamps_s = first + np.arange(n_ticks, dtype=np.float64) * tick_s
    return MarketTrace(
        pools=pools,
        start_s=first,
        tick_s=float(tick_s),
        available=np.ones((n_ticks, len(pools)), dtype=np.bool_),
        spot_price=resample(chosen, pools, timestamps_s),
        source=f"spot price history ({product})",
    )
