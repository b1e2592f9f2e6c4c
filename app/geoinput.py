"""Geometry sent in requests: checked strictly before it reaches shapely or PostGIS.

Shapely is lenient (it builds a Point from ``[[x, y]]``) and PostGIS is not (it then fails
with an internal error), so a GeoJSON geometry from a client is checked here first, and every
problem is a :class:`gis._errors.GeometryError` naming the field:

* the shape of the JSON: an object of an accepted ``type``, positions of two or three numbers
  (a third, the altitude phones add, is dropped: supervision is planar), rings closed and of
  four positions at least, no more vertices than :func:`app.limits.current` allows;
* the numbers: finite, longitude and latitude in degrees, and inside China (a point in the
  Gulf of Guinea is a swapped ``lat, lon`` or a projected CRS read as degrees);
* the coordinate system: WGS84 or GCJ-02 (named by the caller); a legacy GeoJSON ``crs``
  member naming anything else is refused rather than silently misread;
* the geometry: not empty, valid (no self-intersection), polygons with an area.

Rings wound the "wrong" way are not an error: RFC 7946 asks parsers not to reject them, and a
site drawn clockwise on a map is still the same site. They are re-wound (exterior
counter-clockwise) so that what is stored follows the RFC.
"""

from __future__ import annotations

import math
from typing import Any

import shapely
from shapely.geometry import mapping, shape
from shapely.geometry.polygon import orient

from app.limits import count_positions, current
from gis._errors import GeometryError

# Mainland China and its seas, generously (the same box the boundary importer uses).
CHINA_BOX = (72.0, 0.8, 138.0, 56.0)
# What a GeoJSON "crs" member may name: WGS84 in its usual spellings.
_WGS84_NAMES = {"urn:ogc:def:crs:ogc:1.3:crs84", "urn:ogc:def:crs:epsg::4326", "epsg:4326",
                "crs84", "wgs84"}
_DEPTH = {"Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2, "Polygon": 2,
          "MultiPolygon": 3}


def _position(value: Any, field: str) -> tuple[float, float]:
    if not isinstance(value, list | tuple) or not 2 <= len(value) <= 3 or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise GeometryError(f"{field}: each position must be [longitude, latitude] (numbers)")
    lon, lat = float(value[0]), float(value[1])
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise GeometryError(f"{field}: coordinates must be finite numbers (not NaN or Infinity)")
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise GeometryError(f"{field}: coordinates must be longitude, latitude in degrees "
                            f"(got {lon:g}, {lat:g})")
    return lon, lat


def _positions(value: Any, depth: int, field: str) -> Any:
    """The coordinates with every position checked and made 2D (``depth`` list levels)."""
    if depth == 0:
        return _position(value, field)
    if not isinstance(value, list | tuple) or not value:
        raise GeometryError(f"{field}: coordinates are empty or not nested as the type needs")
    return [_positions(v, depth - 1, field) for v in value]


def _check_rings(gtype: str, coords: Any, field: str) -> None:
    polygons = [coords] if gtype == "Polygon" else coords if gtype == "MultiPolygon" else []
    for rings in polygons:
        for ring in rings:
            if len(ring) < 4:
                raise GeometryError(f"{field}: a polygon ring needs at least 4 positions")
            if ring[0] != ring[-1]:
                raise GeometryError(f"{field}: a polygon ring must end where it starts")
    if gtype == "LineString" and len(coords) < 2:
        raise GeometryError(f"{field}: a line needs at least 2 positions")


def _check_crs_member(geometry: dict, field: str) -> None:
    member = geometry.get("crs")
    if member is None:
        return
    name = member.get("properties", {}).get("name") if isinstance(member, dict) else None
    if not isinstance(name, str) or name.strip().lower() not in _WGS84_NAMES:
        raise GeometryError(f"{field}: coordinates must be WGS84 longitude, latitude (or GCJ-02 "
                            f"with crs=gcj02); the geometry names another system ({name!r})")


def in_china(lon: float, lat: float) -> bool:
    x0, y0, x1, y1 = CHINA_BOX
    return x0 <= lon <= x1 and y0 <= lat <= y1


def check_in_china(lon: float, lat: float, field: str) -> None:
    if not in_china(lon, lat):
        raise GeometryError(
            f"{field}: {lon:g}, {lat:g} lies outside China; are longitude and latitude "
            "swapped, or are the coordinates in another system (they must be degrees)?")


def parse_geometry(
    value: Any,
    field: str,
    *,
    types: tuple[str, ...] = ("Point", "Polygon", "MultiPolygon"),
    crs: str = "wgs84",
    max_vertices: int | None = None,
) -> shapely.Geometry:
    """A checked 2D WGS84 shapely geometry from a GeoJSON geometry (or Feature) sent by a client.

    ``crs`` is what the caller declared: ``wgs84`` or ``gcj02`` (converted to WGS84 here).
    """
    if isinstance(value, dict) and value.get("type") == "Feature":
        value = value.get("geometry")
    if not isinstance(value, dict) or value.get("type") not in types:
        raise GeometryError(f"{field}: must be a GeoJSON geometry of type {', '.join(types)}")
    gtype = value["type"]
    _check_crs_member(value, field)
    raw = value.get("coordinates")
    if raw is None:
        raise GeometryError(f"{field}: coordinates are missing")
    count_positions(raw, field, limit=max_vertices or current().vertices)
    coords = _positions(raw, _DEPTH[gtype], field)
    _check_rings(gtype, coords, field)
    try:
        geom = shape({"type": gtype, "coordinates": coords})
    except (ValueError, TypeError, IndexError, AttributeError, shapely.errors.ShapelyError) as exc:
        raise GeometryError(f"{field}: not a valid GeoJSON {gtype} ({exc})") from exc
    if geom.is_empty:
        raise GeometryError(f"{field}: empty geometry")
    if crs == "gcj02":
        from gis.gcj02 import geometry_gcj02_to_wgs84

        geom = geometry_gcj02_to_wgs84(geom)
    minx, miny, maxx, maxy = geom.bounds
    for lon, lat in ((minx, miny), (maxx, maxy)):
        check_in_china(lon, lat, field)
    if not geom.is_valid:
        raise GeometryError(f"{field}: invalid geometry ({shapely.is_valid_reason(geom)})")
    if gtype in ("Polygon", "MultiPolygon"):
        if geom.area == 0:
            raise GeometryError(f"{field}: the polygon has no area")
        geom = (orient(geom, 1.0) if gtype == "Polygon"
                else shapely.MultiPolygon([orient(p, 1.0) for p in geom.geoms]))
    return geom


def parse_geojson(value: Any, field: str, **kwargs: Any) -> dict[str, Any]:
    """:func:`parse_geometry`, answered as a GeoJSON dict (2D, WGS84, RFC 7946 winding)."""
    return mapping(parse_geometry(value, field, **kwargs))
