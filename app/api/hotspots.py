"""Hotspot maps of hazards and incidents: tested rates, density, clusters, change over time."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response

from app.api.access import AnalyseAccess
from app.api.deps import GeoJSONResponse, SessionDep
from app.config import get_settings
from app.services import hotspots

router = APIRouter(prefix="/api", tags=["hotspots"])


def _filters(
    session: SessionDep,
    access: AnalyseAccess,
    district: Annotated[str | None, Query(description="12 digits; default: the demo")] = None,
    events: Annotated[str, Query(description="hazards or incidents")] = "hazards",
    hazard_type: Annotated[str | None, Query(description="comma list, e.g. fall_from_height, "
                                                         "electric_shock, fire, collapse")] = None,
    severity: Annotated[str | None, Query(description="hazards: immediate, general, major")] = None,
    kind: Annotated[str | None, Query(description="small_project or sporadic_work")] = None,
    category: Annotated[str | None, Query(description="project category code")] = None,
    street: Annotated[str | None, Query(description="street code")] = None,
    community: Annotated[str | None, Query(description="community code")] = None,
) -> hotspots.Filters:
    # The map of a street or community account is the map of its own area: the statistics
    # (and their neighbours) never see events from outside it.
    scope = access.scope
    if not scope.unrestricted:
        if scope.estate_ids is not None or scope.level not in ("district", "street",
                                                               "community"):
            raise HTTPException(403, "scope: hotspot maps need a community, street or "
                                     "district account")
        district = access.district(district, get_settings().demo_district)
        access.require_unit(street, "street")
        access.require_unit(community, "community")
        if scope.level == "street" and not street and not community:
            street = scope.code
        elif scope.level == "community" and not community:
            community = scope.code
    return hotspots.make_filters(
        session, district=district, events=events, hazard_type=hazard_type, severity=severity,
        kind=kind, category=category, street=street, community=community)


def _units(
    units: Annotated[str, Query(description="grid, h3 or fishnet")] = "grid",
    resolution: Annotated[int, Query(description="H3 resolution 8-10")] = 9,
    cell_m: Annotated[float, Query(gt=0, description="fishnet cell side, metres")] = 500.0,
    measure: Annotated[str, Query(description="per_project, per_visit or count")] = "per_project",
    fdr: bool = True,
    min_exposure: Annotated[float, Query(gt=0)] = 1.0,
) -> dict[str, Any]:
    return {"units": units, "resolution": resolution, "cell_m": cell_m, "measure": measure,
            "fdr": fdr, "min_exposure": min_exposure}


FiltersDep = Annotated[hotspots.Filters, Depends(_filters)]
UnitsDep = Annotated[dict[str, Any], Depends(_units)]


def _map(session, filters, units, start, end, statistic, alpha) -> hotspots.HotspotResult:
    return hotspots.hotspot_map(session, filters=filters, start=start, end=end,
                                statistic=statistic, alpha=alpha, **units)


@router.get("/hotspots", response_class=GeoJSONResponse)
def hotspot_map(
    session: SessionDep,
    filters: FiltersDep,
    units: UnitsDep,
    start: date | None = None,
    end: date | None = None,
    statistic: Annotated[str, Query(description="gi_star or local_moran")] = "gi_star",
    alpha: Annotated[float, Query(gt=0, lt=1, description="LISA significance")] = 0.05,
):
    """Hot and cold spots of hazard or incident rates per unit (Gi* with FDR by default)."""
    result = _map(session, filters, units, start, end, statistic, alpha)
    return GeoJSONResponse(hotspots.feature_collection(result))


@router.get("/hotspots.csv", response_class=Response)
def hotspot_csv(
    session: SessionDep,
    filters: FiltersDep,
    units: UnitsDep,
    start: date | None = None,
    end: date | None = None,
    statistic: str = "gi_star",
    alpha: Annotated[float, Query(gt=0, lt=1)] = 0.05,
):
    """The hotspot map as CSV, one row per unit."""
    result = _map(session, filters, units, start, end, statistic, alpha)
    return Response(hotspots.csv_text(result), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="hotspots.csv"'})


@router.get("/hotspots/compare", response_class=GeoJSONResponse)
def hotspot_compare(
    session: SessionDep,
    filters: FiltersDep,
    units: UnitsDep,
    a_start: date,
    a_end: date,
    b_start: date,
    b_end: date,
    alpha: Annotated[float, Query(description="0.01, 0.05 or 0.1")] = 0.05,
):
    """New, persisting and ceased hot (and cold) spots between an earlier and a later period."""
    result = hotspots.compare(session, filters=filters, a_start=a_start, a_end=a_end,
                              b_start=b_start, b_end=b_end, alpha=alpha, **units)
    return GeoJSONResponse(hotspots.feature_collection(result))


@router.get("/hotspots/emerging", response_class=GeoJSONResponse)
def hotspot_emerging(
    session: SessionDep,
    filters: FiltersDep,
    units: UnitsDep,
    start: date | None = None,
    end: date | None = None,
    freq: Annotated[str, Query(description="M (months) or W (weeks)")] = "M",
    alpha: Annotated[float, Query(gt=0, lt=1)] = 0.05,
):
    """Emerging hot spot class of each unit over monthly bins (rules: gis/emerging.py)."""
    result = hotspots.emerging(session, filters=filters, start=start, end=end, freq=freq,
                               alpha=alpha, **units)
    return GeoJSONResponse(hotspots.feature_collection(result))


@router.get("/hotspots/density", response_class=GeoJSONResponse)
def hotspot_density(
    session: SessionDep,
    filters: FiltersDep,
    start: date | None = None,
    end: date | None = None,
    cell_m: Annotated[float, Query(gt=0)] = 100.0,
    bandwidth_m: Annotated[float | None, Query(gt=0, description="default: Silverman")] = None,
    output: Annotated[str, Query(description="contours or cells")] = "contours",
):
    """Kernel density of the events (quartic kernel), with the bandwidth rule used."""
    return GeoJSONResponse(hotspots.density(session, filters=filters, start=start, end=end,
                                            cell_m=cell_m, bandwidth_m=bandwidth_m,
                                            output=output))


@router.get("/hotspots/clusters", response_class=GeoJSONResponse)
def hotspot_clusters(
    session: SessionDep,
    filters: FiltersDep,
    start: date | None = None,
    end: date | None = None,
    eps_m: Annotated[float, Query(gt=0)] = 200.0,
    min_samples: Annotated[int, Query(ge=1)] = 5,
    hull: Annotated[str, Query(description="convex or concave")] = "convex",
):
    """DBSCAN clusters of the events (distances in metres) and their outlines."""
    return GeoJSONResponse(hotspots.clusters(session, filters=filters, start=start, end=end,
                                             eps_m=eps_m, min_samples=min_samples, hull=hull))
