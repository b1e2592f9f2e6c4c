"""The territory in PostGIS: importing a level, reading it back, and its history.

An import is all or nothing. The file is read and validated first (nothing touches the
database); then, in one transaction, the level's current units in the file's districts are
closed (``valid_to``), the new ones inserted, and the import and an audit entry recorded.
A failure anywhere rolls the whole thing back.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import shapely
from sqlalchemy import func, literal_column, select, text, update
from sqlalchemy.orm import Session

from app.config import code_scheme
from app.models import LEVEL_MODELS, BoundaryImport
from app.models.territory import PARENT_LEVEL
from app.services import audit
from gis._errors import GisError
from gis.validation import ERROR, Issue, ValidationReport, validate_level
from grid_data.importer import BoundaryFrame, district_of

log = logging.getLogger(__name__)


class ImportRefused(GisError):
    """The validation found problems that block the import; the report says which."""

    def __init__(self, message: str, report: ValidationReport):
        super().__init__(message)
        self.report = report


@dataclass
class ImportResult:
    import_id: int
    level: str
    inserted: int
    closed: int
    report: ValidationReport


def current_units(
    session: Session,
    level: str,
    *,
    district_code: str | None = None,
    codes: list[str] | None = None,
) -> gpd.GeoDataFrame:
    """The level's current units as a GeoDataFrame (code, name, parent_code, geometry)."""
    model = LEVEL_MODELS[level]
    cols = [model.code, model.name]
    if level != "district":
        cols.append(model.parent_code)
    stmt = select(*cols, func.ST_AsBinary(model.geom).label("wkb")).where(model.valid_to.is_(None))
    if district_code:
        stmt = stmt.where(model.district_code == district_code)
    if codes is not None:
        stmt = stmt.where(model.code.in_(codes))
    rows = session.execute(stmt.order_by(model.code)).all()
    data: dict[str, Any] = {
        "code": [r.code for r in rows],
        "name": [r.name for r in rows],
        "parent_code": [getattr(r, "parent_code", None) for r in rows],
    }
    geoms = shapely.from_wkb([bytes(r.wkb) for r in rows]) if rows else []
    return gpd.GeoDataFrame(data, geometry=list(geoms), crs=4326)


def validate_frame(
    session: Session, boundary: BoundaryFrame, *, sliver_m2: float
) -> ValidationReport:
    """Validate a level read from a file against the parents now in the database.

    When none of the parents is loaded, the level is still checked on its own (gaps are then
    the holes between its units) and the missing parents are reported as errors.
    """
    parent_level = PARENT_LEVEL[boundary.level]
    frame = boundary.frame
    if parent_level is None:
        frame = frame.drop(columns=["parent_code"], errors="ignore")
        return validate_level(
            frame, level=boundary.level, sliver_area_m2=sliver_m2, scheme=code_scheme()
        )
    parent_codes = sorted(set(boundary.frame["parent_code"]))
    parent = current_units(session, parent_level, codes=parent_codes)
    if len(parent):
        return validate_level(
            frame,
            level=boundary.level,
            parent=parent,
            sliver_area_m2=sliver_m2,
            scheme=code_scheme(),
        )
    report = validate_level(
        frame.drop(columns=["parent_code"]),
        level=boundary.level,
        sliver_area_m2=sliver_m2,
        scheme=code_scheme(),
    )
    shown = ", ".join(parent_codes[:5]) + (" ..." if len(parent_codes) > 5 else "")
    report.issues.append(
        Issue(
            kind="parent_mismatch",
            severity=ERROR,
            codes=tuple(parent_codes),
            message=f"parent_code: no {parent_level} {shown} is loaded; import that level first",
        )
    )
    return report


