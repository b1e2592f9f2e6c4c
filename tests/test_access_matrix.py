"""The access matrix: every route × every role × an object inside and one outside the scope.

Every route the application serves — the OpenAPI document plus the routes it leaves out (pages,
static files, docs) — must be classified in :data:`ROUTES`; an unclassified route fails
:func:`test_every_route_is_classified`, so a new endpoint cannot slip past the checks. The
classification names the action the route needs (``app.access.ACTIONS``) and how to try it;
:func:`test_routes_declare_the_classified_action` checks the route really depends on that
action. Then, for each role (one account each, in street A; the objects "in" lie in A, in its
first community and grid and on an estate of the property account; "out" lie in street B on
another estate; "far" in another district):

- the role may not do the action at all → 403 whatever the object;
- an object route → "in" passes, an object the role cannot see → 404 (as if it did not exist);
- a create → "in" is stored, a place the role cannot see is refused and nothing is stored;
- a list, count, layer or export → only visible objects come back, "in" among them;
- an analysis of an area → only codes inside the scope come back; another district → 403;
- unauthenticated → 401 on every route but the public ones.

What "visible" means is written here independently of the application (``VISIBLE``).
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from app.access import ACTIONS, FIELD_ROLES, ROLES, allowed
from app.models import Hazard, Incident, Patrol, Project, ServiceRequest, UnregisteredWork
from app.services import hazards, patrols
from app.services.jurisdiction import assign_point

PUBLIC = "public"  # no account needed
ANY_ACCOUNT = "authenticated"  # any valid account
FAR = {"district_code": "440305000000", "street_code": "440305001000",
       "community_code": "440305001001", "grid_code": "440305001001001"}
FAR_POINT = (113.93, 22.53)  # Nanshan: outside every grid of the demo district
MATRIX_PASSWORD = "matrix-password-0001"


# --- the world -------------------------------------------------------------------------------


@dataclass
class World:
    district: str
    street_a: str
    street_b: str
    community: str
    grid: str
    grid_out: str
    estate_in: int
    estate_out: int
    points: dict[str, tuple[float, float]]
    ids: dict[str, dict[str, int]] = field(default_factory=dict)
    projects: dict[str, Project] = field(default_factory=dict)
    png: bytes = b""


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _project(session, lon, lat, codes: dict[str, str], tag: str) -> Project:
    today = date.today()
    started = today - timedelta(days=40)
    project = Project(
        reg_no=f"MX{tag}{uuid.uuid4().hex[:10]}", public_id=uuid.uuid4().hex[:20],
        street_name=f"街道{tag}", community_name=f"社区{tag}", grid_name=f"网格{tag}",
        kind="small_project", category="residential_fitout", title=f"矩阵工程{tag}",
        address="测试地址", site=f"SRID=4326;POINT({lon} {lat})", site_input_crs="wgs84",
        builder={"name": "测试", "phone": "13800000000"}, contractor={"name": "测试"},
        investment_cny=10000, floor_area_m2=50, planned_start=started,
        planned_end=today - timedelta(days=10), risk_factors=[], public_area=False,
        channel="online", above_limit_reference=False, above_limit=False, high_risk=False,
        special_area=False, reviewer_kind="community_workstation",
        reviewer_code=codes["community_code"], reviewer_name="测试工作站", departments=[],
        decision={}, state="in_progress", submitted_on=started - timedelta(days=5),
        review_due=started - timedelta(days=2), accepted_on=started - timedelta(days=3),
        briefed_on=started - timedelta(days=1), started_on=started,
        completion_due=today - timedelta(days=5), valid_until=today + timedelta(days=100),
        receipt_no=f"HZ{uuid.uuid4().hex[:10]}", source="test", created_by="test", **codes)
    session.add(project)
    session.flush()
    return project


def _codes(session, lon, lat) -> dict[str, str]:
    where = assign_point(session, lon, lat)
    return {"district_code": where.district.code, "street_code": where.street.code,
            "community_code": where.community.code, "grid_code": where.grid.code}


def build_world(session) -> World:
    """Objects of every kind in street A (on estate_in), in street B (on estate_out) and in
    another district; built with the services (their codes come from the territory)."""
    estates = session.execute(text(
        """SELECT e.id, ST_X(ST_PointOnSurface(e.geom)) AS lon,
                  ST_Y(ST_PointOnSurface(e.geom)) AS lat
           FROM estates e ORDER BY e.id""")).all()
    first = estates[0]
    a = _codes(session, first.lon, first.lat)
    other = next(e for e in estates
                 if _codes(session, e.lon, e.lat)["street_code"] != a["street_code"])
    b = _codes(session, other.lon, other.lat)
    w = World(district=a["district_code"], street_a=a["street_code"], street_b=b["street_code"],
              community=a["community_code"], grid=a["grid_code"], grid_out=b["grid_code"],
              estate_in=first.id,
              estate_out=other.id, png=_png(),
              points={"in": (first.lon, first.lat), "out": (other.lon, other.lat),
                      "far": FAR_POINT})
    today = date.today()
    for where, codes in (("in", a), ("out", b), ("far", FAR)):
        lon, lat = w.points[where]
        project = _project(session, lon, lat, codes, where)
        w.projects[where] = project
        w.ids.setdefault("project", {})[where] = project.id
        point = {"type": "Point", "coordinates": [lon, lat]}
        if where == "far":  # no territory there: written directly
            geom = f"SRID=4326;POINT({lon} {lat})"
            h = Hazard(location=geom, hazard_type="fall_from_height", severity="general",
                       found_on=today - timedelta(days=30), found_by="far", responsible={},
                       due_on=today - timedelta(days=20), state="found", source="test",
                       **codes)
            pa = Patrol(client_id=uuid.uuid4().hex, inspector_id="far-insp", force="supervisor",
                        started_at=datetime.now(UTC) - timedelta(days=10),
                        patrol_on=today - timedelta(days=10), location=geom, payload_hash="x",
                        source="test", **codes)
            lead = UnregisteredWork(location=geom, channel="patrol", reported_by="far",
                                    reported_on=today, state="lead", source="test", **codes)
            inc = Incident(incident_type="fall_from_height", occurred_on=today,
                           location=geom, source="test", **codes)
            session.add_all([h, pa, lead, inc])
            session.flush()
            ids = {"hazard": h.id, "patrol": pa.id, "lead": lead.id, "incident": inc.id}
        else:
            h = hazards.report_hazard(session, actor="matrix", hazard_type="fall_from_height",
                                      severity="general", location=point,
                                      found_on=today - timedelta(days=30))
            (res,) = patrols.upload(session, records=[{
                "client_id": uuid.uuid4().hex, "inspector_id": f"w-{where}",
                "force": "supervisor",
                "started_at": f"{today - timedelta(days=10)}T10:00:00+08:00",
                "location": point, "project_ids": [project.reg_no]}], source="test")
            assert res.status == "created", res
            lead = hazards.report_unregistered(session, actor="matrix", location=point,
                                               channel="patrol")
            inc = hazards.record_incident(session, actor="matrix",
                                          incident_type="fall_from_height",
                                          occurred_on=today - timedelta(days=3), location=point)
            ids = {"hazard": h.id, "patrol": res.id, "lead": lead.id, "incident": inc.id}
        req = ServiceRequest(service_code="other", description=f"matrix {where}",
                             location=f"SRID=4326;POINT({lon} {lat})", lead_id=ids["lead"],
                             photo=w.png, photo_type="image/png", client_key="matrix",
                             **codes)
        session.add(req)
        session.flush()
        ids["request"] = req.id
        for kind, i in ids.items():
            w.ids.setdefault(kind, {})[where] = i
    session.commit()
    return w


# --- who sees what (independent of the application) ------------------------------------------


def scope_code(role: str, w: World) -> str | None:
    return {"grid_worker": w.grid, "community": w.community, "property": w.district,
            "street_official": w.street_a, "district_official": w.district,
            "dispatcher": w.street_a, "inspector": w.street_a}.get(role)


VISIBLE: dict[str, set[str]] = {
    "admin": {"in", "out", "far"},
    "district_official": {"in", "out"},
    **{r: {"in"} for r in ("grid_worker", "community", "property", "street_official",
                           "dispatcher", "inspector")},
    "public_reporter": set(),
}


def outside(role: str, kind: str) -> str:
    """The outside object of a case: street B, or for district-wide accounts another district
    (creating there is impossible — no territory — so creates use street B for admin)."""
    if role == "district_official" or (role == "admin" and kind != "create"):
        return "far"
    return "out"


# --- the route table ---------------------------------------------------------------------------


@dataclass
class Ctx:
    w: World
    role: str
    case: str  # "in" or "out"
    where: str  # "in", "out" or "far"
    identity: str  # the patrol inspector id the account files under

    def id(self, kind: str) -> int:
        return self.w.ids[kind][self.where]

    @property
    def point(self) -> tuple[float, float]:
        return self.w.points[self.where]

    @property
    def geo(self) -> dict:
        return {"type": "Point", "coordinates": list(self.point)}


@dataclass
class R:
    """A route, the action it needs, and how to try it.

    ``kind``: ``public`` (no account), ``plain`` (unscoped: passes for the roles allowed),
    ``guarded`` (role checks only, for routes whose objects the matrix does not build yet),
    ``object`` (one object: inside passes, outside 404), ``create`` (inside stored, outside
    refused), ``collection`` (only visible objects listed), ``area`` (an analysis: codes inside
    the area only; another district 403).
    """

    method: str
    path: str
    action: str  # one of ACTIONS, PUBLIC or ANY_ACCOUNT
    kind: str = "plain"
    request: Callable[[Ctx], dict[str, Any]] | None = None
    obj: str | None = None  # collection: the world object kind listed
    ids: Callable[[Any], set[int]] | None = None  # collection: ids in a response
    created: Callable[[Any], bool] | None = None  # create: whether it was stored
    out_ok: tuple[str, ...] = ()  # create: roles that may create outside (own patrols)
    cases: tuple[str, ...] = ("in", "out")
    complete: bool = True  # collection: the administrator sees every world object in it
    out_where: str | None = None  # the outside object for every role (default: outside())
    # Roles whose scope cannot name the area the route is about (a property company's estates
    # are not whole grids): 403 although the role may perform the action elsewhere.
    refuse: tuple[str, ...] = ()


def _features(r) -> set[int]:
    return {f["id"] for f in r.json()["features"]}


def _feature_props(r) -> set[int]:
    return {f["properties"]["id"] for f in r.json()["features"]}


def _tile_ids(r) -> set[int]:
    import mapbox_vector_tile

    if r.status_code == 204 or not r.content:
        return set()
    out: set[int] = set()
    for layer in mapbox_vector_tile.decode(r.content).values():
        for f in layer["features"]:
            pid = f.get("properties", {}).get("id", f.get("id"))
            if pid is not None:
                out.add(int(pid))
    return out


def _tile(c: Ctx, name: str, z: int = 17) -> dict:
    import math

    lon, lat = c.point
    n = 1 << z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return {"url": f"/tiles/{name}/{z}/{x}/{y}.pbf"}


def _items(r) -> set[int]:
    return {i["id"] for i in r.json()["items"]}


def _csv_ids(r) -> set[int]:
    rows = list(csv.DictReader(io.StringIO(r.text)))
    return {int(row["id"]) for row in rows}


def _status(code: int) -> Callable[[Any], bool]:
    return lambda r: r.status_code == code


def _batch_created(r) -> bool:
    return r.status_code == 200 and r.json()["counts"].get("created", 0) == 1


def _record(c: Ctx) -> dict:
    return {"client_id": uuid.uuid4().hex, "inspector_id": c.identity, "force": "grid_worker",
            "started_at": f"{date.today() - timedelta(days=1)}T09:00:00+08:00",
            "location": c.geo}


def _track(c: Ctx) -> dict:
    lon, lat = c.point
    rows = ["lon,lat,time"] + [
        f"{lon + i * 0.00002:.7f},{lat:.7f},{date.today() - timedelta(days=1)}T01:0{i}:00Z"
        for i in range(6)]
    return {"files": {"file": ("track.csv", "\n".join(rows).encode(), "text/csv")},
            "data": {"inspector_id": c.identity, "client_id": uuid.uuid4().hex,
                     "force": "grid_worker"}}


def _boundary(c: Ctx) -> dict:
    code = "440304990000" if c.case == "in" else "440305990000"
    fc = {"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"code": code, "name": "测试街道",
                                          "parent_code": code[:6] + "000000"},
        "geometry": {"type": "Polygon", "coordinates": [[
            [114.5, 22.0], [114.501, 22.0], [114.501, 22.001], [114.5, 22.001],
            [114.5, 22.0]]]}}]}
    return {"files": {"file": ("s.geojson", json.dumps(fc).encode(), "application/geo+json")},
            "data": {"level": "street", "strict": "true"}}


def _declaration(c: Ctx) -> dict:
    lon, lat = c.point
    return {"kind": "small_project", "category": "residential_fitout", "title": "矩阵登记",
            "address": "测试地址", "site": {"type": "Point", "coordinates": [lon, lat]},
            "builder": {"name": "王", "contact": "王", "phone": "13800138000"},
            "contractor": {"name": "测试公司", "phone": "0755-12345678"},
            "investment_cny": 8000, "floor_area_m2": 20, "planned_start": "2025-03-03",
            "planned_end": "2025-03-20", "submitted_on": "2025-02-27"}


def _bbox(c: Ctx) -> str:
    lon, lat = c.point
    return f"{lon - 0.002},{lat - 0.002},{lon + 0.002},{lat + 0.002}"


def _area(c: Ctx, **params) -> dict:
    """An analysis of the account's own area ("in") or of another district ("out")."""
    if c.case == "out":
        params["district"] = FAR["district_code"]
    return {"params": params}


