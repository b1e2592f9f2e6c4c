"""The shipped demo district (``grid_data/demo``): tiling, codes, counts and reproducibility.

These tests read the files the product ships, not the sources in ``../shared``; only the
rebuild test needs the real data.
"""

from __future__ import annotations

import gzip
import json

import geopandas as gpd
import numpy as np
import pytest
import shapely

from grid_data import build_demo
from grid_data.demo_data import (
    DEMO_DIR,
    DEMO_DISTRICT_CODE,
    DEMO_LEVELS,
    ROAD_GRAPH_PATH,
    demo_level_path,
    load_demo_level,
    load_road_graph,
)

METRIC_CRS = "EPSG:4547"  # CGCS2000 / 3-degree GK CM 114E, right for Shenzhen
PARENT = {"street": "district", "community": "street", "grid": "community"}
SIGNIFICANT_DIGITS = {"district": 6, "street": 9, "community": 12, "grid": 15}
CODE_LENGTH = {"district": 12, "street": 12, "community": 12, "grid": 15}
COUNT_RANGE = {"district": (1, 1), "street": (10, 11), "community": (100, 120), "grid": (800, 1300)}
SHIPPED_FILES = [
    "district.geojson",
    "streets.geojson",
    "communities.geojson",
    "grids.geojson",
    "futian_roads.graphml.gz",
]
AREA_TOLERANCE_M2 = 1.0


@pytest.fixture(scope="module")
def layers() -> dict[str, gpd.GeoDataFrame]:
    return {level: load_demo_level(level) for level in DEMO_LEVELS}


@pytest.fixture(scope="module")
def metric(layers: dict[str, gpd.GeoDataFrame]) -> dict[str, gpd.GeoDataFrame]:
    return {level: frame.to_crs(METRIC_CRS) for level, frame in layers.items()}


def test_shipped_files_exist_and_stay_small():
    sizes = {name: (DEMO_DIR / name).stat().st_size for name in SHIPPED_FILES}
    assert all(size > 0 for size in sizes.values())
    assert sum(sizes.values()) < 6_000_000


def test_unknown_level_is_refused():
    with pytest.raises(ValueError, match="unknown level"):
        demo_level_path("province")


@pytest.mark.parametrize("level", DEMO_LEVELS)
def test_layer_is_valid_wgs84_polygons(layers, level):
    frame = layers[level]
    assert frame.crs.to_epsg() == 4326
    assert {"code", "name", "parent_code", "level"} <= set(frame.columns)
    assert (frame["level"] == level).all()
    assert (frame.geom_type == "Polygon").all()
    assert frame.is_valid.all()
    assert not frame.is_empty.any()
    lon_min, lat_min, lon_max, lat_max = frame.total_bounds  # Futian, in (lon, lat)
    assert 113.9 < lon_min < lon_max < 114.2
    assert 22.4 < lat_min < lat_max < 22.7


@pytest.mark.parametrize("level", DEMO_LEVELS)
def test_counts_in_expected_range(layers, level):
    low, high = COUNT_RANGE[level]
    assert low <= len(layers[level]) <= high


@pytest.mark.parametrize("level", DEMO_LEVELS)
def test_codes_are_unique_digit_strings(layers, level):
    codes = layers[level]["code"]
    assert codes.is_unique
    assert codes.str.fullmatch(r"\d+").all()
    assert (codes.str.len() == CODE_LENGTH[level]).all()
    assert codes.str.startswith(DEMO_DISTRICT_CODE[:6]).all()
    assert layers[level]["name"].str.len().gt(0).all()


@pytest.mark.parametrize("child", list(PARENT))
def test_codes_extend_their_parent(layers, child):
    parent = PARENT[child]
    children, parents = layers[child], layers[parent]
    assert set(children["parent_code"]) == set(parents["code"])  # no orphans, no empty parent
    keep = SIGNIFICANT_DIGITS[parent]
    assert (children["code"].str[:keep] == children["parent_code"].str[:keep]).all()
    assert (children["code"] != children["parent_code"]).all()


