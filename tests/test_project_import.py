"""Batch import of registrations: a bad row is reported, good rows are kept, none half-written."""

from __future__ import annotations

import csv

from sqlalchemy import func, select

from app.models import Project
from app.services.project_import import import_rows, read_rows
from tests.test_registration import quiet_site

FIELDS = ["kind", "category", "title", "address", "lon", "lat", "builder_name",
          "builder_phone", "contractor_name", "contractor_phone", "investment_cny",
          "floor_area_m2", "planned_start", "planned_end", "risk_factors", "submitted_on"]


def write_csv(path, session):
    site = quiet_site(session)
    good = ["small_project", "residential_fitout", "装修", "地址", site["lon"], site["lat"],
            "王先生", "13800138000", "某装饰公司", "0755-12345678", "50000", "90",
            "2024-10-08", "2024-11-08", "hot_work", "2024-09-27"]
    rows = [good,
            good[:4] + ["116.40", "39.91"] + good[6:],            # outside the district
            good[:12] + ["2024-10-08", "2024-09-01"] + good[14:],  # dates reversed
            good[:1] + ["", ""] + good[3:6] + [""] + good[7:],     # three fields missing
            good[:10] + ["2000000", "900"] + good[12:]]            # above the limit: refused
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(FIELDS)
        writer.writerows(rows)


def test_import_reports_bad_rows_and_keeps_good_ones(session, tmp_path):
    path = tmp_path / "batch.csv"
    write_csv(path, session)
    before = session.scalar(select(func.count()).select_from(Project))
    report = import_rows(session, rows=read_rows(path), actor="test", source="import:test")
    assert [s["row"] for s in report.stored] == [1, 5]
    assert report.stored[1]["state"] == "refused"
    problems = {e["row"]: [p["field"] for p in e["problems"]] for e in report.errors}
    assert problems == {2: ["site"], 3: ["planned_end"],
                        4: ["category", "title", "builder.name"]}
    assert session.scalar(select(func.count()).select_from(Project)) == before + 2


def test_cli_import_and_export(cli, session, tmp_path):
    path = tmp_path / "batch.csv"
    write_csv(path, session)
    result = cli("projects", "import", path, "--report", tmp_path / "report.json")
    assert result.exit_code == 1, result.output  # some rows were rejected
    assert "2 of 5 rows registered" in result.output
    assert (tmp_path / "report.json").exists()
    out = tmp_path / "export.csv"
    result = cli("projects", "export", "-o", out, "--state", "refused")
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8") as fh:
        exported = list(csv.DictReader(fh))
    assert any(r["source"] == "import:batch.csv" for r in exported)
