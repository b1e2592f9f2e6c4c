"""Gi / Gi* / Local Moran against the PySAL reference values, FDR, classes, bad input."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from gis._errors import GisError, NotEnoughDataError
from gis.hotspots import GetisOrdGi, LocalMoran, classify_gi, fdr, hotspot_table
from gis.weights import Weights, distance_band_weights, fishnet_weights, read_gal

TOL = 1e-6
NOT_ENOUGH = "not enough data for a hotspot test: "


@pytest.fixture(scope="module")
def ref(realdata: Path) -> Path:
    return realdata / "pysal_esda_reference"


def _is_true(flag: object) -> bool:
    """The ``star`` column holds booleans, or strings when a column has blanks."""
    return str(flag) == "True"


def _close(actual: np.ndarray, expected: pd.Series | np.ndarray) -> None:
    np.testing.assert_allclose(actual, np.asarray(expected, dtype=float), rtol=0, atol=TOL)


# --------------------------------------------------------------------------------------------
# Reference parity
# --------------------------------------------------------------------------------------------


def test_six_points_gi_matches_esda_reference(ref: Path) -> None:
    table = pd.read_csv(ref / "expected_getisord_six_points.csv")
    first = table[(table["transform"] == "B") & (table["star"].astype(str) == "False")]
    w = distance_band_weights(first[["x", "y"]].to_numpy(), threshold_m=15)
    y = first["value"].to_numpy()
    assert len(table.groupby(["transform", "star"])) == 3
    for (transform, star), expected in table.groupby(["transform", "star"]):
        gi = GetisOrdGi(y, w, star=_is_true(star), transform=transform)
        for column in ("Gs", "EGs", "VGs", "Zs", "p_norm"):
            _close(getattr(gi, column), expected[column])


def test_six_points_hardcoded_esda_assertions() -> None:
    # Values hard-coded in esda's own tests, independent of the CSV run.
    xy = np.array([(10, 10), (20, 10), (40, 10), (15, 20), (30, 20), (30, 30)], dtype=float)
    y = np.array([2, 3, 3.2, 5, 8, 7])
    w = distance_band_weights(xy, threshold_m=15)
    assert GetisOrdGi(y, w, star=False, transform="B").Zs[0] == pytest.approx(-1.0136729, abs=1e-7)
    assert GetisOrdGi(y, w, star=False, transform="R").Zs[0] == pytest.approx(-0.62074534, abs=1e-8)
    assert GetisOrdGi(y, w, star=True, transform="B").Zs[0] == pytest.approx(-1.39727626, abs=1e-8)


def _desmith(ref: Path) -> tuple[pd.Series, Weights]:
    data = pd.read_csv(ref / "desmith" / "desmith.txt", skiprows=1)
    return data.set_index("id")["z"], read_gal(ref / "desmith" / "desmith.gal")


def test_desmith_gi_matches_reference(ref: Path) -> None:
    y, w = _desmith(ref)
    table = pd.read_csv(ref / "expected_desmith.csv")
    g_local = table[table.stat == "G_Local"]
    assert len(g_local.groupby(["transform", "star"])) == 4
    for (transform, star), expected in g_local.groupby(["transform", "star"]):
        gi = GetisOrdGi(y, w, star=_is_true(star), transform=transform)
        expected = expected.set_index("id").loc[w.ids]
        _close(gi.Gs, expected["G"])
        _close(gi.Zs, expected["Z"])
        _close(gi.p_norm, expected["p_norm"])


def test_desmith_local_moran_matches_reference(ref: Path) -> None:
    y, w = _desmith(ref)
    table = pd.read_csv(ref / "expected_desmith.csv")
    expected = table[table.stat == "Moran_Local"].set_index("id").loc[w.ids]
    lisa = LocalMoran(y, w, transform="R")
    for ours, theirs in (("Is", "I"), ("EI", "EI"), ("VI", "VI"), ("Zs", "Z")):
        _close(getattr(lisa, ours), expected[theirs])
    _close(lisa.EIc, expected["EIc"])
    _close(lisa.VIc, expected["VIc"])
    # The analytic moments hard-coded in esda's tests.
    _close(lisa.EI, np.full(10, -1 / 9))
    vi = [0.394432, 0.394432, 0.394432, 0.148043, 0.148043, 0.394432, 0.394432, 0.230173]
    np.testing.assert_allclose(lisa.VI[:8], vi, atol=1e-6)
    np.testing.assert_allclose(lisa.EIc[:3], [-0.00838113, -0.0243949, -0.07031778], atol=1e-8)
    np.testing.assert_allclose(lisa.VIc[:3], [0.03636013, 0.10412408, 0.28600769], atol=1e-8)


def test_columbus_crime_matches_reference(ref: Path) -> None:
    frame = gpd.read_file(ref / "columbus" / "columbus.shp")
    y = frame.set_index("POLYID")["CRIME"]
    w = read_gal(ref / "columbus" / "columbus.gal")
    assert w.n == 49 and len(w.islands) == 0 and w.n_components == 1
    table = pd.read_csv(ref / "expected_columbus_CRIME.csv")
    g_local = table[table.stat == "G_Local"]
    for (transform, star), expected in g_local.groupby(["transform", "star"]):
        gi = GetisOrdGi(y, w, star=_is_true(star), transform=transform)
        expected = expected.set_index("POLYID").loc[w.ids]
        _close(gi.y, expected["value"])
        _close(gi.Gs, expected["G"])
        _close(gi.Zs, expected["Z"])
        _close(gi.p_norm, expected["p_norm"])
    expected = table[table.stat == "Moran_Local"].set_index("POLYID").loc[w.ids]
    lisa = LocalMoran(y, w)
    for ours, theirs in (("Is", "I"), ("EI", "EI"), ("VI", "VI"), ("Zs", "Z")):
        _close(getattr(lisa, ours), expected[theirs])


def test_values_are_aligned_by_unit_id(ref: Path) -> None:
    y, w = _desmith(ref)
    shuffled = y.sample(frac=1.0, random_state=3)
    assert not shuffled.index.equals(w.ids)
    np.testing.assert_array_equal(GetisOrdGi(shuffled, w).Zs, GetisOrdGi(y, w).Zs)
    with pytest.raises(GisError, match="same unit ids"):
        GetisOrdGi(y.rename(index=lambda i: i + 100), w)


# --------------------------------------------------------------------------------------------
# FDR and classes
# --------------------------------------------------------------------------------------------


def test_fdr_matches_hand_computation() -> None:
    # m = 4, alpha = 0.05: critical values 0.0125, 0.025, 0.0375, 0.05. Ranks 1 and 2 fail,
    # rank 3 passes (0.035 <= 0.0375), so BH (step-up) rejects ranks 1-3.
    p = np.array([0.9, 0.035, 0.02, 0.03])
    np.testing.assert_array_equal(fdr(p, 0.05), [False, True, True, True])
    # Classic example: only the two smallest pass (0.001 <= 0.005, 0.008 <= 0.010).
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    assert fdr(p, 0.05).tolist() == [True, True] + [False] * 8
    assert not fdr(np.array([0.5, 0.6]), 0.05).any()
    assert fdr(np.array([]), 0.05).shape == (0,)
    with pytest.raises(GisError):
        fdr(np.array([0.1, 1.5]), 0.05)


def test_fdr_agrees_with_esda_cut_off() -> None:
    from esda import fdr as esda_fdr

    rng = np.random.default_rng(7)
    p = np.concatenate([rng.uniform(0, 0.002, 30), rng.uniform(0, 1, 300)])
    for alpha in (0.01, 0.05, 0.1):
        np.testing.assert_array_equal(fdr(p, alpha), p <= esda_fdr(p, alpha))


def test_classify_gi_levels_with_and_without_fdr() -> None:
    z = np.array([3.0, 2.0, 1.7, 1.0, -3.0, -2.0, -1.7, 0.5])
    islands = np.array([False] * 7 + [True])
    raw = classify_gi(z, fdr=False, islands=islands)
    assert raw.tolist() == [
        "hot_99", "hot_95", "hot_90", "not_significant",
        "cold_99", "cold_95", "cold_90", "island",
    ]  # fmt: skip
    # By hand, m = 7 tested p = 0.0027 ×2, 0.0455 ×2, 0.0891 ×2, 0.3173:
    # alpha 0.01: rank 2 passes (0.0027 <= 0.00286); alpha 0.05: still only rank 2
    # (0.0455 > 0.0214 at rank 3 and 0.0891 > 0.0429 at rank 6); alpha 0.10: rank 4 passes
    # (0.0455 <= 0.0571), so |z| = 2 is significant at 90 % only.
    corrected = classify_gi(z, fdr=True, islands=islands)
    assert corrected.tolist() == [
        "hot_99", "hot_90", "not_significant", "not_significant",
        "cold_99", "cold_90", "not_significant", "island",
    ]  # fmt: skip


def _planted_grid(n_side: int = 12) -> tuple[np.ndarray, Weights]:
    rows, cols = np.divmod(np.arange(n_side * n_side), n_side)
    y = np.random.default_rng(1).uniform(0.5, 1.5, n_side * n_side)
    y[(rows < 4) & (cols < 4)] += 6.0  # a hot corner
    return y, fishnet_weights(rows, cols)


def test_gi_star_finds_planted_cluster_and_never_returns_nan() -> None:
    y, w = _planted_grid()
    gi = GetisOrdGi(y, w)
    classes = gi.classes()
    rows, cols = np.divmod(np.arange(len(y)), 12)
    core = (rows < 3) & (cols < 3)
    assert all(c.startswith("hot_") for c in classes[core])
    assert set(classes[(rows > 7) & (cols > 7)]) <= {"not_significant", "cold_90", "cold_95"}
    assert np.isfinite(gi.Zs).all() and np.isfinite(gi.p_norm).all()
    np.testing.assert_allclose(gi.p_two_sided, 2 * gi.p_norm)


def test_islands_get_their_own_class() -> None:
    rows = np.array([0, 0, 1, 1, 5])
    cols = np.array([0, 1, 0, 1, 5])
    w = fishnet_weights(rows, cols, ids=list("abcde"))
    assert list(w.islands) == ["e"]
    y = np.array([1.0, 2.0, 3.0, 4.0, 50.0])
    for star in (True, False):
        gi = GetisOrdGi(y, w, star=star)
        assert gi.Zs[4] == 0.0 and np.isfinite(gi.Zs).all()
        assert gi.classes()[4] == "island"
    lisa = LocalMoran(y, w)
    assert lisa.quadrant[4] == "island" and lisa.classes()[4] == "island"


def test_local_moran_quadrants_and_classes() -> None:
    y, w = _planted_grid()
    lisa = LocalMoran(y, w)
    assert lisa.quadrant[0] == "HH" and lisa.q[0] == 1
    classes = lisa.classes()
    assert classes[0] == "HH"
    assert set(classes) <= {"HH", "LL", "HL", "LH", "not_significant"}
    assert lisa.classes(fdr=False, alpha=0.05).tolist().count("HH") >= classes.tolist().count("HH")


def test_hotspot_table_marks_units_without_exposure() -> None:
    y, w = _planted_grid()
    values = pd.Series(y, index=w.ids, dtype="Float64")
    values.iloc[[30, 31]] = pd.NA
    table = hotspot_table(values, w)
    assert table.loc[[30, 31], "class"].tolist() == ["no_exposure", "no_exposure"]
    assert table["class"].notna().all() and table["z"].notna().all()
    assert table.loc[0, "class"].startswith("hot_")
    lisa = hotspot_table(values, w, statistic="local_moran")
    assert lisa.loc[30, "quadrant"] == "no_exposure" and lisa.loc[0, "class"] == "HH"
    assert table.attrs["weights"]["n_units"] == len(y) - 2


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def _line_weights(n: int) -> Weights:
    return fishnet_weights(np.zeros(n, dtype=int), np.arange(n), rule="rook")


@pytest.mark.parametrize(
    ("y", "n", "reason"),
    [
        (np.array([]), 0, "empty"),
        (np.array([4.0]), 1, "only 1 unit"),
        (np.array([2.0, 2.0, 2.0, 2.0]), 4, "all 4 values are equal"),
        (np.zeros(5), 5, "all 5 values are zero"),
    ],
)
def test_bad_input_gives_a_clear_error(y: np.ndarray, n: int, reason: str) -> None:
    w = _line_weights(n) if n else Weights(sp.csr_matrix((0, 0)), pd.Index([]))
    for estimator in (GetisOrdGi, LocalMoran):
        with pytest.raises(NotEnoughDataError, match=NOT_ENOUGH + ".*" + reason):
            estimator(y, w)


def test_more_bad_input() -> None:
    w = _line_weights(4)
    with pytest.raises(NotEnoughDataError, match=NOT_ENOUGH + "the selection is empty"):
        GetisOrdGi(pd.Series([], dtype=float), w)
    with pytest.raises(GisError, match="missing"):
        GetisOrdGi(np.array([1.0, np.nan, 2.0, 3.0]), w)
    with pytest.raises(GisError, match="3 values for 4 units"):
        GetisOrdGi(np.array([1.0, 2.0, 3.0]), w)
    islands = Weights(sp.csr_matrix((4, 4)), pd.RangeIndex(4))
    with pytest.raises(NotEnoughDataError, match="all are islands"):
        GetisOrdGi(np.array([1.0, 2.0, 3.0, 4.0]), islands)
    with pytest.raises(NotEnoughDataError, match=NOT_ENOUGH + "none of the 4 units has a value"):
        hotspot_table(pd.Series([pd.NA] * 4, index=w.ids, dtype="Float64"), w)
    with pytest.raises(GisError, match="transform"):
        GetisOrdGi(np.array([1.0, 2.0, 3.0, 4.0]), w, transform="V")


def test_flat_neighbourhood_gives_zero_not_nan() -> None:
    # For Gi (no star) unit 0's null has no spread: every other value is 1.
    w = _line_weights(5)
    gi = GetisOrdGi(np.array([5.0, 1.0, 1.0, 1.0, 1.0]), w, star=False)
    assert gi.Zs[0] == 0.0 and np.isfinite(gi.Zs).all()
    assert gi.classes()[0] == "not_significant"
