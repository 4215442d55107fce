"""What every trace reader shares: :class:`TraceError`, reading a (possibly gzipped) JSON file, and the
checks and renderings its error messages are made of. Each format's reader builds on it
(``engine/spot_traces.py``, ``engine/price_history.py``); ``engine/traces.py`` joins them.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

GZIP_MAGIC = b"\x1f\x8b"
_NUMBER_TYPES = frozenset({int, float})


class TraceError(ValueError):
    """A trace file that cannot be read; the message names the file, the position and the field."""


def read_json(path: Path) -> Any:
    """Read JSON, gunzipping gzip data; errors name the file."""
    try:
        raw = path.read_bytes()
        if raw[:2] == GZIP_MAGIC:
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


def nonnegative_values(path: Path, where: str, data: Any, field: str = "data") -> npt.NDArray[np.float64]:
    """A non-empty list of non-negative finite numbers as float64; the error names the position."""
    if not isinstance(data, list) or not data:
        raise TraceError(f"{path}: {where}: field {field!r} must be a non-empty list")
    if not set(map(type, data)) <= _NUMBER_TYPES:  # bools, strings, nulls: find the first one
        for i, value in enumerate(data):
            if type(value) not in _NUMBER_TYPES:
                raise TraceError(f"{path}: {where}: {field}[{i}] = {shown(value)} is not a number")
    try:
        values = np.asarray(data, dtype=np.float64)
    except OverflowError:  # an integer past float64's range
        i = next(i for i, value in enumerate(data) if abs(value) > sys.float_info.max)
        raise TraceError(f"{path}: {where}: {field}[{i}] = {shown(data[i])} is not a finite number") from None
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise TraceError(f"{path}: {where}: {field}[{bad[0]}] = {data[bad[0]]!r} is not a finite number")
    negative = np.flatnonzero(values < 0)
    if negative.size:
        raise TraceError(f"{path}: {where}: {field}[{negative[0]}] = {data[negative[0]]!r} is negative")
    return values


def shown(value: Any, width: int = 60) -> str:
    """A value's repr for an error message, cut to ``width`` characters."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def positive(value: Any) -> float | None:
    """A JSON value as a finite positive float, else None (bools, strings, NaN, inf, huge integers).

    >>> positive(60), positive(True), positive(float("inf")), positive(10**400)
    (60.0, None, None, None)
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if number > 0 and math.isfinite(number) else None


def iso_or_seconds(timestamp_s: float) -> str:
    """A time for an error message: ISO-8601 in UTC, or seconds when the calendar cannot show it."""
    try:
        return dt.datetime.fromtimestamp(timestamp_s, tz=dt.UTC).isoformat().replace("+00:00", "Z")
    except (ValueError, OverflowError, OSError):  # past the calendar's years 1..9999
        return f"{timestamp_s:g} s"
