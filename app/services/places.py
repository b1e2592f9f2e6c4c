"""The layers registration routes by: special closed areas (schools, hospitals, factories) and
residential estates with their property companies.

:func:`import_places` reads a GeoJSON layer of such places (GCJ-02 accepted, as the real
Dongcheng POIs are). :func:`load_demo_layers` makes a small, clearly labelled *synthetic* layer of
both for the demo district: Futian has no open data for them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.models import Estate, SpecialPlace
from app.services import audit
from gis._errors import GisError

log = logging.getLogger(__name__)

# Chinese POI types → special-place kinds (the Dongcheng files use these).
TYPE_KINDS = {
    "幼儿园": "school", "小学": "school", "中学": "school", "九年一贯制": "school",
    "大学": "school", "学校": "school",
    "医院": "hospital", "街道卫生服务站": "hospital", "社区卫生服务站": "hospital",
    "社区养老设施": "elderly_care", "机构养老设施": "elderly_care",
    "工厂": "factory", "工业厂区": "factory",
}
SYNTHETIC_SOURCE = "synthetic demo layer v1 (not real places)"


def import_places(
    session: Session,
    *,
    path: Path,
    district_code: str,
    crs: str = "wgs84",
    kind: str | None = None,
    type_field: str = "type",
    name_field: str | None = "name",
    actor: str,
) -> int:
    """Add the features of a GeoJSON file as special places; all or nothing. Returns the count.

    ``kind`` forces one kind for every feature; otherwise ``type_field`` is mapped through
    :data:`TYPE_KINDS` and a feature of an unknown type is an error (listed with its index).
    """
    from gis.gcj02 import geometry_gcj02_to_wgs84

    if crs not in ("wgs84", "gcj02"):
        raise GisError("crs: must be wgs84 or gcj02")
    try:
        features = json.loads(Path(path).read_text(encoding="utf-8"))["features"]
    except (OSError, ValueError, KeyError) as exc:
        raise GisError(f"file: {path} is not a GeoJSON FeatureCollection ({exc})") from exc
    rows, problems = [], []
    for i, feature in enumerate(features):
        props = feature.get("properties") or {}
        place_type = str(props.get(type_field) or "")
        place_kind = kind or TYPE_KINDS.get(place_type)
        if place_kind is None:
            problems.append(f"#{i} unknown {type_field} {place_type!r}")
            continue
        try:
            geom = shape(feature["geometry"])
        except Exception:  # malformed geometry of any sort
            problems.append(f"#{i} malformed geometry")
            continue
        if geom.is_empty or not geom.is_valid:
            problems.append(f"#{i} empty or invalid geometry")
            continue
        if crs == "gcj02":
            geom = geometry_gcj02_to_wgs84(geom)
        name = props.get(name_field) if name_field else None
        if not name:
            street = props.get("street_name") or ""
            name = f"{place_type or place_kind} #{props.get('Id', i + 1)} {street}".strip()
        rows.append({"district_code": district_code, "kind": place_kind, "name": str(name)[:200],
                     "geom": f"SRID=4326;{geom.wkt}", "source": f"{Path(path).name} ({crs})",
                     "synthetic": False})
    if problems:
        raise GisError(f"features: {len(problems)} bad feature(s): {'; '.join(problems[:10])}")
    if rows:
        session.execute(SpecialPlace.__table__.insert(), rows)
    audit.record(session, actor=actor, entity="special_places", entity_id=district_code,
                 action="import", reason=f"{len(rows)} places from {Path(path).name}",
                 district_code=district_code, data={"count": len(rows), "crs": crs})
    return len(rows)


def _square(lon: float, lat: float, half_m: float) -> shapely.Polygon:
    dlat = half_m / 111_320.0
    dlon = half_m / (111_320.0 * np.cos(np.radians(lat)))
    return shapely.box(lon - dlon, lat - dlat, lon + dlon, lat + dlat)


def load_demo_layers(session: Session, *, district_code: str) -> dict[str, int]:
    """Synthetic special places and estates for the demo district (idempotent, deterministic).

    Every 23rd grid (by code) gets a school, hospital or factory, every 9th an estate, placed
    on a point inside the grid. Labelled synthetic in name, source and flag.
    """
    existing = session.scalar(
        select(func.count()).select_from(Estate)
        .where(Estate.district_code == district_code, Estate.source == SYNTHETIC_SOURCE)
    )
    if existing:
        return {"estates": 0, "special_places": 0}
    points = session.execute(
        text(
            """SELECT code, name, ST_X(p) AS lon, ST_Y(p) AS lat FROM (
                 SELECT code, name, ST_PointOnSurface(geom) AS p FROM grids
                 WHERE valid_to IS NULL AND district_code = :d) g ORDER BY code"""
        ),
        {"d": district_code},
    ).all()
    kinds = ("school", "hospital", "factory")
    labels = {"school": "学校", "hospital": "医院", "factory": "工厂"}
    places, estates = [], []
    for i, row in enumerate(points):
        if i % 23 == 11:
            kind = kinds[(i // 23) % 3]
            places.append({
                "district_code": district_code, "kind": kind,
                "name": f"合成{labels[kind]}{len(places) + 1:02d}（演示数据）",
                "geom": f"SRID=4326;{_square(row.lon, row.lat, 40).wkt}",
                "source": SYNTHETIC_SOURCE, "synthetic": True,
            })
        elif i % 9 == 4:
            n = len(estates) + 1
            poly = shapely.MultiPolygon([_square(row.lon, row.lat, 90)])
            estates.append({
                "district_code": district_code, "name": f"合成小区{n:03d}（演示数据）",
                "property_company": f"合成物业服务有限公司{(n - 1) % 12 + 1:02d}（演示数据）",
                "property_phone": f"0755-8{n:07d}", "geom": f"SRID=4326;{poly.wkt}",
                "source": SYNTHETIC_SOURCE, "synthetic": True,
            })
    if places:
        session.execute(SpecialPlace.__table__.insert(), places)
    if estates:
        session.execute(Estate.__table__.insert(), estates)
    audit.record(session, actor="demo-loader", entity="demo_layers", entity_id=district_code,
                 action="load", reason=SYNTHETIC_SOURCE, district_code=district_code,
                 data={"estates": len(estates), "special_places": len(places)})
    return {"estates": len(estates), "special_places": len(places)}


def places_geojson(session: Session, *, table: str, district_code: str | None,
                   estate_ids: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Special places or estates as an RFC 7946 FeatureCollection.

    ``estate_ids`` (estates only) keeps those estates alone: a property company's view.
    """
    model = {"special_places": SpecialPlace, "estates": Estate}[table]
    cols = [c for c in model.__table__.columns if c.name != "geom"]
    stmt = select(*cols, func.ST_AsGeoJSON(model.geom, 7).label("gj"))
    if district_code:
        stmt = stmt.where(model.district_code == district_code)
    if estate_ids is not None and model is Estate:
        stmt = stmt.where(Estate.id.in_(list(estate_ids)))
    features = []
    for row in session.execute(stmt.order_by(model.id)).mappings():
        props = {k: v for k, v in row.items() if k != "gj"}
        features.append({"type": "Feature", "id": row["id"], "properties": props,
                         "geometry": json.loads(row["gj"])})
    return {"type": "FeatureCollection", "features": features}
