"""Compact payloads for the hot Ray calls: price batches into a region actor, events into the stream host.

Ray serialises call arguments with cloudpickle plus hooks of its own that run in Python for every object,
so a batch of 200 small observation objects costs milliseconds per call on each side, several times the
work of deciding on it. On the hot path the payload therefore crosses as one ``bytes`` value (which Ray
passes through untouched): a tick's observations as columns (pool keys, then plain float and bool arrays)
and event batches pickled once with the standard library's C pickler. The receiving side rebuilds the
objects it works with. Both ends are our own processes in one cluster, the same trust Ray's own pickling
assumes.
"""

from __future__ import annotations

import io
import math
import pickle
from array import array
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engine.types import AvailabilityPoint, Pool, PricePoint

Tick = tuple[float, list[PricePoint], list[AvailabilityPoint]]
WIRE_VERSION = 1


class WireError(ValueError):
    """A packed payload that cannot be read; the message says which part."""


def pack(payload: Any) -> bytes:
    """Any picklable payload as one bytes value (events, topic batches)."""
    return pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)


def unpack(blob: bytes) -> Any:
    """The payload of :func:`pack`."""
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise WireError(f"expected packed bytes, got {type(blob).__name__}")
    try:
        return pickle.loads(blob)
    except Exception as exc:  # a damaged pickle raises nearly anything: EOFError, KeyError, MemoryError...
        raise WireError(f"not a packed payload: {type(exc).__name__}: {exc}") from None


class _PlainUnpickler(pickle.Unpickler):
    """Packed ticks hold only tuples, lists, str, bytes and numbers: no global may be looked up, so a
    damaged or foreign blob can neither import nor call anything."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"global {module}.{name} in packed ticks")


def pack_ticks(ticks: Sequence[Tick]) -> bytes:
    """Ticks of observations as columns: per tick ``now_s``, price pool keys, prices and their times,
    availability pool keys, flags and their times."""
    columns = []
    for now_s, prices, availability in ticks:
        columns.append((
            float(now_s),
            [p.pool.key for p in prices],
            array("d", [p.price_usd_per_hour for p in prices]).tobytes(),
            array("d", [p.timestamp_s for p in prices]).tobytes(),
            [a.pool.key for a in availability],
            bytes(bool(a.available) for a in availability),
            array("d", [a.timestamp_s for a in availability]).tobytes(),
        ))
    return pickle.dumps((WIRE_VERSION, columns), protocol=pickle.HIGHEST_PROTOCOL)


def unpack_ticks(blob: bytes, pool_of: Callable[[str], Pool] | Mapping[str, Pool] | None = None) -> list[Tick]:
    """The ticks of :func:`pack_ticks`. ``pool_of`` maps a key to the receiver's own Pool object (so
    the engine's dictionaries hash the objects they already hold); unknown keys are parsed.

    Raises :class:`WireError` naming the tick and the field when the payload is malformed.
    """
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise WireError(f"expected packed bytes, got {type(blob).__name__}")
    try:
        version, columns = _PlainUnpickler(io.BytesIO(blob)).load()
    except Exception as exc:  # as in unpack, and a payload that is not a pair
        raise WireError(f"not a packed batch of ticks: {type(exc).__name__}: {exc}") from None
    if type(version) is not int or version != WIRE_VERSION:
        raise WireError(f"packed ticks of version {version!r}, this build reads {WIRE_VERSION}")
    if not isinstance(columns, list):
        raise WireError(f"packed ticks: expected a list of ticks, got {type(columns).__name__}")
    lookup = _pool_lookup(pool_of)
    ticks: list[Tick] = []
    for t, tick in enumerate(columns):
        if not isinstance(tick, tuple) or len(tick) != 7:
            raise WireError(f"ticks[{t}]: expected a tuple of 7 columns, got {type(tick).__name__}")
        now_s, price_keys, price_values, price_times, avail_keys, avail_flags, avail_times = tick
        if type(now_s) is not float or not math.isfinite(now_s):
            raise WireError(f"ticks[{t}]: field 'now_s': {now_s!r} is not a finite time")
        for kind, keys in (("prices", price_keys), ("availability", avail_keys)):
            if not isinstance(keys, list):
                raise WireError(f"ticks[{t}]: field '{kind}.pool': expected a list of pool keys, "
                                f"got {type(keys).__name__}")
        if type(avail_flags) is not bytes:
            raise WireError(f"ticks[{t}]: field 'availability.available': expected bytes, "
                            f"got {type(avail_flags).__name__}")
        values = _floats(price_values, t, "prices.price_usd_per_hour")
        times = _times(price_times, t, "prices")
        flags, flag_times = avail_flags, _times(avail_times, t, "availability")
        if not len(price_keys) == len(values) == len(times):
            raise WireError(f"ticks[{t}]: field 'prices': {len(price_keys)} pools, {len(values)} prices, "
                            f"{len(times)} times")
        if not len(avail_keys) == len(flags) == len(flag_times):
            raise WireError(f"ticks[{t}]: field 'availability': {len(avail_keys)} pools, {len(flags)} flags, "
                            f"{len(flag_times)} times")
        prices = [PricePoint(_pool(lookup, key, t, "prices", i), values[i], times[i])
                  for i, key in enumerate(price_keys)]
        availability = [AvailabilityPoint(_pool(lookup, key, t, "availability", i), bool(flags[i]), flag_times[i])
                        for i, key in enumerate(avail_keys)]
        ticks.append((now_s, prices, availability))
    return ticks


def _floats(raw: bytes, tick: int, field: str) -> list[float]:
    if type(raw) is not bytes or len(raw) % 8:
        shown = f"{len(raw)} bytes" if type(raw) is bytes else type(raw).__name__
        raise WireError(f"ticks[{tick}]: field {field!r}: expected packed float64s, got {shown}")
    values = array("d")
    values.frombytes(raw)
    return values.tolist()


def _times(raw: bytes, tick: int, kind: str) -> list[float]:
    times = _floats(raw, tick, f"{kind}.timestamp_s")
    if not math.isfinite(sum(times)):  # one sum is cheap; on a NaN or inf find which entry
        for i, time_s in enumerate(times):
            if not math.isfinite(time_s):
                raise WireError(f"ticks[{tick}]: {kind}[{i}]: field 'timestamp_s': {time_s!r} is not a finite time")
    return times


def _pool_lookup(pool_of: Callable[[str], Pool] | Mapping[str, Pool] | None) -> Callable[[str], Pool | None]:
    if pool_of is None:
        return lambda _key: None
    if isinstance(pool_of, Mapping):
        return pool_of.get
    return pool_of


def _pool(lookup: Callable[[str], Pool | None], key: Any, tick: int, kind: str, index: int) -> Pool:
    known = lookup(key) if isinstance(key, str) else None
    if known is not None:
        return known
    try:
        return Pool.from_key(key)
    except (TypeError, ValueError, AttributeError) as exc:
        raise WireError(f"ticks[{tick}]: {kind}[{index}]: field 'pool': {exc}") from None
