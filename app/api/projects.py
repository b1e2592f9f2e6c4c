"""Projects: registration, the loop's transitions, overdue clocks, receipts, signboards, CSV."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import or_, select

from app.api.access import (
    Access,
    ChangeAccess,
    ExportAccess,
    ListAccess,
    MaintainAccess,
    ReadAccess,
    ReferenceAccess,
)
from app.api.deps import GeoJSONResponse, SessionDep
from app.api.territory import parse_bbox
from app.models import Project
from app.rules import KINDS, REVIEWERS, RISK_FACTORS, get_rules
from app.services import lifecycle, places, project_views, registration, signboard
from app.services.registration import RegistrationProblems

router = APIRouter(prefix="/api", tags=["projects"])


class Party(BaseModel):
    name: str | None = None
    contact: str | None = None
    phone: str | None = None


class RegistrationIn(BaseModel):
    """A declaration. Every field is checked together; what is missing comes back in one list."""

    kind: Literal["small_project", "sporadic_work"] | None = None
    category: str | None = Field(None, description="a category code from /api/rules")
    title: str | None = None
    address: str | None = None
    site: dict[str, Any] | None = Field(None, description="GeoJSON Point, Polygon or MultiPolygon")
    crs: Literal["wgs84", "gcj02"] = "wgs84"
    builder: Party | None = None
    contractor: Party | None = None
    investment_cny: float | None = Field(None, ge=0)
    floor_area_m2: float | None = Field(None, ge=0)
    planned_start: date | None = None
    planned_end: date | None = None
    risk_factors: list[str] = []
    public_area: bool = False
    channel: Literal["online", "window"] = "online"
    above_limit_reference: bool = False
    submitted_on: date | None = Field(None, description="default: today (Beijing time)")
    actor: str = Field("applicant", description="who submits: recorded for administrators "
                                                 "entering paper declarations; every other "
                                                 "account submits under its own name")


class TransitionIn(BaseModel):
    action: Literal["accept", "return", "refuse", "resubmit", "brief", "start",
                    "declare_completion", "close", "extend", "revoke"]
    actor: str = Field(..., min_length=1, description="who acts")
    on: date | None = Field(None, description="the day it happened (default: today)")
    reason: str | None = None
    ground: Literal["false_declaration", "permit_dodging", "beyond_scope",
                    "illegal_building"] | None = None
    finished_on: date | None = None
    new_planned_end: date | None = None
    changes: dict[str, Any] | None = Field(None, description="corrections, for resubmit")


def problems_response(exc: RegistrationProblems) -> JSONResponse:
    detail = [{"loc": ["body", *field.split(".")], "msg": f"{field}: {msg}", "type": "value_error"}
              for field, msg in exc.problems]
    return JSONResponse(status_code=422, content={"detail": detail})


def project_scope(access: Access | None):
    """The scope predicate on the ``projects`` table (sites are the estate geometry)."""
    from sqlalchemy import true

    return true() if access is None else access.scope.clause("projects", geom="site")


def get_project(session, ref: str, access: Access | None = None) -> Project:
    """A project by id, registration number or public id, inside the account's scope; 404
    otherwise (one outside the scope answers exactly as one that does not exist)."""
    cond = [Project.reg_no == ref, Project.public_id == ref]
    if ref.isascii() and ref.isdigit() and len(ref) < 10:
        cond.append(Project.id == int(ref))
    project = session.scalar(select(Project).where(or_(*cond)).where(project_scope(access)))
    if project is None:
        raise HTTPException(404, f"project: no project {ref}")
    return project


@router.get("/rules")
def get_rules_doc(access: ReferenceAccess):
    """The registration rules in force: kinds, categories, risk factors, departments, limits."""
    rules = get_rules()
    return {
        "kinds": KINDS,
        "categories": {k: {"kind": v[0], "name": v[1], "departments": v[2]}
                       for k, v in rules.categories.items()},
        "risk_factors": RISK_FACTORS,
        "high_risk_factors": rules.high_risk_factors,
        "forbidden": rules.forbidden,
        "departments": rules.departments,
        "reviewers": REVIEWERS,
        "special_kinds": {k: {"name": v[0], "department": v[1]}
                          for k, v in rules.special_kinds.items()},
        "limit": {"investment_cny": rules.limit_investment_cny,
                  "floor_area_m2": rules.limit_floor_area_m2},
        "special_area_distance_m": rules.special_area_distance_m,
        "clocks": {"review_working_days": rules.review_working_days,
                   "briefing_working_days": rules.briefing_working_days,
                   "completion_working_days": rules.completion_working_days,
                   "validity_months": rules.validity_months,
                   "extension_months": rules.extension_months,
                   "max_extensions": rules.max_extensions},
    }


@router.post("/projects", status_code=201, response_class=GeoJSONResponse)
def register(
    session: SessionDep,
    access: ChangeAccess,
    body: Annotated[RegistrationIn, Body()],
    dry_run: Annotated[bool, Query(description="decide and answer, store nothing")] = False,
):
    """Register a small work: checked, decided, routed and stored (refusals too, with why)."""
    raw = body.model_dump(exclude={"actor"}, exclude_none=True)
    for party in ("builder", "contractor"):
        raw.setdefault(party, {})
    try:
        if dry_run:
            reg = registration.parse_registration(raw)
            decision = registration.decide(session, reg)
            return GeoJSONResponse({"dry_run": True, **decision.as_dict(get_rules()),
                                    "jurisdiction": decision.jurisdiction.as_dict()},
                                   status_code=200)
        project = registration.submit(session, raw=raw, actor=access.actor(body.actor),
                                      source="api")
        session.flush()
        if not access.visible(session, "projects", project.id, geom="site"):
            session.rollback()
            raise HTTPException(403, "site: outside your area")
        session.commit()
    except RegistrationProblems as exc:
        session.rollback()
        return problems_response(exc)
    except Exception:
        session.rollback()
        raise
    return GeoJSONResponse(project_views.feature(session, project), status_code=201)


@router.get("/projects", response_class=GeoJSONResponse)
def list_projects(
    session: SessionDep,
    access: ListAccess,
    state: Annotated[str | None, Query()] = None,
    district: Annotated[str | None, Query(pattern=r"^\d{12}$")] = None,
    street: str | None = None,
    community: str | None = None,
    grid: str | None = None,
    kind: str | None = None,
    category: str | None = None,
    high_risk: bool | None = None,
    submitted_from: date | None = None,
    submitted_to: date | None = None,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    offset: Annotated[int, Query(ge=0)] = 0,
):
    """Projects as GeoJSON, filtered by place, state, kind and date."""
    stmt = project_views.filtered(
        district=district, street=street, community=community, grid=grid, state=state,
        kind=kind, category=category, high_risk=high_risk, submitted_from=submitted_from,
        submitted_to=submitted_to, bbox=parse_bbox(bbox)).where(project_scope(access))
    return GeoJSONResponse(project_views.collection(session, stmt, limit=limit, offset=offset))


@router.get("/projects/export.csv", responses={200: {"content": {"text/csv": {}}}})
def export_csv(
    session: SessionDep,
    access: ExportAccess,
    state: str | None = None,
    district: Annotated[str | None, Query(pattern=r"^\d{12}$")] = None,
    street: str | None = None,
    community: str | None = None,
    grid: str | None = None,
    submitted_from: date | None = None,
    submitted_to: date | None = None,
):
    """Projects as CSV (UTF-8), the same filters as the list."""
    stmt = project_views.filtered(
        district=district, street=street, community=community, grid=grid, state=state,
        submitted_from=submitted_from, submitted_to=submitted_to).where(project_scope(access))
    return StreamingResponse(
        project_views.csv_rows(session, stmt), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="projects.csv"'})


@router.get("/projects/overdue")
def list_overdue(
    session: SessionDep,
    access: ListAccess,
    on: date | None = None,
    district: Annotated[str | None, Query(pattern=r"^\d{12}$")] = None,
    street: str | None = None,
    community: str | None = None,
    grid: str | None = None,
    actor_kind: Annotated[str | None, Query(description="reviewer kind or 'builder'")] = None,
    clock: Literal["review", "briefing", "completion_declaration", "validity"] | None = None,
):
    """Every clock that has run out, with who must act and how many working days late."""
    items = lifecycle.overdue(session, on=on, district=district, street=street,
                              community=community, grid=grid, actor_kind=actor_kind, clock=clock,
                              scope=access.scope)
    return {"on": on or registration.today_cn(), "count": len(items), "items": items}


@router.get("/projects/overdue/summary")
def overdue_summary(
    session: SessionDep,
    access: ListAccess,
    by: Literal["street", "community", "grid", "actor"] = "street",
    on: date | None = None,
    district: Annotated[str | None, Query(pattern=r"^\d{12}$")] = None,
):
    """Overdue counts by street, community, grid or who must act."""
    return {"by": by, "groups": lifecycle.overdue_summary(session, by=by, on=on,
                                                          district=district,
                                                          scope=access.scope)}


@router.post("/projects/expire")
def expire(session: SessionDep, access: MaintainAccess, on: date | None = None,
           actor: str = "system"):
    """Expire every registration whose validity has ended (run daily)."""
    try:
        count = lifecycle.expire_due(session, on=on, actor=access.actor(actor))
        session.commit()
    except Exception:
        session.rollback()
        raise
    return {"expired": count}


@router.get("/projects/{ref}", response_class=GeoJSONResponse)
def get_one(ref: str, session: SessionDep, access: ReadAccess):
    """One project (by id, registration number or public id) with its decision."""
    return GeoJSONResponse(project_views.feature(session, get_project(session, ref, access)))


@router.get("/projects/{ref}/history")
def get_history(ref: str, session: SessionDep, access: ReadAccess):
    """Every step of the project: who, when, from → to, why."""
    project = get_project(session, ref, access)
    return {"reg_no": project.reg_no, "history": lifecycle.history(session, project)}


@router.post("/projects/{ref}/transitions", response_class=GeoJSONResponse)
def move(ref: str, body: TransitionIn, session: SessionDep, access: ChangeAccess):
    """Move a project through the loop (accept, brief, start, declare_completion, close…)."""
    project = get_project(session, ref, access)
    try:
        lifecycle.transition(session, project=project,
                             **{**body.model_dump(), "actor": access.actor(body.actor)})
        session.commit()
    except RegistrationProblems as exc:
        session.rollback()
        return problems_response(exc)
    except Exception:
        session.rollback()
        raise
    return GeoJSONResponse(project_views.feature(session, project))


@router.get("/projects/{ref}/receipt")
def receipt(ref: str, session: SessionDep, access: ReadAccess):
    """The registration receipt (回执), issued when the registration is accepted."""
    project = get_project(session, ref, access)
    if project.receipt_no is None:
        raise HTTPException(409, f"state: no receipt while the project is {project.state}")
    return signboard.receipt(project)


@router.get("/projects/{ref}/signboard.{fmt}")
def get_signboard(ref: str, fmt: Literal["png", "pdf"], session: SessionDep,
                  access: ReadAccess):
    """The responsibility signboard (责任公示牌) with the project's QR code, PNG or PDF."""
    project = get_project(session, ref, access)
    if project.state in ("submitted", "returned", "refused"):
        raise HTTPException(409, f"state: no signboard while the project is {project.state}")
    content = signboard.render_png(project) if fmt == "png" else signboard.render_pdf(project)
    media = "image/png" if fmt == "png" else "application/pdf"
    return Response(content, media_type=media, headers={
        "Content-Disposition": f'inline; filename="{project.reg_no}.{fmt}"'})


@router.get("/special-places", response_class=GeoJSONResponse)
def special_places(session: SessionDep, access: ReferenceAccess, district: str | None = None):
    """Schools, hospitals, factories… (special closed areas) as GeoJSON."""
    return GeoJSONResponse(places.places_geojson(session, table="special_places",
                                                 district_code=district))


@router.get("/estates", response_class=GeoJSONResponse)
def estates(session: SessionDep, access: ReferenceAccess, district: str | None = None):
    """Residential estates and their property companies as GeoJSON (a property company's
    account sees its own estates only)."""
    return GeoJSONResponse(places.places_geojson(session, table="estates",
                                                 district_code=district,
                                                 estate_ids=access.scope.estate_ids))
