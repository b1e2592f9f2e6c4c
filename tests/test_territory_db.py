"""The territory in PostGIS: schema, imports (all or nothing), history, jurisdiction."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from shapely.geometry import Polygon, box
from sqlalchemy import func, select, text

from app.models import Base, BoundaryImport, Grid
from app.services import jurisdiction, territory
from app.services.territory import ImportRefused, import_level
from grid_data.importer import BoundaryFileError, read_boundary_file


def test_migrated_schema_matches_models(engine):
    def include(obj, name, type_, reflected, compare_to):
        if type_ == "table" and reflected and compare_to is None:
            return name in Base.metadata.tables  # PostGIS/pgRouting tables are not ours
        return True

    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"include_object": include, "compare_type": True}
        )
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_demo_district_is_loaded_and_consistent(session):
    counts = territory.level_counts(session)
    assert counts["district"] == 1
    assert 8 <= counts["street"] <= 15
    assert 80 <= counts["community"] <= 150
    assert 800 <= counts["grid"] <= 1500
    # Every current child's parent exists and is current.
    for child, parent in (
        ("streets", "districts"),
        ("communities", "streets"),
        ("grids", "communities"),
    ):
        orphans = session.scalar(
            text(
                f"SELECT count(*) FROM {child} c WHERE c.valid_to IS NULL AND NOT EXISTS "
                f"(SELECT 1 FROM {parent} p WHERE p.valid_to IS NULL AND p.code = c.parent_code)"
            )
        )
        assert orphans == 0, child


def _grid_rows(session, n=None):
    stmt = (
        select(Grid.code, Grid.parent_code, func.ST_AsBinary(Grid.geom))
        .where(Grid.valid_to.is_(None))
        .order_by(Grid.code)
    )
    rows = session.execute(stmt.limit(n) if n else stmt).all()
    return [(c, p, shapely.from_wkb(bytes(g))) for c, p, g in rows]


def test_point_inside_a_grid_gets_the_whole_chain(session):
    code, parent, geom = _grid_rows(session, 40)[-1]
    p = geom.representative_point()
    result = jurisdiction.assign_point(session, p.x, p.y)
    assert not result.outside
    assert result.grid.code == code
    assert result.community.code == parent
    assert result.street.code == parent[:9] + "000"
    assert result.district.code == code[:6] + "000000"


def _shared_vertex(rows):
    """A vertex two grids share (exactly representable, so covered by both)."""
    geoms = [g for _, _, g in rows]
    tree = shapely.STRtree(geoms)
    for geom_a in geoms:
        for j in tree.query(geom_a, predicate="touches"):
            shared = shapely.intersection(geom_a, geoms[j])
            for part in shapely.get_parts(shared):
                if part.geom_type == "LineString":
                    coords = list(part.coords)
                    point = shapely.Point(coords[len(coords) // 2])
                    covering = [c for c, _, g in rows if g.covers(point)]
                    if len(covering) >= 2:
                        return point, covering
    raise AssertionError("no two grids share an edge")


def test_point_on_a_shared_boundary_gets_the_smaller_code_online_and_in_bulk(session):
    rows = _grid_rows(session, 60)
    point, covering = _shared_vertex(rows)
    online = jurisdiction.assign_point(session, point.x, point.y)
    assert online.grid.code == min(covering)
    bulk = jurisdiction.assign_points_bulk(session, np.array([point.x]), np.array([point.y]))
    assert bulk == [online.grid.code]


def test_point_outside_every_grid_is_reported_not_dropped(session):
    result = jurisdiction.assign_point(session, 113.5, 22.0)  # the sea south of Shenzhen
    assert result.outside
    assert result.missing == ["district", "street", "community", "grid"]
    bulk = jurisdiction.assign_points_bulk(session, np.array([113.5]), np.array([22.0]))
    assert bulk == [None]


def test_bulk_agrees_with_postgis_on_random_points(session):
    rows = _grid_rows(session)
    union = shapely.union_all([g for _, _, g in rows])
    minx, miny, maxx, maxy = union.bounds
    rng = np.random.default_rng(7)
    lon = rng.uniform(minx, maxx, 300)
    lat = rng.uniform(miny, maxy, 300)
    bulk = jurisdiction.assign_points_bulk(session, lon, lat)
    online = [jurisdiction.assign_point(session, x, y).grid for x, y in zip(lon, lat, strict=True)]
    assert bulk == [u.code if u else None for u in online]
    assert any(c is None for c in bulk) and any(c is not None for c in bulk)


def test_site_polygon_goes_to_the_grid_it_overlaps_most(session):
    code, _, geom = _grid_rows(session, 10)[3]
    c = geom.centroid
    # A small square mostly inside this grid.
    site = box(c.x - 0.0002, c.y - 0.0002, c.x + 0.0002, c.y + 0.0002)
    result = jurisdiction.assign_geometry(session, shapely.geometry.mapping(site))
    assert result.grid.code == code


# --- imports ----------------------------------------------------------------------------------


def _write(tmp_path: Path, name: str, frame: gpd.GeoDataFrame) -> Path:
    path = tmp_path / name
    frame.to_file(path, driver="GeoJSON")
    return path


def _streets_frame(session) -> gpd.GeoDataFrame:
    return territory.current_units(session, "street")


def _snapshot(session):
    return (
        territory.level_counts(session),
        session.scalar(select(func.count()).select_from(BoundaryImport)),
        session.scalar(text("SELECT count(*) FROM streets")),
    )


def test_import_with_errors_changes_nothing(session, tmp_path):
    streets = _streets_frame(session)
    streets.loc[1, "code"] = streets.loc[0, "code"]  # duplicate code: an error
    path = _write(tmp_path, "streets.geojson", streets)
    before = _snapshot(session)
    boundary = read_boundary_file(path, level="street")
    with pytest.raises(ImportRefused) as info:
        import_level(session, boundary, actor="test")
    assert info.value.report.counts().get("duplicate_code", 0) >= 1
    session.rollback()
    assert _snapshot(session) == before


def test_redraw_closes_the_old_version_and_keeps_history(session, tmp_path):
    streets = _streets_frame(session)
    before_counts = territory.level_counts(session)
    path = _write(tmp_path, "streets_v2.geojson", streets)
    result = import_level(session, read_boundary_file(path, level="street"), actor="test")
    session.commit()
    assert result.inserted == len(streets)
    assert result.closed == len(streets)
    assert territory.level_counts(session) == before_counts
    history = territory.unit_history(session, "street", streets.loc[0, "code"])
    assert len(history) == 2
    assert history[0]["valid_to"] is None and history[1]["valid_to"] is not None


@pytest.mark.parametrize(
    ("content", "kwargs", "fragment"),
    [
        ("not json at all", {}, "could not be read"),
        (
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"name": "x"},
                        "geometry": {
                            "type": "Polygon",
                            "coordinates": [
                                [[114, 22.5], [114.01, 22.5], [114.01, 22.51], [114, 22.5]]
                            ],
                        },
                    }
                ],
            },
            {},
            "code",
        ),
        (
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"name": "x", "code": "440304001000"},
                        "geometry": {
                            "type": "Polygon",
                            "coordinates": [
                                [
                                    [500000, 2500000],
                                    [501000, 2500000],
                                    [501000, 2501000],
                                    [500000, 2500000],
                                ]
                            ],
                        },
                    }
                ],
            },
            {},
            "crs",
        ),
        (
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"name": "x", "code": "440304001018"},
                        "geometry": {
                            "type": "Polygon",
                            "coordinates": [
                                [[114, 22.5], [114.01, 22.5], [114.01, 22.51], [114, 22.5]]
                            ],
                        },
                    }
                ],
            },
            {},
            "not street codes",
        ),
        (
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"name": "x", "code": "440304001000"},
                        "geometry": {
                            "type": "Polygon",
                            "coordinates": [
                                [[114, 22.5], [114.01, 22.5], [114.01, 22.51], [114, 22.5]]
                            ],
                        },
                    }
                ],
            },
            {"crs": "EPSG:999999"},
            "crs",
        ),
    ],
    ids=["unreadable", "missing-field", "wrong-crs", "mixed-level", "unknown-crs"],
)
def test_bad_files_get_a_clear_error(tmp_path, content, kwargs, fragment):
    path = tmp_path / "bad.geojson"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(BoundaryFileError) as info:
        read_boundary_file(path, level="street", **kwargs)
    assert fragment in str(info.value)


def test_projected_crs_file_is_converted(tmp_path):
    # A street in CGCS2000 / 3-degree Gauss-Kruger CM 114E (EPSG:4547), as Shenzhen surveys are.
    square = gpd.GeoDataFrame(
        {"code": ["440304001000"], "name": ["南园街道"], "parent_code": ["440304000000"]},
        geometry=[box(500_000, 2_494_000, 501_000, 2_495_000)],
        crs=4547,
    )
    path = tmp_path / "street_4547.gpkg"
    square.to_file(path, driver="GPKG")
    read = read_boundary_file(path, level="street")
    assert read.source_crs.upper().endswith("4547")
    x, y = read.frame.geometry.iloc[0].centroid.coords[0]
    assert 113.9 < x < 114.1 and 22.4 < y < 22.6
    area = read.frame.to_crs(4547).geometry.area.iloc[0]
    assert area == pytest.approx(1_000_000, rel=1e-3)


# --- the real Dongcheng streets (GCJ-02) ----------------------------------------------------------

SHORT_NAMES = {"崇外": "崇文门外", "体育馆": "体育馆路", "永定门": "永定门外"}


def _dongcheng_codes(realdata: Path) -> dict[str, str]:
    """Official street codes by short name (东华门 → 110101001000)."""
    import pandas as pd

    admin = pd.read_csv(
        realdata / "china_admin_vonng_adcode/admin_hierarchy_5level_gcj02.csv", dtype=str
    )
    towns = admin[(admin["rank"] == "4") & admin["code"].str.startswith("110101")]
    return {
        n.removesuffix("街道办事处"): c for n, c in zip(towns["name"], towns["code"], strict=True)
    }


def _short(name: str) -> str:
    name = name.removesuffix("街道")
    return SHORT_NAMES.get(name, name)


def dongcheng_streets_with_codes(realdata: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The 17 real street polygons with their official codes, and a district drawn around them."""
    streets = gpd.read_file(
        realdata / "beijing_dongcheng_caupd/dongcheng_streets_jiedao_gcj02.geojson"
    )
    by_name = _dongcheng_codes(realdata)
    streets["code"] = [by_name[_short(n)] for n in streets["name"]]
    streets["parent_code"] = "110101000000"
    streets_path = tmp_path / "dongcheng_streets_gcj02.geojson"
    streets[["code", "name", "parent_code", "geometry"]].to_file(streets_path, driver="GeoJSON")
    # The district as the outer ring of its streets: the holes between streets are the gaps.
    outline = shapely.union_all(streets.geometry.values)
    district = gpd.GeoDataFrame(
        {"code": ["110101000000"], "name": ["东城区"]},
        geometry=[shapely.MultiPolygon([Polygon(p.exterior) for p in shapely.get_parts(outline)])],
        crs=4326,
    )
    district_path = tmp_path / "dongcheng_district_gcj02.geojson"
    district.to_file(district_path, driver="GeoJSON")
    return district_path, streets_path