T0 = str(date.today() - timedelta(days=60))
T1 = str(date.today())

ROUTES: list[R] = [
    # --- public ---
    R("GET", "/health", PUBLIC, "public", lambda c: {"url": "/health"}),
    R("GET", "/p/{public_id}", PUBLIC, "public",
      lambda c: {"url": f"/p/{c.w.projects['in'].public_id}"}),
    R("GET", "/favicon.ico", PUBLIC, "public", lambda c: {"url": "/favicon.ico"}),
    R("GET", "/static", PUBLIC, "public", lambda c: {"url": _static_url()}),
    R("GET", "/openapi.json", PUBLIC, "public", lambda c: {"url": "/openapi.json"}),
    R("GET", "/docs", PUBLIC, "public", lambda c: {"url": "/docs"}),
    R("GET", "/docs/oauth2-redirect", PUBLIC, "public", lambda c: {"url": "/docs/oauth2-redirect"}),
    R("GET", "/redoc", PUBLIC, "public", lambda c: {"url": "/redoc"}),
    R("GET", "/login", PUBLIC, "public", lambda c: {"url": "/login?lang=en"}),
    R("POST", "/login", PUBLIC, "public", lambda c: {"url": "/login", "data": {
        "username": "matrix-login", "password": MATRIX_PASSWORD, "next": "/"}}),
    R("GET", "/logout", PUBLIC, "public", lambda c: {"url": "/logout"}),
    R("POST", "/logout", PUBLIC, "public", lambda c: {"url": "/logout"}),
    R("POST", "/auth/token", PUBLIC, "public", lambda c: {"url": "/auth/token", "data": {
        "username": "matrix-login", "password": MATRIX_PASSWORD}}),
    R("GET", "/open311/v2/services.json", PUBLIC, "public",
      lambda c: {"url": "/open311/v2/services.json"}),
    R("GET", "/open311/v2/requests.json", PUBLIC, "public",
      lambda c: {"url": "/open311/v2/requests.json"}),
    R("POST", "/open311/v2/requests.json", PUBLIC, "public", lambda c: {
        "url": "/open311/v2/requests.json",
        "data": {"service_code": "other", "lat": c.w.points["in"][1],
                 "long": c.w.points["in"][0], "description": "matrix"}}),
    R("GET", "/open311/v2/requests/{request_id}.json", PUBLIC, "public",
      lambda c: {"url": f"/open311/v2/requests/{c.w.ids['request']['in']}.json"}),
    # --- any account ---
    R("GET", "/auth/me", ANY_ACCOUNT, "plain", lambda c: {"url": "/auth/me"}),
    # --- reference: the whole territory and the rules, for every staff account ---
    R("GET", "/api/territory/{level}", "reference", "plain",
      lambda c: {"url": "/api/territory/street", "params": {"simplify_m": 50}}),
    R("GET", "/api/territory/{level}/{code}", "reference", "plain",
      lambda c: {"url": f"/api/territory/street/{c.w.street_b}"}),
    R("GET", "/api/territory/{level}/{code}/history", "reference", "plain",
      lambda c: {"url": f"/api/territory/street/{c.w.street_b}/history"}),
    R("GET", "/api/jurisdiction", "reference", "plain", lambda c: {
        "url": "/api/jurisdiction",
        "params": {"lon": c.w.points["out"][0], "lat": c.w.points["out"][1]}}),
    R("POST", "/api/jurisdiction", "reference", "plain", lambda c: {
        "url": "/api/jurisdiction", "json": {"type": "Point",
                                             "coordinates": list(c.w.points["out"])}}),
    R("POST", "/api/jurisdiction/bulk", "reference", "plain", lambda c: {
        "url": "/api/jurisdiction/bulk",
        "json": {"lon": [c.w.points["out"][0]], "lat": [c.w.points["out"][1]]}}),
    R("GET", "/map/territory", "reference", "plain", lambda c: {"url": "/map/territory"},
      cases=("in",)),
    R("GET", "/", "reference", "plain", lambda c: {"url": "/"}, cases=("in",)),
    R("GET", "/api/rules", "reference", "plain", lambda c: {"url": "/api/rules"}),
    R("GET", "/api/special-places", "reference", "plain", lambda c: {"url": "/api/special-places"}),
    R("GET", "/api/estates", "reference", "collection", lambda c: {"url": "/api/estates"},
      obj="estate", ids=_features),
    R("GET", "/api/calendar/{year}", "reference", "plain", lambda c: {"url": "/api/calendar/2025"}),
    R("GET", "/api/calendar", "reference", "plain",
      lambda c: {"url": "/api/calendar", "params": {"start": "2025-01-27", "add": 3}}),
    R("GET", "/api/patrols/checklist", "reference", "plain",
      lambda c: {"url": "/api/patrols/checklist"}),
    R("GET", "/api/coverage/uncovered", "reference", "plain",
      lambda c: {"url": "/api/coverage/uncovered"}),
    R("GET", "/api/violations", "reference", "plain", lambda c: {"url": "/api/violations"}),
    # --- one object ---
    R("GET", "/api/projects/{ref}", "read", "object",
      lambda c: {"url": f"/api/projects/{c.id('project')}"}),
    R("GET", "/api/projects/{ref}/history", "read", "object",
      lambda c: {"url": f"/api/projects/{c.w.projects[c.where].reg_no}/history"}),
    R("GET", "/api/projects/{ref}/receipt", "read", "object",
      lambda c: {"url": f"/api/projects/{c.w.projects[c.where].public_id}/receipt"}),
    R("GET", "/api/projects/{ref}/signboard.{fmt}", "read", "object",
      lambda c: {"url": f"/api/projects/{c.id('project')}/signboard.png"}),
    R("GET", "/api/patrols/{patrol_id}", "read", "object",
      lambda c: {"url": f"/api/patrols/{c.id('patrol')}"}),
    R("GET", "/api/hazards/{hazard_id}", "read", "object",
      lambda c: {"url": f"/api/hazards/{c.id('hazard')}"}),
    R("GET", "/open311/v2/requests/{request_id}/media", "read", "object",
      lambda c: {"url": f"/open311/v2/requests/{c.id('request')}/media"}),
    R("POST", "/api/projects/{ref}/transitions", "change", "object", lambda c: {
        "url": f"/api/projects/{c.id('project')}/transitions",
        "json": {"action": "accept", "actor": "matrix"}}),
    R("POST", "/api/hazards/{hazard_id}/transitions", "change", "object", lambda c: {
        "url": f"/api/hazards/{c.id('hazard')}/transitions",
        "json": {"action": "verify", "actor": "matrix"}}),
    R("POST", "/api/unregistered/{lead_id}/transitions", "change", "object", lambda c: {
        "url": f"/api/unregistered/{c.id('lead')}/transitions",
        "json": {"action": "dismiss", "actor": "matrix"}}),
    # --- lists, counts, layers, exports ---
    R("GET", "/api/projects", "list", "collection", lambda c: {
        "url": "/api/projects", "params": {"bbox": _bbox(c)} if c.case == "out" else {}},
      obj="project", ids=_features),
    R("GET", "/api/projects/export.csv", "export", "collection", lambda c: {
        "url": "/api/projects/export.csv",
        "params": {"street": c.w.street_b} if c.case == "out" else {}},
      obj="project", ids=_csv_ids),
    R("GET", "/api/projects/overdue", "list", "collection", lambda c: {
        "url": "/api/projects/overdue",
        "params": {"street": c.w.street_b} if c.case == "out" else {}},
      obj="project", ids=_items),
    R("GET", "/api/projects/overdue/summary", "list", "collection", lambda c: {
        "url": "/api/projects/overdue/summary", "params": {"by": "street"}},
      obj="project", ids=lambda r: set()),
    R("GET", "/api/patrols", "list", "collection", lambda c: {
        "url": "/api/patrols", "params": {"bbox": _bbox(c)} if c.case == "out" else {}},
      obj="patrol", ids=_features),
    R("GET", "/api/hazards", "list", "collection", lambda c: {"url": "/api/hazards"},
      obj="hazard", ids=_features),
    R("GET", "/api/hazards/overdue", "list", "collection", lambda c: {
        "url": "/api/hazards/overdue",
        "params": {"street": c.w.street_b} if c.case == "out" else {}},
      obj="hazard", ids=_items),
    R("GET", "/api/unregistered", "list", "collection", lambda c: {"url": "/api/unregistered"},
      obj="lead", ids=_features),
    R("GET", "/api/incidents", "list", "collection", lambda c: {"url": "/api/incidents"},
      obj="incident", ids=_features),
    R("GET", "/api/coverage/unpatrolled", "list", "collection", lambda c: {
        "url": "/api/coverage/unpatrolled", "params": {"all_districts": "true"}},
      obj="project", ids=_features),
    # --- creates: the place decides (after the lists: a patrol is a visit) ---
    R("POST", "/api/projects", "change", "create",
      lambda c: {"url": "/api/projects", "json": _declaration(c)}, created=_status(201)),
    R("POST", "/api/patrols", "change", "create",
      lambda c: {"url": "/api/patrols", "json": _record(c)}, created=_status(201),
      out_ok=FIELD_ROLES),
    R("POST", "/api/patrols/batch", "change", "create",
      lambda c: {"url": "/api/patrols/batch", "json": {"records": [_record(c)]}},
      created=_batch_created, out_ok=FIELD_ROLES),
    R("POST", "/api/patrols/track", "change", "create",
      lambda c: {"url": "/api/patrols/track", **_track(c)}, created=_status(201),
      out_ok=FIELD_ROLES),
    R("POST", "/api/hazards", "change", "create", lambda c: {"url": "/api/hazards", "json": {
        "hazard_type": "fire", "severity": "general", "location": c.geo, "actor": "m"}},
      created=_status(201)),
    R("POST", "/api/unregistered", "change", "create", lambda c: {
        "url": "/api/unregistered",
        "json": {"location": c.geo, "channel": "patrol", "actor": "m"}}, created=_status(201)),
    R("POST", "/api/incidents", "change", "create", lambda c: {"url": "/api/incidents", "json": {
        "incident_type": "fire", "occurred_on": T1, "location": c.geo, "actor": "m"}},
      created=_status(201)),
    # --- analyses of an area ---
    R("GET", "/api/hotspots", "analyse", "area", lambda c: _area(c, start=T0, end=T1)),
    R("GET", "/api/hotspots.csv", "analyse", "area", lambda c: _area(c, start=T0, end=T1)),
    R("GET", "/api/hotspots/compare", "analyse", "area", lambda c: _area(
        c, a_start=T0, a_end=str(date.today() - timedelta(days=31)),
        b_start=str(date.today() - timedelta(days=30)), b_end=T1)),
    R("GET", "/api/hotspots/emerging", "analyse", "area", lambda c: _area(c, start=T0, end=T1)),
    R("GET", "/api/hotspots/density", "analyse", "area", lambda c: _area(c, start=T0, end=T1)),
    R("GET", "/api/hotspots/clusters", "analyse", "area",
      lambda c: _area(c, start=T0, end=T1, min_samples=1)),
    R("GET", "/api/coverage/blind-spots", "analyse", "area", lambda c: _area(c)),
    R("GET", "/api/coverage/forces", "analyse", "area", lambda c: _area(c)),
    R("GET", "/api/rankings", "analyse", "area", lambda c: _area(c, level="community")),
    # --- map layers and tiles (app/api/layers.py) ---
    R("GET", "/api/layers", "reference", "plain", lambda c: {"url": "/api/layers"}),
    R("GET", "/api/layers/{name}", "list", "collection",
      lambda c: {"url": "/api/layers/hazards"}, obj="hazard", ids=_feature_props),
    R("GET", "/tiles/{name}/{z}/{x}/{y}.pbf", "list", "collection",
      lambda c: _tile(c, "projects"), obj="project", ids=_tile_ids, complete=False),
    # --- a grid worker's worklist (app/api/worklist.py): the grids asked for must be theirs ---
    R("GET", "/api/worklist/grids", "list", "guarded", lambda c: {
        "url": "/api/worklist/grids", "params": {"grid": c.w.grid}}, refuse=("property",)),
    R("GET", "/api/worklist/sites", "list", "collection", lambda c: {
        "url": "/api/worklist/sites",
        "params": {"grid": c.w.grid if c.case == "in" else c.w.grid_out}},
      obj="project", ids=_features, complete=False, out_where="out", refuse=("property",)),
    R("GET", "/api/worklist/hazards", "list", "collection", lambda c: {
        "url": "/api/worklist/hazards",
        "params": {"grid": c.w.grid if c.case == "in" else c.w.grid_out}},
      obj="hazard", ids=_features, complete=False, out_where="out", refuse=("property",)),
    R("GET", "/api/worklist/overdue", "list", "collection", lambda c: {
        "url": "/api/worklist/overdue",
        "params": {"grid": c.w.grid if c.case == "in" else c.w.grid_out}},
      obj="project", ids=_items, complete=False, out_where="out", refuse=("property",)),
    R("GET", "/api/worklist/route", "list", "guarded", lambda c: {
        "url": "/api/worklist/route", "params": {"grid": c.w.grid}}, refuse=("property",)),
    R("GET", "/api/worklist/sites/{project_id}/card", "read", "object",
      lambda c: {"url": f"/api/worklist/sites/{c.id('project')}/card"}),
    # --- statistics and map pages ---
    R("GET", "/api/stats/trends", "analyse", "guarded", lambda c: {"url": "/api/stats/trends"}),
    R("GET", "/map/official", "reference", "guarded", lambda c: {"url": "/map/official"},
      cases=("in",)),
    R("GET", "/map/grid", "reference", "guarded", lambda c: {"url": "/map/grid"},
      cases=("in",)),
    R("GET", "/map/dispatch", "plan", "guarded", lambda c: {"url": "/map/dispatch"},
      cases=("in",)),
    R("GET", "/api/basemap/roads", "reference", "guarded",
      lambda c: {"url": "/api/basemap/roads"}, cases=("in",)),
    # --- photos (app/api/photos.py) ---
    R("POST", "/api/photos", "report", "guarded", lambda c: {"url": "/api/photos"},
      cases=("in",)),
    R("GET", "/api/photos/{name}", "read", "guarded",
      lambda c: {"url": "/api/photos/0000000000000000.jpg"}, cases=("in",)),
    # --- patrol route plans (app/api/plans.py): role checks; objects are theirs to add ---
    R("GET", "/api/inspectors", "list", "guarded", lambda c: {"url": "/api/inspectors"}),
    R("GET", "/api/plans", "list", "guarded", lambda c: {"url": "/api/plans"}),
    R("GET", "/api/plans/candidates", "plan", "guarded",
      lambda c: {"url": "/api/plans/candidates"}, cases=("in",)),
    R("GET", "/api/plans/{plan_id}", "read", "guarded",
      lambda c: {"url": "/api/plans/999999"}, cases=("in",)),
    R("GET", "/api/plans/{plan_id}.geojson", "read", "guarded",
      lambda c: {"url": "/api/plans/999999.geojson"}, cases=("in",)),
    R("GET", "/api/plans/{plan_id}.gpx", "read", "guarded",
      lambda c: {"url": "/api/plans/999999.gpx"}, cases=("in",)),
    R("POST", "/api/plans", "plan", "guarded", lambda c: {"url": "/api/plans", "json": {}},
      cases=("in",)),
    R("POST", "/api/plans/week", "plan", "guarded",
      lambda c: {"url": "/api/plans/week", "json": {}}, cases=("in",)),
    R("POST", "/api/plans/{plan_id}/issue", "plan", "guarded",
      lambda c: {"url": "/api/plans/999999/issue", "json": {}}, cases=("in",)),
    R("POST", "/api/plans/{plan_id}/replan", "plan", "guarded",
      lambda c: {"url": "/api/plans/999999/replan", "json": {}}, cases=("in",)),
    # --- administration ---
    R("PUT", "/api/calendar/days", "calendar", "plain", lambda c: {
        "url": "/api/calendar/days", "json": {"actor": "m", "days": [
            {"day": "2099-01-05", "is_workday": False, "name": "测试"}]}}),
    R("POST", "/api/projects/expire", "maintain", "plain",
      lambda c: {"url": "/api/projects/expire", "params": {"on": "2000-01-01"}}),
    R("POST", "/api/coverage/recompute", "maintain", "plain",
      lambda c: {"url": "/api/coverage/recompute"}),
    R("GET", "/api/users", "manage_users", "plain", lambda c: {"url": "/api/users"}),
    # --- boundaries: the district's own units only (last: an import would redraw) ---
    R("POST", "/api/boundaries/validate", "import_boundaries", "area", lambda c: {
        "url": "/api/boundaries/validate", **_boundary(c)}),
    R("POST", "/api/boundaries/import", "import_boundaries", "area", lambda c: {
        "url": "/api/boundaries/import", **_boundary(c)}),
    R("GET", "/api/boundaries/imports", "import_boundaries", "plain",
      lambda c: {"url": "/api/boundaries/imports"}),
]