def test_grid_codes_and_names_follow_their_community(layers):
    grids = layers["grid"]
    community_name = dict(
        zip(layers["community"]["code"], layers["community"]["name"], strict=True)
    )
    for row in grids.itertuples():
        assert row.code.startswith(row.parent_code)
        seq = int(row.code[-3:])
        assert row.name == f"{community_name[row.parent_code]}第{seq}网格"
    per_community = grids.groupby("parent_code").size()
    assert per_community.min() >= 3  # every community is split into several grids


@pytest.mark.parametrize("child", list(PARENT))
def test_children_tile_their_parent(metric, child):
    children, parents = metric[child], metric[PARENT[child]]
    worst_gap = worst_overlap = 0.0
    for parent in parents.itertuples():
        mine = children.loc[children["parent_code"] == parent.code, "geometry"].to_numpy()
        union = shapely.union_all(mine)
        worst_gap = max(worst_gap, shapely.symmetric_difference(union, parent.geometry).area)
        worst_overlap = max(worst_overlap, float(shapely.area(mine).sum()) - union.area)
    assert worst_gap < AREA_TOLERANCE_M2
    assert worst_overlap < AREA_TOLERANCE_M2


@pytest.mark.parametrize("level", DEMO_LEVELS[1:])
def test_no_overlap_between_any_two_units(metric, level):
    geoms = metric[level].geometry.to_numpy()
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    pairs = left < right
    overlaps = shapely.area(shapely.intersection(geoms[left[pairs]], geoms[right[pairs]]))
    assert overlaps.max(initial=0.0) < AREA_TOLERANCE_M2


@pytest.mark.parametrize("level", DEMO_LEVELS)
def test_level_is_an_exact_coverage_without_holes(layers, level):
    geoms = layers[level].geometry.to_numpy()
    # Shared edges are vertex-for-vertex identical: a valid coverage with no gaps.
    assert shapely.coverage_is_valid(geoms)
    union = shapely.union_all(geoms)
    assert union.geom_type == "Polygon"
    assert len(union.interiors) == 0
    assert all(len(g.interiors) == 0 for g in geoms)


def test_grids_are_not_tiny_and_reasonably_compact(metric):
    grids = metric["grid"]
    area, perimeter = grids.area, grids.length
    assert area.min() > 2_000.0
    compactness = 4 * np.pi * area / perimeter**2  # Polsby-Popper: 1 for a circle
    assert compactness.min() > 0.15
    assert compactness.median() > 0.6


def test_derived_polygons_say_so(layers):
    for level in ("street", "community", "grid"):
        assert layers[level]["source"].str.contains("DERIVED").all()


def test_geojson_is_rfc7946_with_seven_decimals():
    data = json.loads(demo_level_path("street").read_text(encoding="utf-8"))
    assert data["type"] == "FeatureCollection"
    assert "crs" not in data
    ring = data["features"][0]["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1]
    assert all(len(f"{v}".split(".")[-1]) <= 7 for xy in ring for v in xy)
    assert shapely.Polygon(ring).exterior.is_ccw  # exterior counter-clockwise


def test_road_graph_is_the_osmnx_graphml():
    raw = gzip.decompress(ROAD_GRAPH_PATH.read_bytes())
    assert raw.lstrip().startswith(b"<?xml")
    graph = load_road_graph()
    assert graph.number_of_nodes() == 1751
    assert graph.number_of_edges() == 4009
    assert graph.graph["crs"].lower() == "epsg:4326"


def test_district_is_the_open_data_outline(realdata, metric):
    source = gpd.read_file(
        realdata / "shenzhen_transbigdata" / "shenzhen_districts_10_wgs84.geojson"
    )
    outline = source.loc[source["qh"] == "福田"].to_crs(METRIC_CRS).geometry.iloc[0]
    district = metric["district"].geometry.iloc[0]
    # Only the rounding to 7 decimals (about 1 cm) separates them.
    assert shapely.symmetric_difference(outline, district).area < 500.0


def test_builder_reproduces_the_shipped_files(realdata, tmp_path):
    counts = build_demo.build(realdata, tmp_path)
    assert counts["streets"] == len(load_demo_level("street"))
    for name in SHIPPED_FILES:
        assert (tmp_path / name).read_bytes() == (DEMO_DIR / name).read_bytes(), name
