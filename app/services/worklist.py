"""What a grid manager has to do in their grids today: sites, overdue items, hazards, route.

The grid desk page reads these. Definitions follow :mod:`app.services.coverage` (a site is
*active* in the patrol rules' active states; it is *overdue* when its last visit — or, never
visited, the day work was allowed to start — lies more than its period back: 3 days high
risk, 7 others) so that the desk and the officials' blind-spot map count the same sites.

Today's route comes from the stored route plans (tables ``route_plans`` …, migration 0004).
A database without them yet simply has no route: the desk must work before plans exist.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.models import Project
from app.patrol_rules import PatrolRules, get_patrol_rules
from app.services import lifecycle
from app.services.registration import today_cn
from gis._errors import GisError

if TYPE_CHECKING:
    from app.access import Scope

CHINA = ZoneInfo("Asia/Shanghai")
MAX_GRIDS = 50
# Hazard states a grid manager follows: open ones, and rectified ones waiting to be verified.
FOLLOWED_HAZARD_STATES = ("found", "ordered", "rectified")
# States in which a project has a signboard (see app/api/projects.py get_signboard).
NO_SIGNBOARD_STATES = ("submitted", "returned", "refused")
_DUE_FROM = "coalesce(p.started_on, p.briefed_on, p.accepted_on, p.submitted_on)"


def check_grids(session: Session, codes: list[str]) -> list[dict[str, Any]]:
    """The current grids named, with community and street; an unknown code is a 422."""
    codes = list(dict.fromkeys(c.strip() for c in codes if c and c.strip()))
    if not codes:
        raise GisError("grid: name at least one grid code")
    if len(codes) > MAX_GRIDS:
        raise GisError(f"grid: at most {MAX_GRIDS} grids at once")
    rows = session.execute(text(
        """SELECT g.code, g.name, g.parent_code AS community_code, c.name AS community_name,
                  c.parent_code AS street_code, s.name AS street_name, g.district_code
           FROM grids g
           LEFT JOIN communities c ON c.code = g.parent_code AND c.valid_to IS NULL
           LEFT JOIN streets s ON s.code = c.parent_code AND s.valid_to IS NULL
           WHERE g.valid_to IS NULL AND g.code = ANY(:codes)"""), {"codes": codes}).mappings()
    found = {r["code"]: dict(r) for r in rows}
    missing = [c for c in codes if c not in found]
    if missing:
        raise GisError(f"grid: no current grid {', '.join(missing)}")
    return [found[c] for c in codes]


def _in_scope(scope: Scope | None, alias: str, geom: str) -> tuple[str, dict[str, Any]]:
    return scope.sql(alias, geom=geom) if scope is not None else ("true", {})


def active_sites(session: Session, grids: list[str], *, rules: PatrolRules | None = None,
                 scope: Scope | None = None) -> list[dict[str, Any]]:
    """Active sites in the grids with their state, last visit and days since it."""
    rules = rules or get_patrol_rules()
    in_scope, params = _in_scope(scope, "p", "site")
    rows = session.execute(text(
        f"""SELECT p.id, p.reg_no, p.public_id, p.title, p.state, p.kind, p.category,
                   p.high_risk, p.grid_code, p.grid_name, s.last_visit_on, s.last_force,
                   coalesce(s.visits, 0) AS visits, {_DUE_FROM} AS due_from,
                   CASE WHEN p.high_risk THEN :due_high ELSE :due_other END AS due_days,
                   ST_X(ST_PointOnSurface(p.site)) AS lon, ST_Y(ST_PointOnSurface(p.site)) AS lat
            FROM projects p LEFT JOIN project_visit_summary s ON s.project_id = p.id
            WHERE p.grid_code = ANY(:grids) AND p.state = ANY(:active) AND {in_scope}
            ORDER BY p.id"""),
        {"grids": grids, "active": list(rules.active_states), **params,
         "due_high": rules.due_days_high_risk, "due_other": rules.due_days_other}).mappings()
    today = today_cn()
    out = []
    for r in rows:
        item = dict(r)
        since = item["last_visit_on"] or item["due_from"]
        item["days_since_visit"] = (today - item["last_visit_on"]).days if item[
            "last_visit_on"] else None
        item["days_waiting"] = (today - since).days
        item["never_visited"] = item["last_visit_on"] is None
        item["overdue"] = item["days_waiting"] > item["due_days"]
        item["overdue_days"] = max(item["days_waiting"] - item["due_days"], 0)
        out.append(item)
    return out


def followed_hazards(session: Session, grids: list[str], *, scope: Scope | None = None
                     ) -> list[dict[str, Any]]:
    """Hazards in the grids still open, or rectified and waiting for verification."""
    in_scope, params = _in_scope(scope, "h", "location")
    rows = session.execute(text(
        f"""SELECT h.id, h.project_id, p.reg_no, p.title AS project_title, h.grid_code,
                  h.hazard_type, h.severity, h.state, h.found_on, h.due_on, h.rectified_on,
                  h.description, ST_X(h.location) AS lon, ST_Y(h.location) AS lat
           FROM hazards h LEFT JOIN projects p ON p.id = h.project_id
           WHERE h.grid_code = ANY(:grids) AND h.state = ANY(:states) AND {in_scope}
           ORDER BY (h.state = 'rectified') DESC, h.due_on, h.id"""),
        {"grids": grids, "states": list(FOLLOWED_HAZARD_STATES), **params}).mappings()
    today = today_cn()
    out = []
    for r in rows:
        item = dict(r)
        item["to_verify"] = item["state"] == "rectified"
        item["late"] = item["state"] != "rectified" and item["due_on"] < today
        out.append(item)
    return out


def overdue_clocks(session: Session, grids: list[str]) -> list[dict[str, Any]]:
    """Loop clocks that ran out for projects in the grids (review, briefing, completion…)."""
    items: list[dict[str, Any]] = []
    for grid in grids:
        items.extend(lifecycle.overdue(session, grid=grid))
    items.sort(key=lambda i: (i["due"], i["reg_no"]))
    return items


def points_geojson(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Items with ``lon``/``lat`` as a FeatureCollection of Points (dates as ISO text)."""
    features = []
    for item in items:
        props = {k: _plain(v) for k, v in item.items() if k not in ("lon", "lat")}
        features.append({"type": "Feature", "id": item["id"],
                         "geometry": {"type": "Point", "coordinates": [round(item["lon"], 7),
                                                                       round(item["lat"], 7)]},
                         "properties": props})
    return {"type": "FeatureCollection", "features": features}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


