"""Hot spots over time: weekly or monthly bins, emerging hot spot classes, two-period change.

The space-time cube here is a table: one row per unit, one column per time bin (weekly or
monthly :class:`pandas.Period`), holding counts or rates. :func:`space_time_counts` builds it
from points. :class:`EmergingHotSpots` runs Gi* (binary weights, analytic, see
:mod:`gis.hotspots`) on every bin and classifies each unit's series of results.

Rules (simplified from ArcGIS Emerging Hot Spot Analysis)
---------------------------------------------------------
In each bin a unit is *hot* (*cold*) when its Gi* z-score is positive (negative) and
significant at two-sided ``alpha`` (default 0.05), with the Benjamini–Hochberg FDR
correction over the units of that bin. Unlike ArcGIS the neighbourhood is spatial only (no
earlier time steps in it). The *trend* is the Mann–Kendall test on the unit's series of
Gi* z-scores, significant at two-sided ``alpha``. With ``T`` bins, "final" the last bin:

=====================  ======================================================================
class                  rule (hot; ``*_cold`` is the mirror image, trend directions swapped)
=====================  ======================================================================
``new_hot``            hot in the final bin and never before
``consecutive_hot``    hot in an unbroken run of two or more bins ending with the final bin,
                       never hot before the run, hot in less than 90 % of bins
``intensifying_hot``   hot in at least 90 % of bins including the final one, and a
                       significant upward trend
``persistent_hot``     hot in at least 90 % of bins including the final one, no significant
                       trend
``diminishing_hot``    hot in at least 90 % of bins including the final one, and a
                       significant downward trend
``sporadic_hot``       hot in some bins (less than 90 %), never cold, not new/consecutive
``oscillating_hot``    hot in the final bin, cold in some earlier bin, hot in less than 90 %
``historical_hot``     not hot in the final bin, but hot in at least 90 % of bins
``no_pattern``         none of the above
``island``             no neighbour: not tested
=====================  ======================================================================

Hot classes are tried before cold ones, so a unit hot in the final bin gets a hot class.
At least :data:`MIN_BINS` bins are required (ArcGIS requires 10 too): with fewer the trend
test means little. A bin without any event makes Gi* undefined, which raises a
:class:`~gis._errors.NotEnoughDataError` naming the bin: use longer bins (months, not weeks).

:func:`compare_periods` compares two periods (say this quarter against last) unit by unit.
"""

from __future__ import annotations

from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr

from gis._errors import GisError, NotEnoughDataError
from gis.aggregation import count_points
from gis.hotspots import GetisOrdGi, _bh_mask, _not_enough, classify_gi
from gis.weights import Weights

__all__ = [
    "MIN_BINS",
    "EMERGING_CLASSES",
    "time_bins",
    "space_time_counts",
    "mann_kendall",
    "EmergingHotSpots",
    "compare_periods",
]

MIN_BINS = 10
_MOST = 0.9
_PATTERNS = (
    "new",
    "consecutive",
    "intensifying",
    "persistent",
    "diminishing",
    "sporadic",
    "oscillating",
    "historical",
)
EMERGING_CLASSES = tuple(f"{p}_{side}" for side in ("hot", "cold") for p in _PATTERNS) + (
    "no_pattern",
    "island",
)
_LOCAL_TZ = "Asia/Shanghai"
_FREQS = {"W": "W-SUN", "M": "M"}  # weeks Monday to Sunday


def time_bins(times: pd.Series | pd.DatetimeIndex, *, freq: Literal["W", "M"]) -> pd.Series:
    """Weekly (Monday–Sunday) or monthly period of each timestamp, in China local time.

    Time-zone aware timestamps are converted to Asia/Shanghai first; naive ones are taken
    as local time already.
    """
    if freq not in _FREQS:
        msg = f"freq must be 'W' (weeks) or 'M' (months), got {freq!r}"
        raise GisError(msg)
    stamps = pd.Series(pd.to_datetime(times))
    if stamps.isna().any():
        msg = f"{int(stamps.isna().sum())} timestamps are missing"
        raise GisError(msg)
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_convert(_LOCAL_TZ).dt.tz_localize(None)
    return stamps.dt.to_period(_FREQS[freq])


