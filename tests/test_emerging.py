"""Time bins, Mann-Kendall, emerging hot spot classes and two-period comparison."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from gis._errors import GisError, NotEnoughDataError
from gis.emerging import (
    EMERGING_CLASSES,
    EmergingHotSpots,
    _patterns,
    compare_periods,
    mann_kendall,
    space_time_counts,
    time_bins,
)
from gis.weights import fishnet_weights


def test_time_bins_weeks_and_months_in_china_time() -> None:
    times = pd.Series(pd.to_datetime(["2024-03-03 20:00", "2024-01-31 17:00"]).tz_localize("UTC"))
    weeks = time_bins(times, freq="W")
    # 20:00 UTC on Sunday 3 March is 04:00 on Monday 4 March in Shanghai.
    assert weeks.iloc[0].start_time == pd.Timestamp("2024-03-04")
    assert weeks.iloc[0].end_time.normalize() == pd.Timestamp("2024-03-10")
    months = time_bins(times, freq="M")
    assert str(months.iloc[1]) == "2024-02"
    naive = time_bins(pd.Series(pd.to_datetime(["2024-01-31 23:00"])), freq="M")
    assert str(naive.iloc[0]) == "2024-01"
    with pytest.raises(GisError, match="freq"):
        time_bins(times, freq="D")  # type: ignore[arg-type]


def test_space_time_counts_keeps_empty_bins() -> None:
    units = gpd.GeoDataFrame(
        geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)], index=["w", "e"], crs=4326
    )
    points = gpd.GeoDataFrame(
        {"at": pd.to_datetime(["2024-01-05", "2024-01-20", "2024-03-02", "2024-03-09"])},
        geometry=gpd.points_from_xy([0.5, 1.5, 1.5, 9.0], [0.5, 0.5, 0.5, 9.0]),
        crs=4326,
    )
    cube, n_outside = space_time_counts(units, points, time_col="at", freq="M")
    assert [str(p) for p in cube.columns] == ["2024-01", "2024-02", "2024-03"]
    assert cube.loc["w"].tolist() == [1, 0, 0] and cube.loc["e"].tolist() == [1, 0, 1]
    assert n_outside == 1
    wide, _ = space_time_counts(
        units, points, time_col="at", freq="M", start="2023-12-01", end="2024-02-15"
    )
    assert [str(p) for p in wide.columns] == ["2023-12", "2024-01", "2024-02"]
    assert wide.to_numpy().sum() == 2  # March is outside the span


def test_mann_kendall_by_hand() -> None:
    s, z, p = mann_kendall(np.array([[1, 2, 3, 4, 5], [5, 4, 3, 2, 1], [1, 1, 1, 1, 1]]))
    assert s.tolist() == [10, -10, 0]
    # var = 5 * 4 * 15 / 18; z = (10 - 1) / sqrt(var)
    assert z[0] == pytest.approx(9 / np.sqrt(5 * 4 * 15 / 18))
    assert z[1] == pytest.approx(-z[0]) and z[2] == 0 and p[2] == 1
    # Ties: [1, 1, 2, 3]: S = 5; var = (4*3*13 - 2*1*9) / 18 = 7.6667
    s, z, _ = mann_kendall(np.array([[1.0, 1.0, 2.0, 3.0]]))
    assert s[0] == 5 and z[0] == pytest.approx(4 / np.sqrt((4 * 3 * 13 - 2 * 1 * 9) / 18))


def _rule(hot: str, cold: str = "", trend: str = "") -> str:
    """Class from 'H'/'.' strings of hot and cold bins and a trend sign."""
    hot_m = np.array([[c == "H" for c in hot]])
    cold_m = np.array([[c == "C" for c in (cold or "." * len(hot))]])
    up, down = np.array([trend == "+"]), np.array([trend == "-"])
    return str(_patterns(hot_m, cold_m, up, down)[0])


def test_pattern_rules_on_hand_built_series() -> None:
    assert _rule(".........H") == "new"
    assert _rule(".......HHH") == "consecutive"
    assert _rule("HHHHHHHHHH", trend="+") == "intensifying"
    assert _rule("HHHHHHHHHH") == "persistent"
    assert _rule("HHHH.HHHHH" + "HHHHHHHHHH", trend="-") == "diminishing"  # 95 % hot
    assert _rule("HHHHHHHHHH.") == "historical"  # 10 of 11 bins, not the last
    assert _rule("..H..H...H") == "sporadic"
    assert _rule(".H..H.....") == "sporadic"
    assert _rule("....H....H", cold="..C.......") == "oscillating"
    assert _rule("H.H.......", cold="....C.....") == ""  # hot and cold, final neither
    assert _rule("..........") == ""
    assert _rule("..H....HHH") == "sporadic"  # hot before the final run: not consecutive


Block = tuple[int, int, int, int]  # first row, end row, first col, end col


def _grid_cube(blocks: list[tuple[Block, np.ndarray]], n_bins: int = 12) -> pd.DataFrame:
    """A 10 × 10 fishnet cube: background 1, each block adds its per-bin values."""
    cube = np.ones((10, 10, n_bins))
    for (r0, r1, c0, c1), add in blocks:
        cube[r0:r1, c0:c1, :] += add
    periods = pd.period_range("2024-01", periods=n_bins, freq="M")
    return pd.DataFrame(cube.reshape(100, n_bins), columns=periods)


def _grid_weights():  # noqa: ANN202
    rows, cols = np.divmod(np.arange(100), 10)
    return fishnet_weights(rows, cols)


def test_emerging_persistent_and_new_end_to_end() -> None:
    final_only = np.zeros(12)
    final_only[-1] = 8.0
    cube = _grid_cube([((0, 3, 0, 3), np.full(12, 8.0)), ((7, 10, 7, 10), final_only)])
    result = EmergingHotSpots(cube, _grid_weights())
    assert result.z.shape == (100, 12) and np.isfinite(result.z.to_numpy()).all()
    assert result.category[11] == "persistent_hot"  # row 1, col 1: the block's centre
    assert result.category[88] == "new_hot"
    assert result.hot.loc[11].all() and result.hot.loc[88].sum() == 1
    assert set(result.category) <= set(EMERGING_CLASSES)


def test_emerging_intensifying_end_to_end() -> None:
    # A fixed uneven background (with two values only, Gi* z ignores the contrast).
    background = np.random.default_rng(0).uniform(0.5, 1.5, (100, 1))
    cube = _grid_cube([((3, 6, 3, 6), np.linspace(2.0, 14.0, 12))]) - 1.0 + background
    result = EmergingHotSpots(cube, _grid_weights())
    centre = 44
    assert result.hot.loc[centre].mean() >= 0.9
    assert result.trend_z[centre] > 0 and result.trend_p[centre] <= 0.05
    assert result.category[centre] == "intensifying_hot"


def test_emerging_bad_input() -> None:
    w = _grid_weights()
    with pytest.raises(NotEnoughDataError, match="at least 10"):
        EmergingHotSpots(_grid_cube([], n_bins=6), w)
    cube = _grid_cube([((0, 3, 0, 3), np.full(12, 5.0))])
    cube.iloc[:, 4] = 0.0
    with pytest.raises(
        NotEnoughDataError,
        match="not enough data for a hotspot test: period 2024-05: all 100 values are zero",
    ):
        EmergingHotSpots(cube, w)


def test_compare_periods_new_and_ceased() -> None:
    rows, cols = np.divmod(np.arange(100), 10)
    rows, cols = np.r_[rows, 20], np.r_[cols, 20]  # unit 100 is an island
    w = fishnet_weights(rows, cols)
    y_a = np.ones(101)
    y_b = np.ones(101)
    y_a[(rows < 3) & (cols < 3)] += 8
    y_b[(rows > 6) & (cols > 6)] += 8
    y_a[[45, 46]] += 3  # mild, kept in both periods
    y_b[[45, 46]] += 3
    table = compare_periods(y_a, y_b, w)
    assert table.loc[11, "change"] == "ceased_hot"
    assert table.loc[88, "change"] == "new_hot"
    assert table.loc[100, "change"] == "island"
    assert table["change"].notna().all()
    assert set(table["change"]) <= {
        "new_hot", "persisting_hot", "ceased_hot", "hot_to_cold", "new_cold",
        "persisting_cold", "ceased_cold", "cold_to_hot", "none", "island",
    }  # fmt: skip
    same = compare_periods(y_a, y_a, w)
    assert same.loc[11, "change"] == "persisting_hot"
    with pytest.raises(NotEnoughDataError, match="period b: all 101 values are zero"):
        compare_periods(y_a, np.zeros(101), w)
    with pytest.raises(GisError, match="alpha"):
        compare_periods(y_a, y_b, w, alpha=0.2)
