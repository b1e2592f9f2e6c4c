"""Hazards and their loop, enforcement, unregistered-work leads and incidents.

Hazard (隐患) loop: found → ordered → rectified (with evidence) → verified; a rectification
the inspector does not accept goes back to ordered; refusal or a serious violation → escalated
to enforcement with an item of the violation catalogue and the department that acts. The
deadline is counted in Chinese working days from the day found, by severity. Every move is
audited (entity ``hazard``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.access import Scope
from app.geoinput import parse_geometry
from app.models import Hazard, Incident, Project, UnregisteredWork, ViolationItem
from app.patrol_rules import HAZARD_TYPES, SEVERITIES, PatrolRules, get_patrol_rules
from app.services import audit
from app.services import calendar as workcal
from app.services.registration import today_cn
from gis._errors import GisError


@dataclass(frozen=True)
class HazardMove:
    sources: tuple[str, ...]
    target: str


HAZARD_MOVES = {
    "order": HazardMove(("found",), "ordered"),
    "rectify": HazardMove(("found", "ordered"), "rectified"),
    "reject": HazardMove(("rectified",), "ordered"),
    "verify": HazardMove(("rectified",), "verified"),
    "escalate": HazardMove(("found", "ordered", "rectified"), "escalated"),
}
OPEN_STATES = ("found", "ordered")
INCIDENT_TYPES = dict(HAZARD_TYPES)


def _point(location: dict[str, Any] | None, field: str = "location") -> str | None:
    if location is None:
        return None
    # Structure, finite degrees inside China, 2D (an altitude is dropped).
    point = parse_geometry(location, field, types=("Point",))
    return json.dumps({"type": "Point", "coordinates": [point.x, point.y]})


def _project(session: Session, ref: str | int | None) -> Project | None:
    if ref in (None, ""):
        return None
    ref = str(ref)
    cond = Project.reg_no == ref
    if ref.isascii() and ref.isdigit() and len(ref) < 10:
        cond = cond | (Project.id == int(ref))
    project = session.scalar(select(Project).where(cond))
    if project is None:
        raise GisError(f"project: no project {ref}")
    return project


def _place(session: Session, geojson: str) -> Any:
    return session.execute(text(
        """SELECT g.code AS grid_code, g.parent_code AS community_code,
                  c.parent_code AS street_code, g.district_code
           FROM grids g LEFT JOIN communities c ON c.code = g.parent_code AND c.valid_to IS NULL
           WHERE g.valid_to IS NULL
             AND ST_Covers(g.geom, ST_SetSRID(ST_GeomFromGeoJSON(:gj), 4326))
           ORDER BY g.code COLLATE "C" LIMIT 1"""), {"gj": geojson}).first()


def _located(session: Session, location: dict | None, project: Project | None
             ) -> tuple[str, dict[str, str | None]]:
    """(GeoJSON of the point, place codes): the given point, else the project's site."""
    gj = _point(location)
    if gj is None:
        if project is None:
            raise GisError("location: a GeoJSON Point or a project is required")
        gj = session.scalar(text("SELECT ST_AsGeoJSON(ST_PointOnSurface(site)) FROM projects "
                                 "WHERE id = :i"), {"i": project.id})
    where = _place(session, gj)
    codes = {"grid_code": None, "community_code": None, "street_code": None,
             "district_code": project.district_code if project else None}
    if where is not None:
        codes.update(dict(where._mapping))
    if codes["district_code"] is None:
        raise GisError("location: outside every grid of the territory")
    return gj, codes


def due_date(session: Session, *, found_on: date, severity: str,
             rules: PatrolRules | None = None) -> date:
    """The rectification deadline: N working days after the day found (0: that day)."""
    rules = rules or get_patrol_rules()
    days = rules.rectify_working_days[severity]
    return workcal.load(session).add_working_days(found_on, days)


