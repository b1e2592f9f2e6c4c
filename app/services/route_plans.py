"""Patrol route plans: the day's candidates, plans for a day or a week, versions, exports.

Candidates
    The sites a patrol should see on the plan's day, in the chosen street (or district):

    - active sites overdue for a visit (:func:`app.services.coverage.unpatrolled_sites` as of
      the plan's day: high risk every 3 days, others every 7). An overdue **high-risk** site is
      **mandatory**; any other is optional, worth ``days overdue × risk weight`` (the weight of
      high risk is 7 / 3, as in the coverage ranking);
    - **hazard re-inspections due**: an open hazard (found / ordered) whose rectification
      deadline is on or before the plan's day (check that it was rectified), or a rectified one
      awaiting verification on site. Always mandatory. Hazards of one project are one visit at
      the project's site (merged with its overdue patrol when there is one); a hazard without a
      project is a visit at the hazard's own point.

    Inspection time (:data:`SERVICE_MINUTES`): 20 min for a small project, 15 for sporadic work,
    +10 when high risk, 15 for a re-inspection alone (+10 when added to a patrol). Time window:
    only where the kind of work keeps working hours (:data:`WORKING_HOURS`, a deliberately short
    list: residential fit-out under the residential noise rules, work at height on façades and
    shop fronts in daylight); the inspection must *start* between the opening time and the
    closing time minus the inspection time, so that it ends while work is going on. A candidate
    no chosen inspector may visit (outside every inspector's street or allowed grids) is dropped
    if optional and kept if mandatory, so that the plan names it as left out.

Planning
    The road network of each travel mode is read once per process
    (:mod:`app.services.road_networks`); inspectors and sites are snapped to it and a travel
    matrix is computed per mode; :func:`gis.routing.plan_day` plans within a hard deadline
    (default 10 s), then workload is balanced across inspectors. ``matrix='auto'`` travels
    along the roads between places that lie on the network (within 250 m of a road) and uses
    the straight-line estimate (great-circle distance × 1.3 at the mode's speed) for trips to
    or from the others — a partial road graph, as the demo's, still gives a usable plan; the
    plan then says ``matrix_source='roads+straight_line'`` (or ``'straight_line'`` without any
    network), with a note, and flags each estimated leg (``estimated``). ``'roads'`` is strict:
    a site off the network is left out as unreachable, an inspector starting off it is a 422.
    ``'straight_line'`` never reads the roads.

    Every mandatory candidate ends on a route or in ``left_out`` with a reason, in English and
    Chinese. Bad input is refused with a 422 naming the input (``pins``, ``fixed_orders``,
    ``inspectors``, ``street``, ...). An inspector who can reach none of their sites within the
    shift does not stop the plan: they get an empty route and a note saying why.

Versions
    Plans are never overwritten. A re-plan (new pins, fixed orders, another deadline) reuses the
    stored inputs of its parent — the same candidates and roster as then — unless asked to
    refresh them, and is stored as version n + 1 of the same lineage (``root_id``).

Exports
    JSON for the dispatcher's page (colour per inspector, stop sequence numbers, ETAs as HH:MM,
    reasons in English and Chinese, ``matrix_source``), GeoJSON, GPX 1.1 (one ``<rte>`` of stops
    and one ``<trk>`` of road geometry per inspector) and a Gaode (AMap) link per stop.
"""

from __future__ import annotations

import json
import math
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import numpy as np
import shapely
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.models import RoutePlan, RoutePlanLeftOut, RoutePlanRoute, RoutePlanStop
from app.patrol_rules import PatrolRules, get_patrol_rules
from app.services import audit
from app.services.coverage import unpatrolled_sites
from app.services.inspectors import list_inspectors
from app.services.registration import CHINA_TZ
from app.services.road_networks import road_network
from gis._errors import GisError
from gis.matrix import TravelMatrix, route_geometry, travel_matrix
from gis.roads import MODES
from gis.routing import Break, Inspector, PeriodicSite, Plan, Site, plan_day, plan_week
from gis.snapping import DEFAULT_MAX_SNAP_M

MATRIX_CHOICES = ("auto", "roads", "straight_line")
DEFAULT_DEADLINE_S = 10.0
MAX_DEADLINE_S = 60.0
DEFAULT_BALANCE = 1.0
SERVICE_MINUTES = {"small_project": 20, "sporadic_work": 15}
HIGH_RISK_EXTRA_MINUTES = 10
REINSPECTION_MINUTES = 15
REINSPECTION_EXTRA_MINUTES = 10
WORKING_HOURS = {
    # Residential noise rules: fit-out work in homes only in the daytime.
    "residential_fitout": ("08:00", "18:00"),
    # Work at height over pavements and shop fronts: daylight hours.
    "facade_cleaning": ("09:00", "17:00"),
    "billboard": ("09:00", "17:00"),
    "shop_signage": ("09:00", "17:00"),
}
PALETTE = (
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46b5d1", "#f032e6", "#9a6324",
    "#469990", "#800000", "#808000", "#000075", "#e6a800", "#2f4f4f", "#ff6f91", "#6b8e23",
    "#8b4513", "#1e90ff", "#c71585", "#228b22", "#b8860b", "#4b0082",
)
REASONS = {
    "not_in_any_area": ("outside every inspector's area", "不在任何巡查员的责任区内"),
    "unreachable": ("cannot be reached and returned from within a shift (or off the roads)",
                    "无法到达（不在路网上，或往返超出班次）"),
    "time_window": ("its working hours cannot be met", "无法在其作业时间内到达"),
    "no_time_left": ("no inspector had time left for it", "巡查员当日时间已排满"),
    "mandatory_infeasible": ("mandatory site that could not be planned", "必查点位无法安排"),
}
CONSTRAINTS_ZH = {
    "area": "责任区", "reachability": "可达性", "shift_length": "班次时长",
    "time_window": "作业时间", "max_stops": "每日点位上限", "max_workload": "工作量上限",
    "shift_time": "班次剩余时间", "break": "午休",
}
AMAP_MODES = {"walk": "walk", "ebike": "ride", "car": "car"}


class PlanInputError(GisError):
    """A plan request that cannot be planned as asked; the message starts with the field."""


def _fail(field_name: str, message: str) -> PlanInputError:
    return PlanInputError(f"{field_name}: {message}")


# ---------------------------------------------------------------------------------------
# Small helpers


def _secs(hhmm: str) -> float:
    h, m = hhmm.split(":")[:2]
    return int(h) * 3600.0 + int(m) * 60.0


def hhmm(seconds: float | None) -> str | None:
    """Seconds since midnight as HH:MM (past midnight: 24:10)."""
    if seconds is None or not math.isfinite(seconds):
        return None
    s = int(round(seconds))
    return f"{s // 3600:02d}:{(s % 3600) // 60:02d}"


def _at(day: date, seconds: float) -> datetime:
    return datetime.combine(day, datetime.min.time(), CHINA_TZ) + timedelta(seconds=seconds)


def _clock(value: datetime | None) -> str | None:
    return value.astimezone(CHINA_TZ).strftime("%H:%M") if value is not None else None


def nav_url(lon: float, lat: float, name: str) -> str:
    """Gaode (AMap) marker URI for a stop, WGS84 (AMap converts): opens the app or the web map."""
    query = urlencode({"position": f"{lon:.6f},{lat:.6f}", "name": name, "src": "xiaosan",
                       "coordinate": "wgs84", "callnative": "1"}, quote_via=quote, safe=",")
    return f"https://uri.amap.com/marker?{query}"


def nav_route_url(lon: float, lat: float, name: str, mode: str) -> str:
    """Gaode (AMap) navigation URI from where the phone is to the stop, by the travel mode."""
    query = urlencode({"to": f"{lon:.6f},{lat:.6f},{name}", "mode": AMAP_MODES.get(mode, "walk"),
                       "src": "xiaosan", "coordinate": "wgs84", "callnative": "1"},
                      quote_via=quote, safe=",")
    return f"https://uri.amap.com/navigation?{query}"


