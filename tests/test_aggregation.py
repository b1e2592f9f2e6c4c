"""Aggregation units (H3, fishnet), point counts with points outside, and rates."""

from __future__ import annotations

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely

from gis._errors import CRSError, GeometryError, GisError
from gis.aggregation import count_points, fishnet_units, h3_units, rate

# A small box in Futian, Shenzhen (lon, lat).
BOX = (114.05, 22.53, 114.07, 22.55)


def test_h3_units_cover_the_area() -> None:
    units = h3_units(BOX, 9)
    assert units.crs.to_epsg() == 4326
    assert units.attrs == {"unit_kind": "h3", "resolution": 9}
    assert all(h3.get_resolution(c) == 9 for c in units.index)
    area = shapely.box(*BOX)
    assert shapely.union_all(units.geometry.values).covers(area)
    centred = h3_units(shapely.box(*BOX), 9, contain="center")
    assert set(centred.index) < set(units.index)
    assert not shapely.union_all(centred.geometry.values).covers(area)
    # Hexagons are in (lon, lat): their centroids lie near the box, not at (lat, lon).
    lon, lat = units.geometry.iloc[0].centroid.coords[0]
    assert 114.0 < lon < 114.1 and 22.5 < lat < 22.6


def test_h3_units_thin_area_is_covered() -> None:
    # A 20 m wide strip: no hexagon centre inside, every touched hexagon must still come.
    strip = gpd.GeoSeries([shapely.box(114.05, 22.5400, 114.07, 22.5402)], crs=4326)
    units = h3_units(strip, 9)
    assert len(units) > 5
    assert shapely.union_all(units.geometry.values).covers(strip.iloc[0])


def test_h3_units_bad_input() -> None:
    with pytest.raises(GisError, match="resolution"):
        h3_units(BOX, 12)
    with pytest.raises(GisError, match="min < max"):
        h3_units((114.07, 22.53, 114.05, 22.55), 9)
    with pytest.raises(CRSError):
        h3_units(shapely.box(500000, 2490000, 501000, 2491000), 9)


def test_fishnet_units_are_metric_squares() -> None:
    units = fishnet_units(BOX, 250)
    assert units.attrs["metric_crs"] == "EPSG:32650"
    assert units.attrs["unit_kind"] == "fishnet"
    metric = units.to_crs(32650)
    np.testing.assert_allclose(metric.area, 250 * 250, rtol=1e-6)
    assert shapely.union_all(units.geometry.values).covers(shapely.box(*BOX))
    n_cols = units.attrs["n_cols"]
    assert (units.index == units["row"] * n_cols + units["col"]).all()
    # Row 0 is at the south, column 0 at the west.
    south_west = metric.loc[(units["row"] == 0) & (units["col"] == 0)].geometry.iloc[0]
    x0, y0 = units.attrs["origin"]
    assert south_west.bounds[:2] == pytest.approx((x0, y0))
    assert x0 % 250 == 0 and y0 % 250 == 0


def test_fishnet_keeps_only_cells_meeting_the_polygon() -> None:
    triangle = shapely.Polygon([(114.05, 22.53), (114.07, 22.53), (114.05, 22.55)])
    units = fishnet_units(triangle, 250)
    full = fishnet_units(BOX, 250)
    assert len(units) < len(full)
    assert shapely.intersects(triangle, units.geometry.values).all()
    with pytest.raises(GisError, match="metres"):
        fishnet_units(BOX, 0.01)
    with pytest.raises(CRSError):
        fishnet_units(BOX, 250, metric_crs=4326)


def _two_squares() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)],
        index=pd.Index(["west", "east"], name="unit_id"),
        crs=4326,
    )


def _points(xy: list[tuple[float, float]], **columns: list[object]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(columns, geometry=gpd.points_from_xy(*zip(*xy, strict=True)), crs=4326)


def test_count_points_counts_boundary_points_once_and_reports_outside() -> None:
    points = _points([(0.5, 0.5), (1.0, 0.5), (1.5, 0.2), (1.5, 0.8), (3.0, 3.0)])
    counts, n_outside = count_points(_two_squares(), points)
    assert counts.to_dict() == {"west": 2, "east": 2}  # (1, 0.5) goes to the first unit
    assert counts.name == "count" and counts.dtype == np.int64
    assert n_outside == 1


def test_count_points_weight_and_by() -> None:
    points = _points(
        [(0.5, 0.5), (1.5, 0.5), (1.6, 0.5), (9.0, 9.0)],
        hurt=[1, 2, 3, 4],
        kind=["fall", "fall", "shock", "fall"],
    )
    sums, n_outside = count_points(_two_squares(), points, weight="hurt")
    assert sums.to_dict() == {"west": 1.0, "east": 5.0} and n_outside == 1
    table, _ = count_points(_two_squares(), points, by="kind")
    assert table.loc["west"].to_dict() == {"fall": 1, "shock": 0}
    assert table.loc["east"].to_dict() == {"fall": 1, "shock": 1}
    empty, n_outside = count_points(_two_squares(), points.iloc[:0])
    assert empty.tolist() == [0, 0] and n_outside == 0


def test_count_points_reprojects_and_refuses_bad_points() -> None:
    units = fishnet_units(BOX, 1000)
    inside = _points([(114.06, 22.54)]).to_crs(32650)
    counts, n_outside = count_points(units, inside)
    assert counts.sum() == 1 and n_outside == 0
    with pytest.raises(CRSError):
        count_points(units, inside.set_crs(None, allow_override=True))
    broken = gpd.GeoDataFrame(geometry=[None, shapely.Point(114.06, 22.54)], crs=4326)
    with pytest.raises(GeometryError, match="1 of 2 points have no geometry"):
        count_points(units, broken)


def test_rate_marks_units_without_exposure() -> None:
    index = pd.Index(["a", "b", "c", "d"])
    hazards = pd.Series([3, 0, 2, 5], index=index)
    projects = pd.Series([6, 4, 0, 1], index=index)
    table = rate(hazards, projects)
    assert table["status"].tolist() == ["ok", "ok", "no_exposure", "ok"]
    assert table["rate"].iloc[0] == 0.5 and table["rate"].iloc[3] == 5.0
    assert table["rate"].isna().tolist() == [False, False, True, False]
    assert not np.isinf(table["rate"].dropna().to_numpy(float)).any()
    strict = rate(hazards, projects, min_denominator=2)
    assert strict["status"].tolist() == ["ok", "ok", "no_exposure", "no_exposure"]
    shuffled = rate(hazards.iloc[::-1], projects)
    assert shuffled["numerator"].tolist() == [3, 0, 2, 5]
    with pytest.raises(GisError, match="same units"):
        rate(hazards.rename({"a": "z"}), projects)
    with pytest.raises(GisError, match="non-negative"):
        rate(-hazards, projects)
