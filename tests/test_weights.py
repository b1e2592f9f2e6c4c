"""Spatial weights: contiguity (polygons, H3, fishnet), distance, k-nearest, GAL, transforms."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import shapely

from gis._errors import GisError
from gis.aggregation import fishnet_units, h3_units
from gis.weights import (
    Weights,
    connect_islands,
    contiguity_weights,
    distance_band_weights,
    fishnet_weights,
    h3_weights,
    knn_weights,
    read_gal,
)


def _neighbours(w: Weights, unit: object) -> set[object]:
    row = w.ids.get_loc(unit)
    return set(w.ids[w.sparse[row].indices])


def test_fishnet_queen_and_rook_on_a_3x3_block() -> None:
    rows, cols = np.divmod(np.arange(9), 3)
    queen = fishnet_weights(rows, cols)
    rook = fishnet_weights(rows, cols, rule="rook")
    assert queen.cardinalities.tolist() == [3, 5, 3, 5, 8, 5, 3, 5, 3]
    assert rook.cardinalities.tolist() == [2, 3, 2, 3, 4, 3, 2, 3, 2]
    assert _neighbours(rook, 4) == {1, 3, 5, 7}
    assert queen.is_symmetric and queen.transform == "B" and queen.n_components == 1


def test_fishnet_gap_makes_an_island_and_a_component() -> None:
    w = fishnet_weights([0, 0, 1, 5, 7], [0, 1, 1, 5, 6], ids=["a", "b", "c", "d", "e"])
    assert list(w.islands) == ["d", "e"]
    assert w.n_components == 3
    info = w.describe()
    assert info["n_islands"] == 2 and info["islands"] == ["d", "e"] and info["n_components"] == 3


def test_polygon_contiguity_queen_versus_rook() -> None:
    # a | b on top, c below a; d touches b at one corner only (diagonal).
    squares = gpd.GeoDataFrame(
        geometry=[
            shapely.box(0, 1, 1, 2),
            shapely.box(1, 1, 2, 2),
            shapely.box(0, 0, 1, 1),
            shapely.box(2, 0, 3, 1),
            shapely.box(10, 10, 11, 11),
        ],
        index=["a", "b", "c", "d", "far"],
        crs=4326,
    )
    queen = contiguity_weights(squares)
    rook = contiguity_weights(squares, rule="rook")
    assert _neighbours(queen, "b") == {"a", "c", "d"}
    assert _neighbours(rook, "b") == {"a"}
    assert _neighbours(rook, "d") == set()
    assert list(queen.islands) == ["far"]
    assert list(rook.islands) == ["d", "far"]


def test_connect_islands_links_them_to_the_nearest_unit() -> None:
    squares = gpd.GeoDataFrame(
        geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1), shapely.box(9, 0, 10, 1)],
        index=["a", "b", "far"],
        crs=4326,
    )
    w = contiguity_weights(squares)
    assert list(w.islands) == ["far"] and w.n_components == 2
    joined = connect_islands(w, squares.iloc[::-1])  # aligned by id, not by order
    assert _neighbours(joined, "far") == {"b"} and "far" in _neighbours(joined, "b")
    assert len(joined.islands) == 0 and joined.n_components == 1 and joined.is_symmetric
    r = connect_islands(w.transformed("R"), squares)
    np.testing.assert_allclose(np.asarray(r.sparse.sum(axis=1)).ravel(), 1.0)
    assert connect_islands(joined, squares) is joined


def test_contiguity_tolerance_bridges_a_small_gap() -> None:
    # Two squares 1e-6° (~0.1 m) apart, as in a carelessly digitised grid layer.
    squares = gpd.GeoDataFrame(
        geometry=[
            shapely.box(114.0, 22.5, 114.01, 22.51),
            shapely.box(114.010001, 22.5, 114.02, 22.51),
        ],
        crs=4326,
    )
    assert contiguity_weights(squares).cardinalities.tolist() == [0, 0]
    assert contiguity_weights(squares, tolerance_m=1.0).cardinalities.tolist() == [1, 1]


def test_fishnet_fast_path_equals_strtree() -> None:
    units = fishnet_units((114.05, 22.53, 114.07, 22.55), 500)
    fast = contiguity_weights(units)
    plain = gpd.GeoDataFrame(geometry=units.geometry.values, index=units.index, crs=4326)
    slow = contiguity_weights(plain)
    assert fast.ids.equals(slow.ids)
    assert (fast.sparse != slow.sparse).nnz == 0
    rook_fast = contiguity_weights(units, rule="rook")
    assert (rook_fast.sparse != contiguity_weights(plain, rule="rook").sparse).nnz == 0


def test_h3_weights_use_the_grid() -> None:
    centre = h3.latlng_to_cell(22.54, 114.06, 9)
    ring = h3.grid_disk(centre, 1)
    w = h3_weights(ring)
    assert w.cardinalities[list(w.ids).index(centre)] == 6
    assert all(h3.are_neighbor_cells(centre, n) for n in _neighbours(w, centre))
    units = h3_units((114.05, 22.53, 114.07, 22.55), 9)
    assert contiguity_weights(units).n == len(units)
    with pytest.raises(GisError, match="mixed resolutions"):
        h3_weights([centre, h3.cell_to_parent(centre, 8)])


def test_distance_band_is_inclusive_and_metric() -> None:
    xy = np.array([[0.0, 0.0], [15.0, 0.0], [40.0, 0.0]])
    w = distance_band_weights(xy, threshold_m=15)
    assert w.cardinalities.tolist() == [1, 1, 0]
    assert list(w.islands) == [2]
    # Points ~111 m apart in latitude near Shenzhen.
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy([114.05, 114.05], [22.53, 22.531]), crs=4326)
    assert distance_band_weights(pts, threshold_m=120).cardinalities.tolist() == [1, 1]
    assert distance_band_weights(pts, threshold_m=100).cardinalities.tolist() == [0, 0]


def test_knn_weights_and_duplicates() -> None:
    xy = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [5.0, 0.0]])
    w = knn_weights(xy, k=2)
    assert w.cardinalities.tolist() == [2, 2, 2, 2]
    assert w.sparse.diagonal().sum() == 0
    assert _neighbours(w, 3) == {1, 2} or _neighbours(w, 3) == {0, 2}
    assert not w.is_symmetric and len(w.islands) == 0
    with pytest.raises(GisError):
        knn_weights(xy, k=4)


def test_transforms() -> None:
    w = fishnet_weights([0, 0, 0, 3], [0, 1, 2, 3])
    r = w.transformed("R")
    sums = np.asarray(r.sparse.sum(axis=1)).ravel()
    np.testing.assert_allclose(sums, [1, 1, 1, 0])
    assert r.sparse[1, 0] == pytest.approx(0.5)
    b = r.transformed("B")
    assert set(b.sparse.data) == {1.0}
    assert list(r.islands) == [3]
    with pytest.raises(GisError):
        w.transformed("V")  # type: ignore[arg-type]


def test_subset_recomputes_islands_and_row_standardisation() -> None:
    w = fishnet_weights([0, 0, 0], [0, 1, 2]).transformed("R")
    sub = w.subset([0, 2])
    assert list(sub.islands) == [0, 2]
    middle_kept = w.subset([0, 1])
    np.testing.assert_allclose(middle_kept.sparse.toarray(), [[0, 1], [1, 0]])
    with pytest.raises(GisError, match="unknown"):
        w.subset([7])


def test_weights_validation() -> None:
    with pytest.raises(GisError, match="ids"):
        Weights(sp.eye(3, format="csr"), pd.Index([1, 2]))
    with pytest.raises(GisError, match="unique"):
        Weights(sp.csr_matrix((2, 2)), pd.Index([1, 1]))
    with pytest.raises(GisError, match="non-negative"):
        Weights(sp.csr_matrix(np.array([[0, -1.0], [1.0, 0]])), pd.Index([1, 2]))


def test_read_gal_desmith(realdata: Path) -> None:
    w = read_gal(realdata / "pysal_esda_reference" / "desmith" / "desmith.gal")
    expected = {
        1: {2, 4}, 2: {1, 5}, 3: {4, 7}, 4: {1, 3, 5, 8}, 5: {2, 4, 6, 9},
        6: {5, 10}, 7: {3, 8}, 8: {4, 7, 9}, 9: {5, 8, 10}, 10: {6, 9},
    }  # fmt: skip
    assert w.ids.tolist() == list(range(1, 11))
    assert {unit: _neighbours(w, unit) for unit in w.ids} == expected
    assert w.is_symmetric and w.n_components == 1


def test_read_gal_with_island_and_bad_files(tmp_path: Path) -> None:
    good = tmp_path / "island.gal"
    good.write_text("0 3 shp ID\nA 1\nB\nB 1\nA\nC 0\n\n")
    w = read_gal(good)
    assert w.ids.tolist() == ["A", "B", "C"] and list(w.islands) == ["C"]
    bad = tmp_path / "bad.gal"
    bad.write_text("2\n1 2\n2\n2 1\n")
    with pytest.raises(GisError, match="announces 2 neighbours, lists 1"):
        read_gal(bad)
    unknown = tmp_path / "unknown.gal"
    unknown.write_text("2\n1 1\n9\n2 0\n")
    with pytest.raises(GisError, match="not a unit"):
        read_gal(unknown)