def reason_text(reason: str) -> tuple[str, str]:
    """(English, Chinese) for a left-out reason."""
    return REASONS.get(reason, (reason, reason))


# ---------------------------------------------------------------------------------------
# Scope and roster


def resolve_scope(
    session: Session, district: str | None, street: str | None
) -> tuple[str, str | None]:
    """(district, street) of a request: the street's district, or the demo district."""
    from app.config import get_settings

    if street:
        row = session.execute(text(
            "SELECT district_code FROM streets WHERE code = :s AND valid_to IS NULL"),
            {"s": street}).first()
        if row is None:
            raise _fail("street", f"no current street {street}")
        if district and district != row.district_code:
            raise _fail("street", f"street {street} is not in district {district}")
        return row.district_code, street
    district = district or get_settings().demo_district
    if not session.scalar(text(
            "SELECT 1 FROM districts WHERE code = :d AND valid_to IS NULL"), {"d": district}):
        raise _fail("district", f"no current district {district}")
    return district, None


def roster(
    session: Session,
    *,
    district: str,
    street: str | None,
    codes: Sequence[str] | None,
    mode: str | None,
) -> list[dict[str, Any]]:
    """The inspectors of a plan: the given codes, or every active one of the street/district."""
    if mode is not None and mode not in MODES:
        raise _fail("mode", f"must be one of {', '.join(MODES)}")
    if codes is not None:
        codes = list(dict.fromkeys(codes))
        if not codes:
            raise _fail("inspectors", "an empty list; omit it to plan with everyone on duty")
        found = list_inspectors(session, codes=codes)
        missing = [c for c in codes if c not in {i["code"] for i in found}]
        if missing:
            raise _fail("inspectors", f"unknown or inactive inspector(s): {', '.join(missing)}")
        outside = [i["code"] for i in found if i["district_code"] != district]
        if outside:
            raise _fail("inspectors", f"not in district {district}: {', '.join(outside)}")
        order = {c: n for n, c in enumerate(codes)}
        found.sort(key=lambda i: order[i["code"]])
    else:
        found = list_inspectors(session, district=district, street=street)
        if not found:
            where = f"street {street}" if street else f"district {district}"
            raise _fail("inspectors", f"no active inspectors in {where}")
    for n, insp in enumerate(found):
        insp["colour"] = PALETTE[n % len(PALETTE)]
        insp["roster_mode"] = insp["mode"]
        if mode is not None:
            insp["mode"] = mode
    return found


def _in_area(insp: Mapping[str, Any], site: Mapping[str, Any]) -> bool:
    grids = insp.get("allowed_grids")
    if grids is None:
        return site.get("street_code") == insp["street_code"]
    return site.get("grid_code") in set(grids)


# ---------------------------------------------------------------------------------------
# Candidates


def _service_min(kind: str | None, high_risk: bool) -> int:
    return SERVICE_MINUTES.get(kind or "", 20) + (HIGH_RISK_EXTRA_MINUTES if high_risk else 0)


def _window(category: str | None, service_min: int) -> list[str] | None:
    hours = WORKING_HOURS.get(category or "")
    if hours is None:
        return None
    close = _secs(hours[1]) - service_min * 60
    return [hours[0], hhmm(close)]


def _reinspections(
    session: Session, *, day: date, district: str, street: str | None
) -> list[dict[str, Any]]:
    rows = session.execute(text(
        """SELECT h.id, h.project_id, h.state, h.due_on, h.severity, h.hazard_type,
                  coalesce(p.street_code, h.street_code) AS street_code,
                  coalesce(p.community_code, h.community_code) AS community_code,
                  coalesce(p.grid_code, h.grid_code) AS grid_code,
                  p.reg_no, p.title, p.kind, p.category, p.high_risk,
                  ST_X(coalesce(ST_PointOnSurface(p.site), h.location)) AS lon,
                  ST_Y(coalesce(ST_PointOnSurface(p.site), h.location)) AS lat
           FROM hazards h LEFT JOIN projects p ON p.id = h.project_id
           WHERE h.district_code = :d
             AND ((h.state IN ('found', 'ordered') AND h.due_on <= :day)
                  OR h.state = 'rectified')
             AND (CAST(:s AS text) IS NULL OR coalesce(p.street_code, h.street_code) = :s)
           ORDER BY h.due_on, h.id"""),
        {"d": district, "s": street, "day": day}).mappings().all()
    return [dict(r) for r in rows]


def candidates(
    session: Session,
    *,
    day: date,
    district: str | None = None,
    street: str | None = None,
    inspectors: Sequence[Mapping[str, Any]] | None = None,
    rules: PatrolRules | None = None,
) -> list[dict[str, Any]]:
    """The sites to plan on ``day`` (see the module docstring), mandatory first, then by value.

    With ``inspectors`` each candidate lists who may visit it (``eligible``) and optional
    candidates nobody may visit are dropped.
    """
    rules = rules or get_patrol_rules()
    district, street = resolve_scope(session, district, street)
    weight_high = rules.due_days_other / rules.due_days_high_risk
    out: dict[str, dict[str, Any]] = {}
    for item in unpatrolled_sites(session, on=day, district=district, street=street,
                                  rules=rules):
        high = bool(item["high_risk"])
        service = _service_min(item["kind"], high)
        out[f"project:{item['id']}"] = {
            "site": f"project:{item['id']}", "kind": "patrol", "project_id": item["id"],
            "hazard_ids": [], "reg_no": item["reg_no"], "title": item["title"],
            "category": item["category"], "work_kind": item["kind"], "high_risk": high,
            "street_code": item["street_code"], "community_code": item["community_code"],
            "grid_code": item["grid_code"], "lon": round(float(item["lon"]), 7),
            "lat": round(float(item["lat"]), 7), "mandatory": high,
            "value": round(float(item["overdue_days"]) * (weight_high if high else 1.0), 3),
            "service_min": service, "window": _window(item["category"], service),
            "overdue_days": int(item["overdue_days"]), "days_since": int(item["days_since"]),
            "why": (f"{'high-risk ' if high else ''}site overdue by {item['overdue_days']} day(s)"
                    f" (due every {item['due_days']})"),
        }
    for hz in _reinspections(session, day=day, district=district, street=street):
        key = f"project:{hz['project_id']}" if hz["project_id"] else f"hazard:{hz['id']}"
        why = (f"hazard #{hz['id']} awaiting verification" if hz["state"] == "rectified"
               else f"hazard #{hz['id']} rectification due {hz['due_on'].isoformat()}")
        if key in out:
            cand = out[key]
            if not cand["hazard_ids"]:
                cand["service_min"] += REINSPECTION_EXTRA_MINUTES
                cand["window"] = _window(cand["category"], cand["service_min"])
                cand["kind"] = "patrol+reinspection" if cand["kind"] == "patrol" else cand["kind"]
            cand["hazard_ids"].append(hz["id"])
            cand["mandatory"] = True
            cand["why"] += f"; {why}"
            continue
        service = REINSPECTION_MINUTES
        out[key] = {
            "site": key, "kind": "reinspection", "project_id": hz["project_id"],
            "hazard_ids": [hz["id"]], "reg_no": hz["reg_no"],
            "title": hz["title"] or f"隐患复查 #{hz['id']}", "category": hz["category"],
            "work_kind": hz["kind"], "high_risk": bool(hz["high_risk"]),
            "street_code": hz["street_code"], "community_code": hz["community_code"],
            "grid_code": hz["grid_code"], "lon": round(float(hz["lon"]), 7),
            "lat": round(float(hz["lat"]), 7), "mandatory": True, "value": 0.0,
            "service_min": service, "window": _window(hz["category"], service),
            "overdue_days": None, "days_since": None, "why": why,
        }
    items = list(out.values())
    if inspectors is not None:
        kept = []
        for cand in items:
            cand["eligible"] = [i["code"] for i in inspectors if _in_area(i, cand)]
            if cand["eligible"] or cand["mandatory"]:
                kept.append(cand)
        items = kept
    items.sort(key=lambda c: (not c["mandatory"], -c["value"], c["site"]))
    return items