def _static_url() -> str:
    from layers.offline import STATIC_DIR, vendored_files

    return "/static/" + vendored_files()[0].relative_to(STATIC_DIR).as_posix()


# --- the routes the application serves -------------------------------------------------------


def served_routes() -> dict[tuple[str, str], Any]:
    """(method, path) → route context, for every route of the app (schema or not)."""
    from fastapi.routing import iter_route_contexts

    from app.main import app

    out: dict[tuple[str, str], Any] = {}
    for ctx in iter_route_contexts(app.routes):
        methods = getattr(ctx, "methods", None) or {"GET"}  # a mount serves GET
        for m in methods - {"HEAD"}:
            out[(m, ctx.path)] = ctx
    schema = app.openapi()
    for path, ops in schema["paths"].items():
        for m in ops:
            out.setdefault((m.upper(), path), None)
    return out


def _declared_action(ctx) -> str:
    """The action a route's dependencies let through (PUBLIC / ANY_ACCOUNT otherwise)."""
    dependant = getattr(ctx, "dependant", None)
    found: set[str] = set()
    account = False

    def walk(dep):
        nonlocal account
        for sub in dep.dependencies:
            call = sub.call
            if getattr(call, "action", None):
                found.add(call.action)
            if getattr(call, "__name__", "") == "current_user":
                account = True
            walk(sub)

    if dependant is not None:
        walk(dependant)
    if len(found) > 1:
        return "several: " + ",".join(sorted(found))
    if found:
        return found.pop()
    return ANY_ACCOUNT if account else PUBLIC


