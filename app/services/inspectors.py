"""The patrol inspector roster: who patrols which street, from where, how and when.

Each inspector belongs to a street, starts the day at a community workstation (a point), may
end elsewhere, walks / rides a patrol e-bike / drives, works a shift with an optional lunch
break, may be limited to some grids of the street (``allowed_grids``; none means the whole
street) and to a number of stops a day.

:func:`load_demo_roster` creates a clearly labelled synthetic roster for the demo district: two
inspectors per street (22 for Futian), one on an e-bike covering the whole street and one on
foot covering the grids of the communities within 1.5 km of their workstation. A workstation
lies inside its community, on a road junction of the demo road network where the network reaches
the community (only three Futian streets are in the shipped graph), else at a point inside the
community.
"""

from __future__ import annotations

import logging
from datetime import time
from typing import Any

import numpy as np
import shapely
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.models import Inspector
from app.services import audit

log = logging.getLogger(__name__)

DEMO_SOURCE = "synthetic demo roster v1 (not real people)"
DEMO_SHIFT = (time(8, 30), time(17, 30))
DEMO_LUNCH = (time(12, 0), time(13, 30), 60)  # earliest start, latest start, minutes
WALK_AREA_M = 1500.0  # a walking inspector covers communities within this distance
MODE_LABELS = {"walk": "步行", "ebike": "电动车", "car": "汽车"}


def _hhmm(t: time | None) -> str | None:
    return t.strftime("%H:%M") if t is not None else None


def inspector_dict(row: Any) -> dict[str, Any]:
    """An inspector as JSON: start/end as [lon, lat], times as HH:MM."""
    lunch = None
    if row.lunch_earliest is not None and row.lunch_minutes:
        lunch = {"earliest": _hhmm(row.lunch_earliest), "latest": _hhmm(row.lunch_latest),
                 "minutes": row.lunch_minutes}
    return {
        "code": row.code, "name": row.name, "district_code": row.district_code,
        "street_code": row.street_code, "community_code": row.community_code,
        "start": [round(row.start_lon, 7), round(row.start_lat, 7)],
        "end": ([round(row.end_lon, 7), round(row.end_lat, 7)]
                if row.end_lon is not None else None),
        "mode": row.mode, "shift_start": _hhmm(row.shift_start),
        "shift_end": _hhmm(row.shift_end), "lunch": lunch,
        "allowed_grids": list(row.allowed_grids) if row.allowed_grids is not None else None,
        "max_stops": row.max_stops, "active": row.active, "source": row.source,
    }


def list_inspectors(
    session: Session,
    *,
    district: str | None = None,
    street: str | None = None,
    codes: list[str] | None = None,
    active_only: bool = True,
    where: Any = None,
) -> list[dict[str, Any]]:
    """The roster, ordered by street and code; ``where``: an extra clause (an access scope)."""
    stmt = select(
        Inspector,
        func.ST_X(Inspector.start_point).label("start_lon"),
        func.ST_Y(Inspector.start_point).label("start_lat"),
        func.ST_X(Inspector.end_point).label("end_lon"),
        func.ST_Y(Inspector.end_point).label("end_lat"),
    ).order_by(Inspector.street_code, Inspector.code)
    if district:
        stmt = stmt.where(Inspector.district_code == district)
    if street:
        stmt = stmt.where(Inspector.street_code == street)
    if codes is not None:
        stmt = stmt.where(Inspector.code.in_(codes))
    if active_only:
        stmt = stmt.where(Inspector.active.is_(True))
    if where is not None:
        stmt = stmt.where(where)
    out = []
    for insp, s_lon, s_lat, e_lon, e_lat in session.execute(stmt).all():
        row = _Row(insp, s_lon, s_lat, e_lon, e_lat)
        out.append(inspector_dict(row))
    return out


class _Row:
    """An inspector with its coordinates, for :func:`inspector_dict`."""

    def __init__(self, insp: Inspector, s_lon, s_lat, e_lon, e_lat) -> None:
        self._insp = insp
        self.start_lon, self.start_lat, self.end_lon, self.end_lat = s_lon, s_lat, e_lon, e_lat

    def __getattr__(self, name: str) -> Any:
        return getattr(self._insp, name)