def report_hazard(
    session: Session,
    *,
    actor: str,
    hazard_type: str,
    severity: str,
    project: str | int | None = None,
    patrol_id: int | None = None,
    location: dict[str, Any] | None = None,
    description: str | None = None,
    photos: list[str] | None = None,
    found_on: date | None = None,
    responsible: dict[str, Any] | None = None,
    source: str = "api",
    rules: PatrolRules | None = None,
) -> Hazard:
    """Record a hazard found on patrol; its deadline follows from the severity."""
    rules = rules or get_patrol_rules()
    if hazard_type not in HAZARD_TYPES:
        raise GisError(f"hazard_type: must be one of {', '.join(HAZARD_TYPES)}")
    if severity not in SEVERITIES or severity not in rules.rectify_working_days:
        raise GisError(f"severity: must be one of {', '.join(SEVERITIES)}")
    found_on = found_on or today_cn()
    if found_on > today_cn():
        raise GisError("found_on: must not be in the future")
    proj = _project(session, project)
    if patrol_id is not None and session.scalar(
            text("SELECT 1 FROM patrols WHERE id = :i"), {"i": patrol_id}) is None:
        raise GisError(f"patrol_id: no patrol {patrol_id}")
    gj, codes = _located(session, location, proj)
    if responsible is None:
        responsible = ({"party": "contractor", **(proj.contractor or {})} if proj
                       else {"party": "unknown"})
    hazard = Hazard(
        district_code=codes["district_code"], project_id=proj.id if proj else None,
        patrol_id=patrol_id, location=text_geom(gj), street_code=codes["street_code"],
        community_code=codes["community_code"], grid_code=codes["grid_code"],
        hazard_type=hazard_type, severity=severity, description=description,
        photos=photos or [], found_on=found_on, found_by=actor, responsible=responsible,
        due_on=due_date(session, found_on=found_on, severity=severity, rules=rules),
        state="found", source=source)
    session.add(hazard)
    session.flush()
    audit.record(session, actor=actor, entity="hazard", entity_id=hazard.id, action="find",
                 to_state="found", reason=f"{HAZARD_TYPES[hazard_type]} · {SEVERITIES[severity]}",
                 district_code=hazard.district_code,
                 data={"project_id": hazard.project_id, "due_on": hazard.due_on.isoformat()})
    return hazard


def text_geom(geojson: str):
    return func.ST_SetSRID(func.ST_GeomFromGeoJSON(geojson), 4326)


def transition(
    session: Session,
    *,
    hazard: Hazard,
    action: str,
    actor: str,
    on: date | None = None,
    reason: str | None = None,
    evidence: dict[str, Any] | None = None,
    violation_code: str | None = None,
    department: str | None = None,
) -> Hazard:
    """Move a hazard through its loop; audited with from/to state and why."""
    move = HAZARD_MOVES.get(action)
    if move is None:
        raise GisError(f"action: must be one of {', '.join(HAZARD_MOVES)}")
    if hazard.state not in move.sources:
        allowed = [a for a, m in HAZARD_MOVES.items() if hazard.state in m.sources]
        raise GisError(f"action: cannot {action} a hazard that is {hazard.state} "
                       f"(allowed: {', '.join(allowed) or 'none'})")
    on = on or today_cn()
    if on < hazard.found_on:
        raise GisError("on: must not be before the day the hazard was found")
    data: dict[str, Any] = {"on": on.isoformat()}
    if action == "order":
        hazard.ordered_on = on
    elif action == "rectify":
        photos = (evidence or {}).get("photos") or []
        if not photos and not (evidence or {}).get("note"):
            raise GisError("evidence: photos or a note showing the rectification are required")
        hazard.rectified_on, hazard.evidence = on, evidence
        data["on_time"] = on <= hazard.due_on
    elif action == "reject":
        if not reason:
            raise GisError("reason: say why the rectification is not accepted")
        hazard.rectified_on = None
    elif action == "verify":
        hazard.verified_on = on
    elif action == "escalate":
        if not violation_code:
            raise GisError("violation_code: an item of the violation catalogue is required")
        item = session.get(ViolationItem, violation_code)
        if item is None:
            raise GisError(f"violation_code: no catalogue item {violation_code}")
        hazard.violation_code = item.code
        hazard.enforcement_department = department or item.department
        hazard.escalated_on = on
        data.update(violation=item.item, legal_basis=item.legal_basis, measure=item.measure,
                    department=hazard.enforcement_department)
    before = hazard.state
    hazard.state = move.target
    hazard.updated_at = func.now()
    audit.record(session, actor=actor, entity="hazard", entity_id=hazard.id, action=action,
                 from_state=before, to_state=move.target, reason=reason,
                 district_code=hazard.district_code, data=data)
    session.flush()
    return hazard


