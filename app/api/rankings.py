"""Rankings (排名通报) of streets and communities: JSON, CSV to download, a page to print."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from app.api.access import AnalyseAccess
from app.api.deps import SessionDep
from app.config import get_settings
from app.services import rankings
from app.services.registration import today_cn

router = APIRouter(prefix="/api", tags=["rankings"])


@router.get("/rankings", responses={200: {"content": {
    "application/json": {}, "text/csv": {}, "text/html": {}}}})
def get_ranking(
    session: SessionDep,
    access: AnalyseAccess,
    level: Literal["street", "community"] = "street",
    district: Annotated[str | None, Query(pattern=r"^\d{12}$")] = None,
    since: date | None = None,
    until: date | None = None,
    format: Literal["json", "csv", "html"] = "json",
):
    """Streets or communities ranked over a period (default: the last 30 days)."""
    until = until or today_cn()
    since = since or until - timedelta(days=29)
    district = access.district(district, get_settings().demo_district)
    rows = rankings.ranking(session, district=district, level=level, since=since, until=until,
                            scope=access.scope)
    if format == "csv":
        name = f"ranking_{level}_{since:%Y%m%d}_{until:%Y%m%d}.csv"
        return Response(rankings.to_csv(rows), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
    if format == "html":
        title = f"小散工程安全纳管{'街道' if level == 'street' else '社区'}排名通报"
        return HTMLResponse(rankings.to_html(rows, title=title, since=since, until=until))
    return {"level": level, "district": district, "since": since, "until": until, "rows": rows}