# ---------------------------------------------------------------------------------------
# Solving (no database)


@dataclass
class _Points:
    lon: list[float] = field(default_factory=list)
    lat: list[float] = field(default_factory=list)

    def add(self, lon: float, lat: float) -> int:
        self.lon.append(float(lon))
        self.lat.append(float(lat))
        return len(self.lon) - 1


@dataclass
class Solved:
    """A solved plan before storage: one entry of ``days`` per day planned."""

    matrix_source: str
    matrix_note: str | None
    days: list[dict[str, Any]]
    warnings: list[str]
    timings: dict[str, float]
    solver: str
    week: dict[str, Any] | None = None


@dataclass(eq=False)
class _ModeMatrix:
    """Travel of one mode between all points: along the roads where both ends lie on the
    network, else the straight-line estimate (``estimated``)."""

    durations: np.ndarray
    distances: np.ndarray
    road: TravelMatrix | None
    straight: TravelMatrix
    on_road: np.ndarray

    def estimated(self, a: int, b: int) -> bool:
        return self.road is None or not (self.on_road[a] and self.on_road[b])


def _matrices(
    inputs: Mapping[str, Any], points: _Points
) -> tuple[dict[str, _ModeMatrix], str, str | None]:
    """A travel matrix per mode, which source it is (``roads``, ``roads+straight_line``,
    ``straight_line``) and, unless it is all roads, why."""
    modes = sorted({i["mode"] for i in inputs["inspectors"]})
    lon, lat = np.asarray(points.lon), np.asarray(points.lat)
    choice = inputs.get("matrix", "auto")
    networks = {m: road_network(m) for m in modes} if choice != "straight_line" else {}
    note = "straight-line estimate asked for" if choice == "straight_line" else None
    if networks and any(n is None for n in networks.values()):
        if choice == "roads":
            raise _fail("matrix", "no road network is configured (XIAOSAN_ROAD_GRAPH); "
                                  "use matrix=auto or straight_line")
        networks, note = {}, "no road network is configured"
    out: dict[str, _ModeMatrix] = {}
    estimated_points: set[int] = set()
    for mode in modes:
        straight = travel_matrix(None, lon, lat, mode=mode)
        net = networks.get(mode)
        if net is None:
            out[mode] = _ModeMatrix(straight.durations_s, straight.distances_m, None, straight,
                                    np.zeros(lon.size, dtype=bool))
            continue
        road = travel_matrix(net, lon, lat)
        on_road = road.reachable.copy()
        if choice == "roads":
            for insp in inputs["inspectors"]:
                if insp["mode"] == mode and not (on_road[insp["_start"]] and on_road[insp["_end"]]):
                    raise _fail("inspectors", (
                        f"inspector {insp['code']}'s start (or end) is more than "
                        f"{DEFAULT_MAX_SNAP_M:.0f} m from the nearest {mode} road of the network; "
                        "move it onto a street or plan with matrix=auto or straight_line"))
            out[mode] = _ModeMatrix(road.durations_s, road.distances_m, road, straight, on_road)
            continue
        both = np.isfinite(road.durations_s)
        out[mode] = _ModeMatrix(np.where(both, road.durations_s, straight.durations_s),
                                np.where(both, road.distances_m, straight.distances_m),
                                road, straight, on_road)
        estimated_points |= set(np.flatnonzero(~on_road).tolist())
    if not networks:
        source = "straight_line"
    elif estimated_points:
        source = "roads+straight_line"
        n_all = lon.size
        if len(estimated_points) == n_all:
            source = "straight_line"
        note = (f"{len(estimated_points)} of {n_all} places (inspector starts and sites) lie "
                f"more than {DEFAULT_MAX_SNAP_M:.0f} m from the road network: trips to and "
                "from them are straight-line estimates")
    else:
        source = "roads"
    if note is not None and source == "straight_line":
        note = f"straight-line estimate (great-circle distance × 1.3 at the mode's speed): {note}"
    return out, source, note


def _check_pins(inputs: Mapping[str, Any]) -> None:
    """Contradictory or unknown pins and fixed orders: a 422 naming the input."""
    sites = {c["site"]: c for c in inputs["sites"]}
    insp = {i["code"]: i for i in inputs["inspectors"]}
    pins = inputs.get("pins") or {}
    for site, code in pins.items():
        if site not in sites:
            raise _fail("pins", f"site {site} is not a candidate of this plan")
        if code not in insp:
            raise _fail("pins", f"site {site} is pinned to unknown inspector {code}")
        if not _in_area(insp[code], sites[site]):
            raise _fail("pins", f"site {site} is pinned to {code}, whose area excludes it "
                                f"(grid {sites[site].get('grid_code')})")
    seen: dict[str, str] = {}
    for code, order in (inputs.get("fixed_orders") or {}).items():
        if code not in insp:
            raise _fail("fixed_orders", f"unknown inspector {code}")
        for site in order:
            if site not in sites:
                raise _fail("fixed_orders", f"site {site} in {code}'s order is not a candidate")
            if site in seen:
                other = seen[site]
                raise _fail("fixed_orders", (
                    f"site {site} is twice in {code}'s order" if other == code else
                    f"site {site} is in the fixed orders of both {other} and {code}"))
            if pins.get(site, code) != code:
                raise _fail("fixed_orders", f"site {site} is in {code}'s order but pinned to "
                                            f"{pins[site]}")
            if not _in_area(insp[code], sites[site]):
                raise _fail("fixed_orders", f"site {site} is in {code}'s order, but their area "
                                            "excludes it")
            seen[site] = code


def _field_of_solver_error(message: str) -> str:
    m = message.lower()
    if "fixed order" in m:
        return "fixed_orders"
    if m.startswith(("pin", "contradictory pin")):
        return "pins"
    if m.startswith(("inspector", "no inspectors")):
        return "inspectors"
    if m.startswith("deadline_s"):
        return "deadline_s"
    return "input"


def _inspector(i: Mapping[str, Any], allowed: frozenset[str]) -> Inspector:
    rest = None
    lunch = i.get("lunch")
    if lunch:
        rest = Break(_secs(lunch["earliest"]), _secs(lunch["latest"]), lunch["minutes"] * 60.0)
    return Inspector(
        i["code"], i["_start"], _secs(i["shift_start"]), _secs(i["shift_end"]),
        end_index=i["_end"], rest=rest, mode=i["mode"], allowed_sites=allowed,
        max_stops=i.get("max_stops"))


def _site(c: Mapping[str, Any], idx: int) -> Site:
    window = None
    if c.get("window"):
        window = (_secs(c["window"][0]), _secs(c["window"][1]))
    return Site(c["site"], idx, c["service_min"] * 60.0, time_window=window,
                mandatory=bool(c["mandatory"]), value=max(float(c["value"]), 0.0))