def overdue_hazards(session: Session, *, district: str | None = None, on: date | None = None,
                    street: str | None = None, scope: Scope | None = None
                    ) -> list[dict[str, Any]]:
    """Open hazards past their deadline, most late first, with who must rectify.

    ``scope`` (an account's) keeps the hazards inside it; None: all.
    """
    on = on or today_cn()
    predicate, scope_params = (scope or Scope.everything()).sql("h")
    rows = session.execute(text(
        f"""SELECT h.id, h.hazard_type, h.severity, h.state, h.found_on, h.due_on,
                  :on - h.due_on AS days_late, h.responsible, h.project_id, p.reg_no,
                  h.street_code, h.community_code, h.grid_code,
                  ST_X(h.location) AS lon, ST_Y(h.location) AS lat
           FROM hazards h LEFT JOIN projects p ON p.id = h.project_id
           WHERE h.state = ANY(:open) AND h.due_on < :on
             AND (CAST(:d AS text) IS NULL OR h.district_code = :d)
             AND (CAST(:s AS text) IS NULL OR h.street_code = :s)
             AND {predicate}
           ORDER BY days_late DESC, h.id"""),
        {"on": on, "open": list(OPEN_STATES), "d": district, "s": street,
         **scope_params}).mappings().all()
    return [dict(r) for r in rows]


def hazard_feature(session: Session, hazard_id: int) -> dict[str, Any] | None:
    row = session.execute(text(
        """SELECT h.*, ST_AsGeoJSON(h.location, 7)::json AS gj FROM hazards h WHERE h.id = :i"""),
        {"i": hazard_id}).mappings().first()
    if row is None:
        return None
    return _feature(row)


def _feature(row) -> dict[str, Any]:
    props = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in row.items()
             if k not in ("gj", "location")}
    return {"type": "Feature", "id": row["id"], "geometry": row["gj"], "properties": props}


def layer(session: Session, table: str, *, district: str | None, since: date | None = None,
          until: date | None = None, state: str | None = None, limit: int = 5000,
          scope: Scope | None = None) -> dict:
    """hazards, unregistered_works or incidents as a FeatureCollection.

    ``scope`` (an account's) keeps the rows inside it; None: all.
    """
    day = {"hazards": "found_on", "unregistered_works": "reported_on",
           "incidents": "occurred_on"}[table]
    predicate, scope_params = (scope or Scope.everything()).sql("t")
    rows = session.execute(text(
        f"""SELECT t.*, ST_AsGeoJSON(t.location, 7)::json AS gj FROM {table} t
            WHERE (CAST(:d AS text) IS NULL OR t.district_code = :d)
              AND (CAST(:s AS date) IS NULL OR t.{day} >= :s)
              AND (CAST(:u AS date) IS NULL OR t.{day} <= :u)
              {"AND t.state = :st" if state and table != "incidents" else ""}
              AND {predicate}
            ORDER BY t.{day} DESC, t.id DESC LIMIT :lim"""),
        {"d": district, "s": since, "u": until, "st": state, "lim": limit,
         **scope_params}).mappings().all()
    return {"type": "FeatureCollection", "features": [_feature(r) for r in rows]}


# --- unregistered works ---------------------------------------------------------------------