# --- today's route ------------------------------------------------------------------------


def _plans_exist(session: Session) -> bool:
    return bool(session.scalar(text(
        "SELECT to_regclass('route_plan_stops') IS NOT NULL "
        "AND to_regclass('route_plan_routes') IS NOT NULL")))


def _hhmm(at: datetime | None) -> str | None:
    return at.astimezone(CHINA).strftime("%H:%M") if at else None


def todays_route(session: Session, grids: list[str], *, on: date | None = None
                 ) -> dict[str, Any]:
    """The routes of the day's stored plan that stop in the grids, with all their stops.

    Of the plans covering the day, the latest version of each is considered; an issued plan
    wins over a draft, then the newest. ``plan`` is null when there is none (or no plan
    tables yet).
    """
    on = on or today_cn()
    empty: dict[str, Any] = {"type": "FeatureCollection", "plan": None, "features": []}
    if not _plans_exist(session):
        return empty
    plan = session.execute(text(
        """WITH latest AS (
               SELECT DISTINCT ON (coalesce(root_id, id)) *
               FROM route_plans WHERE plan_date <= :on AND plan_date + days > :on
               ORDER BY coalesce(root_id, id), version DESC)
           SELECT l.id, l.version, l.status, l.plan_date, l.matrix_source FROM latest l
           WHERE EXISTS (
               SELECT 1 FROM route_plan_routes r JOIN route_plan_stops s ON s.route_id = r.id
               LEFT JOIN projects p ON p.id = s.project_id
               LEFT JOIN hazards h ON h.id = s.hazard_id
               WHERE r.plan_id = l.id AND r.route_date = :on
                 AND coalesce(p.grid_code, h.grid_code) = ANY(:grids))
           ORDER BY (l.status = 'issued') DESC, l.created_at DESC, l.id DESC LIMIT 1"""),
        {"on": on, "grids": grids}).mappings().first()
    if plan is None:
        return empty
    routes = session.execute(text(
        """SELECT r.id, r.inspector_code, r.colour, r.distance_m, r.travel_s, r.depart_at,
                  r.return_at, ST_AsGeoJSON(r.geometry, 6)::json AS gj
           FROM route_plan_routes r
           WHERE r.plan_id = :plan AND r.route_date = :on AND EXISTS (
               SELECT 1 FROM route_plan_stops s LEFT JOIN projects p ON p.id = s.project_id
               LEFT JOIN hazards h ON h.id = s.hazard_id
               WHERE s.route_id = r.id AND coalesce(p.grid_code, h.grid_code) = ANY(:grids))
           ORDER BY r.inspector_code"""),
        {"plan": plan["id"], "on": on, "grids": grids}).mappings().all()
    features: list[dict[str, Any]] = []
    for r in routes:
        if r["gj"] is not None:
            features.append({"type": "Feature", "geometry": r["gj"], "properties": {
                "feature": "route", "inspector_code": r["inspector_code"],
                "colour": r["colour"], "distance_m": round(r["distance_m"], 1),
                "travel_s": round(r["travel_s"]), "depart": _hhmm(r["depart_at"]),
                "return": _hhmm(r["return_at"])}})
        stops = session.execute(text(
            """SELECT s.sequence, s.kind, s.project_id, s.hazard_id, s.arrive_at, s.depart_at,
                      p.reg_no, p.title, coalesce(p.grid_code, h.grid_code) AS grid_code,
                      ST_X(s.location) AS lon, ST_Y(s.location) AS lat
               FROM route_plan_stops s LEFT JOIN projects p ON p.id = s.project_id
               LEFT JOIN hazards h ON h.id = s.hazard_id
               WHERE s.route_id = :route ORDER BY s.sequence"""), {"route": r["id"]}).mappings()
        for s in stops:
            features.append({"type": "Feature", "geometry": {
                "type": "Point", "coordinates": [round(s["lon"], 7), round(s["lat"], 7)]},
                "properties": {
                    "feature": "stop", "inspector_code": r["inspector_code"],
                    "colour": r["colour"], "sequence": s["sequence"], "kind": s["kind"],
                    "project_id": s["project_id"], "hazard_id": s["hazard_id"],
                    "reg_no": s["reg_no"], "title": s["title"], "grid_code": s["grid_code"],
                    "in_my_grids": s["grid_code"] in grids, "eta": _hhmm(s["arrive_at"]),
                    "leave": _hhmm(s["depart_at"])}})
    return {"type": "FeatureCollection",
            "plan": {"id": plan["id"], "version": plan["version"], "status": plan["status"],
                     "plan_date": plan["plan_date"].isoformat(),
                     "matrix_source": plan["matrix_source"]},
            "features": features}


