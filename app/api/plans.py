"""Patrol route plans for dispatchers: the roster, the day's candidates, plans, re-plans, exports.

Plans are versioned and never overwritten: ``POST /api/plans/{id}/replan`` stores version
n + 1. Bad input gets a 422 naming the field (``pins``, ``fixed_orders``, ``inspectors``, ...).

Access: planning (candidates, plans, week plans, re-plans, issuing) needs the ``plan`` action;
reading a plan and its exports ``read``; the roster and the list of plans ``list``. A street
account plans its own street (the default when no street is named); a plan outside the
account's area answers 404 as if it did not exist; the audited actor is the account (an
administrator may name someone else).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from app.api.access import Access, ListAccess, PlanAccess, ReadAccess
from app.api.deps import GeoJSONResponse, SessionDep
from app.config import get_settings
from app.services import route_plans as rp
from app.services.inspectors import list_inspectors
from app.services.registration import today_cn

plans_router = APIRouter(prefix="/api/plans", tags=["plans"])
inspectors_router = APIRouter(prefix="/api/inspectors", tags=["plans"])

Code = Annotated[str, Field(pattern=r"^[0-9A-Za-z_.:-]{1,40}$")]
Site = Annotated[str, Field(pattern=r"^(project|hazard):[0-9]{1,18}$",
                            description="a candidate's site key, e.g. project:123")]
Actor = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$",
                             description="recorded as the actor when an administrator "
                                         "enters a plan for someone; others act as themselves")]
District = Annotated[str | None, Query(pattern=r"^\d{12}$", description="default: the demo")]
Street = Annotated[str | None, Query(pattern=r"^\d{6,24}$", description="street code")]
PlanId = Annotated[int, Path(ge=1, le=2**63 - 1)]
EARLIEST, LATEST = dt.date(2000, 1, 1), dt.date(2100, 12, 31)


class GPXResponse(Response):
    """GPX 1.1 (``application/gpx+xml``)."""

    media_type = "application/gpx+xml"


def _day(value: dt.date | None, field: str = "date") -> dt.date:
    day = value or today_cn() + dt.timedelta(days=1)
    if not EARLIEST <= day <= LATEST:
        raise rp.PlanInputError(f"{field}: must be between 2000 and 2100")
    return day


class PlanIn(BaseModel):
    date: dt.date | None = Field(None, description="default tomorrow (Beijing time)")
    street: str | None = Field(None, pattern=r"^\d{6,24}$", description="plan one street")
    district: str | None = Field(None, pattern=r"^\d{12}$", description="or a whole district")
    inspectors: list[Code] | Literal["all"] = Field(
        "all", description="inspector codes, or 'all' on duty in the street / district")
    deadline_s: float = Field(rp.DEFAULT_DEADLINE_S, gt=0, le=rp.MAX_DEADLINE_S)
    mode: Literal["walk", "ebike", "car"] | None = Field(None, description="override everyone's")
    pins: dict[Site, Code] = Field({}, description="site → inspector who must visit it")
    fixed_orders: dict[Code, list[Site]] = Field(
        {}, description="inspector → their first stops, in this order")
    matrix: Literal["auto", "roads", "straight_line"] = "auto"
    balance: float | None = Field(rp.DEFAULT_BALANCE, ge=0, le=100, description=(
        "travel seconds the plan may add per second taken off the busiest inspector; "
        "null: no balancing"))
    seed: int = Field(0, ge=0, le=2**31 - 1)
    actor: Actor = "dispatcher"


class ReplanIn(BaseModel):
    pins: dict[Site, Code] | None = Field(None, description="null keeps the parent's pins")
    fixed_orders: dict[Code, list[Site]] | None = Field(
        None, description="null keeps the parent's fixed orders")
    deadline_s: float | None = Field(None, gt=0, le=rp.MAX_DEADLINE_S)
    balance: float | None = Field(None, ge=0, le=100)
    refresh: bool = Field(False, description="recompute candidates and roster from today's data")
    actor: Actor = "dispatcher"


class WeekIn(BaseModel):
    date: dt.date | None = Field(None, description="first day; default tomorrow")
    days: int = Field(7, ge=1, le=14)
    street: str | None = Field(None, pattern=r"^\d{6,24}$")
    district: str | None = Field(None, pattern=r"^\d{12}$")
    inspectors: list[Code] | Literal["all"] = "all"
    deadline_s: float = Field(5.0, gt=0, le=30, description="per day")
    mode: Literal["walk", "ebike", "car"] | None = None
    matrix: Literal["auto", "roads", "straight_line"] = "auto"
    balance: float | None = Field(rp.DEFAULT_BALANCE, ge=0, le=100)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    actor: Actor = "dispatcher"


class IssueIn(BaseModel):
    actor: Actor = "dispatcher"


def _codes(value: list[str] | str) -> list[str] | None:
    return None if value == "all" else list(value)


def _commit(session, make):
    try:
        plan = make()
        session.commit()
    except Exception:
        session.rollback()
        raise
    return plan


def _found(session, plan_id: int, access: Access):
    """The plan if it exists and lies in the account's area; 404 otherwise."""
    try:
        plan = rp.get_plan(session, plan_id)
    except rp.PlanNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    if not access.scope.covers_unit(plan.street_code or plan.district_code):
        raise HTTPException(404, f"no plan {plan_id}")
    return plan


