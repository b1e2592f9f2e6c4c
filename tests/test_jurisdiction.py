"""Tests for gis.jurisdiction: exact agreement with shapely ``covers`` + the smallest-code rule."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from gis._errors import CRSError, GeometryError, GisError
from gis.jurisdiction import PolygonLocator, assign_points, assign_polygons


# ------------------------------------------------------------------------------- helpers
def _futian(realdata):
    path = realdata / "shenzhen_transbigdata" / "shenzhen_districts_10_wgs84.geojson"
    districts = gpd.read_file(path)
    return districts.loc[districts["qh"] == "福田", "geometry"].iloc[0]


def _voronoi_grids(outline, n, seed):
    """n Voronoi cells of random seeds inside the outline, clipped to it."""
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = outline.bounds
    seeds = np.empty((0, 2))
    while len(seeds) < n:
        xy = rng.uniform([minx, miny], [maxx, maxy], size=(2 * n, 2))
        seeds = np.vstack([seeds, xy[shapely.contains_xy(outline, xy[:, 0], xy[:, 1])]])
    frame = shapely.box(minx - 0.01, miny - 0.01, maxx + 0.01, maxy + 0.01)
    cells = shapely.voronoi_polygons(shapely.multipoints(seeds[:n]), extend_to=frame, ordered=True)
    return shapely.intersection(shapely.get_parts(cells), outline)


def _truth(geoms, codes, x, y):
    """Ground truth: covering polygon with the smallest str(code), -1 if none (plain covers)."""
    fresh = shapely.from_wkb(shapely.to_wkb(np.asarray(geoms, dtype=object)))  # unprepared
    points = shapely.points(x, y)
    pt, poly = shapely.STRtree(fresh).query(points)  # envelope candidates only
    covered = shapely.covers(fresh[poly], points[pt])
    pt, poly = pt[covered], poly[covered]
    order = np.argsort([str(c) for c in codes], kind="stable")
    rank = np.empty(len(codes), dtype=np.int64)
    rank[order] = np.arange(len(codes))
    best = np.full(len(x), len(codes), dtype=np.int64)
    np.minimum.at(best, pt, rank[poly])
    answer = np.full(len(x), -1, dtype=np.int64)
    inside = best < len(codes)
    answer[inside] = order[best[inside]]
    n_covering = np.bincount(pt, minlength=len(x))
    return answer, n_covering


def _edge_points(geoms):
    """Vertices, edge midpoints and points a third of the way along every ring edge."""
    rings = shapely.get_rings(shapely.get_parts(geoms))
    xy, ring = shapely.get_coordinates(rings, return_index=True)
    same = ring[:-1] == ring[1:]
    a, b = xy[:-1][same], xy[1:][same]
    return np.vstack([np.unique(xy, axis=0), (a + b) / 2, a + (b - a) / 3])


@pytest.fixture(scope="module")
def futian_grids(realdata):
    """400 grids over Futian with one two-part grid, one filled hole and one empty hole."""
    outline = _futian(realdata)
    cells = list(_voronoi_grids(outline, 400, seed=7))
    # A multipolygon grid: two cells far apart under one code (exact coordinates kept).
    far = int(np.argmax(shapely.distance(cells[0], np.array(cells, dtype=object))))
    cells[0] = shapely.MultiPolygon([cells[0], cells[far]])
    del cells[far]
    # A grid with a hole filled by another grid (exactly shared ring), and one with an empty hole.
    for k, fill in ((10, True), (20, False)):
        cell = cells[k]
        hole = shapely.buffer(shapely.centroid(cell), 0.15 * np.sqrt(cell.area), quad_segs=3)
        assert cell.contains(hole)
        hole_ring = list(hole.exterior.coords)
        cells[k] = shapely.Polygon(cell.exterior.coords, holes=[hole_ring])
        if fill:
            cells.append(shapely.Polygon(hole_ring))
    geoms = np.array(cells, dtype=object)
    # Codes deliberately not in input order, so "smallest code" differs from "first polygon".
    rng = np.random.default_rng(3)
    codes = np.array([f"440304{k:06d}" for k in rng.permutation(len(geoms))], dtype=object)
    assert shapely.get_type_id(geoms[0]) == 6
    return geoms, codes, outline


@pytest.fixture(scope="module")
def futian_locator(futian_grids):
    geoms, codes, _ = futian_grids
    return PolygonLocator(geoms, codes)


# --------------------------------------------------------------------------------- tests
def test_random_points_match_covers(futian_grids, futian_locator):
    geoms, codes, _ = futian_grids
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    rng = np.random.default_rng(11)
    x = rng.uniform(minx - 0.01, maxx + 0.01, 200_000)
    y = rng.uniform(miny - 0.01, maxy + 0.01, 200_000)
    expected, _ = _truth(geoms, codes, x, y)
    got = futian_locator.locate(x, y)
    assert np.array_equal(got, expected)
    assert (got == -1).sum() > 10_000  # plenty of points outside Futian, all reported
    assert got.shape == x.shape


def test_points_on_shared_edges_and_vertices_get_smallest_code(futian_grids, futian_locator):
    geoms, codes, _ = futian_grids
    xy = _edge_points(geoms)
    expected, n_covering = _truth(geoms, codes, xy[:, 0], xy[:, 1])
    got = futian_locator.locate(xy[:, 0], xy[:, 1])
    assert np.array_equal(got, expected)
    # The rule was really exercised: many points are covered by two or three grids.
    assert (n_covering >= 2).sum() > 1000
    assert (n_covering >= 3).sum() > 100


def test_points_nudged_off_edges_and_vertices(futian_grids, futian_locator):
    geoms, codes, _ = futian_grids
    xy = _edge_points(geoms)
    nudged = [
        np.column_stack([np.nextafter(xy[:, 0], dx * np.inf), np.nextafter(xy[:, 1], dy * np.inf)])
        for dx in (-1, 1)
        for dy in (-1, 1)
    ]
    xy = np.vstack(nudged)
    expected, _ = _truth(geoms, codes, xy[:, 0], xy[:, 1])
    assert np.array_equal(futian_locator.locate(xy[:, 0], xy[:, 1]), expected)


def test_holes_filled_and_empty(futian_grids, futian_locator):
    geoms, codes, _ = futian_grids
    filled, filler, empty = geoms[10], geoms[-1], geoms[20]
    inside_filler = shapely.get_coordinates(shapely.point_on_surface(filler))[0]
    inside_empty = shapely.get_coordinates(shapely.centroid(shapely.Polygon(empty.interiors[0])))[0]
    on_hole_ring = shapely.get_coordinates(filled.interiors[0])[0]
    in_ring_body = shapely.get_coordinates(shapely.point_on_surface(filled))[0]
    xy = np.array([inside_filler, inside_empty, on_hole_ring, in_ring_body])
    got = futian_locator.assign(xy[:, 0], xy[:, 1])
    assert got[0] == codes[-1]
    assert got[1] is None  # an empty hole is outside every grid
    assert got[2] == min(codes[10], codes[-1])
    assert got[3] == codes[10]


def test_multipolygon_grid_answers_for_both_parts(futian_grids, futian_locator):
    geoms, codes, _ = futian_grids
    parts = shapely.get_parts(geoms[0])
    xy = shapely.get_coordinates(shapely.point_on_surface(parts))
    assert list(futian_locator.assign(xy[:, 0], xy[:, 1])) == [codes[0]] * len(parts)


def test_lattice_edges_on_raster_lines():
    """Square grids whose edges lie exactly on raster lines; points exactly on them."""
    squares, codes = [], []
    for i in range(4):
        for j in range(4):
            x, y = 114 + 0.25 * i, 22.5 + 0.25 * j
            squares.append(shapely.box(x, y, x + 0.25, y + 0.25))
            codes.append(f"G{(4 * i + j) * 5 % 16:02d}")  # scrambled but unique
    locator = PolygonLocator(squares, codes, cell_size=0.0625)
    ticks = np.arange(113.875, 115.2, 0.03125)  # every raster line and half-cell, exactly
    x, y = np.meshgrid(ticks, ticks - 114 + 22.5)
    x, y = x.ravel(), y.ravel()
    expected, n_covering = _truth(squares, codes, x, y)
    assert np.array_equal(locator.locate(x, y), expected)
    assert (n_covering == 4).sum() == 9  # inner lattice vertices shared by four squares
    # The centre vertex (114.5, 23.0) touches squares (1,1), (1,2), (2,1), (2,2).
    touching = [codes[4 * i + j] for i in (1, 2) for j in (1, 2)]
    assert locator.assign([114.5], [23.0])[0] == min(touching)


def test_points_within_rounding_of_an_edge_near_zero():
    """Where coordinate differences are inexact, naive float orientation picks wrong sides.

    The edge passes near (0, 0); points a few ulps off it would be misassigned without the
    error-bounded orientation test (checked: ~4,000 of 196,000 with a zero bound).
    """
    a, b = (-1.0, -0.7), (1.3, 0.9100000000000001)
    left = shapely.Polygon([a, b, (-1.0, b[1])])
    right = shapely.Polygon([a, (1.3, -0.7), b])
    locator = PolygonLocator([left, right], ["L", "R"], cell_size=0.5)
    t = np.linspace(0.05, 0.95, 4001)
    on_line = np.column_stack([a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])])
    xy = np.vstack(
        [on_line + np.spacing(on_line) * (dx, dy) for dx in range(-3, 4) for dy in range(-3, 4)]
    )
    expected, _ = _truth([left, right], ["L", "R"], xy[:, 0], xy[:, 1])
    assert np.array_equal(locator.locate(xy[:, 0], xy[:, 1]), expected)
    assert locator.n_single_edge_cells > 0


def test_wide_raster_beyond_int16_table():
    """Over 32k raster columns the lookup table falls back to int32; answers stay exact."""
    xs = 114 + 0.1 * np.arange(11)
    strips = [shapely.box(xs[i], 22.5, xs[i + 1], 22.5005) for i in range(10)]
    codes = [f"S{9 - i}" for i in range(10)]
    locator = PolygonLocator(strips, codes, cell_size=2.5e-5)
    assert locator.shape[1] > 2**15
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.uniform(113.99, 115.01, 50_000), xs])
    y = np.concatenate([rng.uniform(22.4999, 22.5006, 50_000), np.full(11, 22.5002)])
    expected, n_covering = _truth(strips, codes, x, y)
    assert np.array_equal(locator.locate(x, y), expected)
    assert (n_covering == 2).sum() >= 9


def test_codes_compare_as_strings():
    left = shapely.box(0, 0, 1, 1)
    right = shapely.box(1, 0, 2, 1)
    locator = PolygonLocator([left, right], [9, 10])
    # On the shared edge, "10" < "9" as strings, so the right square wins.
    assert list(locator.assign([1.0, 0.5, 1.5], [0.5, 0.5, 0.5])) == [10, 9, 10]


def test_outside_far_and_non_finite_points(futian_locator):
    x = np.array([0.0, 180.0, -180.0, 114.05, np.nan, np.inf, -np.inf, 114.05])
    y = np.array([0.0, 90.0, -90.0, 89.0, 22.55, 22.55, 22.55, np.nan])
    got = futian_locator.assign(x, y)
    assert got.tolist() == [None] * len(x)
    assert futian_locator.locate(x.reshape(2, 4), y.reshape(2, 4)).shape == (2, 4)


def test_overlapping_polygons_follow_the_rule(futian_grids):
    geoms, codes, outline = futian_grids
    centre = shapely.centroid(outline)
    extra = [
        shapely.buffer(centre, 0.02, quad_segs=5),  # covers many grids whole
        shapely.box(centre.x - 0.001, centre.y - 0.03, centre.x + 0.0013, centre.y + 0.03),
    ]
    all_geoms = np.concatenate([geoms, np.array(extra, dtype=object)])
    all_codes = np.concatenate([codes, np.array(["Z-big", "000-strip"], dtype=object)])
    locator = PolygonLocator(all_geoms, all_codes)
    assert locator.has_overlaps
    rng = np.random.default_rng(5)
    minx, miny, maxx, maxy = outline.bounds
    xy = np.vstack(
        [
            np.column_stack([rng.uniform(minx, maxx, 100_000), rng.uniform(miny, maxy, 100_000)]),
            _edge_points(all_geoms),
        ]
    )
    expected, n_covering = _truth(all_geoms, all_codes, xy[:, 0], xy[:, 1])
    assert np.array_equal(locator.locate(xy[:, 0], xy[:, 1]), expected)
    assert (n_covering >= 2).sum() > 10_000
    # Only cells wholly inside an overlapping polygon lose the single-edge shortcut.
    assert locator.n_single_edge_cells > 0.5 * locator.n_boundary_cells


def test_explicit_cell_sizes_agree(futian_grids):
    geoms, codes, _ = futian_grids
    rng = np.random.default_rng(8)
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    xy = np.vstack(
        [
            np.column_stack([rng.uniform(minx, maxx, 30_000), rng.uniform(miny, maxy, 30_000)]),
            _edge_points(geoms)[::7],
        ]
    )
    expected, _ = _truth(geoms, codes, xy[:, 0], xy[:, 1])
    for cell_size in (0.02, 0.003, 0.0003):
        locator = PolygonLocator(geoms, codes, cell_size=cell_size)
        assert np.array_equal(locator.locate(xy[:, 0], xy[:, 1]), expected), cell_size


def test_from_frame_and_assign_points(futian_grids, futian_locator):
    geoms, codes, _ = futian_grids
    frame = gpd.GeoDataFrame({"code": codes}, geometry=list(geoms), crs=4326)
    lon, lat = np.array([114.05, 114.03, 0.0]), np.array([22.54, 22.53, 0.0])
    expected = futian_locator.assign(lon, lat)
    assert list(PolygonLocator.from_frame(frame).assign(lon, lat)) == list(expected)
    assert list(assign_points(frame, lon, lat)) == list(expected)
    with pytest.raises(CRSError):
        PolygonLocator.from_frame(frame.set_crs(None, allow_override=True))
    with pytest.raises(GisError):
        PolygonLocator.from_frame(frame, code_column="grid_code")


def test_from_frame_reprojects_other_crs():
    squares = [shapely.box(114.0, 22.5, 114.01, 22.51), shapely.box(114.01, 22.5, 114.02, 22.51)]
    frame = gpd.GeoDataFrame({"code": ["a", "b"]}, geometry=squares, crs=4326).to_crs(3857)
    locator = PolygonLocator.from_frame(frame)
    assert list(locator.assign([114.005, 114.015, 114.03], [22.505, 22.505, 22.505])) == [
        "a",
        "b",
        None,
    ]


def test_bad_input_is_refused():
    square = shapely.box(0, 0, 1, 1)
    bowtie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    with pytest.raises(GeometryError):
        PolygonLocator([bowtie], ["a"])
    with pytest.raises(GeometryError):
        PolygonLocator([shapely.Point(0, 0)], ["a"])
    with pytest.raises(GeometryError):
        PolygonLocator([None], ["a"])
    with pytest.raises(GeometryError):
        PolygonLocator([], [])
    with pytest.raises(GisError):
        PolygonLocator([square, shapely.box(2, 0, 3, 1)], ["a", "a"])
    with pytest.raises(GisError):
        PolygonLocator([square], ["a", "b"])
    with pytest.raises(GisError):
        PolygonLocator([square], ["a"], cell_size=1e-6)  # far too many cells
    locator = PolygonLocator([square], ["a"])
    with pytest.raises(GisError):
        locator.locate([0.5, 0.5], [0.5])


# ------------------------------------------------------------------------ assign_polygons
def _two_grids():
    # Symmetric about lon 114.0, the centre of the default equal-area projection.
    west = shapely.box(113.99, 22.5, 114.0, 22.51)
    east = shapely.box(114.0, 22.5, 114.01, 22.51)
    return gpd.GeoDataFrame({"code": ["east", "west"]}, geometry=[east, west], crs=4326)


def test_assign_polygons_largest_overlap_and_ties():
    sites = gpd.GeoSeries(
        [
            shapely.box(113.999, 22.502, 114.0003, 22.503),  # mostly west
            shapely.box(113.9995, 22.502, 114.0005, 22.503),  # exactly half and half
            shapely.box(114.002, 22.505, 114.003, 22.506),  # inside east
            shapely.box(114.1, 22.6, 114.2, 22.7),  # outside both
            shapely.box(114.01, 22.505, 114.02, 22.506),  # touches east along an edge only
        ],
        crs=4326,
    )
    got = assign_polygons(sites, _two_grids())
    assert list(got) == ["west", "east", "east", None, None]


def test_assign_polygons_checks_input():
    grids = _two_grids()
    with pytest.raises(GeometryError):
        assign_polygons(gpd.GeoSeries([shapely.Point(114, 22.5)], crs=4326), grids)
    with pytest.raises(CRSError):
        assign_polygons(gpd.GeoSeries([shapely.box(114, 22.5, 114.001, 22.501)]), grids)
    sites_3857 = gpd.GeoSeries([shapely.box(113.995, 22.502, 113.996, 22.503)], crs=4326)
    assert list(assign_polygons(sites_3857.to_crs(3857), grids)) == ["west"]
