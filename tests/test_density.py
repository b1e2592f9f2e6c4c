"""Kernel density in metres and DBSCAN clusters with outlines."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from gis._errors import GisError, NotEnoughDataError
from gis.density import dbscan_clusters, kernel_density, silverman_bandwidth

UTM50 = 32650  # Shenzhen
X0, Y0 = 200_000.0, 2_495_000.0  # a spot in Shenzhen, in UTM 50N metres


def _metric_points(xy: np.ndarray | list[tuple[float, float]]) -> gpd.GeoDataFrame:
    """Points placed in metres, handed over in lon/lat like real data."""
    xy = np.asarray(xy, dtype=float)
    pts = gpd.GeoDataFrame(
        {"hurt": np.arange(len(xy)) % 3 + 1},
        geometry=gpd.points_from_xy(X0 + xy[:, 0], Y0 + xy[:, 1]),
        crs=UTM50,
    )
    return pts.to_crs(4326)


def test_silverman_rule_by_hand() -> None:
    # Square of side 2 around the origin: SD = sqrt(2), Dm = sqrt(2), n = 4.
    xy = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    expected = 0.9 * min(np.sqrt(2), np.sqrt(1 / np.log(2)) * np.sqrt(2)) * 4 ** (-0.2)
    assert silverman_bandwidth(xy) == pytest.approx(expected)
    with pytest.raises(NotEnoughDataError, match="bandwidth"):
        silverman_bandwidth(np.array([[3.0, 4.0], [3.0, 4.0], [3.0, 4.0]]))


def test_density_integrates_to_the_number_of_points() -> None:
    rng = np.random.default_rng(4)
    xy = np.vstack([rng.normal(0, 150, (150, 2)), rng.normal(2000, 300, (50, 2))])
    surface = kernel_density(_metric_points(xy), cell_m=25)
    assert surface.crs == "EPSG:32650"
    assert surface.bandwidth_rule.startswith("0.9 * min(SD")
    cell_km2 = (25 / 1000) ** 2
    assert surface.values.sum() * cell_km2 == pytest.approx(200, rel=0.01)
    # The peak lies in the dense cluster at the origin, not the loose one.
    row, col = np.unravel_index(surface.values.argmax(), surface.values.shape)
    west, north = surface.transform[2], surface.transform[5]
    peak_x = west + (col + 0.5) * 25 - X0
    peak_y = north - (row + 0.5) * 25 - Y0
    assert np.hypot(peak_x, peak_y) < 150


def test_density_with_given_bandwidth_weights_and_layers() -> None:
    pts = _metric_points([(0.0, 0.0)])
    surface = kernel_density(pts, cell_m=10, bandwidth_m=100, weight="hurt")
    assert surface.bandwidth_m == 100 and surface.bandwidth_rule == "given"
    # Quartic kernel at the centre: 3 / (pi h^2) per m2, times 1e6 for km2 (weight 1).
    assert surface.values.max() == pytest.approx(3 / (np.pi * 100**2) * 1e6, rel=0.01)
    cells = surface.cells()
    assert cells.crs.to_epsg() == 4326 and (cells["density"] > 0).all()
    assert len(cells) == pytest.approx(np.pi * 100**2 / 100, rel=0.1)
    contours = surface.contours()
    assert contours.crs.to_epsg() == 4326 and len(contours) == 3
    areas = contours.to_crs(UTM50).area.to_numpy()
    assert areas[0] > areas[1] > areas[2]  # higher levels, smaller areas
    point = pts.geometry.iloc[0]
    assert all(shapely.covers(g, point) for g in contours.geometry)


def test_density_bad_input() -> None:
    with pytest.raises(NotEnoughDataError, match="not enough data for a density surface"):
        kernel_density(_metric_points(np.zeros((0, 2))), cell_m=10)
    with pytest.raises(NotEnoughDataError, match="give bandwidth_m"):
        kernel_density(_metric_points([(0.0, 0.0)]), cell_m=10)
    with pytest.raises(GisError, match="cell_m"):
        kernel_density(_metric_points([(0.0, 0.0)]), cell_m=-1, bandwidth_m=50)


def test_dbscan_clusters_in_metres_with_outlines() -> None:
    square = [(0.0, 0.0), (30.0, 0.0), (30.0, 30.0), (0.0, 30.0), (15.0, 15.0)]
    pair = [(1000.0, 0.0), (1040.0, 0.0)]
    lonely = [(5000.0, 5000.0)]
    pts = _metric_points(square + pair + lonely)
    result = dbscan_clusters(pts, eps_m=45, min_samples=2)
    assert result.labels.tolist() == [0, 0, 0, 0, 0, 1, 1, -1]
    assert result.n_noise == 1 and result.metric_crs == "EPSG:32650"
    clusters = result.clusters.set_index("cluster")
    assert clusters.crs.to_epsg() == 4326
    assert clusters.loc[0, "n_points"] == 5
    assert clusters.loc[0, "area_m2"] == pytest.approx(900, rel=1e-6)  # the 30 m square
    # Two points: the segment buffered by eps / 2.
    assert clusters.loc[1, "geometry"].geom_type == "Polygon"
    assert clusters.loc[1, "area_m2"] == pytest.approx(40 * 45 + np.pi * 22.5**2, rel=0.01)
    for cluster, outline in clusters.geometry.items():
        members = pts.geometry[result.labels == cluster]
        assert shapely.covers(outline.buffer(1e-9), members.values).all()
    # Distances are metres: 30 m apart does not cluster at eps 20.
    assert (dbscan_clusters(pts, eps_m=20, min_samples=2).labels.iloc[:5] == -1).all()


def test_dbscan_concave_and_bad_input() -> None:
    rng = np.random.default_rng(2)
    angle = rng.uniform(0, np.pi, 200)
    arc = np.c_[np.cos(angle) * 500, np.sin(angle) * 500] + rng.normal(0, 5, (200, 2))
    convex = dbscan_clusters(_metric_points(arc), eps_m=60, min_samples=3)
    concave = dbscan_clusters(_metric_points(arc), eps_m=60, min_samples=3, hull="concave")
    assert concave.clusters["area_m2"].iloc[0] < convex.clusters["area_m2"].iloc[0]
    with pytest.raises(NotEnoughDataError, match="clustering"):
        dbscan_clusters(_metric_points(np.zeros((0, 2))), eps_m=10, min_samples=2)
    with pytest.raises(GisError, match="eps_m"):
        dbscan_clusters(_metric_points(arc), eps_m=0, min_samples=2)