def _idle(
    insps: list[Inspector], sites: list[Site], durations: Mapping[str, _ModeMatrix],
    pinned: Mapping[str, str], fixed: Mapping[str, Sequence[str]],
) -> dict[str, str]:
    """Inspectors who can reach none of their sites within the shift → why (planned without)."""
    out = {}
    for insp in insps:
        if insp.id in fixed or insp.id in set(pinned.values()):
            continue  # the dispatcher's choice: let the planner judge it
        mine = [s for s in sites if s.id in (insp.allowed_sites or ())
                and pinned.get(s.id, insp.id) == insp.id]
        if not mine:
            continue
        T = durations[insp.mode].durations
        loc = np.array([s.location_index for s in mine])
        end = insp.end_index if insp.end_index is not None else insp.start_index
        trip = T[insp.start_index, loc] + np.array([s.service_s for s in mine]) + T[loc, end]
        rest = insp.rest.duration_s if insp.rest else 0.0
        available = insp.shift_end_s - insp.shift_start_s - rest
        if not (trip <= available).any():
            shortest = np.min(trip)
            out[insp.id] = (
                f"cannot reach any of their {len(mine)} candidate sites within the shift "
                f"{hhmm(insp.shift_start_s)}–{hhmm(insp.shift_end_s)} by {insp.mode} "
                + (f"(shortest round trip {shortest / 60:.0f} min, {available / 60:.0f} available)"
                   if np.isfinite(shortest) else "(no path: their sites are off the network)"))
    return out


def _left_out_without_planner(
    sites: list[Site], insps: list[Inspector], idle: Mapping[str, str]
) -> list[dict[str, Any]]:
    out = []
    for s in sites:
        eligible = [i for i in insps if s.id in (i.allowed_sites or ())]
        constraint = "shift_length" if eligible else "area"
        reason = "mandatory_infeasible" if s.mandatory else (
            "unreachable" if eligible else "not_in_any_area")
        detail = (f"every inspector who may visit it is unavailable: {idle[eligible[0].id]}"
                  if eligible else "outside the allowed sites of every inspector")
        out.append({"site": s.id, "reason": reason, "constraint": constraint, "detail": detail})
    return out


def _geometry(matrix: _ModeMatrix, seq: list[int]) -> shapely.LineString:
    """The path through the points: along the roads between road-snapped positions, stepping
    off the road onto each actual point (so that it starts at the inspector's start and
    passes through every stop), straight where the leg is an estimate."""
    coords: list[tuple[float, float]] = []
    lon, lat = matrix.straight.lon, matrix.straight.lat
    for a, b in zip(seq[:-1], seq[1:], strict=True):
        leg = np.empty((0, 2))
        if a != b and not matrix.estimated(a, b):
            assert matrix.road is not None
            leg = shapely.get_coordinates(route_geometry(matrix.road, [a, b]))
        for p in [(lon[a], lat[a]), *map(tuple, leg), (lon[b], lat[b])]:
            if not coords or abs(coords[-1][0] - p[0]) > 1e-9 or abs(coords[-1][1] - p[1]) > 1e-9:
                coords.append((float(p[0]), float(p[1])))
    if len(coords) < 2:
        first = (float(lon[seq[0]]), float(lat[seq[0]]))
        coords = [first, first]
    return shapely.LineString(coords)


def _day_result(
    plan: Plan | None,
    inputs: Mapping[str, Any],
    sites: list[Site],
    insps: list[Inspector],
    durations: Mapping[str, _ModeMatrix],
    idle: Mapping[str, str],
    day_index: int,
) -> dict[str, Any]:
    by_code = {i["code"]: i for i in inputs["inspectors"]}
    cand = {c["site"]: c for c in inputs["sites"]}
    routes_by = {r.inspector_id: r for r in plan.routes} if plan is not None else {}
    routes = []
    for insp in insps:
        info = by_code[insp.id]
        m = durations[insp.mode]
        r = routes_by.get(insp.id)
        stops = []
        geometry = None
        estimated_legs = 0
        if r is not None and r.stops:
            seq = list(r.location_sequence)
            geometry = _geometry(m, seq)
            estimated_legs = sum(m.estimated(a, b) for a, b in zip(seq[:-1], seq[1:],
                                                                     strict=True))
            for n, st in enumerate(r.stops, start=1):
                stops.append({"site": st.site_id, "seq": n, "arrival_s": st.arrival_s,
                              "start_s": st.start_s, "departure_s": st.departure_s,
                              "wait_s": st.wait_s, "travel_s": st.travel_s,
                              "distance_m": st.distance_m if math.isfinite(st.distance_m)
                              else None, "fixed": st.fixed,
                              "estimated": bool(m.estimated(seq[n - 1], seq[n]))})
        routes.append({
            "inspector": insp.id, "colour": info["colour"], "geometry": geometry,
            "distance_m": float(r.distance_m) if r is not None and math.isfinite(r.distance_m)
            else 0.0,
            "travel_s": float(r.travel_s) if r is not None else 0.0,
            "service_s": float(r.service_s) if r is not None else 0.0,
            "wait_s": float(r.wait_s) if r is not None else 0.0,
            "depart_s": float(r.depart_s) if r is not None and r.stops else None,
            "return_s": float(r.return_s) if r is not None and r.stops else None,
            "rest": ({"start": hhmm(r.rest.start_s), "end": hhmm(r.rest.end_s)}
                     if r is not None and r.rest is not None and r.stops else None),
            "note": idle.get(insp.id), "stops": stops, "estimated_legs": estimated_legs,
        })
    if plan is not None:
        left = [{"site": lo.site_id, "reason": lo.reason, "constraint": lo.constraint,
                 "detail": lo.detail} for lo in plan.left_out]
    else:
        left = _left_out_without_planner(sites, insps, idle)
    site_index = {s.id: s.location_index for s in sites}
    for lo in left:
        if lo["constraint"] == "reachability":
            dists = [mode for mode, m in durations.items()
                     if m.road is not None and not m.on_road[site_index[lo["site"]]]]
            if dists:
                lo["detail"] += (f" (more than {DEFAULT_MAX_SNAP_M:.0f} m from the nearest "
                                 f"{'/'.join(dists)} road of the network)")
        lo["mandatory"] = bool(cand[lo["site"]]["mandatory"])
    return {"day_index": day_index, "routes": routes, "left_out": left,
            "balance": _balance_dict(plan), "solver": plan.solver if plan else "none",
            "solve_s": plan.solve_s if plan else 0.0}


def _balance_dict(plan: Plan | None) -> dict[str, Any] | None:
    if plan is None or plan.balance is None:
        return None
    b = plan.balance
    return {"spread_before_min": round(b.spread_before_s / 60, 1),
            "spread_after_min": round(b.spread_after_s / 60, 1),
            "stdev_before_min": round(b.stdev_before_s / 60, 1),
            "stdev_after_min": round(b.stdev_after_s / 60, 1), "moves": b.moves,
            "extra_travel_min": round(b.extra_travel_s / 60, 1),
            "load_before_min": {k: round(v / 60, 1) for k, v in b.load_before_s.items()},
            "load_after_min": {k: round(v / 60, 1) for k, v in b.load_after_s.items()}}


def _prepare(inputs: dict[str, Any]):
    """Points, matrices, planner inspectors and sites from stored inputs."""
    points = _Points()
    for insp in inputs["inspectors"]:
        insp["_start"] = points.add(*insp["start"])
        insp["_end"] = points.add(*insp["end"]) if insp.get("end") else insp["_start"]
    site_idx = {c["site"]: points.add(c["lon"], c["lat"]) for c in inputs["sites"]}
    durations, source, note = _matrices(inputs, points)
    sites = [_site(c, site_idx[c["site"]]) for c in inputs["sites"]]
    insps = [_inspector(i, frozenset(c["site"] for c in inputs["sites"] if _in_area(i, c)))
             for i in inputs["inspectors"]]
    return sites, insps, durations, source, note


