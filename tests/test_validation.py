"""Validation of a territory level: hand-built cases for each issue kind, and real Dongcheng.

Areas are checked against geodesic areas (pyproj.Geod), independent of the UTM projection
the module measures in. Cells are 0.001° squares near Beijing, about 85 m × 111 m.
"""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import Geod

from gis._errors import CRSError, GisError
from gis.gcj02 import geometry_gcj02_to_wgs84
from gis.projection import local_metric_crs, to_metric
from gis.validation import ERROR, WARNING, ValidationReport, validate_level

_GEOD = Geod(ellps="WGS84")
_X0, _Y0, _D = 116.40, 39.90, 0.001
COMMUNITY = "110101001001"


def _geodesic_m2(geom) -> float:
    return abs(_GEOD.geometry_area_perimeter(geom)[0])


def _cell(col: float, row: float, width: float = 1.0, height: float = 1.0):
    return shapely.box(
        _X0 + col * _D, _Y0 + row * _D, _X0 + (col + width) * _D, _Y0 + (row + height) * _D
    )


def _grids(geoms, *, parent=COMMUNITY, codes=None) -> gpd.GeoDataFrame:
    codes = codes or [f"{parent}{k + 1:03d}" for k in range(len(geoms))]
    return gpd.GeoDataFrame(
        {"code": codes, "name": [f"网格{c[-3:]}" for c in codes], "parent_code": parent},
        geometry=list(geoms),
        crs=4326,
    )


def _parent(geom, code=COMMUNITY) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"code": [code]}, geometry=[geom], crs=4326)


def _two_by_two():
    return [_cell(0, 0), _cell(1, 0), _cell(0, 1), _cell(1, 1)]


def _kinds(report: ValidationReport) -> list[str]:
    return sorted(i.kind for i in report.issues)


def test_clean_tiling_has_no_issue():
    report = validate_level(_grids(_two_by_two()), level="grid", parent=_parent(_cell(0, 0, 2, 2)))
    assert report.issues == []
    assert report.ok(strict=True)
    assert report.metric_crs.to_epsg() == 32650


def test_gap_inside_parent_and_hole_without_parent():
    cells = _two_by_two()
    cells[0] = _cell(0, 0, 0.5, 1)  # the right half of the first cell is nobody's
    missing = _geodesic_m2(_cell(0.5, 0, 0.5, 1))
    report = validate_level(_grids(cells), level="grid", parent=_parent(_cell(0, 0, 2, 2)))
    [gap] = report.issues
    assert (gap.kind, gap.severity, gap.sliver_of) == ("gap", WARNING, None)
    assert gap.area_m2 == pytest.approx(missing, rel=5e-3)
    # The parent, then the neighbours: left, right, above, and the cell at its corner.
    assert gap.codes[0] == COMMUNITY and sorted(gap.codes[1:]) == sorted(_grids(cells)["code"])
    assert gap.geometry.centroid.distance(_cell(0.5, 0, 0.5, 1).centroid) < 1e-6
    # The half cell opens on the outer edge: without a parent it is no hole, so no gap.
    assert validate_level(_grids(cells), level="grid").issues == []

    ring = [_cell(c, r) for r in range(3) for c in range(3) if (c, r) != (1, 1)]
    [hole] = validate_level(_grids(ring), level="grid").issues
    assert hole.kind == "gap"
    assert hole.area_m2 == pytest.approx(_geodesic_m2(_cell(1, 1)), rel=5e-3)


def test_hole_of_a_single_unit_is_an_enclave_not_a_gap():
    donut = shapely.Polygon(_cell(0, 0, 3, 3).exterior.coords, holes=[_cell(1, 1).exterior.coords])
    assert validate_level(_grids([donut, _cell(3, 0)]), level="grid").issues == []