def test_every_route_is_classified():
    served = set(served_routes())
    table = {(r.method, r.path) for r in ROUTES}
    missing = sorted(served - table)
    assert not missing, (
        "routes without an access classification (add them to ROUTES in "
        f"tests/test_access_matrix.py with the action they need): {missing}")
    stale = sorted(table - served)
    assert not stale, f"ROUTES names routes the app does not serve: {stale}"
    assert len({(r.method, r.path) for r in ROUTES}) == len(ROUTES)
    assert {r.action for r in ROUTES} <= set(ACTIONS) | {PUBLIC, ANY_ACCOUNT}


def test_routes_declare_the_classified_action():
    served = served_routes()
    wrong = []
    for r in ROUTES:
        ctx = served.get((r.method, r.path))
        declared = _declared_action(ctx) if ctx is not None else PUBLIC
        if declared != r.action:
            wrong.append(f"{r.method} {r.path}: classified {r.action}, depends on {declared}")
    assert wrong == []


# --- the matrix --------------------------------------------------------------------------------


def _call(client, r: R, ctx: Ctx):
    spec = dict(r.request(ctx))
    url = spec.pop("url", r.path)  # routes without path parameters may leave it out
    return client.request(r.method, url, follow_redirects=False, **spec)


def _passes(resp) -> bool:
    """Let through: not refused for who asks (401, 403) nor hidden (404), and no crash."""
    return resp.status_code not in (401, 403, 404) and resp.status_code < 500