def _area(access: Access, district: str | None, street: str | None) -> tuple[str, str | None]:
    """The district and street a request may plan: a street account its own street."""
    if street:
        access.require_unit(street, "street")
    elif access.scope.level == "street" and access.scope.code:
        street = access.scope.code
    elif not access.scope.unrestricted:
        access.require_unit(district or access.scope.district, "district")
    return access.district(district, get_settings().demo_district), street


def _inspectors_in_scope(session, access: Access, codes: list[str] | None) -> None:
    if codes is None or access.scope.unrestricted:
        return
    for insp in list_inspectors(session, codes=codes, active_only=False):
        if not access.scope.covers_code(insp["community_code"] or insp["street_code"]):
            raise HTTPException(403, f"inspectors: {insp['code']} is outside your area")


def _roster_clause(access: Access):
    return access.scope.clause("inspectors", geom=None,
                               codes=("community_code", "street_code", "district_code"))


@inspectors_router.get("")
def inspectors(session: SessionDep, access: ListAccess, district: District = None,
               street: Street = None, active_only: bool = True):
    """The patrol roster: start point, mode, shift, lunch break, allowed grids, max stops."""
    items = list_inspectors(session, district=district, street=street, active_only=active_only,
                            where=_roster_clause(access))
    return {"count": len(items), "inspectors": items}


@plans_router.get("/candidates")
def candidates(
    session: SessionDep,
    access: PlanAccess,
    date: Annotated[dt.date | None, Query(description="default tomorrow")] = None,
    street: Street = None,
    district: District = None,
):
    """The sites to plan on a day: overdue sites (mandatory when high risk) and hazard
    re-inspections due (mandatory), with inspection time, window and who may go."""
    day = _day(date)
    district, street = _area(access, district, street)
    district_code, street_code = rp.resolve_scope(session, district, street)
    roster = list_inspectors(session, district=district_code, street=street_code)
    items = rp.candidates(session, day=day, district=district_code, street=street_code,
                          inspectors=roster or None)
    return {"date": day.isoformat(), "district_code": district_code, "street_code": street_code,
            "count": len(items), "mandatory": sum(1 for c in items if c["mandatory"]),
            "inspectors": [i["code"] for i in roster], "candidates": items}


@plans_router.get("")
def plans(session: SessionDep, access: ListAccess, district: District = None,
          street: Street = None, date: dt.date | None = None,
          limit: Annotated[int, Query(ge=1, le=500)] = 50):
    """Stored plans in the account's area, newest first."""
    where = access.scope.clause("route_plans", geom=None, codes=("street_code", "district_code"))
    return {"plans": rp.list_plans(session, district=district, street=street, on=date,
                                   limit=limit, where=where)}