def test_overlap_between_siblings_only():
    cells = _two_by_two()
    cells[1] = _cell(0.8, 0, 1.2, 1)  # reaches 0.2 cell into the first cell
    report = validate_level(_grids(cells), level="grid")
    [overlap] = report.issues
    assert (overlap.kind, overlap.severity) == ("overlap", WARNING)
    assert overlap.codes == (f"{COMMUNITY}001", f"{COMMUNITY}002")
    assert overlap.area_m2 == pytest.approx(_geodesic_m2(_cell(0.8, 0, 0.2, 1)), rel=5e-3)
    # Units of different parents are not siblings: their overlap is not this check's business.
    cousins = _grids(cells)
    cousins.loc[1, ["code", "parent_code"]] = ["110101001002001", "110101001002"]
    assert "overlap" not in _kinds(validate_level(cousins, level="grid"))


def test_major_overlap_is_an_error():
    cells = [_cell(0, 0, 2, 2), _cell(1, 1, 2, 2)]  # a whole cell shared, about 9,500 m²
    report = validate_level(_grids(cells), level="grid", major_area_m2=5_000)
    assert [(i.kind, i.severity) for i in report.issues] == [("overlap", ERROR)]
    assert not report.ok()


def test_slivers_of_gap_overlap_and_unit():
    thin = 1e-6  # 1e-6 cell widths: about 0.1 mm × 111 m ≈ 0.01 m²; 1e-3: ≈ 9.5 m²
    cells = [_cell(0, 0, 1 - 1e-3, 1), _cell(1, 0), _cell(0, 1, 1 + thin, 1), _cell(1, 1)]
    tiny = _cell(2, 0, 0.05, 0.05)  # ≈ 24 m², a unit too small to be a grid
    parent = _parent(_cell(0, 0, 2.05, 2).union(tiny))
    report = validate_level(_grids([*cells, tiny]), level="grid", parent=parent)
    slivers = {i.sliver_of: i for i in report.issues if i.kind == "sliver"}
    assert set(slivers) == {"gap", "overlap", "unit"}
    assert slivers["gap"].area_m2 == pytest.approx(_geodesic_m2(_cell(1 - 1e-3, 0, 1e-3, 1)), 0.01)
    assert slivers["overlap"].area_m2 == pytest.approx(_geodesic_m2(_cell(1, 1, thin, 1)), 0.01)
    assert slivers["unit"].area_m2 == pytest.approx(_geodesic_m2(tiny), rel=5e-3)
    # The rest of the parent right of the tiny unit is a real gap (0.05 × 1.95 cells).
    assert report.counts() == {"sliver": 3, "gap": 1}
    assert report.ok() and not report.ok(strict=True)
    assert any(line.startswith("1 sliver gap, 9.") for line in report.summary())


def test_outside_parent_share_and_noise():
    parent = _parent(_cell(0, 0, 2, 1))
    cells = [_cell(0, 0), _cell(1, 0, 1.1, 1)]  # the second reaches 0.1 cell outside
    report = validate_level(_grids(cells), level="grid", parent=parent)
    [outside] = report.issues
    assert outside.kind == "outside_parent"
    assert outside.codes == (f"{COMMUNITY}002", COMMUNITY)
    assert outside.area_m2 == pytest.approx(_geodesic_m2(_cell(2, 0, 0.1, 1)), rel=5e-3)
    assert "(9.09%)" in outside.message  # 0.1 of 1.1 cells
    # A child 1e-9° past its parent is numerical noise (≈ 1e-5 m², 1e-7 %): not reported.
    noisy = [_cell(0, 0), _cell(1, 0, 1 + 1e-6, 1)]
    assert validate_level(_grids(noisy), level="grid", parent=parent).issues == []


def test_duplicate_codes():
    grids = _grids(_two_by_two())
    grids.loc[3, "code"] = grids.loc[2, "code"]
    report = validate_level(grids, level="grid")
    assert _kinds(report) == ["duplicate_code"]
    assert report.issues[0].codes == (f"{COMMUNITY}003",)
    assert "2 grid units" in report.issues[0].message
    assert not report.ok()


