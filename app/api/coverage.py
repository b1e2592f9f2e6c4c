"""Coverage: unpatrolled sites, blind spots by grid, land no grid covers, credit by force."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from app.api.access import AnalyseAccess, ListAccess, MaintainAccess, ReferenceAccess
from app.api.deps import GeoJSONResponse, SessionDep
from app.config import get_settings
from app.services import coverage, patrols
from app.services.registration import today_cn

router = APIRouter(prefix="/api/coverage", tags=["coverage"])
District = Annotated[str | None, Query(pattern=r"^\d{12}$", description="default: the demo")]


@router.get("/unpatrolled", response_class=GeoJSONResponse)
def unpatrolled(
    session: SessionDep,
    access: ListAccess,
    district: District = None,
    street: str | None = None,
    community: str | None = None,
    grid: str | None = None,
    on: Annotated[date | None, Query(description="default today; a past day: as it was")] = None,
    all_districts: Annotated[bool, Query(description="the whole city")] = False,
    limit: Annotated[int, Query(ge=1, le=100000)] = 5000,
):
    """Active sites overdue for a visit (3 days high risk, 7 others), worst first."""
    if not all_districts:
        district = access.district(district, _demo())
    items = coverage.unpatrolled_sites(
        session, on=on, district=None if all_districts else district,
        street=street, community=community, grid=grid, limit=limit, scope=access.scope)
    return GeoJSONResponse({**coverage.sites_geojson(items), "count": len(items)})


@router.get("/blind-spots", response_class=GeoJSONResponse)
def blind_spots(
    session: SessionDep,
    access: AnalyseAccess,
    district: District = None,
    on: date | None = None,
    window_days: Annotated[int, Query(ge=1, le=366)] = 30,
    only_blind: bool = False,
):
    """Grids with their load and patrol effort; ``blind_spot`` where sites go unseen."""
    items = coverage.blind_spots(session, district=access.district(district, _demo()), on=on,
                                 window_days=window_days, scope=access.scope)
    return GeoJSONResponse(coverage.blind_spots_geojson(items, only_blind=only_blind))


@router.get("/uncovered", response_class=GeoJSONResponse)
def uncovered(session: SessionDep, access: ReferenceAccess, district: District = None,
              min_area_m2: Annotated[float, Query(ge=0)] = 50.0):
    """Parts of the district that no grid covers."""
    return GeoJSONResponse(coverage.uncovered_areas(session, district=district or _demo(),
                                                    min_area_m2=min_area_m2))


@router.get("/forces")
def by_force(session: SessionDep, access: AnalyseAccess, district: District = None,
             since: date | None = None, until: date | None = None):
    """Site-days covered once per site and day, and what each force contributed."""
    until = until or today_cn()
    since = since or until - timedelta(days=29)
    if until < since:
        raise HTTPException(422, "until: must not be before since")
    return coverage.coverage_by_force(session, district=access.district(district, _demo()),
                                      since=since, until=until, scope=access.scope)


@router.post("/recompute")
def recompute(session: SessionDep, access: MaintainAccess, district: District = None):
    """Rebuild the per-project last-visit summary from the visits (repair, after bulk loads)."""
    try:
        n = patrols.recompute_visit_summary(session, district_code=district)
        session.commit()
    except Exception:
        session.rollback()
        raise
    return {"projects": n, "drift": patrols.summary_drift(session, district_code=district)}


def _demo() -> str:
    return get_settings().demo_district
