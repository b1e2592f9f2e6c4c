"""Local hotspot statistics with analytic inference: Getis-Ord Gi / Gi* and Local Moran.

Estimators follow PySAL's ``esda`` (small objects, results as attributes) and reproduce its
analytic values — ``esda.G_Local(..., permutations=0)`` and the moments of
``esda.Moran_Local`` — to floating-point precision (tested against the published PySAL
reference data). Inference is analytic (normal approximation), not by permutation: it is
vectorised with :mod:`scipy.sparse`, needs no compiler (esda's permutation path compiles
with numba on first use), and takes well under a second for 100,000 cells.

Classes
-------
:func:`classify_gi` turns Gi* z-scores into the map classes ``hot_99``, ``hot_95``,
``hot_90``, ``cold_99``, ``cold_95``, ``cold_90``, ``not_significant`` (and ``island`` for
units without a neighbour), using two-sided p-values with a Benjamini–Hochberg
false-discovery-rate correction at each confidence level (:func:`fdr`), as ArcGIS's Hot Spot
Analysis does. :meth:`LocalMoran.classes` gives the LISA cluster classes ``HH`` (high-high),
``LL``, ``HL`` (high outlier among lows), ``LH`` and ``not_significant``.

What to test
------------
Test rates (hazards per active project, per patrol visit: :func:`gis.aggregation.rate`),
not raw counts, or the map shows where there is more work or more patrolling. Gi assumes
non-negative values. :func:`hotspot_table` runs a test on a Series with missing rates
(units without exposure), which get the class ``no_exposure``.

Bad input raises :class:`~gis._errors.NotEnoughDataError` with a message starting
``"not enough data for a hotspot test: "`` — never NaN classes.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr

from gis._errors import GisError, NotEnoughDataError
from gis.weights import Weights, _apply_transform

__all__ = [
    "GI_CLASSES",
    "LISA_CLASSES",
    "CONFIDENCE_LEVELS",
    "GetisOrdGi",
    "LocalMoran",
    "fdr",
    "classify_gi",
    "hotspot_table",
]

#: Confidence levels of the map classes: (suffix, two-sided alpha), strongest first.
CONFIDENCE_LEVELS = (("99", 0.01), ("95", 0.05), ("90", 0.10))
GI_CLASSES = (
    "hot_99",
    "hot_95",
    "hot_90",
    "not_significant",
    "cold_90",
    "cold_95",
    "cold_99",
    "island",
)
LISA_CLASSES = ("HH", "LL", "HL", "LH", "not_significant", "island")
_MIN_UNITS = 3


def _not_enough(reason: str) -> NotEnoughDataError:
    return NotEnoughDataError(f"not enough data for a hotspot test: {reason}")


def _two_sided(z: NDArray[np.float64]) -> NDArray[np.float64]:
    return 2.0 * ndtr(-np.abs(z))


def _check_inputs(y: ArrayLike | pd.Series, w: Weights) -> NDArray[np.float64]:
    """``y`` as a float array in the row order of ``w``, checked for a meaningful test."""
    if not isinstance(w, Weights):
        msg = f"w must be gis.weights.Weights, got {type(w).__name__}"
        raise GisError(msg)
    if isinstance(y, pd.Series):
        if len(y) == 0:
            raise _not_enough("the selection is empty (no units)")
        if not y.index.equals(w.ids):
            if not (y.index.is_unique and len(y) == w.n and y.index.isin(w.ids).all()):
                msg = "the values' index must hold the same unit ids as the weights"
                raise GisError(msg)
            y = y.reindex(w.ids)
        y = pd.to_numeric(y, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    else:
        y = np.asarray(y, dtype=float).ravel()
    n = len(y)
    if n == 0:
        raise _not_enough("the selection is empty (no units)")
    if n != w.n:
        msg = f"{n} values for {w.n} units in the weights"
        raise GisError(msg)
    missing = ~np.isfinite(y)
    if missing.any():
        msg = (
            f"{int(missing.sum())} of {n} values are missing or infinite (units without "
            "exposure?); use hotspot_table, or Weights.subset to leave them out"
        )
        raise GisError(msg)
    if n < _MIN_UNITS:
        raise _not_enough(f"only {n} unit(s); at least {_MIN_UNITS} are needed")
    if y.max() == y.min():
        if y[0] == 0:
            raise _not_enough(f"all {n} values are zero (no events in this selection or period)")
        raise _not_enough(f"all {n} values are equal ({y[0]:g}); there is no variation to test")
    if w.island_mask.all():
        raise _not_enough(f"none of the {n} units has a neighbour (all are islands)")
    return y


# --------------------------------------------------------------------------------------------
# False discovery rate
# --------------------------------------------------------------------------------------------


def _bh_thresholds(pvalues: NDArray[np.float64], alphas: tuple[float, ...]) -> list[float]:
    """Benjamini–Hochberg cut-off p-value for each alpha (-1 when nothing is rejected)."""
    m = len(pvalues)
    ranked = np.sort(pvalues)
    ranks = np.arange(1, m + 1) / m
    cut_offs = []
    for alpha in alphas:
        below = np.flatnonzero(ranked <= alpha * ranks)
        cut_offs.append(float(ranked[below[-1]]) if len(below) else -1.0)
    return cut_offs


def fdr(pvalues: ArrayLike, alpha: float = 0.05) -> NDArray[np.bool_]:
    """Benjamini–Hochberg false discovery rate control.

    With the ``m`` p-values ranked ``p(1) <= ... <= p(m)``, find the largest ``k`` with
    ``p(k) <= k * alpha / m`` and declare significant every test with ``p <= p(k)``; none
    if there is no such ``k``. (``esda.fdr`` returns the cut-off instead, with a
    Bonferroni fallback when nothing passes.)

    Parameters
    ----------
    pvalues
        P-values in [0, 1].
    alpha
        Target false discovery rate.

    Returns
    -------
    numpy.ndarray of bool
        True for the tests declared significant.
    """
    p = np.asarray(pvalues, dtype=float).ravel()
    if not 0.0 < alpha < 1.0:
        msg = f"alpha must be between 0 and 1, got {alpha!r}"
        raise GisError(msg)
    if len(p) == 0:
        return np.zeros(0, dtype=bool)
    if not (np.all(np.isfinite(p)) and p.min() >= 0.0 and p.max() <= 1.0):
        msg = "p-values must lie in [0, 1]"
        raise GisError(msg)
    return _bh_mask(p, alpha)


def _bh_mask(p: NDArray[np.float64], alpha: float) -> NDArray[np.bool_]:
    (cut_off,) = _bh_thresholds(p, (alpha,))
    return p <= cut_off


def classify_gi(
    z: ArrayLike,
    p: ArrayLike | None = None,
    *,
    fdr: bool = True,
    islands: ArrayLike | None = None,
) -> NDArray[np.str_]:
    """Map classes from Gi / Gi* z-scores.

    A unit is ``hot_99`` if ``z > 0`` and it is significant at two-sided alpha 0.01,
    else ``hot_95`` at 0.05, else ``hot_90`` at 0.10; ``cold_*`` likewise for ``z < 0``;
    otherwise ``not_significant``. With ``fdr=True`` significance at each level is decided
    by :func:`fdr` over the tested units (islands excluded), so about ``alpha`` of the
    units called hot or cold at a level are expected to be false discoveries.

    Parameters
    ----------
    z
        Z-scores.
    p
        **Two-sided** p-values (``GetisOrdGi.p_two_sided``; note that ``p_norm`` is
        esda's one-sided value); computed from ``z`` when omitted.
    fdr
        Apply the false-discovery-rate correction (default) or use the raw p-values.
    islands
        Boolean mask of units without a neighbour: class ``island``, not tested.
    """
    z = np.asarray(z, dtype=float).ravel()
    p = _two_sided(z) if p is None else np.asarray(p, dtype=float).ravel()
    tested = np.ones(len(z), dtype=bool) if islands is None else ~np.asarray(islands, bool)
    if p.shape != z.shape or tested.shape != z.shape:
        msg = "z, p and islands must have the same length"
        raise GisError(msg)
    if not (np.all(np.isfinite(z[tested])) and np.all(np.isfinite(p[tested]))):
        raise _not_enough("some z-scores or p-values are not finite")
    if tested.any() and (p[tested].min() < 0.0 or p[tested].max() > 1.0):
        msg = "p-values must lie in [0, 1]"
        raise GisError(msg)
    alphas = tuple(alpha for _, alpha in CONFIDENCE_LEVELS)
    if fdr:
        cut_offs = _bh_thresholds(p[tested], alphas) if tested.any() else [-1.0] * 3
    else:
        cut_offs = list(alphas)
    level = np.full(len(z), "", dtype=object)
    for (suffix, _), cut_off in reversed(list(zip(CONFIDENCE_LEVELS, cut_offs, strict=True))):
        level[tested & (p <= cut_off)] = suffix  # weakest first, so the strongest wins
    classes = np.full(len(z), "not_significant", dtype=object)
    significant = level != ""
    classes[significant & (z > 0)] = "hot_" + level[significant & (z > 0)]
    classes[significant & (z < 0)] = "cold_" + level[significant & (z < 0)]
    classes[~tested] = "island"
    return classes.astype(str)


# --------------------------------------------------------------------------------------------
# Getis-Ord
# --------------------------------------------------------------------------------------------


def _gi_weights(w: Weights, *, star: bool, transform: str) -> sp.csr_matrix:
    """Weights for Gi (empty diagonal) or Gi* (self weight added), then transformed.

    As esda: a missing self weight for Gi* is 1 under ``"B"`` and the row's largest weight
    under ``"R"`` (1 for contiguity weights), added before row standardisation.
    """
    matrix = w.sparse
    diagonal = matrix.diagonal()
    if not star and diagonal.any():
        matrix = matrix - sp.diags(diagonal)
    elif star and not diagonal.any():
        if transform == "B":
            self_weight = np.ones(w.n)
        else:
            self_weight = matrix.max(axis=1).toarray().ravel()
            self_weight[self_weight == 0] = 1.0  # islands: the unit alone
        matrix = matrix + sp.diags(self_weight)
    return _apply_transform(sp.csr_matrix(matrix), transform)


class GetisOrdGi:
    """Local Getis-Ord Gi or Gi* with analytic inference (as ``esda.G_Local``).

    ``Gs = sum_j w_ij y_j / sum_{j(≠i)} y_j``: the share of the total found in the unit's
    neighbourhood. Gi* (``star=True``, the hotspot standard) counts the unit itself in its
    neighbourhood and in the denominator; Gi leaves it out of both.

    Parameters
    ----------
    y
        Values per unit (rates, preferably), aligned with ``w``: an array in the row order
        of ``w``, or a Series indexed by the unit ids.
    w
        Spatial weights (binary contiguity, usually); islands are reported, not tested.
    star
        Gi* (default) or Gi.
    transform
        ``"B"`` binary (default) or ``"R"`` row-standardised. esda discourages ``"R"``
        with ``star=True``.

    Attributes
    ----------
    Gs, EGs, VGs : numpy.ndarray
        Statistic, its expectation and variance under the randomisation null.
    Zs : numpy.ndarray
        ``(Gs - EGs) / sqrt(VGs)``; set to 0 for islands (no local test: esda gives NaN
        for Gi and a self-only score for Gi*) and for units whose null variance is zero
        (every other value equal; esda gives NaN).
    p_norm : numpy.ndarray
        One-sided normal p-value of ``|Zs|``, as esda.
    p_two_sided : numpy.ndarray
        ``2 * p_norm``, the p-value used for the map classes.
    islands : numpy.ndarray of bool
        Units without a neighbour.
    """

    def __init__(
        self,
        y: ArrayLike | pd.Series,
        w: Weights,
        *,
        star: bool = True,
        transform: Literal["B", "R"] = "B",
    ) -> None:
        if transform not in ("B", "R"):
            msg = f"transform must be 'B' or 'R', got {transform!r}"
            raise GisError(msg)
        y = _check_inputs(y, w)
        total = y.sum()
        if total <= 0:
            raise _not_enough(f"the values sum to {total:g}; Gi needs non-negative values")
        self.y = y
        self.n = len(y)
        self.star = bool(star)
        self.transform = transform
        self.w = Weights(_gi_weights(w, star=self.star, transform=transform), w.ids, transform)
        self.islands = w.island_mask.copy()
        self._calc()

    def _calc(self) -> None:
        y, matrix = self.y, self.w.sparse
        remove_self = 0.0 if self.star else 1.0
        n_others = self.n - remove_self
        with np.errstate(divide="ignore", invalid="ignore"):
            others_sum = y.sum() - y * remove_self
            self.Gs = (matrix @ y) / others_sum
            mean = others_sum / n_others
            mean_of_squares = ((y * y).sum() - y * y * remove_self) / n_others
            variance = mean_of_squares - mean * mean
            cardinality = np.asarray(matrix.sum(axis=1)).ravel()
            self.EGs = cardinality / n_others
            self.VGs = (cardinality * (n_others - cardinality) / (n_others - 1) / n_others**2) * (
                variance / mean**2
            )
            zs = (self.Gs - self.EGs) / np.sqrt(self.VGs)
        # No test where the unit has no neighbour, or where the null has no spread (every
        # other value equal, so the neighbourhood sum is fixed).
        flat = ~np.isfinite(zs) | (variance <= 1e-12 * np.abs(mean_of_squares))
        zs[self.islands | flat] = 0.0
        self.Zs = zs
        self.p_norm = ndtr(-np.abs(zs))
        self.p_two_sided = 2.0 * self.p_norm

    def classes(self, *, fdr: bool = True) -> NDArray[np.str_]:
        """Map classes (:func:`classify_gi`) of the units, islands as ``island``."""
        return classify_gi(self.Zs, self.p_two_sided, fdr=fdr, islands=self.islands)


# --------------------------------------------------------------------------------------------
# Local Moran
# --------------------------------------------------------------------------------------------


class LocalMoran:
    """Local Moran's I (LISA) with analytic moments (as ``esda.Moran_Local``).

    ``Is = (n - 1) z_i sum_j w_ij z_j / sum_k z_k^2`` with ``z`` the values standardised with
    the population standard deviation. Moments under total randomisation (Sokal et al. 1998,
    A3 & A4*: ``EI``, ``VI``) and conditional randomisation (A7 & A8: ``EIc``, ``VIc``).
    The normal approximation is rough for LISA; use FDR-corrected classes.

    Parameters
    ----------
    y
        Values per unit, aligned with ``w`` (array or Series indexed by unit ids).
    w
        Spatial weights.
    transform
        ``"R"`` row-standardised (default, the usual LISA) or ``"B"``.

    Attributes
    ----------
    Is, EI, VI, EIc, VIc : numpy.ndarray
        Statistic and its moments.
    Zs : numpy.ndarray
        ``(Is - EI) / sqrt(VI)``; 0 for islands.
    p_norm, p_two_sided : numpy.ndarray
        One-sided and two-sided normal p-values of ``Zs``.
    q : numpy.ndarray of int
        esda's quadrant codes: 1 HH, 2 LH, 3 LL, 4 HL.
    quadrant : numpy.ndarray of str
        ``"HH"``, ``"LH"``, ``"LL"``, ``"HL"``, or ``"island"``.
    islands : numpy.ndarray of bool
        Units without a neighbour.
    """

    def __init__(
        self, y: ArrayLike | pd.Series, w: Weights, *, transform: Literal["B", "R"] = "R"
    ) -> None:
        if transform not in ("B", "R"):
            msg = f"transform must be 'B' or 'R', got {transform!r}"
            raise GisError(msg)
        y = _check_inputs(y, w)
        self.y = y
        self.n = n = len(y)
        self.transform = transform
        matrix = w.sparse
        if matrix.diagonal().any():
            matrix = matrix - sp.diags(matrix.diagonal())
        self.w = Weights(_apply_transform(sp.csr_matrix(matrix), transform), w.ids, transform)
        self.islands = w.island_mask.copy()
        z = (y - y.mean()) / y.std()
        self.z = z
        matrix = self.w.sparse
        lag = matrix @ z
        self.Is = (n - 1) * z * lag / (z * z).sum()

        m2 = (z * z).sum() / n
        wi = np.asarray(matrix.sum(axis=1)).ravel()
        wi2 = np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel()
        self.EIc = -(z**2 * wi) / ((n - 1) * m2)
        self.VIc = (z / m2) ** 2 * (n / (n - 2)) * (wi2 - wi**2 / (n - 1)) * (m2 - z**2 / (n - 1))
        b2 = ((z**4).sum() / n) / m2**2
        self.EI = -wi / (n - 1)
        self.VI = (
            wi2 * (n - b2) / (n - 1)
            + (wi**2 - wi2) * (2 * b2 - n) / ((n - 1) * (n - 2))
            - (wi / (n - 1)) ** 2
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            zs = (self.Is - self.EI) / np.sqrt(self.VI)
        zs[self.islands | ~np.isfinite(zs)] = 0.0
        self.Zs = zs
        self.p_norm = ndtr(-np.abs(zs))
        self.p_two_sided = 2.0 * self.p_norm

        high, lag_high = z > 0, lag > 0
        self.q = np.select([high & lag_high, ~high & lag_high, ~high & ~lag_high], [1, 2, 3], 4)
        quadrant = np.array(["HH", "LH", "LL", "HL"], dtype=object)[self.q - 1]
        quadrant[self.islands] = "island"
        self.quadrant = quadrant.astype(str)

    def classes(self, *, alpha: float = 0.05, fdr: bool = True) -> NDArray[np.str_]:
        """LISA cluster classes: the quadrant where significant, else ``not_significant``.

        Significance is two-sided at ``alpha``, FDR-corrected over the non-island units
        when ``fdr`` is true.
        """
        tested = ~self.islands
        significant = np.zeros(self.n, dtype=bool)
        if fdr:
            significant[tested] = _bh_mask(self.p_two_sided[tested], alpha)
        else:
            significant = tested & (self.p_two_sided <= alpha)
        classes = np.where(significant, self.quadrant, "not_significant").astype(object)
        classes[self.islands] = "island"
        return classes.astype(str)


# --------------------------------------------------------------------------------------------
# One call for a map layer
# --------------------------------------------------------------------------------------------


def hotspot_table(
    values: pd.Series,
    w: Weights,
    *,
    statistic: Literal["gi_star", "local_moran"] = "gi_star",
    fdr: bool = True,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Hotspot classes for a map: one row per unit of ``w``.

    Units whose value is missing (``pd.NA``/NaN: no exposure, see
    :func:`gis.aggregation.rate`) get the class ``no_exposure`` and are left out of the
    test (their neighbours may become islands).

    Parameters
    ----------
    values
        Rates (or, deliberately, counts) indexed by the unit ids of ``w``.
    w
        Spatial weights over all units.
    statistic
        ``"gi_star"`` (binary weights, classes hot/cold 99/95/90) or ``"local_moran"``
        (row-standardised, LISA classes at ``alpha``).
    fdr
        False-discovery-rate correction (default).
    alpha
        Significance for the LISA classes (Gi* classes use the three fixed levels).

    Returns
    -------
    pandas.DataFrame
        Index the unit ids; ``value``, ``z``, ``p`` (two-sided), ``class``, ``n_neighbours``
        (within the tested units), and for LISA ``quadrant``. ``attrs["weights"]`` holds
        :meth:`Weights.describe` of the tested units.
    """
    if statistic not in ("gi_star", "local_moran"):
        msg = f"statistic must be 'gi_star' or 'local_moran', got {statistic!r}"
        raise GisError(msg)
    if len(values) == 0:
        raise _not_enough("the selection is empty (no units)")
    if not (values.index.is_unique and len(values) == w.n and values.index.isin(w.ids).all()):
        msg = "values must be indexed by the unit ids of the weights, one value per unit"
        raise GisError(msg)
    values = pd.to_numeric(values.reindex(w.ids), errors="coerce").astype("Float64")
    has_value = values.notna().to_numpy() & np.isfinite(values.to_numpy(float, na_value=0.0))
    if not has_value.any():
        raise _not_enough(f"none of the {w.n} units has a value (no exposure anywhere)")
    tested_w = w if has_value.all() else w.subset(w.ids[has_value])
    y = values[has_value].to_numpy(dtype=float)

    table = pd.DataFrame(
        {
            "value": values,
            "z": 0.0,
            "p": 1.0,
            "class": "no_exposure",
            "n_neighbours": 0,
        },
        index=w.ids,
    )
    if statistic == "gi_star":
        result: GetisOrdGi | LocalMoran = GetisOrdGi(y, tested_w, star=True, transform="B")
        classes = result.classes(fdr=fdr)
    else:
        result = LocalMoran(y, tested_w, transform="R")
        classes = result.classes(alpha=alpha, fdr=fdr)
        table["quadrant"] = "no_exposure"
        table.loc[has_value, "quadrant"] = result.quadrant
    table.loc[has_value, "z"] = result.Zs
    table.loc[has_value, "p"] = result.p_two_sided
    table.loc[has_value, "class"] = classes
    table.loc[has_value, "n_neighbours"] = tested_w.cardinalities
    table.attrs["weights"] = tested_w.describe()
    table.attrs["statistic"] = statistic
    table.attrs["fdr"] = fdr
    return table