def test_bad_codes_and_parent_mismatch():
    grids = _grids(_two_by_two())
    grids.loc[0, "code"] = "110101001002001"  # under another community than its parent_code
    grids.loc[1, "parent_code"] = "110101001009"  # not in the parent layer
    grids.loc[2, "code"] = "11010100100103"  # one digit short
    grids["code"] = grids["code"].astype(object)
    grids.loc[3, "code"] = 110101001001004  # an integer: leading zeros would be lost
    report = validate_level(grids, level="grid", parent=_parent(_cell(0, 0, 2, 2)))
    by_kind = {}
    for issue in report.issues:
        by_kind.setdefault(issue.kind, []).append(issue)
    assert len(by_kind.pop("bad_code")) == 2
    mismatches = by_kind.pop("parent_mismatch")
    # One for the other community; two for 110101001009: not in the parent layer, and
    # not the parent of the code either.
    assert sorted(i.codes for i in mismatches) == [
        (f"{COMMUNITY}002", "110101001009"),
        (f"{COMMUNITY}002", "110101001009"),
        ("110101001002001", COMMUNITY),
    ]
    assert any("not in the parent layer" in i.message for i in mismatches)
    assert any("does not start with 110101001001" in i.message for i in mismatches)
    # The unit moved to parent 110101001009 leaves its cell uncovered in the given parent.
    assert [i.kind for i in by_kind.pop("gap")] == ["gap"]
    assert by_kind == {}
    assert all(i.severity == ERROR for i in report.issues if i.kind != "gap")


def test_bow_tie_is_repaired_and_accepted_in_strict_mode():
    bow_tie = shapely.Polygon(
        [(_X0, _Y0), (_X0 + _D, _Y0 + _D), (_X0 + _D, _Y0), (_X0, _Y0 + _D), (_X0, _Y0)]
    )
    assert not bow_tie.is_valid
    report = validate_level(_grids([bow_tie]), level="grid")
    [issue] = report.issues
    assert (issue.kind, issue.severity) == ("invalid_geometry", WARNING)
    assert "Self-intersection" in issue.message
    fixed = report.repaired.geometry.iloc[0]
    assert fixed.is_valid and fixed.geom_type == "MultiPolygon" and len(fixed.geoms) == 2
    assert fixed.area == pytest.approx(_D * _D / 2)
    assert report.ok(strict=True)


def test_empty_and_non_polygonal_geometry():
    line = shapely.LineString([(_X0, _Y0), (_X0 + _D, _Y0)])
    mixed = shapely.GeometryCollection([_cell(3, 0), line])
    report = validate_level(
        _grids([_cell(0, 0), None, shapely.Polygon(), line, mixed]), level="grid"
    )
    got = sorted((i.kind, i.severity, i.codes[0][-3:]) for i in report.issues)
    assert got == [
        ("empty_geometry", ERROR, "002"),
        ("empty_geometry", ERROR, "003"),
        ("not_polygonal", ERROR, "004"),
        ("not_polygonal", WARNING, "005"),
    ]
    assert report.repaired.geometry.iloc[4].equals(_cell(3, 0))


def test_missing_fields():
    streets = gpd.GeoDataFrame(
        {"code": ["110101001000", "110101002000"], "name": ["东华门", None]},
        geometry=[_cell(0, 0), _cell(1, 0)],
        crs=4326,
    )
    report = validate_level(streets, level="street")
    assert _kinds(report) == ["missing_field", "missing_field"]
    assert {i.codes for i in report.issues} == {(), ("110101002000",)}
    # The top level may come without parent_code.
    districts = streets.assign(code=["110101000000", "110102000000"], name=["东城", "西城"])
    assert validate_level(districts, level="district").issues == []