def space_time_counts(
    units_gdf: gpd.GeoDataFrame,
    points_gdf: gpd.GeoDataFrame,
    *,
    time_col: str,
    freq: Literal["W", "M"] = "M",
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    weight: str | None = None,
) -> tuple[pd.DataFrame, int]:
    """Points counted per unit and time bin: the space-time cube.

    Parameters
    ----------
    units_gdf, points_gdf, weight
        As for :func:`gis.aggregation.count_points`.
    time_col
        Column of ``points_gdf`` with the event time.
    freq
        ``"W"`` weeks (Monday–Sunday) or ``"M"`` months.
    start, end
        Period covered (inclusive); default the first and last event. Points outside are
        dropped; bins without any point are kept, as zeros.

    Returns
    -------
    cube : pandas.DataFrame
        Index the unit ids, one column per period in order.
    n_outside : int
        Points (within the period) in no unit.
    """
    if time_col not in points_gdf.columns:
        msg = f"points have no column {time_col!r}"
        raise GisError(msg)
    if len(points_gdf) == 0 and (start is None or end is None):
        raise _not_enough("no points, and no start and end to lay out the bins")
    periods = time_bins(points_gdf[time_col], freq=freq)
    first = periods.min() if start is None else pd.Period(pd.Timestamp(start), _FREQS[freq])
    last = periods.max() if end is None else pd.Period(pd.Timestamp(end), _FREQS[freq])
    if last < first:
        msg = f"end {last} is before start {first}"
        raise GisError(msg)
    within = ((periods >= first) & (periods <= last)).to_numpy()
    points = points_gdf.loc[within].assign(_period=periods[within].to_numpy())
    table, n_outside = count_points(units_gdf, points, weight=weight, by="_period")
    bins = pd.period_range(first, last, freq=_FREQS[freq])
    cube = table.reindex(columns=bins, fill_value=0)
    cube.columns.name = "period"
    return cube, n_outside


