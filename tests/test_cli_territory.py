"""The territory commands of the ``xiaosan`` CLI, as a user runs them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from app.services import territory
from tests.test_territory_db import dongcheng_streets_with_codes


def test_validate_reports_the_dongcheng_slivers_and_writes_the_problem_places(
    cli, realdata, tmp_path
):
    _, streets = dongcheng_streets_with_codes(realdata, tmp_path)
    report = tmp_path / "problems.geojson"
    result = cli("boundaries", "validate", streets, "-l", "street", "--crs", "gcj02",
                 "--report-geojson", report)
    # Streets of a district not loaded here: parent codes cannot be found → errors, exit 1.
    assert result.exit_code == 1, result.output
    assert "parent_mismatch" in result.output and "sliver" in result.output
    problems = json.loads(report.read_text())
    slivers = [f for f in problems["features"] if f["properties"]["kind"] == "sliver"]
    assert len(slivers) >= 150


def test_bad_file_gets_one_clear_line_and_no_trace(cli, tmp_path):
    bad = tmp_path / "streets.geojson"
    bad.write_text('{"type": "FeatureCollection", "features": []}')
    result = cli("boundaries", "import", bad, "-l", "street")
    assert result.exit_code == 2
    assert "has no features" in result.output
    assert "Traceback" not in result.output


def test_bulk_assign_csv(cli, session, tmp_path):
    grids = territory.current_units(session, "grid").head(25)
    pts = [g.representative_point() for g in grids.geometry]
    src = tmp_path / "sites.csv"
    pd.DataFrame(
        {"id": range(26), "lon": [p.x for p in pts] + [113.5], "lat": [p.y for p in pts] + [22.0]}
    ).to_csv(src, index=False)
    out = tmp_path / "assigned.csv"
    result = cli("jurisdiction", "assign", src, "-o", out)
    assert result.exit_code == 0, result.output
    assert "1 outside" in result.output
    got = pd.read_csv(out, dtype=str)
    assert list(got["grid_code"][:25]) == list(grids["code"])
    assert pd.isna(got["grid_code"].iloc[25])
    assert list(got["community_code"][:25]) == list(grids["parent_code"])
    assert np.all(got["street_code"][:25].str.endswith("000"))


def test_jurisdiction_at(cli, session):
    grid = territory.current_units(session, "grid").iloc[100]
    p = grid.geometry.representative_point()
    result = cli("jurisdiction", "at", p.x, p.y)
    assert result.exit_code == 0, result.output
    assert grid["code"] in result.output