@plans_router.post("", status_code=201)
def make_plan(session: SessionDep, access: PlanAccess, body: PlanIn):
    """Plan a day: candidates, travel matrix, solve within ``deadline_s``, store version 1."""
    day = _day(body.date)
    district, street = _area(access, body.district, body.street)
    _inspectors_in_scope(session, access, _codes(body.inspectors))
    plan = _commit(session, lambda: rp.make_plan(
        session, day=day, actor=access.actor(body.actor), district=district, street=street,
        inspector_codes=_codes(body.inspectors), deadline_s=body.deadline_s, mode=body.mode,
        pins=body.pins, fixed_orders=body.fixed_orders, matrix=body.matrix,
        balance=body.balance, seed=body.seed))
    return rp.plan_json(session, plan.id)


@plans_router.post("/week", status_code=201)
def make_week_plan(session: SessionDep, access: PlanAccess, body: WeekIn):
    """Plan several days: every active site at its frequency (high risk every 3 days, others
    every 7), spread over days, balanced across inspectors; ``deadline_s`` per day."""
    day = _day(body.date)
    district, street = _area(access, body.district, body.street)
    _inspectors_in_scope(session, access, _codes(body.inspectors))
    plan = _commit(session, lambda: rp.make_week_plan(
        session, start=day, actor=access.actor(body.actor), days=body.days, district=district,
        street=street, inspector_codes=_codes(body.inspectors), deadline_s=body.deadline_s,
        mode=body.mode, matrix=body.matrix, balance=body.balance, seed=body.seed))
    return rp.plan_json(session, plan.id)


@plans_router.get("/{plan_id}.geojson", response_class=GeoJSONResponse)
def plan_geojson(session: SessionDep, access: ReadAccess, plan_id: PlanId):
    """Routes (LineStrings, colour per inspector), stops (Points with sequence and ETA) and
    left-out sites (Points with the reason in English and Chinese)."""
    _found(session, plan_id, access)
    return GeoJSONResponse(rp.plan_geojson(session, plan_id))


@plans_router.get("/{plan_id}.gpx", response_class=GPXResponse,
                  responses={200: {"content": {"application/gpx+xml": {}},
                                   "description": "GPX 1.1"}})
def plan_gpx(session: SessionDep, access: ReadAccess, plan_id: PlanId):
    """GPX 1.1: per inspector a route of the stops and a track along the roads."""
    _found(session, plan_id, access)
    return GPXResponse(rp.plan_gpx(session, plan_id), headers={
        "Content-Disposition": f'attachment; filename="plan-{plan_id}.gpx"'})


@plans_router.get("/{plan_id}")
def plan(session: SessionDep, access: ReadAccess, plan_id: PlanId, include_inputs: bool = False):
    """A stored plan: per inspector the ordered stops with ETAs (HH:MM), navigation links and
    the road geometry; every left-out site with its reason; ``matrix_source``."""
    _found(session, plan_id, access)
    return rp.plan_json(session, plan_id, include_inputs=include_inputs)


@plans_router.post("/{plan_id}/replan", status_code=201)
def replan(session: SessionDep, access: PlanAccess, plan_id: PlanId, body: ReplanIn):
    """Version n + 1 with other pins / fixed orders, from the same stored inputs."""
    _found(session, plan_id, access)
    plan = _commit(session, lambda: rp.replan(
        session, plan_id=plan_id, actor=access.actor(body.actor), pins=body.pins,
        fixed_orders=body.fixed_orders, deadline_s=body.deadline_s, balance=body.balance,
        refresh=body.refresh))
    return rp.plan_json(session, plan.id)


@plans_router.post("/{plan_id}/issue")
def issue(session: SessionDep, access: PlanAccess, plan_id: PlanId, body: IssueIn):
    """Issue a draft plan to the inspectors."""
    _found(session, plan_id, access)
    _commit(session, lambda: rp.issue(session, plan_id=plan_id, actor=access.actor(body.actor)))
    return rp.plan_json(session, plan_id)


router = APIRouter()
router.include_router(inspectors_router)
router.include_router(plans_router)
