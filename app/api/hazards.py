"""Hazards and their loop, the violation catalogue, unregistered-work leads, incidents."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import text

from app.api.access import Access, ChangeAccess, ListAccess, ReadAccess, ReferenceAccess
from app.api.deps import GeoJSONResponse, SessionDep
from app.limits import PageLimit
from app.models import Hazard, UnregisteredWork
from app.services import hazards
from gis._errors import GisError

router = APIRouter(prefix="/api", tags=["hazards"])
District = Annotated[str | None, Query(pattern=r"^\d{12}$")]


class HazardIn(BaseModel):
    hazard_type: str = Field(..., description="fall_from_height, electric_shock, fire, ...")
    severity: Literal["immediate", "general", "major"]
    project: str | None = Field(None, description="project id or registration number")
    patrol_id: int | None = None
    location: dict[str, Any] | None = Field(None, description="GeoJSON Point; default the site")
    description: str | None = None
    photos: list[str] = []
    found_on: date | None = None
    responsible: dict[str, Any] | None = None
    actor: str = Field(..., min_length=1)


class HazardMoveIn(BaseModel):
    action: Literal["order", "rectify", "reject", "verify", "escalate"]
    actor: str = Field(..., min_length=1)
    on: date | None = None
    reason: str | None = None
    evidence: dict[str, Any] | None = Field(None, description='{"photos": [...], "note": ...}')
    violation_code: str | None = None
    department: str | None = None


class LeadIn(BaseModel):
    location: dict[str, Any]
    channel: Literal["patrol", "public"]
    category: str | None = None
    description: str | None = None
    patrol_id: int | None = None
    photos: list[str] = []
    reported_on: date | None = None
    actor: str = Field(..., min_length=1)


class LeadMoveIn(BaseModel):
    action: Literal["register", "dismiss"]
    actor: str = Field(..., min_length=1)
    project: str | None = None
    reason: str | None = None


class IncidentIn(BaseModel):
    incident_type: str
    occurred_on: date
    location: dict[str, Any] | None = None
    project: str | None = None
    deaths: int = Field(0, ge=0)
    injuries: int = Field(0, ge=0)
    description: str | None = None
    actor: str = Field(..., min_length=1)


def _commit(session, fn, access: Access | None = None, table: str | None = None):
    """Run ``fn`` and commit; with ``access``, the row it wrote (``table``) must lie in the
    account's scope or nothing is kept (403)."""
    try:
        result = fn()
        if access is not None and table is not None:
            session.flush()
            if not access.visible(session, table, result.id):
                session.rollback()
                raise HTTPException(403, "location: outside your area")
        session.commit()
    except Exception:
        session.rollback()
        raise
    return result


def _check_refs(session, access: Access, *, project: str | None = None,
                patrol_id: int | None = None) -> None:
    """Referenced objects must be visible to the account: one outside its scope is refused
    exactly as one that does not exist."""
    if project not in (None, ""):
        ref = str(project)
        by_id = " OR t.id = :i" if ref.isascii() and ref.isdigit() and len(ref) < 10 else ""
        predicate, params = access.where("t", geom="site")
        found = session.execute(text(
            f"SELECT 1 FROM projects t WHERE (t.reg_no = :r{by_id}) AND {predicate}"),
            {"r": ref, "i": int(ref) if by_id else None, **params}).first()
        if found is None:
            raise GisError(f"project: no project {ref}")
    if patrol_id is not None and not access.visible(session, "patrols", patrol_id,
                                                    own="inspector_id"):
        raise GisError(f"patrol_id: no patrol {patrol_id}")


@router.post("/hazards", response_class=GeoJSONResponse, status_code=201)
def create_hazard(body: HazardIn, session: SessionDep, access: ChangeAccess):
    """Record a hazard; its rectification deadline follows from the severity (working days)."""
    _check_refs(session, access, project=body.project, patrol_id=body.patrol_id)
    args = {**body.model_dump(), "actor": access.actor(body.actor)}
    hazard = _commit(session, lambda: hazards.report_hazard(session, **args), access, "hazards")
    return GeoJSONResponse(hazards.hazard_feature(session, hazard.id), status_code=201)


@router.get("/hazards", response_class=GeoJSONResponse)
def list_hazards(session: SessionDep, access: ListAccess, district: District = None,
                 state: str | None = None, since: date | None = None,
                 until: date | None = None,
                 limit: Annotated[int, Query(ge=1, le=20000)] = 5000):
    """Hazards as a map layer."""
    return GeoJSONResponse(hazards.layer(session, "hazards", district=district, since=since,
                                         until=until, state=state, limit=limit,
                                         scope=access.scope))