CODE_KEYS = ("code", "grid_code", "street_code", "community_code", "address_id")


def _codes_in(value: Any) -> set[str]:
    out: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if k in CODE_KEYS and isinstance(v, str) and re.fullmatch(r"\d{12,15}", v):
                out.add(v)
            else:
                out |= _codes_in(v)
    elif isinstance(value, list):
        for v in value:
            out |= _codes_in(v)
    return out


def _inside(code: str, role: str, w: World) -> bool:
    """Whether a territory unit lies inside the role's area (written out by hand)."""
    area = {"admin": "", "district_official": w.district[:6], "street_official": w.street_a[:9],
            "dispatcher": w.street_a[:9], "community": w.community}.get(role)
    return area is not None and code.startswith(area)


@pytest.fixture
def world(session, monkeypatch) -> World:
    monkeypatch.setenv("XIAOSAN_OPEN311_PER_HOUR", "1000")
    w = build_world(session)
    from app.security import hash_password
    from app.services.users import create_user

    create_user(session, username="matrix-login", password=MATRIX_PASSWORD, role="community",
                scope_code=w.community, actor="tests", password_hash=hash_password(MATRIX_PASSWORD))
    session.commit()
    return w


@pytest.fixture
def accounts(world, client_as) -> dict[str, Any]:
    clients = {None: client_as(None)}
    for role in ROLES:
        extra = {}
        if role == "property":
            extra["estate_ids"] = [world.estate_in]
        if role == "inspector":
            extra["inspector_code"] = f"MX-{uuid.uuid4().hex[:6]}"
        clients[role] = client_as(role, scope_code(role, world), **extra)
    return clients


