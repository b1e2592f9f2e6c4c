"""Batch import of registrations from CSV or GeoJSON, with a per-row error report.

Each row is decided and stored inside its own savepoint: a bad row is reported with every
problem it has and leaves nothing behind; the good rows are kept (the caller commits).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app.services.registration import RegistrationProblems, submit
from gis._errors import GisError


@dataclass
class ImportReport:
    rows: int = 0
    stored: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV (UTF-8, BOM allowed) or the features of a GeoJSON file (site = geometry)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as fh:
            return list(csv.DictReader(fh))
    if suffix in (".geojson", ".json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            features = data["features"]
        except (ValueError, KeyError, TypeError) as exc:
            raise GisError(f"file: {path.name} is not a GeoJSON FeatureCollection") from exc
        rows = []
        for feature in features:
            props = dict(feature.get("properties") or {})
            props["site"] = feature.get("geometry")
            rows.append(props)
        return rows
    raise GisError(f"file: {path.name}: expected .csv or .geojson")


def import_rows(
    session: Session, *, rows: list[dict[str, Any]], actor: str, source: str
) -> ImportReport:
    """Submit every row in its own savepoint; report what was stored and what was wrong."""
    report = ImportReport(rows=len(rows))
    for number, raw in enumerate(rows, start=1):
        try:
            with session.begin_nested():
                project = submit(session, raw=raw, actor=actor, source=source)
            report.stored.append({"row": number, "reg_no": project.reg_no,
                                  "state": project.state})
        except RegistrationProblems as exc:
            report.errors.append({"row": number, "problems": [
                {"field": f, "message": m} for f, m in exc.problems]})
        except GisError as exc:
            field_name, _, message = str(exc).partition(":")
            report.errors.append({"row": number, "problems": [
                {"field": field_name.strip(), "message": message.strip()}]})
    return report