@router.get("/hazards/overdue")
def overdue(session: SessionDep, access: ListAccess, district: District = None,
            street: str | None = None, on: date | None = None):
    """Open hazards past their rectification deadline, most late first."""
    items = hazards.overdue_hazards(session, district=district, street=street, on=on,
                                    scope=access.scope)
    return {"count": len(items), "items": items}


@router.get("/hazards/{hazard_id}", response_class=GeoJSONResponse)
def get_hazard(hazard_id: int, session: SessionDep, access: ReadAccess):
    """One hazard."""
    visible = access.visible(session, "hazards", hazard_id)
    feature = hazards.hazard_feature(session, hazard_id) if visible else None
    if feature is None:
        raise HTTPException(404, f"hazard: no hazard {hazard_id}")
    return GeoJSONResponse(feature)


@router.post("/hazards/{hazard_id}/transitions", response_class=GeoJSONResponse)
def move_hazard(hazard_id: int, body: HazardMoveIn, session: SessionDep, access: ChangeAccess):
    """order → rectify (evidence) → verify; reject back to ordered; escalate to enforcement."""
    hazard = session.get(Hazard, hazard_id) if access.visible(session, "hazards",
                                                              hazard_id) else None
    if hazard is None:
        raise HTTPException(404, f"hazard: no hazard {hazard_id}")
    args = {**body.model_dump(), "actor": access.actor(body.actor)}
    _commit(session, lambda: hazards.transition(session, hazard=hazard, **args))
    return GeoJSONResponse(hazards.hazard_feature(session, hazard_id))


@router.get("/violations")
def violations(session: SessionDep, access: ReferenceAccess):
    """The enforcement catalogue (category, item, clause, legal basis, measure, department)."""
    return {"items": hazards.catalogue(session)}


@router.post("/unregistered", status_code=201)
def report_unregistered(body: LeadIn, session: SessionDep, access: ChangeAccess):
    """Work seen without registration: matched to active registrations nearby, or a lead."""
    _check_refs(session, access, patrol_id=body.patrol_id)
    args = {**body.model_dump(), "actor": access.actor(body.actor)}
    lead = _commit(session, lambda: hazards.report_unregistered(session, **args), access,
                   "unregistered_works")
    return {"id": lead.id, "state": lead.state, "matched_project_id": lead.matched_project_id,
            "match_distance_m": lead.match_distance_m, "candidates": lead.candidates}


@router.get("/unregistered", response_class=GeoJSONResponse)
def list_unregistered(session: SessionDep, access: ListAccess, district: District = None,
                      state: str | None = None, since: date | None = None,
                      until: date | None = None, limit: PageLimit = 5000):
    """Unregistered-work reports and leads as a map layer (newest first)."""
    return GeoJSONResponse(hazards.layer(session, "unregistered_works", district=district,
                                         since=since, until=until, state=state,
                                         scope=access.scope, limit=limit))


@router.post("/unregistered/{lead_id}/transitions")
def resolve_lead(lead_id: int, body: LeadMoveIn, session: SessionDep, access: ChangeAccess):
    """Close a lead: ``register`` (name the project) or ``dismiss`` (say why)."""
    lead = session.get(UnregisteredWork, lead_id) if access.visible(
        session, "unregistered_works", lead_id) else None
    if lead is None:
        raise HTTPException(404, f"lead: no unregistered-work report {lead_id}")
    _check_refs(session, access, project=body.project)
    args = {**body.model_dump(), "actor": access.actor(body.actor)}
    _commit(session, lambda: hazards.resolve_lead(session, lead=lead, **args))
    return {"id": lead.id, "state": lead.state, "matched_project_id": lead.matched_project_id}


@router.post("/incidents", status_code=201)
def create_incident(body: IncidentIn, session: SessionDep, access: ChangeAccess):
    """Record an accident (type, day, place, casualties)."""
    _check_refs(session, access, project=body.project)
    args = {**body.model_dump(), "actor": access.actor(body.actor)}
    incident = _commit(session, lambda: hazards.record_incident(session, **args), access,
                       "incidents")
    return {"id": incident.id, "district_code": incident.district_code,
            "grid_code": incident.grid_code}


@router.get("/incidents", response_class=GeoJSONResponse)
def list_incidents(session: SessionDep, access: ListAccess, district: District = None,
                   since: date | None = None, until: date | None = None,
                   limit: PageLimit = 5000):
    """Incidents as a map layer of their own (newest first)."""
    return GeoJSONResponse(hazards.layer(session, "incidents", district=district, since=since,
                                         until=until, scope=access.scope, limit=limit))
