"""Savings reports of an account: ``GET /api/v1/accounts/{account}/reports/savings``, per region and per
UTC day or month, computed from what the store holds (see :mod:`actors.store.reports`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.deps import AccountDep, RuntimeDep
from api.errors import InvalidInput
from api.report_schemas import SavingsReportOut, report_csv, savings_report
from api.schemas import ERRORS, REGION_PATTERN
from engine.report_period import PERIOD_FORMS, Granularity, parse_period

router = APIRouter(prefix="/api/v1/accounts/{account}/reports", responses=ERRORS, tags=["reports"])

CSV_TYPE = "text/csv"


@router.get("/savings", response_model=SavingsReportOut,
            responses={200: {"content": {CSV_TYPE: {"schema": {"type": "string"}}},
                             "description": "JSON, or CSV with format=csv or Accept: text/csv"}})
async def savings(
    account: AccountDep,
    runtime: RuntimeDep,
    request: Request,
    period: Annotated[str, Query(min_length=1, max_length=64, description=PERIOD_FORMS,
                                 examples=["2023-02", "2023-02-15..2023-02-21"])],
    region: Annotated[str | None, Query(pattern=REGION_PATTERN,
                                        description="one of the account's regions; default: all")] = None,
    granularity: Annotated[Granularity, Query(description="rows per UTC day or calendar month")] = Granularity.DAILY,
    format: Annotated[str | None, Query(pattern="^(json|csv)$",
                                        description="json (default) or csv; or send Accept: text/csv")] = None,
) -> Response | SavingsReportOut:
    """Per region and per day or month of ``period``: instance-hours by lifecycle (spot, on-demand,
    hibernated), the actual cost, the same hours at on-demand prices, the savings in $ and %, what
    hibernation saved, and the interruptions, replacements, fallbacks, returns to spot, hibernations and
    wakes. Charged per second at the spot price in force (the stored price ticks) or the on-demand price;
    only the stored history counts (nothing before the first or after the newest observation)."""
    try:
        chosen = parse_period(period)
    except ValueError as exc:
        raise InvalidInput(f"query.period: {exc}") from None
    if region is not None and region not in account.regions:
        raise InvalidInput(f"query.region: {region!r} is not a region of account {account.name!r} "
                           f"({', '.join(account.regions) or 'none'})")
    regions = [region] if region is not None else list(account.regions)
    body = await savings_report(runtime.store, account.name, regions, chosen, granularity)
    wants_csv = format == "csv" or (format is None and CSV_TYPE in request.headers.get("accept", ""))
    if wants_csv:
        filename = f"savings-{account.name}-{chosen.label.replace('..', '_')}.csv"
        return Response(report_csv(body), media_type=f"{CSV_TYPE}; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})
    return body
