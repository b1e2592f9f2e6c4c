"""Projects out: one as a GeoJSON Feature, many as a FeatureCollection or CSV rows."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.models import Project
from app.rules import get_rules
from app.services.lifecycle import allowed_actions

PROPERTY_COLUMNS = [
    "id", "reg_no", "public_id", "state", "state_reason", "kind", "category", "title", "address",
    "district_code", "street_code", "street_name", "community_code", "community_name",
    "grid_code", "grid_name", "investment_cny", "floor_area_m2", "planned_start", "planned_end",
    "risk_factors", "public_area", "channel", "above_limit_reference", "above_limit",
    "high_risk", "special_area", "reviewer_kind", "reviewer_code", "reviewer_name",
    "departments", "submitted_on", "review_due", "accepted_on", "briefing_due", "briefed_on",
    "started_on", "completion_due", "finished_on", "completion_declared_on", "closed_on",
    "valid_until", "extensions", "receipt_no", "site_input_crs", "source", "created_by",
]


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def feature(session: Session, project: Project, *, detail: bool = True) -> dict[str, Any]:
    """One project as a Feature (site geometry, WGS84)."""
    gj = session.scalar(select(func.ST_AsGeoJSON(Project.site, 7)).where(Project.id == project.id))
    props = {c: _plain(getattr(project, c)) for c in PROPERTY_COLUMNS}
    if detail:
        rules = get_rules()
        props["builder"] = project.builder
        props["contractor"] = project.contractor
        props["decision"] = project.decision
        props["department_names"] = [rules.department_name(d) for d in project.departments]
        props["allowed_actions"] = allowed_actions(project.state)
    return {"type": "Feature", "id": project.id, "geometry": json.loads(gj), "properties": props}


def filtered(
    *,
    district: str | None = None,
    street: str | None = None,
    community: str | None = None,
    grid: str | None = None,
    state: str | None = None,
    kind: str | None = None,
    category: str | None = None,
    high_risk: bool | None = None,
    submitted_from: date | None = None,
    submitted_to: date | None = None,
    bbox: tuple[float, float, float, float] | None = None,
) -> Select:
    stmt = select(Project)
    for column, value in ((Project.district_code, district), (Project.street_code, street),
                          (Project.community_code, community), (Project.grid_code, grid),
                          (Project.state, state), (Project.kind, kind),
                          (Project.category, category), (Project.high_risk, high_risk)):
        if value is not None:
            stmt = stmt.where(column == value)
    if submitted_from:
        stmt = stmt.where(Project.submitted_on >= submitted_from)
    if submitted_to:
        stmt = stmt.where(Project.submitted_on <= submitted_to)
    if bbox:
        stmt = stmt.where(func.ST_Intersects(Project.site, func.ST_MakeEnvelope(*bbox, 4326)))
    return stmt


def collection(session: Session, stmt: Select, *, limit: int, offset: int) -> dict[str, Any]:
    """A page of projects as a FeatureCollection (summary properties), with the total."""
    total = session.scalar(select(func.count()).select_from(stmt.subquery()))
    page = stmt.add_columns(func.ST_AsGeoJSON(Project.site, 7)).order_by(Project.id)
    rows = session.execute(page.limit(limit).offset(offset)).all()
    features = [
        {"type": "Feature", "id": p.id, "geometry": json.loads(gj),
         "properties": {c: _plain(getattr(p, c)) for c in PROPERTY_COLUMNS}}
        for p, gj in rows
    ]
    return {"type": "FeatureCollection", "features": features, "numberMatched": total,
            "numberReturned": len(features)}


CSV_COLUMNS = PROPERTY_COLUMNS + ["builder_name", "builder_phone", "contractor_name",
                                  "contractor_phone", "lon", "lat", "site_geojson"]


def csv_rows(session: Session, stmt: Select, *, batch: int = 2000) -> Iterator[str]:
    """The projects as CSV text, streamed in batches (header first)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    yield buf.getvalue()
    page = stmt.add_columns(
        func.ST_X(func.ST_PointOnSurface(Project.site)),
        func.ST_Y(func.ST_PointOnSurface(Project.site)),
        func.ST_AsGeoJSON(Project.site, 7),
    ).order_by(Project.id)
    offset = 0
    while True:
        rows = session.execute(page.limit(batch).offset(offset)).all()
        if not rows:
            return
        buf.seek(0)
        buf.truncate()
        for p, lon, lat, gj in rows:
            values = [_plain(getattr(p, c)) for c in PROPERTY_COLUMNS]
            values = [";".join(v) if isinstance(v, list) else v for v in values]
            values += [p.builder.get("name"), p.builder.get("phone"), p.contractor.get("name"),
                       p.contractor.get("phone"), round(lon, 7), round(lat, 7), gj]
            writer.writerow(values)
        yield buf.getvalue()
        offset += batch