@pytest.mark.slow
def test_access_matrix(world, accounts, session):
    """Every classified route × every role × inside/outside, with the expected answer."""
    failures: list[str] = []
    tally: Counter[str] = Counter()
    spent: Counter[str] = Counter()

    def fail(r: R, role, case, why: str, resp) -> None:
        failures.append(f"{r.method} {r.path} [{role} {case}]: {why} "
                        f"(got {resp.status_code}: {resp.text[:160]})")

    for r in ROUTES:
        for role in (None, *ROLES):
            client = accounts[role]
            user = getattr(client, "user", None)
            identity = (user.inspector_code or user.username) if user is not None else "anon"
            # A public route has no inside or outside: one call per role.
            for case in (r.cases if r.kind != "public" else ("in",)):
                where = "in" if case == "in" else (r.out_where or outside(role or "admin",
                                                                           r.kind))
                ctx = Ctx(world, role or "anonymous", case, where, identity)
                started = time.perf_counter()
                resp = _call(client, r, ctx)
                spent[f"{r.method} {r.path}"] += time.perf_counter() - started
                tally["checks"] += 1
                if r.kind == "public":
                    tally["expect public"] += 1
                    if not _passes(resp):
                        fail(r, role, case, "a public route refused", resp)
                    continue
                if role is None:
                    tally["expect 401"] += 1
                    if resp.status_code != 401:
                        fail(r, role, case, "expected 401 without an account", resp)
                    continue
                if r.action != ANY_ACCOUNT and not allowed(role, r.action):
                    if resp.status_code != 403:
                        fail(r, role, case, f"{role} may not {r.action}: expected 403", resp)
                    tally["expect 403 (role)"] += 1
                    continue
                if role in r.refuse:
                    tally["expect 403 (area not in scope)"] += 1
                    if resp.status_code != 403:
                        fail(r, role, case, "the area is not the account's: expected 403", resp)
                    continue
                visible = where in VISIBLE[role]
                tally[_expectation(r, role, case, visible)] += 1
                if r.kind == "plain":
                    if not _passes(resp):
                        fail(r, role, case, "expected to pass", resp)
                elif r.kind == "guarded":
                    if resp.status_code in (401, 403) or resp.status_code >= 500:
                        fail(r, role, case, "expected to be let through", resp)
                elif r.kind == "object":
                    if visible and not _passes(resp):
                        fail(r, role, case, "an object in scope was refused", resp)
                    if not visible and resp.status_code != 404:
                        fail(r, role, case, "an object outside the scope: expected 404", resp)
                elif r.kind == "create":
                    may = visible or (case == "out" and role in r.out_ok)
                    stored = r.created(resp)
                    if may and not stored:
                        fail(r, role, case, "a write in scope was not stored", resp)
                    if not may and (stored or resp.status_code >= 500
                                    or resp.status_code not in (200, 403, 404, 422)):
                        fail(r, role, case, "a write outside the scope was not refused", resp)
                    if not may and role not in ("district_official",) and \
                            resp.status_code not in (200, 403):
                        fail(r, role, case, "expected 403 outside the scope", resp)
                elif r.kind == "collection":
                    if case == "out" and resp.status_code in (403, 404):
                        continue  # refusing to list a foreign area leaks nothing either
                    if resp.status_code not in (200, 204):
                        fail(r, role, case, "expected 200", resp)
                        continue
                    got = r.ids(resp)
                    _check_collection(r, role, case, got, resp, world, fail)
                elif r.kind == "area":
                    unrestricted = role == "admin"
                    if case == "out" and not unrestricted:
                        if resp.status_code != 403:
                            fail(r, role, case, "another district: expected 403", resp)
                        continue
                    if not _passes(resp):
                        fail(r, role, case, "expected to pass", resp)
                        continue
                    if resp.headers.get("content-type", "").startswith(
                            ("application/json", "application/geo+json")):
                        leaked = {c for c in _codes_in(resp.json())
                                  if not _inside(c, role, world)}
                        if leaked:
                            fail(r, role, case, f"codes outside the area: {sorted(leaked)[:3]}",
                                 resp)
    print(f"\naccess matrix: {len(ROUTES)} routes x {len(ROLES)} roles + anonymous x cases")
    for key, n in sorted(tally.items()):
        print(f"  {n:5d}  {key}")
    print("  slowest routes (s, all roles and cases):",
          ", ".join(f"{k} {v:.1f}" for k, v in spent.most_common(6)))
    assert not failures, "\n".join(failures)


