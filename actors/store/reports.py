"""Savings reports from the store: read one (account, region) stream's history, then let the pure
:func:`engine.savings.savings_report` do the arithmetic.

What is read, up to the period's end: every stored decision but its candidates (decisions state the
on-demand prices in their numbers, and the moves), the stream's ``prices`` events (as many as retention
kept), and of its ``instances`` events the newest at or before the period's start plus every later one (each
holds the whole fleet, so older ones add nothing). The stored fleet (``instances`` table) stands in when no
``instances`` event exists.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from actors.store import codec
from actors.store.errors import InvalidRecordError
from actors.store.repository import Store
from actors.store.tables import DECISIONS, INSTANCES, STREAM_EVENTS
from engine.catalog import region_catalog
from engine.fleet_history import FleetSnapshot, Placement
from engine.report_period import Granularity, Period
from engine.savings import PriceTick, SavingsReport, StreamHistory, savings_report
from engine.types import Decision, Pool


async def stream_savings(store: Store, account: str, region: str, period: Period,
                         granularity: Granularity) -> SavingsReport:
    """The savings report of one stream over ``period``."""
    history = await read_history(store, account, region, period)
    return savings_report(history, period, granularity)


async def read_history(store: Store, account: str, region: str, period: Period) -> StreamHistory:
    """What the report needs of the stream, read in one connection (see the module docstring)."""
    d, e, i = DECISIONS.c, STREAM_EVENTS.c, INSTANCES.c
    stream_d = (d.account == account, d.region == region)
    stream_e = (e.account == account, e.region == region)
    async with store.engine.connect() as conn:
        extent = (await conn.execute(sa.select(
            sa.select(sa.func.min(d.decided_at_s)).where(*stream_d).scalar_subquery(),
            sa.select(sa.func.max(d.decided_at_s)).where(*stream_d).scalar_subquery(),
            sa.select(sa.func.min(e.at_s)).where(*stream_e).scalar_subquery(),
            sa.select(sa.func.max(e.at_s)).where(*stream_e).scalar_subquery(),
        ))).one()
        without_candidates = [column for column in DECISIONS.c if column.name != "candidates"]
        decision_rows = (await conn.execute(
            sa.select(*without_candidates).where(*stream_d, d.decided_at_s < period.end_s).order_by(d.seq)
        )).mappings().all()
        price_rows = (await conn.execute(
            sa.select(e.at_s, e.payload).where(*stream_e, e.topic == "prices", e.at_s < period.end_s)
            .order_by(e.at_s, e.seq))).all()
        base_seq = (await conn.execute(
            sa.select(sa.func.max(e.seq)).where(*stream_e, e.topic == "instances", e.at_s <= period.start_s)
        )).scalar_one()
        fleet_query = sa.select(e.seq, e.at_s, e.payload).where(*stream_e, e.topic == "instances",
                                                                e.at_s < period.end_s)
        if base_seq is not None:
            fleet_query = fleet_query.where(e.seq >= base_seq)
        fleet_rows = (await conn.execute(fleet_query.order_by(e.seq))).all()
        stored_rows = (await conn.execute(
            sa.select(i.instance_id, i.instance_type, i.availability_zone, i.lifecycle)
            .where(i.account == account, i.region == region))).all()
    decisions = [codec.record_from_row({**row, "candidates": []}).decision for row in decision_rows]
    snapshots = [_snapshot(seq, at_s, payload) for seq, at_s, payload in fleet_rows]
    stored = {row.instance_id: Placement(Pool(row.instance_type, row.availability_zone), row.lifecycle)
              for row in stored_rows}
    known = [float(x) for x in extent if x is not None]
    return StreamHistory(
        first_s=min(known, default=0.0),
        last_s=max(known, default=0.0),
        decisions=decisions,
        snapshots=snapshots,
        price_ticks=[_price_tick(at_s, payload) for at_s, payload in price_rows],
        stored_fleet=stored,
        catalog_on_demand_usd_per_hour=_catalog_prices(region, _types(decisions, snapshots, stored)),
    )


def _snapshot(seq: int, at_s: float, payload: str) -> FleetSnapshot:
    doc = _object(payload, f"instances event {seq}")
    try:
        placements = {item["instance_id"]: Placement(Pool.from_key(item["pool"]), str(item["lifecycle"]))
                      for item in doc["instances"]}
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidRecordError(f"instances event {seq}", f"not a fleet snapshot: {exc!r}") from None
    return FleetSnapshot(float(at_s), placements)


def _price_tick(at_s: float, payload: str) -> PriceTick:
    doc = _object(payload, f"prices event at {at_s}")
    prices: dict[str, float] = {}
    for item in doc.get("prices", ()):
        price = item.get("price_usd_per_hour") if isinstance(item, dict) else None
        if isinstance(price, int | float) and math.isfinite(price) and isinstance(item.get("pool"), str):
            prices[item["pool"]] = float(price)
    return PriceTick(float(at_s), prices)


def _object(payload: str, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(payload)
    except ValueError as exc:
        raise InvalidRecordError(where, f"payload is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidRecordError(where, "payload is not a JSON object")
    return doc


def _types(decisions: Iterable[Decision], snapshots: Iterable[FleetSnapshot],
           stored: Mapping[str, Placement]) -> set[str]:
    types = {t for d in decisions for t in (d.from_pool.instance_type, d.to_pool.instance_type)}
    types |= {p.pool.instance_type for s in snapshots for p in s.placements.values()}
    return types | {p.pool.instance_type for p in stored.values()}


def _catalog_prices(region: str, instance_types: Iterable[str]) -> dict[str, float]:
    """The catalog's on-demand prices: the fallback for a type no stored decision prices."""
    try:
        catalog = region_catalog(region)
    except (KeyError, ValueError):  # a region the catalog does not know: the decisions' prices only
        return {}
    prices = {}
    for instance_type in instance_types:
        price = catalog.on_demand_usd_per_hour(instance_type, region) if instance_type in catalog else None
        if price:
            prices[instance_type] = price
    return prices


async def stored_regions(store: Store, account: str) -> list[str]:
    """The regions of ``account`` with a stored decision or event, sorted (the CLI reports on them)."""
    d, e = DECISIONS.c, STREAM_EVENTS.c
    query = sa.union(sa.select(d.region).where(d.account == account).distinct(),
                     sa.select(e.region).where(e.account == account).distinct())
    async with store.engine.connect() as conn:
        return sorted(str(region) for (region,) in (await conn.execute(query)).all())
