"""WGS84 ⇄ GCJ-02 against real coordinate pairs from Dongcheng, plus the basic properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Geod

from gis.gcj02 import (
    gcj02_to_wgs84,
    geometry_gcj02_to_wgs84,
    geometry_wgs84_to_gcj02,
    in_china,
    wgs84_to_gcj02,
)

_GEOD = Geod(ellps="WGS84")


def _metres(lon1, lat1, lon2, lat2) -> np.ndarray:
    return np.asarray(_GEOD.inv(lon1, lat1, lon2, lat2)[2])


@pytest.fixture(scope="module")
def pairs(realdata) -> pd.DataFrame:
    path = realdata / "beijing_dongcheng_caupd" / "wgs84_gcj02_coordinate_pairs.csv"
    frame = pd.read_csv(path)
    assert len(frame) == 1396
    return frame


def _plausible(pairs: pd.DataFrame) -> pd.DataFrame:
    # One source record (北京婉容旧居) has its longitude copied into its latitude (116.39°):
    # it is no coordinate at all, and is left out of the error statistics.
    return pairs[pairs["wgs84_lat"].abs() <= 90]


def test_forward_matches_real_pairs(pairs):
    good = _plausible(pairs)
    lon, lat = wgs84_to_gcj02(good["wgs84_lng"], good["wgs84_lat"])
    error = _metres(lon, lat, good["gcj02_lng"], good["gcj02_lat"])
    # Restaurants and scenic spots were made with the standard formula (exact); parking
    # agrees within 4e-7° per the source, i.e. a few centimetres.
    assert error.max() < 0.5
    assert np.percentile(error, 99) < 0.1
    assert np.median(error) < 0.05
    exact = good["source"] != "parking_lot_data"
    assert error[exact.to_numpy()].max() < 1e-3


def test_inverse_matches_real_pairs(pairs):
    good = _plausible(pairs)
    lon, lat = gcj02_to_wgs84(good["gcj02_lng"], good["gcj02_lat"])
    error = _metres(lon, lat, good["wgs84_lng"], good["wgs84_lat"])
    assert error.max() < 0.5
    assert np.percentile(error, 99) < 0.1
    assert np.median(error) < 0.05
    # The shift it undoes is hundreds of metres, so a no-op would fail the bounds above.
    shift = _metres(good["gcj02_lng"], good["gcj02_lat"], good["wgs84_lng"], good["wgs84_lat"])
    assert shift.min() > 100


def test_implausible_pair_is_outside_china_and_unchanged(pairs):
    bad = pairs[pairs["wgs84_lat"].abs() > 90]
    assert len(bad) == 1
    assert not in_china(bad["wgs84_lng"], bad["wgs84_lat"]).any()
    lon, _ = wgs84_to_gcj02(bad["wgs84_lng"], bad["wgs84_lat"])
    np.testing.assert_array_equal(lon, bad["gcj02_lng"])


def test_round_trip_across_china():
    rng = np.random.default_rng(7)
    lon = rng.uniform(75.0, 134.0, 2000)
    lat = rng.uniform(18.0, 53.0, 2000)
    back_lon, back_lat = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert _metres(lon, lat, back_lon, back_lat).max() < 1e-3


def test_identity_outside_china():
    lon = np.array([2.3522, -74.006, 151.2093, 139.0])
    lat = np.array([48.8566, 40.7128, -33.8688, 60.0])
    assert not in_china(lon, lat).any()
    for func in (wgs84_to_gcj02, gcj02_to_wgs84):
        out_lon, out_lat = func(lon, lat)
        np.testing.assert_array_equal(out_lon, lon)
        np.testing.assert_array_equal(out_lat, lat)


def test_scalar_and_array_inputs_agree():
    lon, lat = 116.3916409, 39.90238253
    s_lon, s_lat = wgs84_to_gcj02(lon, lat)
    assert np.ndim(s_lon) == 0 and np.ndim(s_lat) == 0
    grid_lon = np.full((2, 3), lon)
    a_lon, a_lat = wgs84_to_gcj02(grid_lon, np.full((2, 3), lat))
    assert a_lon.shape == (2, 3)
    np.testing.assert_array_equal(a_lon, float(s_lon))
    np.testing.assert_array_equal(a_lat, float(s_lat))
    back_lon, back_lat = gcj02_to_wgs84(float(s_lon), float(s_lat))
    assert _metres(lon, lat, float(back_lon), float(back_lat)) < 1e-3


def test_polygon_conversion_moves_every_vertex():
    polygon = shapely.Polygon(
        [(116.40, 39.90), (116.41, 39.90), (116.41, 39.91), (116.40, 39.91)],
        holes=[[(116.403, 39.903), (116.405, 39.903), (116.405, 39.905)]],
    )
    gcj = geometry_wgs84_to_gcj02(polygon)
    assert gcj.geom_type == "Polygon" and gcj.is_valid
    assert len(gcj.interiors) == 1
    coords = shapely.get_coordinates(polygon)
    expected = np.column_stack(wgs84_to_gcj02(coords[:, 0], coords[:, 1]))
    np.testing.assert_allclose(shapely.get_coordinates(gcj), expected, rtol=0, atol=1e-12)
    back = geometry_gcj02_to_wgs84(gcj)
    np.testing.assert_allclose(shapely.get_coordinates(back), coords, rtol=0, atol=1e-9)
    # The field is smooth: a 1 km square keeps its area to well under 0.1 %.
    assert gcj.area == pytest.approx(polygon.area, rel=1e-3)


def test_geometry_conversion_of_an_array():
    points = shapely.points([(116.39, 39.90), (2.35, 48.85)])
    gcj = geometry_wgs84_to_gcj02(points)
    assert gcj.shape == (2,)
    assert shapely.get_x(gcj[0]) != 116.39
    assert shapely.equals(gcj[1], points[1])