# --- a site's card --------------------------------------------------------------------------


def site_card(session: Session, project: Project, *, rules: PatrolRules | None = None
              ) -> dict[str, Any]:
    """Everything the side panel shows about one site: facts, visits, timeline, photos, links."""
    rules = rules or get_patrol_rules()
    today = today_cn()
    summary = session.execute(text(
        "SELECT last_visit_on, last_force, visits FROM project_visit_summary "
        "WHERE project_id = :p"), {"p": project.id}).mappings().first()
    visits = session.execute(text(
        """SELECT v.visited_on, v.force, v.how, pt.inspector_name
           FROM patrol_visits v JOIN patrols pt ON pt.id = v.patrol_id
           WHERE v.project_id = :p ORDER BY v.arrived_at DESC LIMIT 10"""),
        {"p": project.id}).mappings().all()
    hazards = session.execute(text(
        """SELECT id, hazard_type, severity, state, found_on, due_on, rectified_on, photos,
                  evidence FROM hazards WHERE project_id = :p ORDER BY found_on DESC, id DESC"""),
        {"p": project.id}).mappings().all()
    patrol_photos = session.execute(text(
        """SELECT pt.patrol_on, jsonb_array_elements_text(pt.photos) AS ref
           FROM patrol_visits v JOIN patrols pt ON pt.id = v.patrol_id
           WHERE v.project_id = :p AND jsonb_array_length(pt.photos) > 0
           ORDER BY pt.patrol_on DESC LIMIT 50"""), {"p": project.id}).mappings().all()
    photos = [{"ref": r["ref"], "source": "patrol", "on": r["patrol_on"].isoformat()}
              for r in patrol_photos]
    for h in hazards:
        photos += [{"ref": ref, "source": "hazard", "on": h["found_on"].isoformat()}
                   for ref in h["photos"] or []]
        photos += [{"ref": ref, "source": "rectification",
                    "on": h["rectified_on"].isoformat() if h["rectified_on"] else None}
                   for ref in (h["evidence"] or {}).get("photos") or []]
    last = summary["last_visit_on"] if summary else None
    due_from = (project.started_on or project.briefed_on or project.accepted_on
                or project.submitted_on)
    due_days = rules.due_days(project.high_risk)
    active = project.state in rules.active_states
    waiting = (today - (last or due_from)).days
    links = {"public_page": f"/p/{project.public_id}"}
    if project.state not in NO_SIGNBOARD_STATES:
        links["signboard_png"] = f"/api/projects/{project.reg_no}/signboard.png"
        links["signboard_pdf"] = f"/api/projects/{project.reg_no}/signboard.pdf"
    timeline = [
        {**{k: _plain(v) for k, v in e.items() if k != "data"},
         "at": e["at"].astimezone(UTC).isoformat()}
        for e in lifecycle.history(session, project)
    ]
    return {
        "id": project.id, "reg_no": project.reg_no, "public_id": project.public_id,
        "title": project.title, "state": project.state, "kind": project.kind,
        "category": project.category, "address": project.address,
        "high_risk": project.high_risk, "risk_factors": project.risk_factors,
        "builder": (project.builder or {}).get("name"),
        "contractor": (project.contractor or {}).get("name"),
        "planned_start": project.planned_start.isoformat(),
        "planned_end": project.planned_end.isoformat(),
        "street_name": project.street_name, "community_name": project.community_name,
        "grid_code": project.grid_code, "grid_name": project.grid_name,
        "active": active, "due_days": due_days,
        "last_visit_on": last.isoformat() if last else None,
        "days_since_visit": (today - last).days if last else None,
        "visit_count": summary["visits"] if summary else 0,
        "overdue": active and waiting > due_days,
        "visits": [{k: _plain(v) for k, v in r.items()} for r in visits],
        "hazards": [{k: _plain(v) for k, v in h.items() if k not in ("photos", "evidence")}
                    for h in hazards],
        "timeline": timeline, "photos": photos, "links": links,
    }