def test_dongcheng_import_reports_the_real_slivers(session, realdata, tmp_path):
    district_path, streets_path = dongcheng_streets_with_codes(realdata, tmp_path)
    district = read_boundary_file(district_path, level="district", crs="gcj02")
    import_level(session, district, actor="test")
    streets = read_boundary_file(streets_path, level="street", crs="gcj02")
    assert streets.source_crs == "GCJ-02"
    result = import_level(session, streets, actor="test", sliver_m2=50)
    report = result.report
    frame = report.to_geodataframe()
    sliver_gaps = frame[(frame["kind"] == "sliver") & (frame["sliver_of"] == "gap")]
    # The source documents 174 sliver gaps, 15.8 m² in all, the largest 15.6 m².
    assert 150 <= len(sliver_gaps) <= 200
    assert sliver_gaps["area_m2"].sum() == pytest.approx(15.8, abs=3.0)
    assert report.ok(strict=False) and not report.ok(strict=True)
    # Strict mode refuses the same data and writes nothing.
    with pytest.raises(ImportRefused):
        import_level(session, streets, actor="test", strict=True)
    # Jurisdiction on the real streets: schools fall in the street their record names.
    from gis.gcj02 import gcj02_to_wgs84

    schools = gpd.read_file(
        realdata / "beijing_dongcheng_caupd/dongcheng_poi_education_gcj02.geojson"
    )
    by_name = _dongcheng_codes(realdata)
    schools = schools[[_short(n) in by_name for n in schools["street_name"]]].head(60)
    hits = 0
    for geom, street_name in zip(schools.geometry, schools["street_name"], strict=True):
        lon, lat = gcj02_to_wgs84(geom.x, geom.y)
        found = jurisdiction.assign_point(session, float(lon), float(lat)).street
        hits += found is not None and found.code == by_name[_short(street_name)]
    assert hits >= len(schools) - 2  # the source: 188 of 189 schools inside their own street