def test_outputs_are_wgs84_and_rfc7946():
    cells = _two_by_two()
    cells[1] = _cell(0.8, 0, 1.2, 1)
    grids = _grids(cells)
    grids.loc[3, "code"] = "bad"
    report = validate_level(grids, level="grid")
    frame = report.to_geodataframe()
    assert frame.crs.to_epsg() == 4326 and len(frame) == 2
    assert list(frame["kind"]) == ["bad_code", "overlap"]  # errors first
    minx, miny, maxx, maxy = frame.total_bounds
    assert _X0 <= minx and maxx <= _X0 + 2 * _D and _Y0 <= miny and maxy <= _Y0 + 2 * _D
    collection = json.loads(json.dumps(report.to_geojson()))
    assert collection["type"] == "FeatureCollection" and "crs" not in collection
    [bad, overlap] = collection["features"]
    assert bad["geometry"] is None and bad["properties"]["codes"] == ["bad"]
    exterior = overlap["geometry"]["coordinates"][0]
    assert shapely.LinearRing(exterior).is_ccw
    rows = report.rows()
    assert [len(r) for r in rows] == [len(ValidationReport.COLUMNS)] * 2
    assert rows[1][2] == f"{COMMUNITY}001, {COMMUNITY}002"


def test_input_errors():
    grids = _grids(_two_by_two())
    with pytest.raises(CRSError, match="no CRS"):
        validate_level(grids.set_crs(None, allow_override=True), level="grid")
    with pytest.raises(GisError, match="unknown level"):
        validate_level(grids, level="village")
    # Another CRS is converted: the same tiling in Web Mercator validates clean.
    assert validate_level(grids.to_crs(3857), level="grid").issues == []


def test_local_metric_crs():
    assert local_metric_crs((116.3, 39.8, 116.5, 40.0)).to_epsg() == 32650  # Beijing
    assert local_metric_crs((113.8, 22.4, 114.6, 22.9)).to_epsg() == 32650  # Shenzhen, 114.2°
    assert local_metric_crs((118.0, 24.4, 118.2, 24.6)).to_epsg() == 32650  # Xiamen
    assert local_metric_crs((151.0, -34.0, 151.3, -33.7)).to_epsg() == 32756  # Sydney
    metric = to_metric(_grids([_cell(0, 0)]))
    assert metric.crs.to_epsg() == 32650
    assert metric.area.iloc[0] == pytest.approx(_geodesic_m2(_cell(0, 0)), rel=1e-3)
    with pytest.raises(CRSError, match="not longitude/latitude"):
        local_metric_crs((500_000.0, 4_400_000.0, 510_000.0, 4_410_000.0))
    with pytest.raises(CRSError, match="no CRS"):
        local_metric_crs(gpd.GeoSeries([_cell(0, 0)]))