def solve(inputs: dict[str, Any], *, progress: Callable[[str], None] | None = None) -> Solved:
    """Plan a day from its inputs (see :func:`make_plan`); pure: no database."""
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    if not inputs["inspectors"]:
        raise _fail("inspectors", "no inspectors: a plan needs at least one")
    _check_pins(inputs)
    say(f"travel matrix for {len(inputs['sites'])} sites and "
        f"{len(inputs['inspectors'])} inspectors")
    sites, insps, durations, source, note = _prepare(inputs)
    t_matrix = time.perf_counter() - t0
    pins = dict(inputs.get("pins") or {})
    fixed = {k: list(v) for k, v in (inputs.get("fixed_orders") or {}).items()}
    idle = _idle(insps, sites, durations, pins, fixed)
    working = [i for i in insps if i.id not in idle]
    solver = inputs["solver"]
    warnings = [f"inspector {k}: {v}" for k, v in idle.items()]
    plan = None
    say(f"solving (deadline {solver['deadline_s']:g} s)")
    if working:
        try:
            plan = plan_day(working, sites, {k: m.durations for k, m in durations.items()},
                            distances={k: m.distances for k, m in durations.items()},
                            deadline_s=solver["deadline_s"],
                            pins=pins, fixed_orders=fixed, seed=solver.get("seed", 0),
                            balance=solver.get("balance"))
        except GisError as exc:
            raise _fail(_field_of_solver_error(str(exc)), str(exc)) from exc
    t_solve = time.perf_counter() - t0 - t_matrix
    day = _day_result(plan, inputs, sites, insps, durations, idle, 0)
    return Solved(matrix_source=source, matrix_note=note, days=[day], warnings=warnings,
                  timings={"matrix_s": round(t_matrix, 3), "solve_s": round(t_solve, 3),
                           "planner_s": round(plan.solve_s, 3) if plan else 0.0},
                  solver=plan.solver if plan else "none")


def solve_week(
    inputs: dict[str, Any], *, progress: Callable[[str], None] | None = None
) -> Solved:
    """Plan several days from week inputs: periodic visits spread over days and inspectors."""
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    if not inputs["inspectors"]:
        raise _fail("inspectors", "no inspectors: a plan needs at least one")
    say(f"travel matrix for {len(inputs['sites'])} sites")
    sites, insps, durations, source, note = _prepare(inputs)
    t_matrix = time.perf_counter() - t0
    idle = _idle(insps, sites, durations, {}, {})
    working = [i for i in insps if i.id not in idle]
    cand = {c["site"]: c for c in inputs["sites"]}
    periodic = [PeriodicSite(s, high_risk=bool(cand[s.id]["high_risk"]),
                             period_days=cand[s.id].get("period_days"),
                             days_since_visit=cand[s.id].get("days_since_visit"))
                for s in sites]
    solver = inputs["solver"]
    days = int(inputs["days"])
    warnings = [f"inspector {k}: {v}" for k, v in idle.items()]
    say(f"solving {days} days (deadline {solver['deadline_s']:g} s per day)")
    results = []
    week_info: dict[str, Any] = {}
    if working and sites:
        try:
            week = plan_week(working, periodic, {k: m.durations for k, m in durations.items()},
                             distances={k: m.distances for k, m in durations.items()}, days=days,
                             deadline_s=solver["deadline_s"], seed=solver.get("seed", 0),
                             balance=solver.get("balance"))
        except GisError as exc:
            raise _fail(_field_of_solver_error(str(exc)), str(exc)) from exc
        assigned = [set(a) for a in week.assigned]
        for d, plan in enumerate(week.days):
            todays = [s for s in sites if s.id in assigned[d]]
            results.append(_day_result(plan, inputs, todays, insps, durations, idle, d))
        loads = week.inspector_load_s
        week_info = {
            "visits_required": week.visits_required, "visits_made": week.visits_made,
            "missed": [{"day_index": d, "site": lo.site_id, "reason": lo.reason}
                       for d, lo in week.missed],
            "inspector_load_min": {k: round(v / 60, 1) for k, v in loads.items()},
            "inspector_load_spread_min": round((max(loads.values()) - min(loads.values())) / 60,
                                               1) if loads else 0.0,
            "inspector_load_stdev_min": round(float(np.std(list(loads.values()))) / 60, 1)
            if loads else 0.0,
            "day_load_min": [round(v / 60, 1) for v in week.load_s],
        }
    else:
        for d in range(days):
            results.append(_day_result(None, inputs, [], insps, durations, idle, d))
    return Solved(matrix_source=source, matrix_note=note, days=results, warnings=warnings,
                  timings={"matrix_s": round(t_matrix, 3),
                           "solve_s": round(time.perf_counter() - t0 - t_matrix, 3)},
                  solver="pyvrp-week", week=week_info)


# ---------------------------------------------------------------------------------------
# Requests: build inputs, solve, store


def _solver_settings(deadline_s: float | None, balance: float | None, seed: int) -> dict:
    deadline = DEFAULT_DEADLINE_S if deadline_s is None else float(deadline_s)
    if not (math.isfinite(deadline) and 0 < deadline <= MAX_DEADLINE_S):
        raise _fail("deadline_s", f"must be between 0 and {MAX_DEADLINE_S:g} seconds")
    if balance is not None and not (math.isfinite(balance) and balance >= 0):
        raise _fail("balance", "must be a number >= 0 (travel seconds per second of load)")
    return {"name": "gis.routing.plan_day (PyVRP)", "deadline_s": deadline,
            "balance": balance, "seed": int(seed)}