def test_redrawn_grids_move_live_projects(session, client, tmp_path):
    """Merge two neighbouring grids; the project in the vanished one moves to the merged one."""
    from tests.test_registration import declaration

    rows = _grid_rows(session)
    geoms = [g for _, _, g in rows]
    tree = shapely.STRtree(geoms)
    a = b = None
    for i, (_code_i, parent_i, geom_i) in enumerate(rows):
        for j in tree.query(geom_i, predicate="touches"):
            if rows[j][1] == parent_i and shapely.intersection(geom_i, geoms[j]).length > 1e-4:
                a, b = i, int(j)
                break
        if a is not None:
            break
    assert a is not None
    site = rows[b][2].representative_point()
    r = client.post("/api/projects", json=declaration(site.x, site.y))
    assert r.status_code in (200, 201), r.text
    project_ref = r.json().get("reg_no") or r.json()["id"]
    grids = territory.current_units(session, "grid")
    merged = shapely.union_all([rows[a][2], rows[b][2]])
    grids.loc[grids["code"] == rows[a][0], "geometry"] = merged
    grids = grids[grids["code"] != rows[b][0]]
    path = _write(tmp_path, "grids_v2.geojson", grids)
    import_level(session, read_boundary_file(path, level="grid"), actor="test")
    result = jurisdiction.reassign_projects(session, actor="test")
    assert result.changed >= 1 and result.outside == []
    moved = client.get(f"/api/projects/{project_ref}").json()
    props = moved.get("properties", moved)
    assert props["grid_code"] == rows[a][0]


def test_grid_code_scheme_is_configurable(tmp_path, monkeypatch):
    from app.config import code_scheme, get_settings

    grid = gpd.GeoDataFrame(
        {"code": ["4403040010180001"], "name": ["第1网格"], "parent_code": ["440304001018"]},
        geometry=[box(114.0, 22.5, 114.001, 22.501)],
        crs=4326,
    )
    path = _write(tmp_path, "grid16.geojson", grid)
    with pytest.raises(BoundaryFileError):
        read_boundary_file(path, level="grid", scheme=code_scheme())  # 15 digits by default
    monkeypatch.setenv("XIAOSAN_GRID_DIGITS", "4")
    get_settings.cache_clear()
    try:
        read = read_boundary_file(path, level="grid", scheme=code_scheme())
        assert read.frame["code"].iloc[0] == "4403040010180001"
    finally:
        get_settings.cache_clear()