def import_level(
    session: Session,
    boundary: BoundaryFrame,
    *,
    actor: str,
    strict: bool = False,
    sliver_m2: float = 50.0,
) -> ImportResult:
    """Validate and store one level; the caller commits (or rolls back) the session.

    Raises
    ------
    ImportRefused
        When the report holds errors, or any issue at all in strict mode.
    """
    report = validate_frame(session, boundary, sliver_m2=sliver_m2)
    if not report.ok(strict=strict):
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(report.counts().items()))
        mode = "strict mode refuses any issue" if strict else "errors block the import"
        raise ImportRefused(f"{boundary.level} import refused ({mode}): {counts}", report)
    frame = report.repaired
    model = LEVEL_MODELS[boundary.level]
    # Acknowledged means durable, whatever the server default (only this transaction).
    session.execute(text("SET LOCAL synchronous_commit = on"))
    districts = sorted({district_of(c) for c in frame["code"]})

    record = BoundaryImport(
        level=boundary.level,
        district_code=districts[0] if len(districts) == 1 else ",".join(districts)[:12],
        source_file=boundary.source_file,
        source_crs=boundary.source_crs,
        feature_count=len(frame),
        report=_report_summary(report),
        actor=actor,
    )
    session.add(record)
    session.flush()
    now = session.scalar(select(func.now()))
    closed = session.execute(
        update(model)
        .where(model.valid_to.is_(None), model.district_code.in_(districts))
        .values(valid_to=now)
    ).rowcount
    # A code outside these districts that is current would collide with the unique index:
    # close it too (a unit moved between districts is a redraw like any other).
    closed += session.execute(
        update(model)
        .where(model.valid_to.is_(None), model.code.in_(list(frame["code"])))
        .values(valid_to=now)
    ).rowcount
    record.closed_count = closed
    rows = [
        {
            "code": code,
            "name": name,
            "parent_code": parent,
            "district_code": district_of(code),
            "wkb": shapely.to_wkb(geom, hex=True),
            "valid_from": now,
            "source_crs": boundary.source_crs,
            "source_file": boundary.source_file,
            "import_id": record.id,
        }
        for code, name, parent, geom in zip(
            frame["code"],
            frame["name"],
            frame.get("parent_code", [None] * len(frame)),
            frame.geometry,
            strict=True,
        )
    ]
    parent_col = "parent_code, " if boundary.level != "district" else ""
    parent_val = ":parent_code, " if boundary.level != "district" else ""
    session.execute(
        text(
            f"INSERT INTO {model.__tablename__} (code, name, {parent_col}district_code, geom,"
            " valid_from, source_crs, source_file, import_id) VALUES (:code, :name, "
            f"{parent_val}:district_code, ST_Multi(ST_GeomFromWKB(decode(:wkb, 'hex'), 4326)),"
            " :valid_from, :source_crs, :source_file, :import_id)"
        ),
        rows,
    )
    audit.record(
        session,
        actor=actor,
        entity="boundary_import",
        entity_id=record.id,
        action="import",
        to_state="current",
        reason=f"{boundary.level} from {boundary.source_file}",
        district_code=districts[0],
        data={"inserted": len(rows), "closed": closed, "counts": report.counts()},
    )
    # The planner's statistics of the level, fresh for the queries that join it at once (the
    # per-grid analyses pick nested loops over a district of "one grid" otherwise).
    session.execute(text(f"ANALYZE {model.__tablename__}"))
    log.info("imported %d %s units (closed %d)", len(rows), boundary.level, closed)
    return ImportResult(
        import_id=record.id, level=boundary.level, inserted=len(rows), closed=closed, report=report
    )


def _report_summary(report: ValidationReport) -> dict[str, Any]:
    """What is kept of a report with the import: counts, and the issues without geometry."""
    issues = json.loads(report.to_geodataframe().drop(columns="geometry").to_json(orient="records"))
    return {"counts": report.counts(), "issues": issues[:1000]}


def unit_history(session: Session, level: str, code: str) -> list[dict[str, Any]]:
    """Every version of one unit, newest first."""
    model = LEVEL_MODELS[level]
    rows = session.execute(
        select(
            model.code,
            model.name,
            model.valid_from,
            model.valid_to,
            model.source_file,
            model.source_crs,
            model.import_id,
            func.ST_Area(func.geography(model.geom)).label("area_m2"),
        )
        .where(model.code == code)
        .order_by(model.valid_from.desc(), model.id.desc())
    ).all()
    return [dict(r._mapping) for r in rows]


def level_geojson(
    session: Session,
    level: str,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    district_code: str | None = None,
    codes: list[str] | None = None,
    simplify_m: float = 0.0,
) -> dict[str, Any]:
    """The level's current units as an RFC 7946 FeatureCollection (6 decimals)."""
    model = LEVEL_MODELS[level]
    geom = model.geom
    if simplify_m > 0:
        # Topology-preserving per unit; at map scales where this matters, shared edges
        # drift by less than a pixel.
        geom = func.ST_SimplifyPreserveTopology(geom, simplify_m / 111_000.0)
    parent = model.parent_code if level != "district" else literal_column("NULL")
    stmt = select(
        model.code,
        model.name,
        parent.label("parent_code"),
        model.district_code,
        func.ST_AsGeoJSON(geom, 6).label("geojson"),
        func.ST_Area(func.geography(model.geom)).label("area_m2"),
    ).where(model.valid_to.is_(None))
    if district_code:
        stmt = stmt.where(model.district_code == district_code)
    if codes is not None:
        stmt = stmt.where(model.code.in_(codes))
    if bbox is not None:
        stmt = stmt.where(model.geom.intersects(func.ST_MakeEnvelope(*bbox, 4326)))
    features = [
        {
            "type": "Feature",
            "id": r.code,
            "geometry": json.loads(r.geojson),
            "properties": {
                "code": r.code,
                "name": r.name,
                "level": level,
                "parent_code": r.parent_code,
                "district_code": r.district_code,
                "area_m2": round(float(r.area_m2), 1),
            },
        }
        for r in session.execute(stmt.order_by(model.code))
    ]
    return {"type": "FeatureCollection", "features": features}


def level_counts(session: Session) -> dict[str, int]:
    """How many current units each level holds."""
    return {
        level: session.scalar(
            select(func.count()).select_from(model).where(model.valid_to.is_(None))
        )
        or 0
        for level, model in LEVEL_MODELS.items()
    }
