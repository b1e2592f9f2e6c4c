"""Territory: the four levels as GeoJSON, one unit, its history, and boundary imports.

Boundaries are reference data: every staff account may read the whole territory (a grid worker
needs the neighbouring grids on the map, and the lines themselves are not a secret), so these
reads are not narrowed by scope. Importing boundaries is for the district's accounts, and only
for units inside their own district.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, HTTPException, Query, UploadFile
from sqlalchemy import select

from app.api.access import Access, BoundariesAccess, ReferenceAccess
from app.api.deps import GeoJSONResponse, SessionDep
from app.config import code_scheme, get_settings
from app.limits import check_frame_vertices
from app.models import BoundaryImport
from app.services import territory
from grid_data.importer import read_boundary_file

router = APIRouter(prefix="/api", tags=["territory"])

Level = Literal["district", "street", "community", "grid"]


def parse_bbox(bbox: str | None) -> tuple[float, float, float, float] | None:
    """``minlon,minlat,maxlon,maxlat`` → a tuple, with a clear error otherwise."""
    if bbox is None:
        return None
    try:
        values = tuple(float(v) for v in bbox.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or not (values[0] < values[2] and values[1] < values[3]):
        raise HTTPException(422, "bbox: expected minlon,minlat,maxlon,maxlat with min < max")
    return values  # type: ignore[return-value]


@router.get("/territory/{level}", response_class=GeoJSONResponse)
def get_level(
    level: Level,
    session: SessionDep,
    access: ReferenceAccess,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat")] = None,
    district: Annotated[str | None, Query(pattern=r"^\d{12}$")] = None,
    simplify_m: Annotated[float, Query(ge=0, le=500)] = 0.0,
):
    """The current units of a level as GeoJSON."""
    fc = territory.level_geojson(
        session, level, bbox=parse_bbox(bbox), district_code=district, simplify_m=simplify_m
    )
    return GeoJSONResponse(fc)


@router.get("/territory/{level}/{code}", response_class=GeoJSONResponse)
def get_unit(level: Level, code: str, session: SessionDep, access: ReferenceAccess):
    """One current unit as a GeoJSON Feature."""
    features = territory.level_geojson(session, level, codes=[code])["features"]
    if not features:
        raise HTTPException(404, f"code: no current {level} with code {code}")
    return GeoJSONResponse(features[0])


@router.get("/territory/{level}/{code}/history")
def get_history(level: Level, code: str, session: SessionDep, access: ReferenceAccess):
    """Every version of a unit, newest first."""
    versions = territory.unit_history(session, level, code)
    if not versions:
        raise HTTPException(404, f"code: no {level} ever had code {code}")
    return {"level": level, "code": code, "versions": versions}


def _save_upload(upload: UploadFile, folder: Path) -> Path:
    # Only the last part of the client's name is used, and never ".", ".." or a NUL.
    name = Path((upload.filename or "").replace("\x00", "")).name
    if name in ("", ".", ".."):
        name = "upload.geojson"
    if len(name.encode()) > 200:  # file systems refuse names over 255 bytes
        name = "upload" + Path(name).suffix[-20:]
    target = folder / name
    limit = get_settings().max_upload_bytes
    with target.open("wb") as out:
        shutil.copyfileobj(upload.file, out)
    if target.stat().st_size > limit:
        raise HTTPException(413, f"file: larger than the {limit // (1024 * 1024)} MiB limit")
    return target


def _read_upload(upload, level, crs, code_field, name_field, parent_field, folder,
                 access: Access):
    path = _save_upload(upload, folder)
    boundary = read_boundary_file(
        path,
        scheme=code_scheme(),
        level=level,
        crs=crs or None,
        code_field=code_field,
        name_field=name_field,
        parent_field=parent_field,
    )
    check_frame_vertices(boundary.frame.geometry, boundary.frame["code"])
    outside = [c for c in boundary.frame["code"] if not access.scope.covers_unit(c)]
    if outside:
        raise HTTPException(403, f"file: {len(outside)} unit(s) outside your area, "
                                 f"e.g. {outside[0]}")
    return boundary


@router.post("/boundaries/validate")
def validate_boundaries(
    session: SessionDep,
    access: BoundariesAccess,
    file: Annotated[UploadFile, File(description="GeoJSON, zipped Shapefile or GeoPackage")],
    level: Annotated[Level, Form()],
    crs: Annotated[str | None, Form(description="EPSG:xxxx or gcj02")] = None,
    code_field: Annotated[str, Form()] = "code",
    name_field: Annotated[str, Form()] = "name",
    parent_field: Annotated[str, Form()] = "parent_code",
):
    """Validate a boundary file without importing it: counts and the problem places."""
    with tempfile.TemporaryDirectory() as tmp:
        boundary = _read_upload(file, level, crs, code_field, name_field, parent_field, Path(tmp),
                                access)
        report = territory.validate_frame(session, boundary, sliver_m2=get_settings().sliver_m2)
    return {
        "level": level,
        "features": len(boundary.frame),
        "source_crs": boundary.source_crs,
        "ok": report.ok(strict=False),
        "ok_strict": report.ok(strict=True),
        "counts": report.counts(),
        "problems": report.to_geojson(),
    }


@router.post("/boundaries/import", status_code=201)
def import_boundaries(
    session: SessionDep,
    access: BoundariesAccess,
    file: Annotated[UploadFile, File(description="GeoJSON, zipped Shapefile or GeoPackage")],
    level: Annotated[Level, Form()],
    crs: Annotated[str | None, Form(description="EPSG:xxxx or gcj02")] = None,
    strict: Annotated[bool, Form()] = False,
    code_field: Annotated[str, Form()] = "code",
    name_field: Annotated[str, Form()] = "name",
    parent_field: Annotated[str, Form()] = "parent_code",
):
    """Import one level (all or nothing); 422 with the report when refused."""
    with tempfile.TemporaryDirectory() as tmp:
        boundary = _read_upload(file, level, crs, code_field, name_field, parent_field, Path(tmp),
                                access)
        try:
            result = territory.import_level(
                session, boundary, actor=access.actor(), strict=strict,
                sliver_m2=get_settings().sliver_m2
            )
            session.commit()
        except Exception:
            session.rollback()
            raise
    return {
        "import_id": result.import_id,
        "level": level,
        "inserted": result.inserted,
        "closed": result.closed,
        "counts": result.report.counts(),
        "problems": result.report.to_geojson(),
    }


@router.get("/boundaries/imports")
def list_imports(session: SessionDep, access: BoundariesAccess,
                 limit: Annotated[int, Query(ge=1, le=500)] = 50):
    """The latest boundary imports (of the account's district)."""
    stmt = select(BoundaryImport)
    if not access.scope.unrestricted:
        stmt = stmt.where(BoundaryImport.district_code == (access.scope.district or ""))
    rows = session.scalars(stmt.order_by(BoundaryImport.id.desc()).limit(limit)).all()
    return [
        {
            "id": r.id,
            "level": r.level,
            "district_code": r.district_code,
            "source_file": r.source_file,
            "source_crs": r.source_crs,
            "feature_count": r.feature_count,
            "closed_count": r.closed_count,
            "counts": r.report.get("counts", {}),
            "actor": r.actor,
            "imported_at": r.imported_at,
        }
        for r in rows
    ]
