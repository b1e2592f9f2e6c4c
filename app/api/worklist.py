"""The grid manager's worklist: sites, hazards, overdue clocks and route in chosen grids.

Every grid asked for must lie inside the account's area (403 otherwise, naming it); the rows
returned carry the account's scope as well (a property company's estates). A site's card
outside the area is a 404, as if it did not exist.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from app.api.access import Access, ListAccess, ReadAccess
from app.api.deps import GeoJSONResponse, SessionDep
from app.models import Project
from app.services import territory, worklist

router = APIRouter(prefix="/api/worklist", tags=["worklist"])

Grids = Annotated[list[str], Query(description="grid codes; repeat or comma-separate")]


def _grids(session, grid: list[str], access: Access) -> list[dict]:
    """The grids asked for: known (else 422) and inside the account's area (else 403)."""
    found = worklist.check_grids(session, [c for value in grid for c in value.split(",")])
    for g in found:
        access.require_unit(g["code"], "grid")
    return found


def _scope(access: Access):
    return None if access.scope.unrestricted else access.scope


@router.get("/grids", response_class=GeoJSONResponse)
def grids(session: SessionDep, access: ListAccess, grid: Grids):
    """The grids named, outlines with community and street names (an unknown code is a 422)."""
    found = _grids(session, grid, access)
    fc = territory.level_geojson(session, "grid", codes=[g["code"] for g in found])
    names = {g["code"]: g for g in found}
    for feature in fc["features"]:
        feature["properties"].update(names[feature["properties"]["code"]])
    return GeoJSONResponse(fc)


@router.get("/sites", response_class=GeoJSONResponse)
def sites(session: SessionDep, access: ListAccess, grid: Grids):
    """Active sites in the grids: state, last visit, days since it, overdue or not."""
    codes = [g["code"] for g in _grids(session, grid, access)]
    items = worklist.active_sites(session, codes, scope=_scope(access))
    return GeoJSONResponse(worklist.points_geojson(items))


@router.get("/hazards", response_class=GeoJSONResponse)
def hazards(session: SessionDep, access: ListAccess, grid: Grids):
    """Hazards in the grids still open, or rectified and waiting to be verified."""
    codes = [g["code"] for g in _grids(session, grid, access)]
    items = worklist.followed_hazards(session, codes, scope=_scope(access))
    return GeoJSONResponse(worklist.points_geojson(items))


@router.get("/overdue")
def overdue(session: SessionDep, access: ListAccess, grid: Grids):
    """Loop clocks run out for projects in the grids (review, briefing, completion, validity)."""
    codes = [g["code"] for g in _grids(session, grid, access)]
    items = worklist.overdue_clocks(session, codes)
    return {"count": len(items), "items": items}


@router.get("/route", response_class=GeoJSONResponse)
def route(session: SessionDep, access: ListAccess, grid: Grids, on: date | None = None):
    """The day's stored patrol routes that stop in the grids (``plan`` null when none)."""
    codes = [g["code"] for g in _grids(session, grid, access)]
    return GeoJSONResponse(worklist.todays_route(session, codes, on=on))


@router.get("/sites/{project_id}/card")
def card(project_id: Annotated[int, Path(ge=1, le=2**31 - 1)], session: SessionDep,
         access: ReadAccess):
    """One site's card: facts, last visits, timeline (audit), photos, signboard links."""
    project = session.get(Project, project_id)
    if project is None or not access.visible(session, "projects", project_id, geom="site"):
        raise HTTPException(404, f"project: no project {project_id}")
    return worklist.site_card(session, project)
