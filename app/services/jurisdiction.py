"""Which district, street, community and grid a place belongs to.

The rule (the same online here and in bulk in :mod:`gis.jurisdiction`): a point belongs to the
covering grid with the smallest code; a point on a shared boundary is covered by both sides and
so gets the smaller code, deterministically. A site polygon belongs to the grid it overlaps
most (ties: smallest code). The higher levels follow the grid's parent codes, so the answer is
always one consistent chain. Where no grid covers the place, each higher level is looked up on
its own and the answer says ``outside`` with the levels that are missing: nothing is dropped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.models.territory import LEVEL_MODELS, LEVELS, PARENT_LEVEL

CHILD_LEVEL = {p: c for c, p in PARENT_LEVEL.items() if p is not None}


@dataclass
class Unit:
    code: str
    name: str


@dataclass
class Jurisdiction:
    district: Unit | None = None
    street: Unit | None = None
    community: Unit | None = None
    grid: Unit | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def outside(self) -> bool:
        return bool(self.missing)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["outside"] = self.outside
        return d


def _covering(
    session: Session, level: str, geom_sql: str, params: dict, polygon: bool
) -> Unit | None:
    table = LEVEL_MODELS[level].__tablename__
    if polygon:
        sql = f"""
            SELECT code, name FROM {table}
            WHERE valid_to IS NULL AND ST_Intersects(geom, {geom_sql})
            ORDER BY ST_Area(ST_Intersection(geom, {geom_sql})::geography) DESC, code COLLATE "C"
            LIMIT 1"""
    else:
        sql = f"""
            SELECT code, name FROM {table}
            WHERE valid_to IS NULL AND ST_Covers(geom, {geom_sql})
            ORDER BY code COLLATE "C" LIMIT 1"""
    row = session.execute(text(sql), params).first()
    return Unit(row.code, row.name) if row else None


def _by_code(session: Session, level: str, code: str) -> Unit | None:
    table = LEVEL_MODELS[level].__tablename__
    row = session.execute(
        text(f"SELECT code, name FROM {table} WHERE valid_to IS NULL AND code = :c"), {"c": code}
    ).first()
    return Unit(row.code, row.name) if row else None


def _parent_code(session: Session, level: str, code: str) -> str | None:
    if level == "district":
        return None
    table = LEVEL_MODELS[level].__tablename__
    return session.scalar(
        text(f"SELECT parent_code FROM {table} WHERE valid_to IS NULL AND code = :c"), {"c": code}
    )


def _resolve(session: Session, geom_sql: str, params: dict, polygon: bool) -> Jurisdiction:
    result = Jurisdiction()
    # Lowest level first: its parent chain answers the rest consistently.
    for level in reversed(LEVELS):
        if getattr(result, level) is not None:
            continue
        unit = _covering(session, level, geom_sql, params, polygon)
        if unit is None:
            result.missing.append(level)
            continue
        setattr(result, level, unit)
        code, lvl = unit.code, level
        while PARENT_LEVEL[lvl] is not None:
            parent_code = _parent_code(session, lvl, code)
            lvl = PARENT_LEVEL[lvl]
            parent = _by_code(session, lvl, parent_code) if parent_code else None
            if parent is None:
                break
            setattr(result, lvl, parent)
            code = parent.code
    result.missing = [lvl for lvl in LEVELS if getattr(result, lvl) is None]
    return result


def assign_point(session: Session, lon: float, lat: float) -> Jurisdiction:
    """The jurisdiction of a WGS84 point."""
    return _resolve(
        session, "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)", {"lon": lon, "lat": lat}, False
    )


def assign_geometry(session: Session, geometry: dict[str, Any]) -> Jurisdiction:
    """The jurisdiction of a GeoJSON geometry (WGS84): points by cover, polygons by overlap."""
    polygon = geometry.get("type") in ("Polygon", "MultiPolygon")
    geom_sql = "ST_SetSRID(ST_GeomFromGeoJSON(:gj), 4326)"
    return _resolve(session, geom_sql, {"gj": json.dumps(geometry)}, polygon)


_LOCATORS: dict[tuple[str, object], tuple[object, object]] = {}


def grid_locator(session: Session):
    """A bulk locator over the current grids, cached until the grids are redrawn.

    Returns ``(locator, grids)``; ``locator`` is None when no grid is loaded.
    """
    from app.services.territory import current_units
    from gis.jurisdiction import PolygonLocator

    # The newest import and the current count change whenever the grids do.
    version = session.execute(
        text(
            "SELECT max(import_id), count(*), max(valid_from) FROM grids WHERE valid_to IS NULL"
        )
    ).one()
    key = (str(session.get_bind().engine.url), tuple(version))
    if key not in _LOCATORS:
        grids = current_units(session, "grid")
        locator = PolygonLocator.from_frame(grids, code_column="code") if len(grids) else None
        _LOCATORS.clear()  # one territory version is enough to keep
        _LOCATORS[key] = (locator, grids)
    return _LOCATORS[key]


def assign_points_bulk(session: Session, lon: np.ndarray, lat: np.ndarray) -> list[str | None]:
    """Grid codes for many points at once (None where outside every grid)."""
    locator, _ = grid_locator(session)
    if locator is None:
        return [None] * len(lon)
    return locator.assign(np.asarray(lon, float), np.asarray(lat, float)).tolist()


@dataclass
class ReassignResult:
    checked: int
    changed: int
    outside: list[int]


def reassign_projects(session: Session, *, actor: str) -> ReassignResult:
    """Re-assign every live project to the current grids after boundaries were redrawn.

    Point sites go to the covering grid, polygon sites to the grid they overlap most (the same
    rules as online). Projects whose grid changes are updated in one statement and audited one
    by one; projects that no current grid covers any more keep their old codes and are listed.
    Closed, refused and revoked projects keep the codes of their time.
    """
    import geopandas as gpd
    import shapely

    from app.services.territory import current_units
    from gis.jurisdiction import PolygonLocator, assign_polygons

    rows = session.execute(
        text(
            "SELECT id, grid_code, district_code, ST_AsBinary(site) AS wkb FROM projects "
            "WHERE state NOT IN ('refused', 'closed', 'revoked') ORDER BY id"
        )
    ).all()
    if not rows:
        return ReassignResult(0, 0, [])
    grids = current_units(session, "grid")
    communities = current_units(session, "community")
    streets = current_units(session, "street")
    geoms = shapely.from_wkb([bytes(r.wkb) for r in rows])
    is_area = np.isin(shapely.get_type_id(geoms), [3, 6])
    codes = np.empty(len(rows), dtype=object)
    if (~is_area).any():
        points = shapely.point_on_surface(geoms[~is_area])  # lines and points: one anchor point
        locator = PolygonLocator.from_frame(grids, code_column="code")
        codes[~is_area] = locator.assign(shapely.get_x(points), shapely.get_y(points))
    if is_area.any():
        sites = gpd.GeoSeries(geoms[is_area], crs=4326)
        codes[is_area] = assign_polygons(sites, grids, code_column="code")
    grid_parent = dict(zip(grids["code"], grids["parent_code"], strict=True))
    name = {
        **dict(zip(grids["code"], grids["name"], strict=True)),
        **dict(zip(communities["code"], communities["name"], strict=True)),
        **dict(zip(streets["code"], streets["name"], strict=True)),
    }
    updates, outside = [], []
    for row, code in zip(rows, codes, strict=True):
        if code is None:
            outside.append(row.id)
        elif code != row.grid_code:
            community = grid_parent[code]
            street = community[:9] + "000"
            updates.append(
                {
                    "id": row.id,
                    "grid_code": code,
                    "grid_name": name[code],
                    "community_code": community,
                    "community_name": name[community],
                    "street_code": street,
                    "street_name": name.get(street, street),
                    "old": row.grid_code,
                    "district_code": row.district_code,
                }
            )
    if updates:
        session.execute(
            text(
                "UPDATE projects SET grid_code = :grid_code, grid_name = :grid_name, "
                "community_code = :community_code, community_name = :community_name, "
                "street_code = :street_code, street_name = :street_name WHERE id = :id"
            ),
            updates,
        )
        from app.services import audit

        for u in updates:
            audit.record(
                session,
                actor=actor,
                entity="project",
                entity_id=u["id"],
                action="reassign",
                reason=f"boundaries redrawn: grid {u['old']} → {u['grid_code']}",
                district_code=u["district_code"],
                data={"from_grid": u["old"], "to_grid": u["grid_code"]},
            )
    return ReassignResult(checked=len(rows), changed=len(updates), outside=outside)