def test_many_grids_with_defects():
    # 50 communities × 100 grids = 5,000 cells; one grid removed, one widened into its sibling.
    frames = []
    for c in range(50):
        cells = [_cell(c * 10 + k % 10, k // 10) for k in range(100)]
        frames.append(_grids(cells, parent=f"11010100{1 + c // 10:01d}{1 + c % 10:03d}"))
    grids = gpd.GeoDataFrame(gpd.pd.concat(frames, ignore_index=True), crs=4326)
    grids["parent_code"] = [c[:12] for c in grids["code"]]
    parents = grids.dissolve("parent_code").reset_index()[["parent_code", "geometry"]]
    parents = parents.rename(columns={"parent_code": "code"})
    assert validate_level(grids, level="grid", parent=parents).issues == []
    grids = grids.drop(index=123).reset_index(drop=True)  # 110101001002024, at column 13, row 2
    grids.loc[grids["code"] == "110101001006001", "geometry"] = _cell(50, 0, 1.5, 1)
    report = validate_level(grids, level="grid", parent=parents)
    assert report.counts() == {"gap": 1, "overlap": 1}
    [gap] = [i for i in report.issues if i.kind == "gap"]
    assert gap.codes[0] == "110101001002"
    assert gap.area_m2 == pytest.approx(_geodesic_m2(_cell(13, 2)), rel=5e-3)
    [overlap] = [i for i in report.issues if i.kind == "overlap"]
    assert overlap.codes == ("110101001006001", "110101001006002")
    assert overlap.area_m2 == pytest.approx(_geodesic_m2(_cell(51, 0, 0.5, 1)), rel=5e-3)


@pytest.fixture(scope="module")
def dongcheng_streets(realdata) -> gpd.GeoDataFrame:
    path = realdata / "beijing_dongcheng_caupd" / "dongcheng_streets_jiedao_gcj02.geojson"
    streets = gpd.read_file(path)  # GCJ-02 although it reads as EPSG:4326
    streets["geometry"] = geometry_gcj02_to_wgs84(np.asarray(streets.geometry.values))
    streets["code"] = [f"110101{k:03d}000" for k in streets["OBJECTID"]]
    streets["parent_code"] = "110101000000"
    return streets


def test_dongcheng_sliver_gaps_and_overlaps(dongcheng_streets):
    report = validate_level(dongcheng_streets, level="street")
    assert set(report.counts()) == {"sliver"}  # no real gap or overlap between the 17 streets
    gaps = [i.area_m2 for i in report.issues if i.sliver_of == "gap"]
    overlaps = [i.area_m2 for i in report.issues if i.sliver_of == "overlap"]
    # The source counts 174 sliver gaps, 15.8 m² in all, largest 15.6 m². We find 165: all
    # but a dozen of these holes are under 1 mm² (down to 1e-13 m²), floating-point residue
    # whose count depends on how the union is noded. The source's 174 is what a union in a
    # projected CRS gives; we take unions in lon/lat, where the stored edges are straight
    # (projected, long edges bow and open false slivers), and that gives 167 on the GCJ-02
    # polygons and 165 after GCJ-02 → WGS84. The areas, which matter, agree to 0.1 %.
    assert 160 <= len(gaps) <= 180
    assert sum(a >= 1e-6 for a in gaps) == pytest.approx(12, abs=3)
    assert sum(gaps) == pytest.approx(15.8, abs=0.2)
    assert max(gaps) == pytest.approx(15.6, abs=0.1)
    assert sum(overlaps) == pytest.approx(1.3, abs=0.1)
    assert report.ok() and not report.ok(strict=True)
    assert report.summary()[0].startswith(f"{len(gaps)} sliver gaps, 15.8")


def test_dongcheng_against_another_survey_of_its_district(dongcheng_streets, realdata):
    # The AMap fence of 东城区 (Vonng/adcode) is another survey than the CAUPD streets, which
    # match a DataV outline with IoU 0.985 per the source: the check must find where the two
    # disagree, on both sides, and the areas must add up to an IoU of that order.
    fences = gpd.read_file(
        realdata / "china_admin_vonng_adcode" / "fences_county_city_gcj02.geojson"
    )
    district = fences[fences["adcode"] == "110101"].copy()
    district["geometry"] = geometry_gcj02_to_wgs84(np.asarray(district.geometry.values))
    district["code"] = "110101000000"
    report = validate_level(dongcheng_streets, level="street", parent=district)
    counts = report.counts()
    assert counts["gap"] > 0 and counts["outside_parent"] > 0
    assert "parent_mismatch" not in counts
    uncovered = sum(i.area_m2 for i in report.issues if "gap" in (i.kind, i.sliver_of))
    outside = sum(i.area_m2 for i in report.issues if "outside_parent" in (i.kind, i.sliver_of))
    streets = 41.86e6  # m², per the source
    iou = (streets - outside) / (streets + uncovered)
    assert 0.98 < iou < 0.995
    assert not report.ok()  # differences over a hectare are errors