def _junctions() -> np.ndarray | None:
    """(lon, lat) of road junctions that both a walker and an e-bike can use, or None."""
    from app.services.road_networks import road_network

    walk, ebike = road_network("walk"), road_network("ebike")
    if walk is None or ebike is None:
        return None
    both = np.isin(walk.node_osmid, ebike.node_osmid)
    return np.column_stack([walk.node_lon[both], walk.node_lat[both]])


def load_demo_roster(session: Session, *, district_code: str) -> int:
    """Create the synthetic roster of the demo district (idempotent). Returns rows added."""
    exists = session.scalar(select(func.count()).select_from(Inspector).where(
        Inspector.district_code == district_code, Inspector.source == DEMO_SOURCE))
    if exists:
        return 0
    streets = session.execute(text(
        """SELECT code, name FROM streets WHERE valid_to IS NULL AND district_code = :d
           ORDER BY code"""), {"d": district_code}).all()
    if not streets:
        return 0
    communities = session.execute(text(
        """SELECT code, name, parent_code, ST_AsBinary(geom) AS wkb,
                  ST_X(ST_PointOnSurface(geom)) AS lon, ST_Y(ST_PointOnSurface(geom)) AS lat
           FROM communities WHERE valid_to IS NULL AND district_code = :d ORDER BY code"""),
        {"d": district_code}).all()
    grids: dict[str, list[str]] = {}
    for code, parent in session.execute(text(
            """SELECT code, parent_code FROM grids WHERE valid_to IS NULL AND district_code = :d
               ORDER BY code"""), {"d": district_code}).all():
        grids.setdefault(parent, []).append(code)
    nodes = _junctions()
    node_points = shapely.points(nodes) if nodes is not None and len(nodes) else None
    rows = []
    on_roads = 0
    for street in streets:
        comms = [c for c in communities if c.parent_code == street.code]
        if not comms:
            continue
        polys = {c.code: shapely.from_wkb(c.wkb) for c in comms}
        inside: dict[str, np.ndarray] = {}
        if node_points is not None:
            for c in comms:
                inside[c.code] = np.flatnonzero(shapely.contains(polys[c.code], node_points))
        # Communities the road network reaches first (most junctions), then by code.
        ranked = sorted(comms, key=lambda c: (-len(inside.get(c.code, ())), c.code))
        picks = [ranked[0], ranked[1] if len(ranked) > 1 else ranked[0]]
        if not inside.get(picks[0].code, np.array([])).size:
            picks = [comms[0], comms[len(comms) // 2]]  # no roads: spread over the street
        for k, (comm, mode) in enumerate(zip(picks, ("ebike", "walk"), strict=True), start=1):
            lon, lat = comm.lon, comm.lat
            idx = inside.get(comm.code, np.array([], dtype=int))
            if idx.size:
                assert nodes is not None
                d = np.hypot((nodes[idx, 0] - lon) * np.cos(np.radians(lat)), nodes[idx, 1] - lat)
                lon, lat = (float(v) for v in nodes[idx[int(np.argmin(d))]])
                on_roads += 1
            allowed = None
            if mode == "walk":
                near = [c.code for c in comms
                        if _metres(lon, lat, c.lon, c.lat) <= WALK_AREA_M or c.code == comm.code]
                allowed = [g for c in near for g in grids.get(c, [])]
            rows.append({
                "code": f"{street.code}-{k:02d}",
                "name": f"{street.name}巡查员{k}（{MODE_LABELS[mode]}，演示数据）",
                "district_code": district_code, "street_code": street.code,
                "community_code": comm.code,
                "start_point": f"SRID=4326;POINT({lon} {lat})", "end_point": None,
                "mode": mode, "shift_start": DEMO_SHIFT[0], "shift_end": DEMO_SHIFT[1],
                "lunch_earliest": DEMO_LUNCH[0], "lunch_latest": DEMO_LUNCH[1],
                "lunch_minutes": DEMO_LUNCH[2], "allowed_grids": allowed,
                "max_stops": 16 if mode == "ebike" else 10, "active": True,
                "source": DEMO_SOURCE,
            })
    if rows:
        session.execute(Inspector.__table__.insert(), rows)
    audit.record(session, actor="demo-loader", entity="inspectors", entity_id=district_code,
                 action="load", reason=DEMO_SOURCE, district_code=district_code,
                 data={"inspectors": len(rows), "at_road_junctions": on_roads})
    log.info("demo roster: %d inspectors", len(rows))
    return len(rows)


def _metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    from gis.matrix import haversine_m

    return float(haversine_m(lon1, lat1, lon2, lat2))
