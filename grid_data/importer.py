"""Read a boundary file of one territory level into a clean WGS84 GeoDataFrame.

Accepts GeoJSON, Shapefile and GeoPackage (anything pyogrio reads) in any EPSG CRS, and
GCJ-02 — the offset coordinates of Chinese web and phone maps, which PROJ cannot convert —
when the caller says so (``crs="gcj02"``). The result has exactly the columns ``code``,
``name``, ``parent_code`` and ``geometry`` (EPSG:4326). Every problem with the *file* (it
cannot be read, the CRS is missing or wrong, a field is missing, codes of another level are
mixed in) raises :class:`BoundaryFileError` with a message naming the field and the reason;
problems with the *geometry* are the validation report's business (:mod:`gis.validation`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS
from pyproj.exceptions import CRSError as ProjCRSError

from gis import codes as admin_codes
from gis._errors import GisError
from gis.gcj02 import geometry_gcj02_to_wgs84

log = logging.getLogger(__name__)

_PARENT = {"street": "district", "community": "street", "grid": "community"}
GCJ02_NAMES = {"gcj02", "gcj-02", "gcj_02", "mars"}
# Mainland China and its seas, generously: anything outside is a CRS mistake, not a place.
_CHINA_BOX = (72.0, 0.8, 138.0, 56.0)


class BoundaryFileError(GisError):
    """The boundary file cannot be imported as it is."""


@dataclass(frozen=True)
class BoundaryFrame:
    """A level read from a file, in WGS84, with where it came from."""

    level: str
    frame: gpd.GeoDataFrame
    source_file: str
    source_crs: str

    @property
    def district_codes(self) -> list[str]:
        return sorted({district_of(c) for c in self.frame["code"]})


def district_of(code: str) -> str:
    """The 12-digit district code a unit's code belongs to (its first 6 digits + zeros)."""
    return code[:6] + "000000"


def _as_code(value: object) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def _read(path: Path, layer: str | None) -> gpd.GeoDataFrame:
    if not path.exists():
        raise BoundaryFileError(f"file: {path} does not exist")
    try:
        return gpd.read_file(path, layer=layer, engine="pyogrio")
    except Exception as exc:  # pyogrio raises many kinds; all mean "cannot read"
        msg = f"file: {path.name} could not be read as GeoJSON, Shapefile or GeoPackage ({exc})"
        raise BoundaryFileError(msg) from exc


def _resolve_crs(gdf: gpd.GeoDataFrame, crs: str | None, name: str) -> tuple[str, bool]:
    """The source CRS as text, and whether it is GCJ-02."""
    if crs is not None and crs.strip().lower() in GCJ02_NAMES:
        return "GCJ-02", True
    if crs is not None:
        try:
            parsed = CRS.from_user_input(crs)
        except ProjCRSError as exc:
            raise BoundaryFileError(f"crs: {crs!r} is not a known coordinate system") from exc
        return parsed.to_string(), False
    if gdf.crs is None:
        msg = (
            f"crs: {name} declares no coordinate system; pass one, e.g. --crs EPSG:4547 "
            "or --crs gcj02"
        )
        raise BoundaryFileError(msg)
    return gdf.crs.to_string(), False


def _check_plausible(gdf: gpd.GeoDataFrame, source_crs: str) -> None:
    minx, miny, maxx, maxy = gdf.total_bounds
    x0, y0, x1, y1 = _CHINA_BOX
    if not (np.isfinite([minx, miny, maxx, maxy]).all()):
        raise BoundaryFileError("geometry: coordinates are not finite numbers")
    if minx < x0 or maxx > x1 or miny < y0 or maxy > y1:
        msg = (
            f"crs: read as {source_crs}, the features lie at lon {minx:.4f}..{maxx:.4f}, "
            f"lat {miny:.4f}..{maxy:.4f}, outside China; is the coordinate system right?"
        )
        raise BoundaryFileError(msg)


