"""Kernel density surfaces and DBSCAN clusters of hazard and accident points, in metres.

Both project the points to a metric CRS (the UTM zone of their centre unless they are
already projected), work there, and hand polygons back in EPSG:4326.

Kernel density
--------------
:func:`kernel_density` uses the quartic (biweight) kernel of Silverman (1986, eq. 4.5), as
ArcGIS Kernel Density does: a point adds ``3 / (π h²) · (1 − (d/h)²)²`` at distance
``d < h`` and nothing beyond the bandwidth ``h``. Densities are given in points (or summed
weights) per km², evaluated at cell centres.

The default bandwidth follows ArcGIS's spatial variant of Silverman's rule of thumb::

    h = 0.9 · min(SD, sqrt(1 / ln 2) · Dm) · n^(-1/5)

where ``SD`` is the standard distance of the points about their mean centre, ``Dm`` the
median distance to the mean centre, and ``n`` the number of points (positions only,
weights ignored), all in metres. The rule chosen is reported in
:attr:`DensitySurface.bandwidth_rule`.

DBSCAN
------
:func:`dbscan_clusters` runs scikit-learn's DBSCAN on projected coordinates (``eps_m`` in
metres) and outlines each cluster with the convex (or concave) hull of its points; a
cluster whose hull is not a polygon (two points, or points in a line) is outlined by its
hull buffered by ``eps_m / 2``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry
from sklearn.cluster import DBSCAN

from gis._errors import GeometryError, GisError, NotEnoughDataError
from gis.aggregation import _area_geometry, _to_metric

__all__ = [
    "DensitySurface",
    "kernel_density",
    "silverman_bandwidth",
    "DbscanResult",
    "dbscan_clusters",
]

_MAX_RASTER_CELLS = 20_000_000
_CHUNK_ENTRIES = 4_000_000  # points × stencil cells per vectorised step
_SILVERMAN_RULE = "0.9 * min(SD, sqrt(1/ln 2) * Dm) * n^(-1/5) (ArcGIS spatial Silverman rule)"


def _point_coords(points_gdf: gpd.GeoDataFrame, what: str) -> tuple[NDArray, pyproj.CRS]:
    """Projected (n, 2) coordinates of point geometries and the metric CRS used."""
    geoms = points_gdf.geometry
    if len(geoms) == 0:
        msg = f"not enough data for {what}: no points"
        raise NotEnoughDataError(msg)
    if geoms.isna().any() or geoms.is_empty.any():
        msg = f"{int((geoms.isna() | geoms.is_empty).sum())} points have no geometry"
        raise GeometryError(msg)
    if not (geoms.geom_type == "Point").all():
        msg = f"{what} needs Point geometries, got {sorted(set(geoms.geom_type))}"
        raise GeometryError(msg)
    metric = _to_metric(geoms)
    return shapely.get_coordinates(metric.values), metric.crs


def silverman_bandwidth(xy: NDArray[np.float64]) -> float:
    """The default bandwidth in metres (see the module docstring) of ``(n, 2)`` coordinates.

    Raises
    ------
    NotEnoughDataError
        Fewer than two distinct points: the rule gives zero.
    """
    xy = np.asarray(xy, dtype=float)
    n = len(xy)
    centred = xy - xy.mean(axis=0)
    distances = np.hypot(centred[:, 0], centred[:, 1])
    standard_distance = np.sqrt((centred**2).sum(axis=1).mean()) if n else 0.0
    median_distance = float(np.median(distances)) if n else 0.0
    spread = min(standard_distance, np.sqrt(1.0 / np.log(2.0)) * median_distance)
    if n < 2 or spread <= 0:
        msg = (
            f"not enough data for a density bandwidth: {n} point(s) with no spread "
            "(half of them or more at one spot); give bandwidth_m"
        )
        raise NotEnoughDataError(msg)
    return float(0.9 * spread * n ** (-0.2))


@dataclass(frozen=True, eq=False)
class DensitySurface:
    """A kernel density raster in a metric CRS.

    Attributes
    ----------
    values : numpy.ndarray
        ``(n_rows, n_cols)`` density per km², row 0 at the north (raster order).
    transform : tuple of float
        Affine ``(a, b, c, d, e, f)`` = ``(cell_m, 0, west, 0, -cell_m, north)``: the cell
        ``(row, col)`` has its north-west corner at ``(c + col·a, f + row·e)``.
    bounds : tuple of float
        ``(west, south, east, north)`` in metres.
    crs : str
        The metric CRS.
    cell_m, bandwidth_m : float
    bandwidth_rule : str
        How the bandwidth was chosen.
    n_points : int
    """

    values: NDArray[np.float64]
    transform: tuple[float, float, float, float, float, float]
    bounds: tuple[float, float, float, float]
    crs: str
    cell_m: float
    bandwidth_m: float
    bandwidth_rule: str
    n_points: int

    def _cell_boxes(self, rows: NDArray, cols: NDArray) -> NDArray:
        west, north, size = self.transform[2], self.transform[5], self.cell_m
        left, top = west + cols * size, north - rows * size
        return shapely.box(left, top - size, left + size, top)

    def cells(self, *, min_density: float = 0.0) -> gpd.GeoDataFrame:
        """Cells with density above ``min_density`` as squares in EPSG:4326.

        Columns ``row``, ``col``, ``density`` (per km²).
        """
        rows, cols = np.nonzero(self.values > min_density)
        boxes = gpd.GeoSeries(self._cell_boxes(rows, cols), crs=self.crs).to_crs(4326)
        return gpd.GeoDataFrame(
            {"row": rows, "col": cols, "density": self.values[rows, cols]},
            geometry=boxes.values,
            crs=4326,
        )

    def contours(self, levels: tuple[float, ...] | None = None) -> gpd.GeoDataFrame:
        """Areas where the density reaches each level, as (multi)polygons in EPSG:4326.

        Outlines follow cell edges (the union of the cells at or above the level).

        Parameters
        ----------
        levels
            Densities per km²; default 25 %, 50 % and 75 % of the maximum.
        """
        peak = float(self.values.max())
        if levels is None:
            levels = tuple(peak * f for f in (0.25, 0.5, 0.75))
        records = []
        for level in sorted(levels):
            rows, cols = np.nonzero(self.values >= level)
            if len(rows) == 0 or level <= 0:
                continue
            outline = shapely.union_all(self._cell_boxes(rows, cols))
            records.append({"level": float(level), "n_cells": len(rows), "geometry": outline})
        frame = gpd.GeoDataFrame(
            records or {"level": [], "n_cells": [], "geometry": []}, crs=self.crs
        )
        return frame.to_crs(4326)


def kernel_density(
    points_gdf: gpd.GeoDataFrame,
    *,
    cell_m: float,
    bandwidth_m: float | None = None,
    weight: str | None = None,
    extent: BaseGeometry | gpd.GeoSeries | gpd.GeoDataFrame | None = None,
) -> DensitySurface:
    """Quartic kernel density of points on a square raster in metres.

    Parameters
    ----------
    points_gdf
        Points with a CRS (hazards, accidents).
    cell_m
        Raster cell side in metres.
    bandwidth_m
        Kernel radius in metres; default by the spatial Silverman rule (module docstring).
    weight
        Column to weight the points by (e.g. persons hurt); default 1 each.
    extent
        Area to cover (lon/lat polygon or GeoSeries/GeoDataFrame); default the points'
        bounding box grown by the bandwidth.

    Returns
    -------
    DensitySurface
        Raster in the metric CRS; ``.cells()`` and ``.contours()`` give EPSG:4326 layers.
    """
    if not np.isfinite(cell_m) or cell_m <= 0:
        msg = f"cell_m must be a positive number of metres, got {cell_m!r}"
        raise GisError(msg)
    xy, crs = _point_coords(points_gdf, "a density surface")
    if weight is None:
        weights = np.ones(len(xy))
    else:
        weights = pd.to_numeric(points_gdf[weight], errors="coerce").to_numpy(dtype=float)
        if not np.all(np.isfinite(weights)) or (weights < 0).any():
            msg = f"weight column {weight!r} must hold non-negative numbers"
            raise GisError(msg)
    if bandwidth_m is None:
        bandwidth_m = silverman_bandwidth(xy)
        rule = _SILVERMAN_RULE
    else:
        if not np.isfinite(bandwidth_m) or bandwidth_m <= 0:
            msg = f"bandwidth_m must be a positive number of metres, got {bandwidth_m!r}"
            raise GisError(msg)
        rule = "given"

    if extent is None:
        west, south = xy.min(axis=0) - bandwidth_m
        east, north = xy.max(axis=0) + bandwidth_m
    else:
        west, south, east, north = _area_geometry(extent).to_crs(crs).total_bounds
    west, south = np.floor(west / cell_m) * cell_m, np.floor(south / cell_m) * cell_m
    n_cols = max(int(np.ceil((east - west) / cell_m)), 1)
    n_rows = max(int(np.ceil((north - south) / cell_m)), 1)
    if n_rows * n_cols > _MAX_RASTER_CELLS:
        msg = f"a {cell_m} m raster here has {n_rows * n_cols:,} cells; use larger cells"
        raise GisError(msg)
    north = south + n_rows * cell_m
    values = _quartic_sum(xy, weights, bandwidth_m, cell_m, west, north, n_rows, n_cols)
    return DensitySurface(
        values=values * 1e6,  # per m² → per km²
        transform=(float(cell_m), 0.0, float(west), 0.0, -float(cell_m), float(north)),
        bounds=(float(west), float(south), float(west + n_cols * cell_m), float(north)),
        crs=crs.to_string(),
        cell_m=float(cell_m),
        bandwidth_m=float(bandwidth_m),
        bandwidth_rule=rule,
        n_points=len(xy),
    )


def _quartic_sum(
    xy: NDArray,
    weights: NDArray,
    h: float,
    cell: float,
    west: float,
    north: float,
    n_rows: int,
    n_cols: int,
) -> NDArray[np.float64]:
    """Sum of quartic kernels at cell centres (per m²), by a stencil around each point."""
    reach = int(np.ceil(h / cell)) + 1
    offsets = np.arange(-reach, reach + 1)
    d_row, d_col = (a.ravel() for a in np.meshgrid(offsets, offsets, indexing="ij"))
    total = np.zeros(n_rows * n_cols)
    chunk = max(_CHUNK_ENTRIES // len(d_row), 1)
    norm = 3.0 / (np.pi * h * h)
    for start in range(0, len(xy), chunk):
        x, y = xy[start : start + chunk, 0:1], xy[start : start + chunk, 1:2]
        w = weights[start : start + chunk, None]
        row = np.floor((north - y) / cell).astype(np.int64) + d_row
        col = np.floor((x - west) / cell).astype(np.int64) + d_col
        dx = west + (col + 0.5) * cell - x
        dy = north - (row + 0.5) * cell - y
        u2 = (dx * dx + dy * dy) / (h * h)
        keep = (u2 < 1.0) & (row >= 0) & (row < n_rows) & (col >= 0) & (col < n_cols)
        contribution = (w * norm * (1.0 - u2) ** 2)[keep]
        total += np.bincount(row[keep] * n_cols + col[keep], contribution, n_rows * n_cols)
    return total.reshape(n_rows, n_cols)


# --------------------------------------------------------------------------------------------
# DBSCAN
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DbscanResult:
    """DBSCAN clusters of points.

    Attributes
    ----------
    labels : pandas.Series
        Cluster number per point (index of the input), ``-1`` for noise.
    clusters : geopandas.GeoDataFrame
        One row per cluster: ``cluster``, ``n_points``, ``area_m2`` (of the outline),
        outline polygon in EPSG:4326.
    n_noise : int
        Points in no cluster.
    metric_crs : str
    eps_m : float
    min_samples : int
    """

    labels: pd.Series
    clusters: gpd.GeoDataFrame
    n_noise: int
    metric_crs: str
    eps_m: float
    min_samples: int


def dbscan_clusters(
    points_gdf: gpd.GeoDataFrame,
    *,
    eps_m: float,
    min_samples: int,
    hull: Literal["convex", "concave"] = "convex",
    concave_ratio: float = 0.3,
) -> DbscanResult:
    """DBSCAN clusters of points with distances in metres, and their outlines.

    Parameters
    ----------
    points_gdf
        Points with a CRS.
    eps_m
        Neighbourhood radius in metres.
    min_samples
        Points within ``eps_m`` (the point itself included) that make a core point.
    hull
        Outline: ``"convex"`` hull, or ``"concave"`` (``shapely.concave_hull`` with
        ``concave_ratio``; lower is tighter).
    concave_ratio
        See ``hull``.
    """
    if not np.isfinite(eps_m) or eps_m <= 0:
        msg = f"eps_m must be a positive number of metres, got {eps_m!r}"
        raise GisError(msg)
    if int(min_samples) != min_samples or min_samples < 1:
        msg = f"min_samples must be a positive integer, got {min_samples!r}"
        raise GisError(msg)
    if hull not in ("convex", "concave") or not 0.0 <= concave_ratio <= 1.0:
        msg = "hull must be 'convex' or 'concave', with concave_ratio in [0, 1]"
        raise GisError(msg)
    xy, crs = _point_coords(points_gdf, "clustering")
    labels = DBSCAN(eps=eps_m, min_samples=int(min_samples)).fit(xy).labels_
    records = []
    for cluster in range(int(labels.max()) + 1 if len(labels) else 0):
        members = shapely.multipoints(xy[labels == cluster])
        if hull == "convex":
            outline = shapely.convex_hull(members)
        else:
            outline = shapely.concave_hull(members, ratio=concave_ratio)
        if outline.geom_type != "Polygon" or outline.area <= 0:
            outline = shapely.buffer(outline, eps_m / 2.0)
        records.append(
            {
                "cluster": cluster,
                "n_points": int((labels == cluster).sum()),
                "area_m2": float(outline.area),
                "geometry": outline,
            }
        )
    columns = {"cluster": [], "n_points": [], "area_m2": [], "geometry": []}
    clusters = gpd.GeoDataFrame(records or columns, crs=crs).to_crs(4326)
    return DbscanResult(
        labels=pd.Series(labels, index=points_gdf.index, name="cluster"),
        clusters=clusters,
        n_noise=int((labels == -1).sum()),
        metric_crs=crs.to_string(),
        eps_m=float(eps_m),
        min_samples=int(min_samples),
    )