def _public_inputs(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs as stored: without the matrix indices added while solving."""
    out = dict(inputs)
    out["inspectors"] = [{k: v for k, v in i.items() if not k.startswith("_")}
                         for i in inputs["inspectors"]]
    return out


def _rules_input() -> dict[str, Any]:
    """The rules a plan was made under, stored with its inputs."""
    rules = get_patrol_rules()
    return {"due_days_high_risk": rules.due_days_high_risk,
            "due_days_other": rules.due_days_other,
            "service_minutes": SERVICE_MINUTES, "working_hours": WORKING_HOURS}


def make_plan(
    session: Session,
    *,
    day: date,
    actor: str,
    district: str | None = None,
    street: str | None = None,
    inspector_codes: Sequence[str] | None = None,
    deadline_s: float | None = None,
    mode: str | None = None,
    pins: Mapping[str, str] | None = None,
    fixed_orders: Mapping[str, Sequence[str]] | None = None,
    matrix: str = "auto",
    balance: float | None = DEFAULT_BALANCE,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> RoutePlan:
    """Plan ``day`` for a street or a district and store it as version 1 (not committed)."""
    t0 = time.perf_counter()
    if matrix not in MATRIX_CHOICES:
        raise _fail("matrix", f"must be one of {', '.join(MATRIX_CHOICES)}")
    solver = _solver_settings(deadline_s, balance, seed)
    district, street = resolve_scope(session, district, street)
    inspectors = roster(session, district=district, street=street, codes=inspector_codes,
                        mode=mode)
    if progress:
        progress("candidates")
    sites = candidates(session, day=day, district=district, street=street,
                       inspectors=inspectors)
    inputs = {
        "kind": "day", "date": day.isoformat(), "district_code": district,
        "street_code": street, "inspectors": inspectors, "sites": sites,
        "pins": dict(pins or {}), "fixed_orders": {k: list(v) for k, v in
                                                   (fixed_orders or {}).items()},
        "matrix": matrix, "mode_override": mode, "solver": solver,
        "rules": _rules_input(),
    }
    solved = solve(inputs, progress=progress)
    solved.timings["total_s"] = round(time.perf_counter() - t0, 3)
    return store(session, inputs=_public_inputs(inputs), solved=solved, actor=actor)


def replan(
    session: Session,
    *,
    plan_id: int,
    actor: str,
    pins: Mapping[str, str] | None = None,
    fixed_orders: Mapping[str, Sequence[str]] | None = None,
    deadline_s: float | None = None,
    balance: float | None = None,
    refresh: bool = False,
    progress: Callable[[str], None] | None = None,
) -> RoutePlan:
    """A new version of a plan with other pins / fixed orders (``None``: keep the parent's).

    The candidates and the roster are the parent's, as stored, unless ``refresh`` asks to
    recompute them from today's data.
    """
    t0 = time.perf_counter()
    parent = get_plan(session, plan_id)
    if parent.kind != "day":
        raise _fail("plan", f"plan {plan_id} is a {parent.kind} plan; re-plan one of its days "
                            "as a day plan")
    inputs = dict(parent.inputs)
    inputs["inspectors"] = [dict(i) for i in inputs["inspectors"]]
    inputs["solver"] = dict(inputs["solver"])
    if deadline_s is not None:
        inputs["solver"]["deadline_s"] = _solver_settings(deadline_s, None, 0)["deadline_s"]
    if balance is not None:
        inputs["solver"]["balance"] = _solver_settings(None, balance, 0)["balance"]
    if pins is not None:
        inputs["pins"] = dict(pins)
    if fixed_orders is not None:
        inputs["fixed_orders"] = {k: list(v) for k, v in fixed_orders.items()}
    if refresh:
        day = date.fromisoformat(inputs["date"])
        codes = [i["code"] for i in inputs["inspectors"]]
        inputs["inspectors"] = roster(session, district=inputs["district_code"],
                                      street=inputs["street_code"], codes=codes,
                                      mode=inputs.get("mode_override"))
        inputs["sites"] = candidates(session, day=day, district=inputs["district_code"],
                                     street=inputs["street_code"],
                                     inspectors=inputs["inspectors"])
    solved = solve(inputs, progress=progress)
    solved.timings["total_s"] = round(time.perf_counter() - t0, 3)
    return store(session, inputs=_public_inputs(inputs), solved=solved, actor=actor,
                 parent=parent)


def week_candidates(
    session: Session,
    *,
    start: date,
    district: str,
    street: str | None,
    inspectors: Sequence[Mapping[str, Any]],
    rules: PatrolRules | None = None,
) -> list[dict[str, Any]]:
    """Every active site of the scope with its visiting period and days since its last visit
    (counted from the start of work when never visited), plus hazard re-inspections due by
    the start day (mandatory, due on day 0)."""
    rules = rules or get_patrol_rules()
    rows = session.execute(text(
        """SELECT p.id, p.reg_no, p.title, p.kind, p.category, p.high_risk, p.street_code,
                  p.community_code, p.grid_code,
                  CAST(:start AS date) - coalesce(s.last_visit_on, p.started_on, p.briefed_on,
                                                  p.accepted_on, p.submitted_on) AS since,
                  ST_X(ST_PointOnSurface(p.site)) AS lon, ST_Y(ST_PointOnSurface(p.site)) AS lat
           FROM projects p LEFT JOIN project_visit_summary s ON s.project_id = p.id
           WHERE p.state = ANY(:active) AND p.district_code = :d
             AND (CAST(:s AS text) IS NULL OR p.street_code = :s)
           ORDER BY p.id"""),
        {"start": start, "active": list(rules.active_states), "d": district,
         "s": street}).mappings().all()
    out = {}
    for r in rows:
        high = bool(r["high_risk"])
        service = _service_min(r["kind"], high)
        key = f"project:{r['id']}"
        out[key] = {
            "site": key, "kind": "patrol", "project_id": r["id"], "hazard_ids": [],
            "reg_no": r["reg_no"], "title": r["title"], "category": r["category"],
            "work_kind": r["kind"], "high_risk": high, "street_code": r["street_code"],
            "community_code": r["community_code"], "grid_code": r["grid_code"],
            "lon": round(float(r["lon"]), 7), "lat": round(float(r["lat"]), 7),
            "mandatory": high, "value": 7 / 3 if high else 1.0, "service_min": service,
            "window": _window(r["category"], service), "period_days": None,
            "days_since_visit": max(int(r["since"]), 0) if r["since"] is not None else None,
            "why": f"{'high-risk ' if high else ''}site visited every "
                   f"{rules.due_days(high)} days",
        }
    for hz in _reinspections(session, day=start, district=district, street=street):
        key = f"project:{hz['project_id']}" if hz["project_id"] else f"hazard:{hz['id']}"
        if key in out:
            out[key]["mandatory"] = True
            out[key]["hazard_ids"].append(hz["id"])
            continue
        out[key] = {
            "site": key, "kind": "reinspection", "project_id": hz["project_id"],
            "hazard_ids": [hz["id"]], "reg_no": hz["reg_no"],
            "title": hz["title"] or f"隐患复查 #{hz['id']}", "category": hz["category"],
            "work_kind": hz["kind"], "high_risk": bool(hz["high_risk"]),
            "street_code": hz["street_code"], "community_code": hz["community_code"],
            "grid_code": hz["grid_code"], "lon": round(float(hz["lon"]), 7),
            "lat": round(float(hz["lat"]), 7), "mandatory": True, "value": 0.0,
            "service_min": REINSPECTION_MINUTES, "window": None, "period_days": 1000,
            "days_since_visit": 1000, "why": f"hazard #{hz['id']} re-inspection due",
        }
    items = []
    for cand in out.values():
        cand["eligible"] = [i["code"] for i in inspectors if _in_area(i, cand)]
        if cand["eligible"] or cand["mandatory"]:
            items.append(cand)
    return items


def make_week_plan(
    session: Session,
    *,
    start: date,
    actor: str,
    days: int = 7,
    district: str | None = None,
    street: str | None = None,
    inspector_codes: Sequence[str] | None = None,
    deadline_s: float | None = None,
    mode: str | None = None,
    matrix: str = "auto",
    balance: float | None = DEFAULT_BALANCE,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> RoutePlan:
    """Plan ``days`` days from ``start``: every active site at its frequency, balanced across
    days and inspectors. ``deadline_s`` is per day (default 5 s)."""
    t0 = time.perf_counter()
    if matrix not in MATRIX_CHOICES:
        raise _fail("matrix", f"must be one of {', '.join(MATRIX_CHOICES)}")
    if not (isinstance(days, int) and 1 <= days <= 14):
        raise _fail("days", "must be between 1 and 14")
    solver = _solver_settings(5.0 if deadline_s is None else deadline_s, balance, seed)
    district, street = resolve_scope(session, district, street)
    inspectors = roster(session, district=district, street=street, codes=inspector_codes,
                        mode=mode)
    if progress:
        progress("candidates")
    sites = week_candidates(session, start=start, district=district, street=street,
                            inspectors=inspectors)
    inputs = {
        "kind": "week", "date": start.isoformat(), "days": days, "district_code": district,
        "street_code": street, "inspectors": inspectors, "sites": sites, "pins": {},
        "fixed_orders": {}, "matrix": matrix, "mode_override": mode, "solver": solver,
        "rules": _rules_input(),
    }
    solved = solve_week(inputs, progress=progress)
    solved.timings["total_s"] = round(time.perf_counter() - t0, 3)
    return store(session, inputs=_public_inputs(inputs), solved=solved, actor=actor)


def store(
    session: Session,
    *,
    inputs: dict[str, Any],
    solved: Solved,
    actor: str,
    parent: RoutePlan | None = None,
) -> RoutePlan:
    """Write a plan with its routes, stops and left-out sites (flushed, not committed)."""
    start = date.fromisoformat(inputs["date"])
    cand = {c["site"]: c for c in inputs["sites"]}
    version, root_id = 1, None
    if parent is not None:
        root_id = parent.root_id or parent.id
        session.execute(select(RoutePlan.id).where(RoutePlan.id == root_id).with_for_update())
        version = 1 + (session.scalar(
            select(func.max(RoutePlan.version)).where(RoutePlan.root_id == root_id)) or 0)
    days = solved.days
    served = sum(len(r["stops"]) for d in days for r in d["routes"])
    mandatory_served = sum(1 for d in days for r in d["routes"] for s in r["stops"]
                           if cand[s["site"]]["mandatory"])
    summary = {
        "candidates": len(inputs["sites"]),
        "mandatory_total": sum(1 for c in inputs["sites"] if c["mandatory"]),
        "mandatory_served": mandatory_served, "served": served,
        "left_out": sum(len(d["left_out"]) for d in days),
        "travel_min": round(sum(r["travel_s"] for d in days for r in d["routes"]) / 60, 1),
        "distance_km": round(sum(r["distance_m"] for d in days for r in d["routes"]) / 1000, 2),
        "solver": solved.solver, "timings": solved.timings, "warnings": solved.warnings,
        "matrix_note": solved.matrix_note,
        "balance": [d["balance"] for d in days] if inputs["kind"] == "week"
        else days[0]["balance"],
        "week": solved.week,
    }
    plan = RoutePlan(
        district_code=inputs["district_code"], street_code=inputs["street_code"],
        kind=inputs["kind"], plan_date=start, days=int(inputs.get("days", 1)), status="draft",
        version=version, root_id=root_id, parent_id=parent.id if parent else None,
        created_by=actor, matrix_source=solved.matrix_source, inputs=inputs, summary=summary)
    session.add(plan)
    session.flush()
    if plan.root_id is None:
        plan.root_id = plan.id
    for d in days:
        on = start + timedelta(days=d["day_index"])
        for r in d["routes"]:
            detail = {k: r[k] for k in ("service_s", "wait_s", "rest", "note", "estimated_legs")}
            detail["stops"] = len(r["stops"])
            detail["estimated_stops"] = [s["seq"] for s in r["stops"] if s["estimated"]]
            route = RoutePlanRoute(
                plan_id=plan.id, day_index=d["day_index"], route_date=on,
                inspector_code=r["inspector"], colour=r["colour"],
                geometry=(f"SRID=4326;{shapely.to_wkt(r['geometry'], rounding_precision=7)}"
                          if r["geometry"] is not None else None),
                distance_m=r["distance_m"], travel_s=r["travel_s"],
                depart_at=_at(on, r["depart_s"]) if r["depart_s"] is not None else None,
                return_at=_at(on, r["return_s"]) if r["return_s"] is not None else None,
                detail=detail)
            session.add(route)
            session.flush()
            session.add_all([RoutePlanStop(
                plan_id=plan.id, route_id=route.id, sequence=s["seq"], site_key=s["site"],
                project_id=cand[s["site"]]["project_id"],
                hazard_id=(cand[s["site"]]["hazard_ids"] or [None])[0],
                kind=cand[s["site"]]["kind"], mandatory=bool(cand[s["site"]]["mandatory"]),
                location=(f"SRID=4326;POINT({cand[s['site']]['lon']} "
                          f"{cand[s['site']]['lat']})"),
                arrive_at=_at(on, s["arrival_s"]), start_at=_at(on, s["start_s"]),
                depart_at=_at(on, s["departure_s"]), wait_s=s["wait_s"],
                travel_s=s["travel_s"], distance_m=s["distance_m"], fixed=s["fixed"])
                for s in r["stops"]])
        session.add_all([RoutePlanLeftOut(
            plan_id=plan.id, day_index=d["day_index"], site_key=lo["site"],
            project_id=cand[lo["site"]]["project_id"],
            hazard_id=(cand[lo["site"]]["hazard_ids"] or [None])[0],
            kind=cand[lo["site"]]["kind"], mandatory=lo["mandatory"],
            location=f"SRID=4326;POINT({cand[lo['site']]['lon']} {cand[lo['site']]['lat']})",
            reason=lo["reason"], constraint_name=lo["constraint"], detail=lo["detail"])
            for lo in d["left_out"]])
    session.flush()
    audit.record(session, actor=actor, entity="route_plan", entity_id=plan.id,
                 action="replan" if parent else f"plan_{inputs['kind']}", to_state="draft",
                 reason=(f"version {version} of plan {root_id}" if parent else
                         f"{inputs['kind']} plan for {inputs['date']}"),
                 district_code=plan.district_code,
                 data={"version": version, "parent_id": plan.parent_id, "served": served,
                       "left_out": summary["left_out"],
                       "mandatory": [mandatory_served, summary["mandatory_total"]],
                       "matrix_source": solved.matrix_source})
    return plan


def issue(session: Session, *, plan_id: int, actor: str) -> RoutePlan:
    """Mark a draft plan as issued to the inspectors (audited)."""
    plan = get_plan(session, plan_id)
    if plan.status == "issued":
        raise _fail("status", f"plan {plan_id} is already issued")
    plan.status = "issued"
    plan.issued_at = func.now()
    audit.record(session, actor=actor, entity="route_plan", entity_id=plan.id, action="issue",
                 from_state="draft", to_state="issued", district_code=plan.district_code,
                 data={"version": plan.version})
    session.flush()
    return plan


class PlanNotFound(LookupError):
    """No plan with this id."""


def get_plan(session: Session, plan_id: int) -> RoutePlan:
    plan = session.get(RoutePlan, plan_id)
    if plan is None:
        raise PlanNotFound(f"no plan {plan_id}")
    return plan


# ---------------------------------------------------------------------------------------
# Reading and exporting


def list_plans(
    session: Session,
    *,
    district: str | None = None,
    street: str | None = None,
    on: date | None = None,
    limit: int = 50,
    where: Any = None,
) -> list[dict[str, Any]]:
    """Stored plans, newest first; ``where``: an extra clause (an access scope)."""
    stmt = select(RoutePlan).order_by(RoutePlan.id.desc()).limit(limit)
    if where is not None:
        stmt = stmt.where(where)
    if district:
        stmt = stmt.where(RoutePlan.district_code == district)
    if street:
        stmt = stmt.where(RoutePlan.street_code == street)
    if on:
        stmt = stmt.where(RoutePlan.plan_date == on)
    return [_head(p) for p in session.scalars(stmt)]


def _head(p: RoutePlan) -> dict[str, Any]:
    s = p.summary or {}
    return {
        "id": p.id, "version": p.version, "root_id": p.root_id, "parent_id": p.parent_id,
        "status": p.status, "kind": p.kind, "date": p.plan_date.isoformat(), "days": p.days,
        "district_code": p.district_code, "street_code": p.street_code,
        "created_by": p.created_by,
        "created_at": p.created_at.isoformat() if p.created_at else None,
        "issued_at": p.issued_at.isoformat() if p.issued_at else None,
        "matrix_source": p.matrix_source, "served": s.get("served"),
        "left_out_count": s.get("left_out"), "mandatory_total": s.get("mandatory_total"),
        "mandatory_served": s.get("mandatory_served"),
    }


def plan_json(session: Session, plan_id: int, *, include_inputs: bool = False) -> dict[str, Any]:
    """A stored plan as the dispatcher's page reads it."""
    plan = get_plan(session, plan_id)
    inputs = plan.inputs
    cand = {c["site"]: c for c in inputs["sites"]}
    insp = {i["code"]: i for i in inputs["inspectors"]}
    routes = session.execute(
        select(RoutePlanRoute, func.ST_AsGeoJSON(RoutePlanRoute.geometry, 7).label("gj"))
        .where(RoutePlanRoute.plan_id == plan.id)
        .order_by(RoutePlanRoute.day_index, RoutePlanRoute.id)).all()
    stops: dict[int, list[RoutePlanStop]] = {}
    for st in session.scalars(select(RoutePlanStop).where(RoutePlanStop.plan_id == plan.id)
                              .order_by(RoutePlanStop.route_id, RoutePlanStop.sequence)):
        stops.setdefault(st.route_id, []).append(st)
    out_routes = []
    for route, gj in routes:
        i = insp.get(route.inspector_code, {})
        mode = i.get("mode", "walk")
        detail = route.detail or {}
        out_routes.append({
            "inspector": route.inspector_code, "name": i.get("name"), "mode": mode,
            "colour": route.colour, "day_index": route.day_index,
            "date": route.route_date.isoformat(), "start": i.get("start"),
            "end": i.get("end") or i.get("start"),
            "shift": [i.get("shift_start"), i.get("shift_end")],
            "depart": _clock(route.depart_at), "return": _clock(route.return_at),
            "distance_m": round(route.distance_m, 1),
            "travel_min": round(route.travel_s / 60, 1),
            "service_min": round(detail.get("service_s", 0) / 60, 1),
            "wait_min": round(detail.get("wait_s", 0) / 60, 1),
            "break": detail.get("rest"), "note": detail.get("note"),
            "geometry": json.loads(gj) if gj else None,
            "estimated_legs": detail.get("estimated_legs", 0),
            "stops": [_stop_json(st, cand[st.site_key], mode,
                                 st.sequence in set(detail.get("estimated_stops") or []))
                      for st in stops.get(route.id, [])],
        })
    left = []
    for lo in session.scalars(select(RoutePlanLeftOut).where(RoutePlanLeftOut.plan_id == plan.id)
                              .order_by(RoutePlanLeftOut.day_index, RoutePlanLeftOut.id)):
        c = cand[lo.site_key]
        en, zh = reason_text(lo.reason)
        left.append({
            "site": lo.site_key, "day_index": lo.day_index, "title": c.get("title"),
            "reg_no": c.get("reg_no"), "kind": lo.kind, "mandatory": lo.mandatory,
            "reason": lo.reason, "reason_en": en, "reason_zh": zh,
            "constraint": lo.constraint_name,
            "constraint_zh": CONSTRAINTS_ZH.get(lo.constraint_name, lo.constraint_name),
            "detail": lo.detail, "lon": c["lon"], "lat": c["lat"], "why": c.get("why"),
        })
    out = {**_head(plan), "matrix_note": (plan.summary or {}).get("matrix_note"),
           "summary": plan.summary, "routes": out_routes, "left_out": left,
           "pins": inputs.get("pins") or {}, "fixed_orders": inputs.get("fixed_orders") or {}}
    if include_inputs:
        out["inputs"] = inputs
    return out


def _stop_json(
    st: RoutePlanStop, c: Mapping[str, Any], mode: str, estimated: bool
) -> dict[str, Any]:
    name = c.get("title") or st.site_key
    return {
        "seq": st.sequence, "site": st.site_key, "title": c.get("title"),
        "reg_no": c.get("reg_no"), "kind": st.kind, "mandatory": st.mandatory,
        "high_risk": c.get("high_risk"), "hazard_ids": c.get("hazard_ids") or [],
        "eta": _clock(st.arrive_at), "start": _clock(st.start_at),
        "depart": _clock(st.depart_at), "wait_min": round(st.wait_s / 60, 1),
        "travel_min": round(st.travel_s / 60, 1), "service_min": c.get("service_min"),
        "window": c.get("window"), "fixed": st.fixed, "estimated": estimated,
        "lon": c["lon"], "lat": c["lat"],
        "why": c.get("why"), "nav_url": nav_url(c["lon"], c["lat"], name),
        "nav_route_url": nav_route_url(c["lon"], c["lat"], name, mode),
    }


def plan_geojson(session: Session, plan_id: int) -> dict[str, Any]:
    """Routes (LineStrings), stops and left-out sites (Points) as one FeatureCollection.

    ``properties.kind`` says which (``route``, ``stop``, ``left_out``); ``site_kind`` what the
    visit is (``patrol``, ``reinspection``, ``patrol+reinspection``)."""
    data = plan_json(session, plan_id)
    features: list[dict[str, Any]] = []
    for r in data["routes"]:
        common = {"inspector": r["inspector"], "name": r["name"], "colour": r["colour"],
                  "mode": r["mode"], "day_index": r["day_index"], "date": r["date"]}
        if r["geometry"] is not None:
            features.append({"type": "Feature", "geometry": r["geometry"], "properties": {
                "kind": "route", **common, "depart": r["depart"], "return": r["return"],
                "distance_m": r["distance_m"], "travel_min": r["travel_min"],
                "stops": len(r["stops"]), "break": r["break"]}})
        for s in r["stops"]:
            props = {k: v for k, v in s.items() if k not in ("lon", "lat", "kind")}
            features.append({"type": "Feature",
                             "geometry": {"type": "Point", "coordinates": [s["lon"], s["lat"]]},
                             "properties": {**common, **props, "kind": "stop",
                                            "site_kind": s["kind"]}})
    for lo in data["left_out"]:
        props = {k: v for k, v in lo.items() if k not in ("lon", "lat", "kind")}
        features.append({"type": "Feature",
                         "geometry": {"type": "Point", "coordinates": [lo["lon"], lo["lat"]]},
                         "properties": {**props, "kind": "left_out", "site_kind": lo["kind"]}})
    head = {k: data[k] for k in ("id", "version", "status", "kind", "date", "days",
                                 "district_code", "street_code", "matrix_source",
                                 "matrix_note")}
    return {"type": "FeatureCollection", "plan": head, "features": features}


GPX_NS = "http://www.topografix.com/GPX/1/1"


def plan_gpx(session: Session, plan_id: int) -> bytes:
    """GPX 1.1: per inspector (and day) a ``<rte>`` of the stops in order and a ``<trk>`` of
    the path along the roads; left-out sites are not in the file."""
    data = plan_json(session, plan_id)
    ET.register_namespace("", GPX_NS)

    def q(tag: str) -> str:
        return f"{{{GPX_NS}}}{tag}"

    root = ET.Element(q("gpx"), {"version": "1.1", "creator": "xiaosan route plans"})
    meta = ET.SubElement(root, q("metadata"))
    ET.SubElement(meta, q("name")).text = (
        f"巡查路线 plan {data['id']} v{data['version']} {data['date']}")
    ET.SubElement(meta, q("desc")).text = f"matrix: {data['matrix_source']}"
    created = data["created_at"] or datetime.now(CHINA_TZ).isoformat()
    ET.SubElement(meta, q("time")).text = (
        datetime.fromisoformat(created).astimezone(CHINA_TZ).isoformat(timespec="seconds"))
    tracks = []
    for r in data["routes"]:
        if not r["stops"]:
            continue
        label = f"{r['inspector']} {r['name'] or ''} {r['date']}".strip()
        rte = ET.SubElement(root, q("rte"))
        ET.SubElement(rte, q("name")).text = label
        ET.SubElement(rte, q("desc")).text = (
            f"{r['mode']} · {r['depart']}–{r['return']} · {len(r['stops'])} stops")
        ET.SubElement(rte, q("number")).text = str(len(tracks) + 1)
        for s in r["stops"]:
            pt = ET.SubElement(rte, q("rtept"), {"lat": f"{s['lat']:.7f}",
                                                  "lon": f"{s['lon']:.7f}"})
            ET.SubElement(pt, q("name")).text = f"{s['seq']}. {s['title'] or s['site']}"
            ET.SubElement(pt, q("desc")).text = (
                f"ETA {s['eta']} · {s['site']}" + (" · 必查" if s["mandatory"] else ""))
            link = ET.SubElement(pt, q("link"), {"href": s["nav_url"]})
            ET.SubElement(link, q("text")).text = "高德地图"
            ET.SubElement(pt, q("type")).text = s["kind"]
        tracks.append((label, r))
    for label, r in tracks:
        if not r["geometry"]:
            continue
        trk = ET.SubElement(root, q("trk"))
        ET.SubElement(trk, q("name")).text = label
        seg = ET.SubElement(trk, q("trkseg"))
        for lon, lat in r["geometry"]["coordinates"]:
            ET.SubElement(seg, q("trkpt"), {"lat": f"{lat:.7f}", "lon": f"{lon:.7f}"})
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
