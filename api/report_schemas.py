"""The savings report as REST and the CLI show it: JSON bodies (Pydantic, for the OpenAPI schema) and the
same rows as CSV. One shaping for both, from the engine's :class:`~engine.savings.SavingsReport`."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, Field

from actors.store import Store
from actors.store.decision_json import iso_utc
from actors.store.reports import stream_savings
from engine.report_period import PERIOD_FORMS, Granularity, Period
from engine.savings import SavingsReport, SavingsRow

MONEY_DIGITS = 6  # a millionth of a dollar: rounding never moves a cent


class SavingsRowOut(BaseModel):
    label: str = Field(examples=["2023-02-15"], description="the UTC day or month, or the period for a total")
    start: str = Field(examples=["2023-02-15T00:00:00Z"])
    end: str = Field(examples=["2023-02-16T00:00:00Z"], description="exclusive")
    spot_hours: float
    on_demand_hours: float
    hibernated_hours: float = Field(description="hours stopped by a hibernation schedule")
    unpriced_hours: float = Field(description="running hours with no stored price: no saving counted")
    actual_cost_usd: float
    on_demand_cost_usd: float = Field(description="the same running hours at on-demand prices")
    savings_usd: float
    savings_pct: float | None = Field(description="of the on-demand cost; null when nothing ran")
    hibernation_saving_usd: float = Field(description="what the hibernated hours would have cost running")
    interruptions: int
    replacements: int
    fallbacks: int = Field(description="moves to on-demand carried out")
    returns_to_spot: int
    hibernations: int
    wakes: int


class RegionSavingsOut(BaseModel):
    region: str = Field(examples=["us-east-1"])
    first_s: float | None = Field(description="the stream's first stored observation; nothing before counts")
    last_s: float | None = Field(description="its newest; nothing after counts")
    rows: list[SavingsRowOut]
    total: SavingsRowOut


class SavingsReportOut(BaseModel):
    account: str
    period: str = Field(examples=["2023-02"], description=PERIOD_FORMS)
    granularity: str = Field(examples=["daily"])
    start: str
    end: str = Field(description="exclusive")
    currency: str = "USD"
    regions: list[RegionSavingsOut]


CSV_COLUMNS = ("region", "label", "start", "end", *[name for name in SavingsRowOut.model_fields
                                                     if name not in {"label", "start", "end"}])


def row_out(row: SavingsRow) -> SavingsRowOut:
    money = MONEY_DIGITS
    return SavingsRowOut(
        label=row.label, start=iso_utc(row.start_s), end=iso_utc(row.end_s),
        spot_hours=round(row.spot_hours, 6), on_demand_hours=round(row.on_demand_hours, 6),
        hibernated_hours=round(row.hibernated_hours, 6), unpriced_hours=round(row.unpriced_hours, 6),
        actual_cost_usd=round(row.actual_cost_usd, money), on_demand_cost_usd=round(row.on_demand_cost_usd, money),
        savings_usd=round(row.savings_usd, money),
        savings_pct=None if row.savings_pct is None else round(row.savings_pct, 4),
        hibernation_saving_usd=round(row.hibernation_saving_usd, money),
        interruptions=row.interruptions, replacements=row.replacements, fallbacks=row.fallbacks,
        returns_to_spot=row.returns_to_spot, hibernations=row.hibernations, wakes=row.wakes,
    )


def report_out(account: str, reports: Mapping[str, SavingsReport], period_label: str, granularity: str,
               start_s: float, end_s: float) -> SavingsReportOut:
    """One body for an account's regions (region -> its report)."""
    regions = [RegionSavingsOut(
        region=region,
        first_s=report.first_s if report.last_s > report.first_s else None,
        last_s=report.last_s if report.last_s > report.first_s else None,
        rows=[row_out(r) for r in report.rows],
        total=row_out(report.total),
    ) for region, report in sorted(reports.items())]
    return SavingsReportOut(account=account, period=period_label, granularity=granularity,
                            start=iso_utc(start_s), end=iso_utc(end_s), regions=regions)



async def savings_report(store: Store, account: str, regions: Sequence[str], period: Period,
                         granularity: Granularity) -> SavingsReportOut:
    """The body of ``GET .../reports/savings`` for ``regions`` (read one after another) over ``period``."""
    reports = {r: await stream_savings(store, account, r, period, granularity) for r in regions}
    return report_out(account, reports, period.label, granularity.value, period.start_s, period.end_s)

def report_csv(body: SavingsReportOut) -> str:
    """The rows as CSV, a header first; each region's total last, labelled ``total``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for region in body.regions:
        rows: Sequence[SavingsRowOut] = [*region.rows, region.total.model_copy(update={"label": "total"})]
        for row in rows:
            values = row.model_dump()
            writer.writerow([region.region, *("" if values[c] is None else values[c] for c in CSV_COLUMNS[1:])])
    return out.getvalue()