def mann_kendall(series: ArrayLike) -> tuple[NDArray, NDArray, NDArray]:
    """Mann–Kendall trend test on each row of a 2-d array (columns in time order).

    ``S = Σ_{k<l} sign(x_l − x_k)``; its variance, corrected for ties,
    ``(T(T−1)(2T+5) − Σ t(t−1)(2t+5)) / 18``; ``z = (S − sign S) / sqrt(var)`` (continuity
    correction), 0 when the variance is 0.

    Returns
    -------
    s, z, p : numpy.ndarray
        Statistic, z-score and two-sided normal p-value per row.
    """
    x = np.atleast_2d(np.asarray(series, dtype=float))
    n_rows, t = x.shape
    s = np.zeros(n_rows)
    for lag in range(1, t):
        s += np.sign(x[:, lag:] - x[:, :-lag]).sum(axis=1)
    ordered = np.sort(x, axis=1)
    starts = np.ones_like(ordered, dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    run_id = np.cumsum(starts.ravel()) - 1
    run_length = np.bincount(run_id).astype(float)
    run_row = np.flatnonzero(starts.ravel()) // t
    ties = np.bincount(
        run_row, run_length * (run_length - 1) * (2 * run_length + 5), minlength=n_rows
    )
    variance = (t * (t - 1) * (2 * t + 5) - ties) / 18.0
    z = np.zeros(n_rows)
    positive = variance > 0
    z[positive] = (s[positive] - np.sign(s[positive])) / np.sqrt(variance[positive])
    return s, z, 2.0 * ndtr(-np.abs(z))


def _significant(zs: NDArray, islands: NDArray, alpha: float, fdr: bool) -> NDArray[np.bool_]:
    p = 2.0 * ndtr(-np.abs(zs))
    tested = ~islands
    out = np.zeros(len(zs), dtype=bool)
    out[tested] = _bh_mask(p[tested], alpha) if fdr else p[tested] <= alpha
    return out


def _patterns(
    hot: NDArray[np.bool_], cold: NDArray[np.bool_], trend_up: NDArray, trend_down: NDArray
) -> NDArray[np.object_]:
    """Emerging class of each row for the ``hot`` side (``cold`` is the opposite side)."""
    n_rows, t = hot.shape
    n_hot = hot.sum(axis=1)
    final = hot[:, -1]
    mostly = n_hot >= _MOST * t
    # Length of the run of hot bins ending with the final bin.
    not_hot_from_end = ~hot[:, ::-1]
    final_run = np.where(not_hot_from_end.any(axis=1), not_hot_from_end.argmax(axis=1), t)
    ever_cold = cold.any(axis=1)
    out = np.full(n_rows, "", dtype=object)
    rules = [
        (mostly & final & trend_up, "intensifying"),
        (mostly & final & trend_down, "diminishing"),
        (mostly & final, "persistent"),
        (mostly & ~final, "historical"),
        (final & (n_hot == 1), "new"),
        (final & (final_run >= 2) & (final_run == n_hot), "consecutive"),
        (final & ever_cold, "oscillating"),
        ((n_hot > 0) & ~ever_cold, "sporadic"),
    ]
    for mask, name in rules:
        out[mask & (out == "")] = name
    return out


class EmergingHotSpots:
    """Gi* per time bin and the emerging hot spot class of each unit (module docstring).

    Parameters
    ----------
    cube
        Units × bins (columns in time order), counts or rates; index the unit ids of ``w``.
    w
        Spatial weights.
    alpha
        Two-sided significance for hot/cold in a bin and for the trend.
    fdr
        Benjamini–Hochberg correction within each bin (default).

    Attributes
    ----------
    z : pandas.DataFrame
        Gi* z-score per unit and bin.
    hot, cold : pandas.DataFrame of bool
        Significant hot / cold per unit and bin.
    trend_z, trend_p : pandas.Series
        Mann–Kendall z and two-sided p of each unit's z-score series.
    category : pandas.Series
        One of :data:`EMERGING_CLASSES` per unit.
    """

    def __init__(
        self, cube: pd.DataFrame, w: Weights, *, alpha: float = 0.05, fdr: bool = True
    ) -> None:
        if not 0.0 < alpha < 1.0:
            msg = f"alpha must be between 0 and 1, got {alpha!r}"
            raise GisError(msg)
        if cube.shape[1] < MIN_BINS:
            raise _not_enough(
                f"{cube.shape[1]} time bin(s); at least {MIN_BINS} are needed for a trend"
            )
        if len(cube) == 0:
            raise _not_enough("the selection is empty (no units)")
        if not cube.index.equals(w.ids):
            if not (cube.index.is_unique and len(cube) == w.n and cube.index.isin(w.ids).all()):
                msg = "the cube's index must hold the unit ids of the weights"
                raise GisError(msg)
            cube = cube.reindex(w.ids)
        z = np.empty(cube.shape)
        for k, period in enumerate(cube.columns):
            try:
                z[:, k] = GetisOrdGi(cube[period].to_numpy(float), w, star=True).Zs
            except NotEnoughDataError as exc:
                reason = str(exc).removeprefix("not enough data for a hotspot test: ")
                msg = f"period {period}: {reason}; use longer bins or a shorter span"
                raise _not_enough(msg) from exc
        islands = w.island_mask
        hot = np.empty(z.shape, dtype=bool)
        for k in range(z.shape[1]):
            hot[:, k] = _significant(z[:, k], islands, alpha, fdr)
        cold = hot & (z < 0)
        hot &= z > 0
        _, trend_z, trend_p = mann_kendall(z)
        trend = trend_p <= alpha
        category = _patterns(hot, cold, trend & (trend_z > 0), trend & (trend_z < 0))
        cold_category = _patterns(cold, hot, trend & (trend_z < 0), trend & (trend_z > 0))
        named = np.full(len(z), "no_pattern", dtype=object)
        named[cold_category != ""] = cold_category[cold_category != ""] + "_cold"
        named[category != ""] = category[category != ""] + "_hot"  # hot before cold
        named[islands] = "island"

        self.alpha, self.fdr, self.periods = alpha, fdr, cube.columns
        self.z = pd.DataFrame(z, index=w.ids, columns=cube.columns)
        self.hot = pd.DataFrame(hot, index=w.ids, columns=cube.columns)
        self.cold = pd.DataFrame(cold, index=w.ids, columns=cube.columns)
        self.trend_z = pd.Series(trend_z, index=w.ids, name="trend_z")
        self.trend_p = pd.Series(trend_p, index=w.ids, name="trend_p")
        self.category = pd.Series(named.astype(str), index=w.ids, name="category")


def compare_periods(
    y_a: ArrayLike | pd.Series,
    y_b: ArrayLike | pd.Series,
    w: Weights,
    *,
    alpha: float = 0.05,
    fdr: bool = True,
) -> pd.DataFrame:
    """Compare Gi* hot spots of two periods (a: earlier, b: later) unit by unit.

    A unit is hot (cold) in a period when its Gi* class is hot (cold) at a confidence level
    of ``1 − alpha`` or stronger (:func:`gis.hotspots.classify_gi`, FDR-corrected). Change
    classes: ``new_hot`` (hot in b only), ``persisting_hot`` (both), ``ceased_hot`` (a only,
    b not significant), ``hot_to_cold`` (a hot, b cold) and the cold mirror images
    ``new_cold``, ``persisting_cold``, ``ceased_cold``, ``cold_to_hot``; ``none``;
    ``island``.

    Returns
    -------
    pandas.DataFrame
        Index the unit ids; ``z_a``, ``z_b``, ``class_a``, ``class_b``, ``change``.
    """
    levels = {"99": 0.01, "95": 0.05, "90": 0.10}
    if alpha not in levels.values():
        msg = f"alpha must be one of {sorted(levels.values())} (the map's levels), got {alpha!r}"
        raise GisError(msg)
    results = []
    for name, y in (("a", y_a), ("b", y_b)):
        try:
            results.append(GetisOrdGi(y, w, star=True))
        except NotEnoughDataError as exc:
            reason = str(exc).removeprefix("not enough data for a hotspot test: ")
            raise _not_enough(f"period {name}: {reason}") from exc
    classes = [classify_gi(r.Zs, r.p_two_sided, fdr=fdr, islands=r.islands) for r in results]

    def side(cls: NDArray, kind: str) -> NDArray[np.bool_]:
        wanted = [f"{kind}_{s}" for s, a in levels.items() if a <= alpha]
        return np.isin(cls, wanted)

    hot_a, hot_b = side(classes[0], "hot"), side(classes[1], "hot")
    cold_a, cold_b = side(classes[0], "cold"), side(classes[1], "cold")
    rules = [  # first match wins
        (hot_a & hot_b, "persisting_hot"),
        (hot_a & cold_b, "hot_to_cold"),
        (hot_a, "ceased_hot"),
        (cold_a & hot_b, "cold_to_hot"),
        (hot_b, "new_hot"),
        (cold_a & cold_b, "persisting_cold"),
        (cold_a, "ceased_cold"),
        (cold_b, "new_cold"),
    ]
    change = np.select([m for m, _ in rules], [c for _, c in rules], "none").astype(object)
    change[results[0].islands] = "island"
    return pd.DataFrame(
        {
            "z_a": results[0].Zs,
            "z_b": results[1].Zs,
            "class_a": classes[0],
            "class_b": classes[1],
            "change": change.astype(str),
        },
        index=w.ids,
    )
