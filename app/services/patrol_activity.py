"""Synthetic patrols, hazards, incidents and unregistered-work leads for the demo district.

Given the projects already there (:mod:`app.services.activity`), every active day of every site
is patrolled at about the required frequency (high risk every 3 days, others every 7) by the
forces of DOMAIN.md — full-time supervisors mostly, grid workers, property companies in their
estates, now and then the public — with realistic misses: a share of grids is neglected, so
blind spots exist. Hazards come at Huli's rate (2,690 in 469,009 patrols ≈ 0.6 % of visits),
falls from height dominant on high-risk and at-height work; a few incidents (falls from height
mostly) and unregistered-work leads. Deterministic for a seed; bulk inserted with COPY; the
per-project visit summary is rebuilt at the end. Every row says ``synthetic`` in its source.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.patrol_rules import PatrolRules, get_patrol_rules
from app.services import calendar as workcal
from app.services.patrols import recompute_visit_summary
from app.services.registration import CHINA_TZ, today_cn

log = logging.getLogger(__name__)

FORCE_SHARE = {"supervisor": 0.55, "grid_worker": 0.30, "property": 0.12, "public": 0.03}
HAZARD_RATE = 2690 / 469_009
HIGH_RISK_HAZARD_FACTOR = 2.0
AT_HEIGHT = {"work_at_height", "scaffolding", "lifting_machinery"}
HAZARD_TYPES_AT_HEIGHT = {"fall_from_height": 0.6, "struck_by_object": 0.15,
                          "electric_shock": 0.1, "machinery": 0.05, "fire": 0.05, "other": 0.05}
HAZARD_TYPES_OTHER = {"electric_shock": 0.3, "fire": 0.25, "fall_from_height": 0.15,
                      "struck_by_object": 0.1, "collapse": 0.05, "machinery": 0.05,
                      "other": 0.1}
CONFINED = {"poisoning_asphyxia": 0.6, "collapse": 0.2, "electric_shock": 0.1, "other": 0.1}


@dataclass
class PatrolActivityResult:
    seed: int
    patrols: int = 0
    visits: int = 0
    hazards: int = 0
    incidents: int = 0
    leads: int = 0
    seconds: float = 0.0
    skipped: bool = False

    def summary(self) -> str:
        if self.skipped:
            return f"patrols for seed {self.seed} already generated"
        return (f"{self.patrols} patrols, {self.visits} visits, {self.hazards} hazards, "
                f"{self.incidents} incidents, {self.leads} leads in {self.seconds:.1f} s")


def _copy(session: Session, table: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = list(rows[0])
    conn = session.connection().connection.driver_connection
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
        for row in rows:
            cp.write_row([json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v
                          for v in row.values()])


def _ids(session: Session, table: str, n: int) -> list[int]:
    return list(session.scalars(text(
        f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, :n)"),
        {"n": n}))


def _pick(rng, weights: dict[str, float]) -> str:
    keys = list(weights)
    p = np.asarray(list(weights.values()), float)
    return str(keys[int(rng.choice(len(keys), p=p / p.sum()))])


def generate_patrols(
    session: Session,
    *,
    district_code: str,
    seed: int = 1,
    as_of: date | None = None,
    neglected_share: float = 0.12,
    rules: PatrolRules | None = None,
) -> PatrolActivityResult:
    """Generate and COPY patrols, visits, hazards, incidents and leads; skip if already there."""
    started = time.perf_counter()
    rules = rules or get_patrol_rules()
    as_of = as_of or today_cn()
    source = f"synthetic demo patrols seed={seed}"
    result = PatrolActivityResult(seed=seed)
    if session.scalar(text("SELECT 1 FROM patrols WHERE source = :s LIMIT 1"), {"s": source}):
        result.skipped = True
        return result
    rng = np.random.default_rng([seed, 4])
    cal = workcal.load(session)
    projects = session.execute(text(
        """SELECT id, high_risk, risk_factors, street_code, community_code, grid_code, contractor,
                  reviewer_kind, ST_X(ST_PointOnSurface(site)) AS lon,
                  ST_Y(ST_PointOnSurface(site)) AS lat,
                  coalesce(started_on, briefed_on, accepted_on) AS start_on,
                  LEAST(finished_on, closed_on,
                        CASE WHEN state = 'expired' THEN valid_until END,
                        CASE WHEN state = 'revoked'
                             THEN (updated_at AT TIME ZONE 'Asia/Shanghai')::date END) AS end_on
           FROM projects WHERE district_code = :d AND accepted_on IS NOT NULL
             AND accepted_on <= :on ORDER BY id"""),
        {"d": district_code, "on": as_of}).all()
    grids = sorted({p.grid_code for p in projects})
    neglected = {g for g in grids if rng.random() < neglected_share}
    patrol_rows: list[dict[str, Any]] = []
    visit_rows: list[dict[str, Any]] = []
    hazard_plan: list[tuple[Any, date, str, float, float]] = []
    for p in projects:
        end = min(p.end_on or as_of, as_of)
        due = rules.due_days(p.high_risk)
        # Diligent grids visit a little before the due day; neglected ones mostly miss.
        keep = 0.25 if p.grid_code in neglected else 0.93
        day = p.start_on + timedelta(days=int(rng.integers(0, 2)))
        while day <= end:
            if rng.random() < keep:
                forces = [_pick(rng, FORCE_SHARE)]
                if rng.random() < 0.08:  # a second force the same day: counted once, both credited
                    forces.append(_pick(rng, FORCE_SHARE))
                for force in dict.fromkeys(forces):
                    patrol_rows.append(_patrol(rng, p, day, force, district_code, source))
                    if rng.random() < HAZARD_RATE * (HIGH_RISK_HAZARD_FACTOR if p.high_risk
                                                      else 1.0):
                        hazard_plan.append((p, day, force, patrol_rows[-1]["lon"],
                                            patrol_rows[-1]["lat"]))
                        patrol_rows[-1]["hazard"] = True
            step = int(rng.integers(max(1, due - 2), due + 1))
            if p.grid_code in neglected:
                step += int(rng.integers(0, due * 2))
            day += timedelta(days=step)
    ids = _ids(session, "patrols", len(patrol_rows))
    for pid, row in zip(ids, patrol_rows, strict=True):
        row["id"] = pid
        visit_rows.append({
            "district_code": district_code, "patrol_id": pid, "project_id": row.pop("project_id"),
            "force": row["force"], "visited_on": row["patrol_on"], "arrived_at": row["started_at"],
            "left_at": row["ended_at"], "how": "declared",
            "distance_m": row.pop("distance_m"), "dwell_s": None})
    hazard_patrol = [r["id"] for r in patrol_rows if r.pop("hazard", False)]
    for row in patrol_rows:
        lon, lat = row.pop("lon"), row.pop("lat")
        row["location"] = f"SRID=4326;POINT({lon:.7f} {lat:.7f})"
    _copy(session, "patrols", patrol_rows)
    _copy(session, "patrol_visits", visit_rows)
    recompute_visit_summary(session, district_code=district_code)
    result.patrols, result.visits = len(patrol_rows), len(visit_rows)
    result.hazards = _hazards(session, rng, cal, rules, hazard_plan, hazard_patrol,
                              district_code, source, as_of)
    result.incidents = _incidents(session, rng, projects, district_code, source, as_of)
    result.leads = _leads(session, rng, district_code, source, as_of)
    result.seconds = time.perf_counter() - started
    log.info("demo patrols: %s", result.summary())
    return result


def _patrol(rng, p, day: date, force: str, district_code: str, source: str) -> dict[str, Any]:
    minutes = int(rng.integers(8 * 60 + 30, 17 * 60 + 30))
    start = datetime(day.year, day.month, day.day, minutes // 60, minutes % 60,
                     tzinfo=CHINA_TZ)
    # The phone's fix lies within ~30 m of the site.
    r, a = 30 * np.sqrt(rng.random()), rng.random() * 2 * np.pi
    dlon = r * np.cos(a) / (111_320 * np.cos(np.radians(p.lat)))
    dlat = r * np.sin(a) / 111_320
    inspector = {"supervisor": f"sup-{p.street_code[-6:-3]}-{int(rng.integers(1, 4))}",
                 "grid_worker": f"grid-{p.grid_code}",
                 "property": f"prop-{p.community_code[-3:]}-{int(rng.integers(1, 3))}",
                 "public": f"public-{int(rng.integers(1, 10_000))}"}[force]
    client_id = hashlib.sha1(f"{source}|{p.id}|{day}|{force}|{minutes}".encode()).hexdigest()
    checklist = {"signboard": "ok" if rng.random() < 0.9 else "problem",
                 "registered_scope": "ok", "site_order": "ok" if rng.random() < 0.85
                 else "problem"}
    return {
        "district_code": district_code, "client_id": client_id[:32], "inspector_id": inspector,
        "inspector_name": None, "force": force, "started_at": start,
        "ended_at": start + timedelta(minutes=int(rng.integers(5, 40))), "patrol_on": day,
        "lon": p.lon + dlon, "lat": p.lat + dlat, "street_code": p.street_code,
        "community_code": p.community_code, "grid_code": p.grid_code, "checklist": checklist,
        "photos": [], "findings": None, "payload_hash": client_id, "source": source,
        "project_id": p.id, "distance_m": round(float(r), 1),
    }


def _hazards(session, rng, cal, rules, plan, patrol_ids, district_code, source, as_of) -> int:
    rows, audit_rows = [], []
    ids = _ids(session, "hazards", len(plan))
    for hid, (p, day, force, lon, lat), patrol_id in zip(ids, plan, patrol_ids, strict=True):
        factors = set(p.risk_factors or [])
        weights = (CONFINED if "confined_space" in factors else
                   HAZARD_TYPES_AT_HEIGHT if (p.high_risk or factors & AT_HEIGHT)
                   else HAZARD_TYPES_OTHER)
        hazard_type = _pick(rng, weights)
        severity = _pick(rng, {"immediate": 0.5, "general": 0.45, "major": 0.05})
        due = cal.add_working_days(day, rules.rectify_working_days[severity])
        row = {"id": hid, "district_code": district_code, "project_id": p.id,
               "patrol_id": patrol_id, "location": f"SRID=4326;POINT({lon:.7f} {lat:.7f})",
               "street_code": p.street_code, "community_code": p.community_code,
               "grid_code": p.grid_code, "hazard_type": hazard_type, "severity": severity,
               "description": "合成隐患（演示）", "photos": [], "found_on": day,
               "found_by": force,
               "responsible": {"party": "contractor", **(p.contractor or {})},
               "due_on": due, "state": "found", "ordered_on": None, "rectified_on": None,
               "evidence": None, "verified_on": None, "escalated_on": None,
               "violation_code": None, "enforcement_department": None, "source": source}
        events = [("find", day, None, "found")]
        row["ordered_on"] = day
        events.append(("order", day, "found", "ordered"))
        r = rng.random()
        if r < 0.02:
            row["escalated_on"], row["state"] = due + timedelta(days=1), "escalated"
            row["violation_code"], row["enforcement_department"] = "V03-01", "emergency"
            events.append(("escalate", row["escalated_on"], "ordered", "escalated"))
        else:
            late = r > 0.87
            fixed = cal.add_working_days(due, int(rng.integers(1, 6))) if late else \
                cal.add_working_days(day, int(rng.integers(0, 1 + rules.rectify_working_days[
                    severity])))
            if fixed <= as_of:
                row["rectified_on"], row["state"] = fixed, "rectified"
                row["evidence"] = {"note": "合成整改（演示）", "photos": []}
                events.append(("rectify", fixed, "ordered", "rectified"))
                # The grid's check comes one to four working days later (drawn apart, so the
                # rest of the demo does not depend on it): some wait for it on any day.
                checked = cal.add_working_days(
                    fixed, int(np.random.default_rng([hid, 5]).integers(1, 5)))
                if checked <= as_of:
                    row["verified_on"], row["state"] = checked, "verified"
                    events.append(("verify", checked, "rectified", "verified"))
        for action, on, before, after in events:
            if on > as_of:
                continue
            audit_rows.append({
                "at": datetime(on.year, on.month, on.day, 12, tzinfo=CHINA_TZ),
                "actor": f"demo:{force}", "entity": "hazard", "entity_id": str(hid),
                "action": action, "from_state": before, "to_state": after, "reason": None,
                "district_code": district_code, "data": {"synthetic": True}})
        rows.append(row)
    _copy(session, "hazards", rows)
    _copy(session, "audit_log", audit_rows)
    return len(rows)


def _incidents(session, rng, projects, district_code, source, as_of) -> int:
    """~10 a year (Huli: 4–8 falls a year among small works), falls from height mostly."""
    risky = [p for p in projects if p.high_risk or set(p.risk_factors or []) & AT_HEIGHT]
    if not risky:
        return 0
    n = int(rng.poisson(10))
    rows = []
    ids = _ids(session, "incidents", n)
    for iid in ids:
        p = risky[int(rng.integers(len(risky)))]
        end = min(p.end_on or as_of, as_of)
        span = max((end - p.start_on).days, 0)
        day = p.start_on + timedelta(days=int(rng.integers(0, span + 1)))
        kind = _pick(rng, {"fall_from_height": 0.75, "machinery": 0.1, "struck_by_object": 0.1,
                           "electric_shock": 0.05})
        deaths = int(rng.random() < 0.3)
        rows.append({"id": iid, "district_code": district_code, "project_id": p.id,
                     "incident_type": kind, "occurred_on": day,
                     "location": f"SRID=4326;POINT({p.lon:.7f} {p.lat:.7f})",
                     "street_code": p.street_code, "community_code": p.community_code,
                     "grid_code": p.grid_code, "deaths": deaths, "injuries": 1 - deaths,
                     "work_kind": None, "description": "合成事故（演示）", "source": source})
    _copy(session, "incidents", rows)
    return len(rows)


def _leads(session, rng, district_code, source, as_of) -> int:
    """A few unregistered works seen on patrol or reported by the public, matched as usual."""
    from app.services.hazards import report_unregistered

    points = session.execute(text(
        """SELECT ST_X(pt) AS lon, ST_Y(pt) AS lat FROM (
               SELECT ST_PointOnSurface(geom) AS pt FROM grids
               WHERE district_code = :d AND valid_to IS NULL
               ORDER BY md5(code || :seed) LIMIT 30) s"""),
        {"d": district_code, "seed": str(int(rng.integers(1 << 30)))}).all()
    for k, pt in enumerate(points):
        report_unregistered(
            session, actor="demo:patrol" if k % 3 else "demo:public",
            location={"type": "Point", "coordinates": [pt.lon, pt.lat]},
            channel="patrol" if k % 3 else "public",
            category=str(rng.choice(["residential_fitout", "air_conditioner", "shop_signage",
                                     "billboard"])),
            description="合成未登记作业（演示）",
            reported_on=as_of - timedelta(days=int(rng.integers(0, 60))), source=source)
    return len(points)
