"""Jurisdiction: which district, street, community and grid a place belongs to."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.api.access import ReferenceAccess
from app.api.deps import SessionDep
from app.geoinput import check_in_china, parse_geojson
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
    access: ReferenceAccess,
    lon: Annotated[float, Query(ge=-180, le=180)],
    lat: Annotated[float, Query(ge=-90, le=90)],
    crs: Crs = "wgs84",
):
    """The district, street, community and grid of a point (422 outside China)."""
    check_in_china(lon, lat, "lon")
    x, y = _to_wgs84(lon, lat, crs)
    return jurisdiction.assign_point(session, float(x), float(y)).as_dict()


class SiteGeometry(BaseModel):
    model_config = ConfigDict(extra="allow")  # a legacy "crs" member is checked, not dropped

    type: Literal["Point", "Polygon", "MultiPolygon"]
    coordinates: Any

    @field_validator("coordinates")
    @classmethod
    def _not_empty(cls, v):
        if not v:
            raise ValueError("coordinates are empty")
        return v


@router.post("")
def for_site(session: SessionDep, access: ReferenceAccess, geometry: SiteGeometry):
    """The jurisdiction of a site point or polygon (WGS84 GeoJSON; polygons: largest overlap)."""
    checked = parse_geojson(geometry.model_dump(), "geometry")
    return jurisdiction.assign_geometry(session, checked).as_dict()


class BulkPoints(BaseModel):
    lon: list[float] = Field(min_length=1, max_length=200_000)
    lat: list[float] = Field(min_length=1, max_length=200_000)
    crs: Crs = "wgs84"


@router.post("/bulk")
def bulk(session: SessionDep, access: ReferenceAccess, points: BulkPoints):
    """Grid codes for many points at once (null where outside every grid)."""
    from gis._errors import GisError

    if len(points.lon) != len(points.lat):
        raise GisError("lat: must have as many values as lon")
    lon, lat = np.asarray(points.lon, float), np.asarray(points.lat, float)
    for name, values, bound in (("lon", lon, 180.0), ("lat", lat, 90.0)):
        bad = np.flatnonzero(~(np.abs(values) <= bound))  # NaN fails the comparison too
        if len(bad):
            raise GisError(f"{name}: value {bad[0]} ({values[bad[0]]:g}) is not a {name} in "
                           f"degrees (-{bound:g}..{bound:g})")
    x, y = _to_wgs84(lon, lat, points.crs)
    codes = jurisdiction.assign_points_bulk(session, x, y)
    return {"grid_codes": codes, "outside": sum(c is None for c in codes)}