def _expectation(r: R, role: str, case: str, visible: bool) -> str:
    if r.kind == "object":
        return "expect pass (object in scope)" if visible else "expect 404 (object outside)"
    if r.kind == "create":
        if visible or (case == "out" and role in r.out_ok):
            return "expect stored (create in scope)"
        return "expect refused (create outside)"
    if r.kind == "collection":
        return "expect no leak (list/count/layer/tile/export)"
    if r.kind == "guarded":
        return "expect let through (role only)"
    if r.kind == "area":
        if case == "out" and role != "admin":
            return "expect 403 (area outside)"
        return "expect pass, codes in scope (area)"
    return "expect pass (unscoped)"


def _check_collection(r: R, role: str, case: str, got: set[int], resp, w: World, fail):
    if r.obj == "estate":
        if role == "property" and got != {w.estate_in}:
            fail(r, role, case, f"a property account sees estates {sorted(got)[:5]}", resp)
        if role != "property" and not {w.estate_in, w.estate_out} <= got:
            fail(r, role, case, "estates are reference data for territorial accounts", resp)
        return
    ids = w.ids[r.obj]
    hidden = {ids[k] for k in ("in", "out", "far") if k not in VISIBLE[role]}
    leaked = got & hidden
    if leaked:
        fail(r, role, case, f"lists objects outside the scope: {sorted(leaked)}", resp)
    if r.path.endswith("/summary"):
        codes = {g["code"] for g in resp.json()["groups"]}
        outside_codes = {c for c in codes if c and not _inside_any(c, role, w)}
        if outside_codes:
            fail(r, role, case, f"counts streets outside the scope: {outside_codes}", resp)
        return
    if case == "in" and ids["in"] not in got:
        fail(r, role, case, "the object in scope is missing", resp)
    if role == "admin" and case == "in" and r.complete:
        expected = {ids["in"], ids["out"], ids["far"]}
        if not expected <= got:
            fail(r, role, case, f"admin misses {sorted(expected - got)}", resp)


def _inside_any(code: str, role: str, w: World) -> bool:
    """A street code counts as inside when it is the street of the role's area."""
    area = {"admin": "", "district_official": w.district[:6]}.get(role, w.street_a[:9])
    return code.startswith(area)


def test_forces_count_only_visits_in_scope(world, accounts, session):
    """Coverage by force is a count: a street account's count is its street's visits alone."""
    expected = session.scalar(text(
        """SELECT count(*) FROM patrol_visits v JOIN projects p ON p.id = v.project_id
           WHERE p.street_code = :s AND v.visited_on >= CURRENT_DATE - 29"""),
        {"s": world.street_a})
    total = session.scalar(text(
        "SELECT count(*) FROM patrol_visits WHERE visited_on >= CURRENT_DATE - 29"))
    assert total > expected >= 1  # the world has visits on both streets
    street = accounts["street_official"].get("/api/coverage/forces").json()
    admin = accounts["admin"].get("/api/coverage/forces").json()
    assert street["visits"] == expected
    assert admin["visits"] == total


