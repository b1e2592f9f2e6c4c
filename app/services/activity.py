"""A year of synthetic registrations for the demo district, moved through the loop.

Rates follow DOMAIN.md (~7,000 a year in a district; Guangming 7,583 in 2021): more on working
days, a dip around Spring Festival and in the summer rains, clustered where the road network is
dense (a proxy for people and shops). Every project gets a realistic path through the loop with
its dates on working days and one audit entry per step. Deterministic for a seed; bulk inserted
with COPY; idempotent per (seed, year). Every row says ``synthetic`` in its source.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.rules import REVIEWERS, Rules, get_rules
from app.services import calendar as workcal
from app.services.jurisdiction import assign_points_bulk
from app.services.registration import CHINA_TZ, next_ids, reg_no_for, today_cn
from app.services.territory import current_units

log = logging.getLogger(__name__)

SF_DIP, RAIN_DIP, REST_DAY = 0.25, 0.85, 0.3
# kind, share; then category weights inside the kind (Huli/Guangming: fit-outs dominate).
KIND_SHARE = {"small_project": 0.58, "sporadic_work": 0.42}
CATEGORY_WEIGHTS = {
    "small_project": {"residential_fitout": 40, "non_residential_fitout": 30, "municipal": 6,
                      "underground_pipeline": 5, "small_building": 5, "landscaping": 4,
                      "water": 3, "power": 3, "telecom": 3, "transport": 1},
    "sporadic_work": {"air_conditioner": 30, "shop_signage": 12, "billboard": 8,
                      "facade_cleaning": 8, "cctv": 8, "rain_canopy": 7, "ev_charger": 6,
                      "ebike_charger": 6, "anti_theft_grille": 5, "tree_pruning": 5,
                      "solar_heater": 2, "hotel_facility": 2, "industrial_equipment": 1},
}
# Probability of each risk factor by category (others: small default risks).
RISKS = {
    "air_conditioner": {"work_at_height": 0.45}, "facade_cleaning": {"work_at_height": 0.9},
    "billboard": {"work_at_height": 0.6, "lifting_machinery": 0.2},
    "shop_signage": {"work_at_height": 0.3}, "rain_canopy": {"work_at_height": 0.4},
    "tree_pruning": {"work_at_height": 0.35}, "solar_heater": {"work_at_height": 0.5},
    "small_building": {"scaffolding": 0.6, "lifting_machinery": 0.3, "excavation": 0.3},
    "non_residential_fitout": {"whole_building_renovation": 0.05, "factory_conversion": 0.03,
                               "hot_work": 0.25, "scaffolding": 0.12},
    "residential_fitout": {"hot_work": 0.1, "apartment_conversion": 0.01, "demolition": 0.2},
    "underground_pipeline": {"confined_space": 0.35, "excavation": 0.7},
    "water": {"confined_space": 0.4, "excavation": 0.5}, "municipal": {"excavation": 0.4},
}
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"


@dataclass
class ActivityResult:
    seed: int
    year: int | None
    projects: int = 0
    audit_entries: int = 0
    seconds: float = 0.0
    skipped: bool = False
    states: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        if self.skipped:
            span = f"year {self.year}" if self.year else "the last 12 months"
            return f"seed {self.seed} {span} already generated"
        return (f"{self.projects} projects, {self.audit_entries} audit entries "
                f"in {self.seconds:.1f} s")


def _daily_weights(
    start: date, end: date, cal: workcal.WorkingCalendar, names: dict[date, str]
) -> tuple:
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    festival = [d for d in days if "Spring Festival" in names.get(d, "")]
    weights = []
    for d in days:
        w = 1.0 if cal.is_workday(d) else REST_DAY
        if festival and festival[0] - timedelta(days=7) <= d <= festival[-1] + timedelta(days=5):
            w *= SF_DIP
        if d.month in (6, 7, 8):
            w *= RAIN_DIP
        if d.month in (3, 4, 5, 9, 10, 11):
            w *= 1.1
        weights.append(w)
    p = np.asarray(weights)
    return days, p / p.sum()


def _road_nodes() -> np.ndarray | None:
    from grid_data.demo_data import ROAD_GRAPH_PATH

    if not ROAD_GRAPH_PATH.exists():
        return None
    root = ET.fromstring(gzip.decompress(ROAD_GRAPH_PATH.read_bytes()))
    ns = {"g": "http://graphml.graphdrawing.org/xmlns"}
    keys = {k.get("attr.name"): k.get("id") for k in root.findall("g:key", ns)
            if k.get("for") == "node"}
    xy = []
    for node in root.iter("{http://graphml.graphdrawing.org/xmlns}node"):
        values = {d.get("key"): d.text for d in node}
        try:
            xy.append((float(values[keys["x"]]), float(values[keys["y"]])))
        except (KeyError, TypeError, ValueError):
            continue
    return np.asarray(xy) if xy else None


def _locations(session: Session, rng, n: int, district_code: str):
    """n points where work happens, jittered ~80 m: road nodes where the road graph reaches
    (dense streets, shops), blended with points spread over every grid (the graph covers
    only part of the district; nobody lives nowhere)."""
    grids = current_units(session, "grid", district_code=district_code)
    spread = grids.geometry.sample_points(size=10, rng=rng).explode().get_coordinates().to_numpy()
    nodes = _road_nodes()
    if nodes is None or len(nodes) < 50:
        nodes = spread
    else:
        # Road nodes count ~2.5 times a spread point: the busy centre gets most of the work.
        take = rng.choice(len(nodes), size=min(len(nodes), len(spread)), replace=False)
        nodes = np.vstack([nodes, nodes[take], spread])
    lat0 = float(np.mean(nodes[:, 1]))
    lon, lat, codes = [], [], []
    while len(codes) < n:
        k = int((n - len(codes)) * 1.3) + 10
        pick = nodes[rng.integers(0, len(nodes), k)]
        jitter = rng.normal(0, 80, (k, 2))
        x = pick[:, 0] + jitter[:, 0] / (111_320 * np.cos(np.radians(lat0)))
        y = pick[:, 1] + jitter[:, 1] / 111_320
        got = assign_points_bulk(session, x, y)
        for xi, yi, c in zip(x, y, got, strict=True):
            if c is not None and len(codes) < n:
                lon.append(xi)
                lat.append(yi)
                codes.append(c)
    return np.asarray(lon), np.asarray(lat), codes


def _layer(session: Session, table: str, columns: str, district_code: str):
    rows = session.execute(text(
        f"SELECT id, {columns}, ST_AsBinary(geom) AS wkb FROM {table} WHERE district_code = :d"),
        {"d": district_code}).all()
    geoms = shapely.from_wkb([r.wkb for r in rows]) if rows else np.array([])
    return rows, geoms


def generate_activity(
    session: Session,
    *,
    seed: int = 1,
    year: int | None = None,
    district_code: str,
    rate: int = 7000,
    as_of: date | None = None,
    rules: Rules | None = None,
) -> ActivityResult:
    """Generate and COPY a year of projects and their audit trail; skip if already there.

    With ``year`` the calendar year; without it the 12 months up to ``as_of`` (today), so the
    demo has live work today. Idempotent per (seed, year) and per seed for the rolling window.
    """
    started = time.perf_counter()
    rules = rules or get_rules()
    as_of = as_of or today_cn()
    result = ActivityResult(seed=seed, year=year)
    if year:
        first, last = date(year, 1, 1), date(year, 12, 31)
        source = f"synthetic demo activity seed={seed} year={year}"
    else:
        first, last = as_of - timedelta(days=364), as_of
        source = f"synthetic demo activity seed={seed} last 12 months"
    if session.scalar(text("SELECT 1 FROM projects WHERE source = :s LIMIT 1"), {"s": source}):
        result.skipped = True
        return result
    rng = np.random.default_rng([seed, first.year, first.toordinal()])
    cal = workcal.load(session)
    names = dict(session.execute(text("SELECT day, name FROM calendar_days")).all())
    days, p = _daily_weights(first, last, cal, names)
    n = int(rng.poisson(rate))
    submitted = sorted(np.asarray(days)[rng.choice(len(days), n, p=p)])
    lon, lat, grid_codes = _locations(session, rng, n, district_code)
    grid_info = {r.code: r for r in session.execute(text(
        """SELECT g.code, g.name, c.code AS community_code, c.name AS community_name,
                  s.code AS street_code, s.name AS street_name
           FROM grids g JOIN communities c ON c.code = g.parent_code AND c.valid_to IS NULL
           JOIN streets s ON s.code = c.parent_code AND s.valid_to IS NULL
           WHERE g.valid_to IS NULL""")).all()}
    points = shapely.points(lon, lat)
    estates, estate_geoms = _layer(session, "estates", "name, property_company", district_code)
    specials, special_geoms = _layer(session, "special_places", "kind, name", district_code)
    estate_tree = shapely.STRtree(estate_geoms)
    to_m = Transformer.from_crs(4326, 4547, always_xy=True)
    special_m = shapely.transform(special_geoms, lambda c: np.column_stack(to_m.transform(
        c[:, 0], c[:, 1]))) if len(special_geoms) else special_geoms
    special_tree = shapely.STRtree(special_m)
    points_m = shapely.points(*to_m.transform(lon, lat))
    in_estate = estate_tree.query(points, predicate="within")
    estate_of = dict(zip(in_estate[0].tolist(), in_estate[1].tolist(), strict=True))
    near = special_tree.query(points_m, predicate="dwithin", distance=rules.special_area_distance_m)
    special_of: dict[int, list[int]] = {}
    for i, j in zip(near[0].tolist(), near[1].tolist(), strict=True):
        special_of.setdefault(i, []).append(j)

    ids = next_ids(session, n)
    project_rows, audit_rows = [], []
    for i in range(n):
        sim = _Sim(rng, cal, rules, as_of)
        row, events = sim.project(
            i=i, project_id=ids[i], submitted_on=submitted[i], lon=lon[i], lat=lat[i],
            where=grid_info[grid_codes[i]], district_code=district_code, source=source,
            estate=estates[estate_of[i]] if i in estate_of else None,
            specials=[specials[j] for j in special_of.get(i, [])])
        project_rows.append(row)
        audit_rows.extend(events)
        result.states[row["state"]] = result.states.get(row["state"], 0) + 1
    _copy(session, "projects", project_rows)
    _copy(session, "audit_log", audit_rows)
    result.projects, result.audit_entries = len(project_rows), len(audit_rows)
    result.seconds = time.perf_counter() - started
    log.info("demo activity: %s", result.summary())
    return result


def _copy(session: Session, table: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = list(rows[0])
    conn = session.connection().connection.driver_connection
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
        for row in rows:
            cp.write_row([json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v
                          for v in row.values()])


class _Sim:
    """One project's path through the loop, with dates on working days."""

    def __init__(self, rng, cal: workcal.WorkingCalendar, rules: Rules, as_of: date):
        self.rng, self.cal, self.rules, self.as_of = rng, cal, rules, as_of

    def _wd(self, start: date, lo: int, hi: int) -> date:
        """A working day lo..hi working days after ``start`` (0: start, or the next one)."""
        n = int(self.rng.integers(lo, hi + 1))
        return self.cal.add_working_days(start, n) if n else self.cal.next_workday(start)

    def _at(self, day: date) -> datetime:
        minutes = int(self.rng.integers(8 * 60 + 30, 18 * 60))
        return datetime(day.year, day.month, day.day, minutes // 60, minutes % 60,
                        tzinfo=CHINA_TZ)

    def project(self, *, i, project_id, submitted_on, lon, lat, where, district_code, source,
                estate, specials) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        rng, rules = self.rng, self.rules
        kind = "small_project" if rng.random() < KIND_SHARE["small_project"] else "sporadic_work"
        cats = CATEGORY_WEIGHTS[kind]
        weights = np.asarray(list(cats.values()), dtype=float)
        category = str(rng.choice(list(cats), p=weights / weights.sum()))
        factors = [f for f, pr in RISKS.get(category, {}).items() if rng.random() < pr]
        if kind == "small_project" and rng.random() < 0.004:
            factors.append(str(rng.choice(["structural_alteration", "illegal_extension"])))
        small = kind == "small_project"
        investment = float(np.round(rng.lognormal(11.3 if small else 8.5, 1.0), -2))
        area = float(np.round(rng.lognormal(4.3 if small else 1.5, 0.9), 1))
        above = rng.random() < (0.015 if small else 0.0)
        if above:
            investment, area = max(investment, 1_200_000.0), max(area, 650.0)
        else:
            investment = min(investment, 990_000.0)
        reference = above and rng.random() < 0.3
        high_factors = [f for f in factors if f in rules.high_risk_factors]
        high_risk = bool(high_factors) or reference
        forbidden = [f for f in factors if f in rules.forbidden]
        if high_risk:
            reviewer = ("street_construction_office", where.street_code,
                        f"{where.street_name}城建部门")
        elif estate is not None:
            reviewer = ("property_company", f"estate:{estate.id}", estate.property_company)
        else:
            reviewer = ("community_workstation", where.community_code,
                        f"{where.community_name}社区工作站")
        departments = rules.category_departments(category) + rules.always_for_kind.get(kind, [])
        departments += [rules.special_kinds[s.kind][1] for s in specials
                        if s.kind in rules.special_kinds]
        departments = list(dict.fromkeys(departments))
        # Windows are open on working days only.
        window = rng.random() < 0.2 and self.cal.is_workday(submitted_on)
        channel = "window" if window else "online"
        duration = int(rng.integers(10, 120)) if small else int(rng.integers(1, 10))
        planned_start = self._wd(submitted_on, 1, 8)
        planned_end = planned_start + timedelta(days=duration)
        reg_no = reg_no_for(district_code, submitted_on, project_id)
        cat_name = rules.categories[category][1]
        surname = SURNAMES[int(rng.integers(len(SURNAMES)))]
        row: dict[str, Any] = {
            "id": project_id, "reg_no": reg_no,
            "public_id": base64.urlsafe_b64encode(rng.bytes(9)).decode(),
            "district_code": district_code, "street_code": where.street_code,
            "street_name": where.street_name, "community_code": where.community_code,
            "community_name": where.community_name, "grid_code": where.code,
            "grid_name": where.name, "kind": kind, "category": category,
            "title": f"{where.community_name}{cat_name}（合成数据）",
            "address": f"{where.street_name}{where.community_name}合成地址{i + 1}号",
            "site": f"SRID=4326;POINT({lon:.7f} {lat:.7f})", "site_input_crs": "wgs84",
            "builder": {"name": f"{surname}先生（合成）", "phone": f"138{i:08d}"},
            "contractor": {"name": f"合成工程有限公司{i % 300 + 1:03d}（演示）",
                           "phone": f"0755-2{i % 9_999_999:07d}"},
            "investment_cny": investment, "floor_area_m2": area,
            "planned_start": planned_start, "planned_end": planned_end,
            "risk_factors": factors, "public_area": bool(rng.random() < 0.15),
            "channel": channel, "above_limit_reference": reference, "above_limit": above,
            "high_risk": high_risk, "special_area": bool(specials),
            "reviewer_kind": reviewer[0], "reviewer_code": reviewer[1],
            "reviewer_name": reviewer[2], "departments": departments,
            "decision": {"outcome": "submitted", "synthetic": True,
                         "reviewer": {"kind": reviewer[0], "name": reviewer[2],
                                      "label": REVIEWERS[reviewer[0]]},
                         "high_risk_factors": high_factors, "forbidden": forbidden,
                         "special_places": [s.name for s in specials],
                         "estate": estate.name if estate else None},
            "state": "submitted", "state_reason": None, "submitted_on": submitted_on,
            "review_due": self.cal.add_working_days(
                submitted_on, rules.review_working_days if channel == "online" else 0),
            "accepted_on": None, "briefing_due": None, "briefed_on": None, "started_on": None,
            "completion_due": None, "finished_on": None, "completion_declared_on": None,
            "closed_on": None, "valid_until": None, "extensions": 0, "receipt_no": None,
            "source": source, "created_by": "demo-activity",
        }
        events: list[dict[str, Any]] = []

        def event(action, day, before, after, actor, reason=None):
            events.append({"at": self._at(day), "actor": actor, "entity": "project",
                           "entity_id": reg_no, "action": action, "from_state": before,
                           "to_state": after, "reason": reason, "district_code": district_code,
                           "data": {"synthetic": True, "on": day.isoformat()}})
            row["state"], row["state_reason"] = after, reason
            row["updated_at"] = events[-1]["at"]

        event("submit", submitted_on, None, "submitted", "applicant",
              f"registration via {channel}")
        row["created_at"] = events[0]["at"]
        if forbidden or (above and not reference):
            why = (rules.forbidden[forbidden[0]] if forbidden
                   else "above the limit: apply for a construction permit (施工许可)")
            event("refuse", submitted_on, "submitted", "refused", "system", why)
            row["decision"]["outcome"] = "refused"
            return row, events
        self._loop(row, event, reviewer[2], where.name)
        return row, events

    def _loop(self, row, event, reviewer, grid_name) -> None:
        rng, cal, rules, as_of = self.rng, self.cal, self.rules, self.as_of
        r = rng.random()
        if row["channel"] == "window":
            decided = row["submitted_on"]
        else:
            decided = self._wd(row["submitted_on"], 0, 3 if r < 0.9 else 7)
        if decided > as_of:
            return
        if r < 0.02:
            event("return", decided, "submitted", "returned", reviewer,
                  "material incomplete: contractor licence, safety commitment")
            return
        row["accepted_on"] = decided
        row["briefing_due"] = cal.add_working_days(decided, rules.briefing_working_days)
        row["valid_until"] = workcal.add_months(decided, rules.validity_months)
        row["receipt_no"] = f"HZ{row['reg_no'][2:]}"
        event("accept", decided, "submitted", "accepted", reviewer)
        briefed = self._wd(decided, 0, 3 if rng.random() < 0.93 else 8)
        if briefed > as_of:
            return
        row["briefed_on"] = briefed
        row["completion_due"] = cal.add_working_days(row["planned_end"],
                                                     rules.completion_working_days)
        event("brief", briefed, "accepted", "briefed", reviewer)
        started = max(briefed, row["planned_start"])
        if started > as_of:
            return
        row["started_on"] = started
        event("start", started, "briefed", "in_progress", f"patrol:{grid_name}",
              "first patrol found work under way")
        if rng.random() < 0.004:
            event("revoke", self._wd(started, 1, 10), "in_progress", "revoked",
                  f"patrol:{grid_name}", "超出登记范围施工: beyond the registered scope")
            return
        finished = row["planned_end"] + timedelta(days=int(rng.integers(-3, 10)))
        finished = max(finished, started)
        if rng.random() < 0.04 and row["valid_until"] <= finished:
            row["extensions"] = 1
            row["valid_until"] = workcal.add_months(row["valid_until"], rules.extension_months)
            event("extend", max(started, row["valid_until"] - timedelta(days=200)),
                  "in_progress", "in_progress", "applicant", "more time needed")
        if row["valid_until"] < min(finished, as_of):
            event("expire", row["valid_until"] + timedelta(days=1), "in_progress", "expired",
                  "system", f"registration valid until {row['valid_until']}")
            return
        if finished > as_of:
            return
        r = rng.random()
        if r < 0.85:
            declared = self._wd(finished, 0, 3)
        elif r < 0.93:
            declared = self._wd(finished, 4, 10)
        else:
            # Never declared: a patrol finds it finished (or it is still open, overdue).
            if rng.random() < 0.6:
                closed = self._wd(finished, 2, 15)
                if closed <= as_of:
                    row["finished_on"], row["closed_on"] = finished, closed
                    event("close", closed, "in_progress", "closed", f"patrol:{grid_name}",
                          "found finished on patrol")
            return
        if declared > as_of:
            return
        row["finished_on"], row["completion_declared_on"] = finished, declared
        row["completion_due"] = cal.add_working_days(finished, rules.completion_working_days)
        event("declare_completion", declared, "in_progress", "completion_declared", "applicant")
        closed = self._wd(declared, 1, 5)
        if closed <= as_of:
            row["closed_on"] = closed
            event("close", closed, "completion_declared", "closed", f"patrol:{grid_name}",
                  "verified on site")

