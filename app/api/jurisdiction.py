"""Jurisdiction: which district, street, community and grid a place belongs to."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, field_validator

from app.api.deps import SessionDep
from app.services import jurisdiction
from gis.gcj02 import gcj02_to_wgs84

router = APIRouter(prefix="/api/jurisdiction", tags=["jurisdiction"])

Crs = Literal["wgs84", "gcj02"]


def _to_wgs84(lon, lat, crs: Crs):
    if crs == "gcj02":
        x, y = gcj02_to_wgs84(lon, lat)
        return x, y
    return lon, lat


@router.get("")
def at_point(
    session: SessionDep,
    lon: Annotated[float, Query(ge=-180, le=180)],
    lat: Annotated[float, Query(ge=-90, le=90)],
    crs: Crs = "wgs84",
):
    """The district, street, community and grid of a point."""
    x, y = _to_wgs84(lon, lat, crs)
    return jurisdiction.assign_point(session, float(x), float(y)).as_dict()


class SiteGeometry(BaseModel):
    type: Literal["Point", "Polygon", "MultiPolygon"]
    coordinates: Any

    @field_validator("coordinates")
    @classmethod
    def _not_empty(cls, v):
        if not v:
            raise ValueError("coordinates are empty")
        return v


@router.post("")
def for_site(session: SessionDep, geometry: SiteGeometry):
    """The jurisdiction of a site point or polygon (WGS84 GeoJSON; polygons: largest overlap)."""
    import shapely.geometry

    from gis._errors import GeometryError

    try:
        shape = shapely.geometry.shape(geometry.model_dump())
    except Exception as exc:
        raise GeometryError(f"geometry: not a valid GeoJSON {geometry.type} ({exc})") from exc
    if shape.is_empty or not shape.is_valid:
        raise GeometryError(f"geometry: the {geometry.type} is empty or invalid")
    return jurisdiction.assign_geometry(session, geometry.model_dump()).as_dict()


class BulkPoints(BaseModel):
    lon: list[float] = Field(min_length=1, max_length=200_000)
    lat: list[float] = Field(min_length=1, max_length=200_000)
    crs: Crs = "wgs84"


@router.post("/bulk")
def bulk(session: SessionDep, points: BulkPoints):
    """Grid codes for many points at once (null where outside every grid)."""
    from gis._errors import GisError

    if len(points.lon) != len(points.lat):
        raise GisError("lat: must have as many values as lon")
    x, y = _to_wgs84(np.asarray(points.lon), np.asarray(points.lat), points.crs)
    codes = jurisdiction.assign_points_bulk(session, x, y)
    return {"grid_codes": codes, "outside": sum(c is None for c in codes)}