def read_boundary_file(
    path: str | Path,
    *,
    level: str,
    crs: str | None = None,
    code_field: str = "code",
    name_field: str = "name",
    parent_field: str = "parent_code",
    layer: str | None = None,
    scheme: admin_codes.CodeScheme | None = None,
) -> BoundaryFrame:
    """Read one level of the territory from a file.

    Parameters
    ----------
    path
        GeoJSON, Shapefile (.shp or zipped) or GeoPackage.
    level
        'district', 'street', 'community' or 'grid'.
    crs
        The file's coordinate system when it declares none or declares it wrongly:
        an EPSG code ('EPSG:4547') or 'gcj02'. GeoJSON readers label GCJ-02 data as
        EPSG:4326, so GCJ-02 must always be named here.
    code_field, name_field, parent_field
        Attribute names. The parent field is not needed for districts; when absent for a
        lower level, the parent code is derived from the unit's own code.
    """
    path = Path(path)
    scheme = scheme or admin_codes.CodeScheme()
    if level not in admin_codes.LEVELS:
        raise BoundaryFileError(f"level: {level!r} is not one of {', '.join(admin_codes.LEVELS)}")
    gdf = _read(path, layer)
    if gdf.empty:
        raise BoundaryFileError(f"file: {path.name} has no features")
    missing = [f for f in (code_field, name_field) if f not in gdf.columns]
    if missing:
        have = ", ".join(c for c in gdf.columns if c != "geometry")
        msg = f"fields: {', '.join(missing)} missing from {path.name} (it has: {have})"
        raise BoundaryFileError(msg)
    source_crs, is_gcj02 = _resolve_crs(gdf, crs, path.name)
    if is_gcj02:
        gdf = gdf.set_crs(4326, allow_override=True)
        gdf["geometry"] = geometry_gcj02_to_wgs84(gdf.geometry.values)
    else:
        gdf = gdf.set_crs(source_crs, allow_override=True)
        if not gdf.crs.equals(CRS.from_epsg(4326)):
            try:
                gdf = gdf.to_crs(4326)
            except Exception as exc:
                raise BoundaryFileError(f"crs: cannot convert from {source_crs} ({exc})") from exc
    _check_plausible(gdf, source_crs)

    out = gpd.GeoDataFrame(
        {
            "code": [_as_code(v) for v in gdf[code_field]],
            "name": [None if pd.isna(v) else str(v).strip() for v in gdf[name_field]],
        },
        geometry=gdf.geometry.values,
        crs=4326,
    )
    _check_codes(out, level, scheme, path.name, code_field, name_field)
    if level == "district":
        out["parent_code"] = None
    elif parent_field in gdf.columns:
        out["parent_code"] = [
            None if c is None else admin_codes.normalise_code(c, _PARENT[level])
            for c in (_as_code(v) for v in gdf[parent_field])
        ]
        no_parent = out["parent_code"].isna()
        if no_parent.any():
            rows = ", ".join(str(i + 1) for i in np.flatnonzero(no_parent)[:5])
            raise BoundaryFileError(f"{parent_field}: empty in feature(s) {rows}")
    else:
        out["parent_code"] = [
            admin_codes.parent_code(c, _PARENT[level], scheme=scheme) for c in out["code"]
        ]
    return BoundaryFrame(level=level, frame=out, source_file=str(path), source_crs=source_crs)


def _level_or_none(code: str, scheme: admin_codes.CodeScheme) -> str | None:
    try:
        return admin_codes.level_of(code, scheme=scheme)
    except GisError:
        return None


def _check_codes(
    out: gpd.GeoDataFrame,
    level: str,
    scheme: admin_codes.CodeScheme,
    filename: str,
    code_field: str,
    name_field: str,
) -> None:
    empty_code = out["code"].isna()
    if empty_code.any():
        rows = ", ".join(str(i + 1) for i in np.flatnonzero(empty_code)[:5])
        raise BoundaryFileError(f"{code_field}: empty in feature(s) {rows} of {filename}")
    empty_name = out["name"].isna() | (out["name"] == "")
    if empty_name.any():
        rows = ", ".join(str(i + 1) for i in np.flatnonzero(empty_name)[:5])
        raise BoundaryFileError(f"{name_field}: empty in feature(s) {rows} of {filename}")
    normalised, wrong = [], []
    for i, code in enumerate(out["code"]):
        try:
            normalised.append(admin_codes.normalise_code(code, level, scheme=scheme))
        except GisError as exc:
            wrong.append(f"feature {i + 1} ({code}): {exc}")
    if wrong:
        others = {_level_or_none(c, scheme) for c in out["code"]} - {level, None}
        hint = f"; the file seems to mix levels ({', '.join(sorted(others))})" if others else ""
        shown = "; ".join(wrong[:5])
        more = f" and {len(wrong) - 5} more" if len(wrong) > 5 else ""
        raise BoundaryFileError(f"{code_field}: not {level} codes: {shown}{more}{hint}")
    out["code"] = normalised