def report_unregistered(
    session: Session,
    *,
    actor: str,
    location: dict[str, Any],
    channel: str,
    category: str | None = None,
    description: str | None = None,
    patrol_id: int | None = None,
    photos: list[str] | None = None,
    reported_on: date | None = None,
    source: str = "api",
    rules: PatrolRules | None = None,
) -> UnregisteredWork:
    """Record work seen without a registration; match it to active registrations nearby."""
    from app.rules import get_rules

    rules = rules or get_patrol_rules()
    if channel not in ("patrol", "public"):
        raise GisError("channel: must be patrol or public")
    if category is not None and category not in get_rules().categories:
        raise GisError(f"category: unknown category {category}")
    gj, codes = _located(session, location, None)
    kind = get_rules().category_kind(category) if category else None
    candidates = session.execute(text(
        """SELECT p.id, p.reg_no, p.category, p.kind, p.state,
                  round(ST_Distance(p.site::geography, pt.g::geography)::numeric, 1) AS distance_m
           FROM projects p, (SELECT ST_SetSRID(ST_GeomFromGeoJSON(:gj), 4326) AS g) pt
           WHERE p.state = ANY(:active)
             AND ST_DWithin(p.site::geography, pt.g::geography, :d)
           ORDER BY ST_Distance(p.site::geography, pt.g::geography) LIMIT 10"""),
        {"gj": gj, "active": list(rules.active_states),
         "d": rules.lead_match_distance_m}).mappings().all()
    candidates = [{**dict(c), "distance_m": float(c["distance_m"])} for c in candidates]
    match = next((c for c in candidates
                  if category is None or c["category"] == category or c["kind"] == kind), None)
    lead = UnregisteredWork(
        district_code=codes["district_code"], location=text_geom(gj),
        street_code=codes["street_code"], community_code=codes["community_code"],
        grid_code=codes["grid_code"], category=category, description=description,
        channel=channel, reported_by=actor, reported_on=reported_on or today_cn(),
        patrol_id=patrol_id, photos=photos or [], state="matched" if match else "lead",
        matched_project_id=match["id"] if match else None,
        match_distance_m=match["distance_m"] if match else None, candidates=candidates,
        source=source)
    session.add(lead)
    session.flush()
    audit.record(session, actor=actor, entity="unregistered_work", entity_id=lead.id,
                 action="report", to_state=lead.state, district_code=lead.district_code,
                 reason=(f"matches {match['reg_no']} at {match['distance_m']} m" if match
                         else "no active registration nearby: a lead for registration"))
    return lead


def resolve_lead(session: Session, *, lead: UnregisteredWork, action: str, actor: str,
                 project: str | int | None = None, reason: str | None = None
                 ) -> UnregisteredWork:
    """``register`` (the work got registered: name the project) or ``dismiss`` (why)."""
    if lead.state not in ("lead", "matched"):
        raise GisError(f"action: the lead is already {lead.state}")
    before = lead.state
    if action == "register":
        proj = _project(session, project)
        if proj is None:
            raise GisError("project: the registration that resolves the lead is required")
        lead.matched_project_id, lead.state = proj.id, "registered"
    elif action == "dismiss":
        if not reason:
            raise GisError("reason: say why the lead is dismissed")
        lead.state = "dismissed"
    else:
        raise GisError("action: must be register or dismiss")
    audit.record(session, actor=actor, entity="unregistered_work", entity_id=lead.id,
                 action=action, from_state=before, to_state=lead.state, reason=reason,
                 district_code=lead.district_code)
    session.flush()
    return lead


# --- incidents ------------------------------------------------------------------------------


def record_incident(
    session: Session,
    *,
    actor: str,
    incident_type: str,
    occurred_on: date,
    location: dict[str, Any] | None = None,
    project: str | int | None = None,
    deaths: int = 0,
    injuries: int = 0,
    description: str | None = None,
    source: str = "api",
) -> Incident:
    """An accident at a small work: its own layer, audited."""
    if incident_type not in INCIDENT_TYPES:
        raise GisError(f"incident_type: must be one of {', '.join(INCIDENT_TYPES)}")
    if occurred_on > today_cn():
        raise GisError("occurred_on: must not be in the future")
    if deaths < 0 or injuries < 0:
        raise GisError("deaths: casualties cannot be negative")
    proj = _project(session, project)
    gj, codes = _located(session, location, proj)
    incident = Incident(
        district_code=codes["district_code"], project_id=proj.id if proj else None,
        incident_type=incident_type, occurred_on=occurred_on, location=text_geom(gj),
        street_code=codes["street_code"], community_code=codes["community_code"],
        grid_code=codes["grid_code"], deaths=deaths, injuries=injuries,
        work_kind=proj.kind if proj else None, description=description, source=source)
    session.add(incident)
    session.flush()
    audit.record(session, actor=actor, entity="incident", entity_id=incident.id,
                 action="record", to_state="recorded", district_code=incident.district_code,
                 reason=f"{INCIDENT_TYPES[incident_type]}: {deaths} dead, {injuries} injured")
    return incident


def catalogue(session: Session) -> list[dict[str, Any]]:
    items = session.scalars(select(ViolationItem).order_by(ViolationItem.code)).all()
    return [{c.name: getattr(i, c.name) for c in ViolationItem.__table__.columns}
            for i in items]