def test_an_inspector_sees_their_own_patrols_anywhere_and_files_only_their_own(
        world, client_as, session):
    code = f"MX-{uuid.uuid4().hex[:6]}"
    c = client_as("inspector", world.grid, inspector_code=code)
    far_record = {"client_id": uuid.uuid4().hex, "inspector_id": code, "force": "supervisor",
                  "started_at": "2025-03-03T10:00:00+08:00",
                  "location": {"type": "Point", "coordinates": list(world.points["out"])}}
    r = c.post("/api/patrols", json=far_record)
    assert r.status_code == 201, r.text
    own = r.json()["id"]
    assert own in {f["id"] for f in c.get("/api/patrols").json()["features"]}
    assert c.get(f"/api/patrols/{own}").status_code == 200
    someone_else = {**far_record, "client_id": uuid.uuid4().hex, "inspector_id": "w-in"}
    assert c.post("/api/patrols", json=someone_else).status_code == 403
    batch = c.post("/api/patrols/batch", json={"records": [someone_else]}).json()
    assert batch["counts"] == {"error": 1}
    assert batch["results"][0]["errors"][0]["field"] == "inspector_id"
    # Another inspector's patrol outside the area stays hidden.
    assert c.get(f"/api/patrols/{world.ids['patrol']['out']}").status_code == 404


def test_a_reference_to_an_object_outside_the_scope_reads_as_unknown(world, accounts):
    c = accounts["street_official"]
    out = world.projects["out"]
    body = {"hazard_type": "fire", "severity": "general", "project": out.reg_no, "actor": "m"}
    hidden = c.post("/api/hazards", json=body)
    unknown = c.post("/api/hazards", json={**body, "project": "NO-SUCH-PROJECT"})
    assert hidden.status_code == unknown.status_code == 422
    assert hidden.json()["detail"][0]["msg"] == f"project: no project {out.reg_no}"
    # Another street's project cannot be named in a patrol's visits either.
    rec = {"client_id": uuid.uuid4().hex, "inspector_id": "x", "force": "supervisor",
           "started_at": "2025-03-03T10:00:00+08:00",
           "location": {"type": "Point", "coordinates": list(world.points["in"])},
           "project_ids": [out.reg_no]}
    r = c.post("/api/patrols", json=rec)
    assert r.status_code == 422 and "no such project" in r.text


def test_hotspot_maps_of_a_street_account_cover_its_street_only(world, accounts):
    c = accounts["street_official"]
    r = c.get("/api/hotspots", params={"street": world.street_b})
    assert r.status_code == 403
    r = c.get("/api/rankings", params={"level": "street"})
    assert r.status_code == 200
    assert [row["code"] for row in r.json()["rows"]] == [world.street_a]
    r = accounts["community"].get("/api/rankings", params={"level": "community"})
    assert [row["code"] for row in r.json()["rows"]] == [world.community]
    r = accounts["street_official"].get("/api/coverage/blind-spots")
    codes = {f["properties"]["grid_code"] for f in r.json()["features"]}
    assert codes and all(code.startswith(world.street_a[:9]) for code in codes)


def test_a_disabled_account_or_a_new_password_revokes_its_tokens(world, client_as, session):
    from app.services.users import disable_user, set_password

    c = client_as("street_official", world.street_a)
    assert c.get("/api/projects").status_code == 200
    set_password(session, username=c.user.username, password="another-password-1",
                 actor="tests")
    session.commit()
    assert c.get("/api/projects").status_code == 401
    d = client_as("street_official", world.street_a)
    disable_user(session, username=d.user.username, actor="tests")
    session.commit()
    assert d.get("/api/projects").status_code == 401


def test_the_audit_log_cannot_be_changed_or_deleted(session):
    from sqlalchemy.exc import DBAPIError

    session.execute(text("INSERT INTO audit_log (actor, entity, entity_id, action) "
                         "VALUES ('t', 'test', '1', 'probe')"))
    for sql in ("UPDATE audit_log SET actor = 'x' WHERE entity = 'test'",
                "DELETE FROM audit_log WHERE entity = 'test'", "TRUNCATE audit_log"):
        with pytest.raises(DBAPIError, match="append-only"):
            with session.begin_nested():
                session.execute(text(sql))


def test_scopes_are_code_prefixes_and_fail_closed():
    from app.access import Scope

    def of(role, code, **kw):
        return Scope.of_account(role=role, scope_code=code, estate_ids=kw.get("estates"),
                                inspector_code=kw.get("insp"), username="u")

    assert of("district_official", "440304000000").prefixes == ("440304",)
    assert of("street_official", "440304001000").prefixes == ("440304001",)
    assert of("community", "440304001018").prefixes == ("440304001018",)
    assert of("grid_worker", "440304001018001").prefixes == ("440304001018001",)
    assert of("admin", None).unrestricted
    # The wrong level for the role, no code, a malformed code: nothing at all.
    for role, code in (("street_official", "440304001018"), ("grid_worker", None),
                       ("community", "44030400101"), ("public_reporter", None)):
        assert of(role, code).prefixes == (), (role, code)
        assert of(role, code).sql("t")[0] == "(false)"
    street = of("street_official", "440304001000")
    assert street.covers_unit("440304001018") and street.covers_unit("440304001000")
    assert not street.covers_unit("440304002000") and not street.covers_unit("440304000000")
    assert of("community", "440304001018").covers_unit("440304001018007")
    prop = of("property", "440304000000", estates=[7])
    assert prop.estate_ids == (7,) and not prop.covers_unit("440304001000")
    predicate, params = prop.sql("t", geom="site")
    assert "estates" in predicate and params["scope_estates"] == [7]
    grid = of("grid_worker", "440304001018001")
    assert grid.inspector_code == "u"  # field accounts file patrols under their name
    predicate, params = grid.sql("t", own="inspector_id")
    assert "t.inspector_id = :scope_own" in predicate and params["scope_own"] == "u"
