"""Aggregation units for hotspot maps, point counts per unit, and rates.

Three kinds of unit, all returned as a GeoDataFrame in EPSG:4326 indexed by ``unit_id``:

- the official grids (网格), read elsewhere (``grid_data``) and used as they are;
- H3 hexagons (:func:`h3_units`, resolutions 8–10, h3 v4);
- a square fishnet in metres (:func:`fishnet_units`), built in a UTM zone and projected back.

:func:`count_points` puts hazards, accidents, patrol visits or active projects into the units
and reports how many points fall outside every unit. :func:`rate` turns two counts into a rate
(hazards per active project, per patrol visit); units without exposure are marked, never
given ``inf`` or ``NaN``.

Builders store how they were made in ``units.attrs`` (``unit_kind``, ``resolution`` or
``cell_m``/``metric_crs``/``n_rows``/``n_cols``) so that :mod:`gis.weights` can use the fast
neighbour rule of each kind.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pyproj
import shapely
from shapely.geometry.base import BaseGeometry

from gis._errors import CRSError, GeometryError, GisError
from gis.projection import to_metric

__all__ = [
    "H3_RESOLUTIONS",
    "h3_units",
    "fishnet_units",
    "count_points",
    "rate",
]

#: H3 resolutions offered for hotspot maps: res 8 ≈ 0.74 km², res 9 ≈ 0.11 km², res 10 ≈ 0.015 km².
H3_RESOLUTIONS = (8, 9, 10)

# A fishnet larger than this is almost surely a unit mistake (cell size in km, not m).
_MAX_FISHNET_CELLS = 5_000_000

Bounds = tuple[float, float, float, float]


# --------------------------------------------------------------------------------------------
# Metric CRS helper (shared by gis.weights and gis.density)
# --------------------------------------------------------------------------------------------


def _to_metric(data: gpd.GeoSeries | gpd.GeoDataFrame) -> gpd.GeoSeries | gpd.GeoDataFrame:
    """``data`` in a metric CRS: as is when already projected, else its UTM zone."""
    if data.crs is not None and data.crs.is_projected:
        return data
    return to_metric(data)


def _area_geometry(area: Bounds | BaseGeometry | gpd.GeoSeries | gpd.GeoDataFrame) -> gpd.GeoSeries:
    """The study area as a one-row GeoSeries in EPSG:4326 (bounds are lon/lat degrees)."""
    if isinstance(area, gpd.GeoDataFrame | gpd.GeoSeries):
        if area.crs is None:
            msg = "the study area has no CRS; set it (EPSG:4326 for lon/lat)"
            raise CRSError(msg)
        geom = shapely.union_all(area.to_crs(4326).geometry.values)
    elif isinstance(area, BaseGeometry):
        geom = area
    else:
        try:
            minx, miny, maxx, maxy = (float(v) for v in area)
        except (TypeError, ValueError) as exc:
            msg = (
                "the study area must be a polygon, a GeoSeries/GeoDataFrame "
                "or (minx, miny, maxx, maxy)"
            )
            raise GisError(msg) from exc
        if not (minx < maxx and miny < maxy):
            msg = f"bounds must be (minx, miny, maxx, maxy) with min < max, got {tuple(area)}"
            raise GisError(msg)
        geom = shapely.box(minx, miny, maxx, maxy)
    if geom is None or geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
        kind = "empty" if geom is None or geom.is_empty else geom.geom_type
        msg = f"the study area must be a non-empty polygon, got {kind}"
        raise GeometryError(msg)
    minx, miny, maxx, maxy = geom.bounds
    if not (-180.0 <= minx and maxx <= 180.0 and -90.0 <= miny and maxy <= 90.0):
        msg = f"study area bounds {geom.bounds} are not lon/lat degrees; pass EPSG:4326 data"
        raise CRSError(msg)
    return gpd.GeoSeries([geom], crs=4326)


# --------------------------------------------------------------------------------------------
# H3 hexagons
# --------------------------------------------------------------------------------------------


def _latlng_to_lonlat(ring: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """h3 speaks (lat, lng); the code base speaks (lon, lat)."""
    return [(lng, lat) for lat, lng in ring]


def _h3_polygons(cells: list[str]) -> np.ndarray:
    return shapely.polygons([_latlng_to_lonlat(h3.cell_to_boundary(c)) for c in cells])


def _h3_overlapping(area: BaseGeometry, resolution: int) -> set[str]:
    """Every cell whose hexagon intersects ``area``.

    Breadth-first from the cells holding a vertex or centred inside: the cells meeting a
    connected area are connected through shared edges, so the search misses none, even for
    parts thinner than a cell. Only stable h3 v4 calls are used.
    """
    seeds = set(h3.geo_to_cells(area, resolution))
    for lon, lat in shapely.get_coordinates(area):
        seeds.add(h3.latlng_to_cell(lat, lon, resolution))
    prepared = area
    shapely.prepare(prepared)
    found: set[str] = set()
    seen = set(seeds)
    frontier = list(seeds)
    while frontier:
        hits = shapely.intersects(prepared, _h3_polygons(frontier))
        inside = [c for c, hit in zip(frontier, hits, strict=True) if hit]
        found.update(inside)
        nxt = {n for c in inside for n in h3.grid_disk(c, 1)} - seen
        seen.update(nxt)
        frontier = list(nxt)
    return found


def h3_units(
    bounds_or_polygon: Bounds | BaseGeometry | gpd.GeoSeries | gpd.GeoDataFrame,
    resolution: int,
    *,
    contain: Literal["overlap", "center"] = "overlap",
) -> gpd.GeoDataFrame:
    """H3 hexagons covering a study area.

    Parameters
    ----------
    bounds_or_polygon
        The area: ``(min_lon, min_lat, max_lon, max_lat)``, a shapely (Multi)Polygon in
        lon/lat, or a GeoSeries/GeoDataFrame with a CRS (unioned).
    resolution
        H3 resolution, one of :data:`H3_RESOLUTIONS` (8, 9, 10).
    contain
        ``"overlap"`` (default) keeps every hexagon that touches the area, so no point of the
        area falls outside the units; ``"center"`` keeps those whose centre is inside (h3's
        own rule, which leaves slivers of the boundary uncovered).

    Returns
    -------
    geopandas.GeoDataFrame
        Index ``unit_id`` (H3 cell strings, sorted), geometry hexagons in EPSG:4326.
        ``attrs``: ``unit_kind="h3"``, ``resolution``.
    """
    if resolution not in H3_RESOLUTIONS:
        msg = f"H3 resolution must be one of {H3_RESOLUTIONS} for hotspot maps, got {resolution!r}"
        raise GisError(msg)
    if contain not in ("overlap", "center"):
        msg = f"contain must be 'overlap' or 'center', got {contain!r}"
        raise GisError(msg)
    area = _area_geometry(bounds_or_polygon).iloc[0]
    if contain == "center":
        cells = sorted(h3.geo_to_cells(area, resolution))
    else:
        cells = sorted(_h3_overlapping(area, resolution))
    units = gpd.GeoDataFrame(
        {"geometry": _h3_polygons(cells)},
        index=pd.Index(cells, name="unit_id", dtype=object),
        crs=4326,
    )
    units.attrs.update(unit_kind="h3", resolution=resolution)
    return units


# --------------------------------------------------------------------------------------------
# Square fishnet in metres
# --------------------------------------------------------------------------------------------


def fishnet_units(
    polygon: Bounds | BaseGeometry | gpd.GeoSeries | gpd.GeoDataFrame,
    cell_m: float,
    *,
    metric_crs: str | int | pyproj.CRS | None = None,
) -> gpd.GeoDataFrame:
    """Square cells of ``cell_m`` metres covering a study area.

    The grid is laid out in a metric CRS (the UTM zone of the area's centre unless
    ``metric_crs`` is given), its origin snapped to a multiple of ``cell_m`` so that the same
    cell size always gives the same cells, and every cell that intersects the area is kept
    whole (cells are not clipped: equal areas keep counts comparable).

    Parameters
    ----------
    polygon
        The area, as for :func:`h3_units` (lon/lat).
    cell_m
        Cell side in metres.
    metric_crs
        Projected CRS to build the cells in, e.g. ``"EPSG:4547"`` for Shenzhen.

    Returns
    -------
    geopandas.GeoDataFrame
        Index ``unit_id`` (``row * n_cols + col``), columns ``row`` (0 at the south), ``col``
        (0 at the west) and square geometry projected to EPSG:4326. ``attrs``:
        ``unit_kind="fishnet"``, ``cell_m``, ``metric_crs``, ``origin`` (south-west corner in
        the metric CRS), ``n_rows``, ``n_cols``.
    """
    if not np.isfinite(cell_m) or cell_m <= 0:
        msg = f"cell_m must be a positive number of metres, got {cell_m!r}"
        raise GisError(msg)
    area = _area_geometry(polygon)
    if metric_crs is None:
        area_m = _to_metric(area)
    else:
        crs = pyproj.CRS.from_user_input(metric_crs)
        if not crs.is_projected:
            msg = f"metric_crs must be a projected CRS, got {crs.to_string()}"
            raise CRSError(msg)
        area_m = area.to_crs(crs)
    minx, miny, maxx, maxy = area_m.total_bounds
    x0 = np.floor(minx / cell_m) * cell_m
    y0 = np.floor(miny / cell_m) * cell_m
    n_cols = max(int(np.ceil((maxx - x0) / cell_m)), 1)
    n_rows = max(int(np.ceil((maxy - y0) / cell_m)), 1)
    if n_rows * n_cols > _MAX_FISHNET_CELLS:
        msg = (
            f"a {cell_m} m fishnet over this area has {n_rows * n_cols:,} cells "
            f"(limit {_MAX_FISHNET_CELLS:,}); is cell_m in metres?"
        )
        raise GisError(msg)
    rows, cols = np.divmod(np.arange(n_rows * n_cols), n_cols)
    left = x0 + cols * cell_m
    bottom = y0 + rows * cell_m
    boxes = shapely.box(left, bottom, left + cell_m, bottom + cell_m)
    geom_m = area_m.iloc[0]
    shapely.prepare(geom_m)
    keep = shapely.intersects(geom_m, boxes)
    ids = rows[keep] * n_cols + cols[keep]
    units = gpd.GeoDataFrame(
        {"row": rows[keep], "col": cols[keep]},
        geometry=gpd.GeoSeries(boxes[keep], crs=area_m.crs).to_crs(4326).values,
        index=pd.Index(ids, name="unit_id"),
        crs=4326,
    )
    units.attrs.update(
        unit_kind="fishnet",
        cell_m=float(cell_m),
        metric_crs=area_m.crs.to_string(),
        origin=(float(x0), float(y0)),
        n_rows=n_rows,
        n_cols=n_cols,
    )
    return units


# --------------------------------------------------------------------------------------------
# Counting points in units
# --------------------------------------------------------------------------------------------


def count_points(
    units_gdf: gpd.GeoDataFrame,
    points_gdf: gpd.GeoDataFrame,
    *,
    weight: str | None = None,
    by: str | None = None,
) -> tuple[pd.Series | pd.DataFrame, int]:
    """Count (or sum a weight of) points per unit.

    A point on a boundary shared by two units is counted once, in the first unit in
    ``units_gdf`` order ("every place belongs to exactly one grid").

    Parameters
    ----------
    units_gdf
        Polygons, any CRS; the index names the units.
    points_gdf
        Points with a CRS; reprojected to the units' CRS when it differs.
    weight
        Column of ``points_gdf`` to sum instead of counting (e.g. severity, persons hurt).
    by
        Column of ``points_gdf`` to break the counts down by (e.g. accident type, week).

    Returns
    -------
    counts : pandas.Series or pandas.DataFrame
        A Series named ``"count"`` (or ``weight``) indexed like ``units_gdf``, zeros
        included; with ``by``, a DataFrame with one column per category.
    n_outside : int
        Number of points inside no unit (report it: they are work outside the territory
        or mislocated records).

    Raises
    ------
    CRSError
        Either layer lacks a CRS.
    GeometryError
        Points without a geometry (they cannot be placed, and are not "outside").
    """
    if units_gdf.crs is None or points_gdf.crs is None:
        which = "units" if units_gdf.crs is None else "points"
        msg = f"the {which} layer has no CRS; set it (EPSG:4326 for lon/lat)"
        raise CRSError(msg)
    for column in (weight, by):
        if column is not None and column not in points_gdf.columns:
            msg = f"points have no column {column!r}"
            raise GisError(msg)
    missing = points_gdf.geometry.isna() | points_gdf.geometry.is_empty
    if missing.any():
        msg = (
            f"{int(missing.sum())} of {len(points_gdf)} points have no geometry; "
            "geocode or drop them"
        )
        raise GeometryError(msg)
    points = points_gdf if points_gdf.crs == units_gdf.crs else points_gdf.to_crs(units_gdf.crs)
    if weight is None:
        values = np.ones(len(points))
    else:
        values = pd.to_numeric(points[weight], errors="coerce").to_numpy(dtype=float)
        if not np.all(np.isfinite(values)):
            msg = f"weight column {weight!r} has missing or non-numeric values"
            raise GisError(msg)

    point_idx, unit_idx = shapely.STRtree(units_gdf.geometry.values).query(
        points.geometry.values, predicate="intersects"
    )
    # One unit per point: the first in units order (query output is sorted by point).
    first_unit = np.full(len(points), -1, dtype=np.int64)
    if len(point_idx):
        order = np.lexsort((unit_idx, point_idx))
        point_sorted, unit_sorted = point_idx[order], unit_idx[order]
        is_first = np.r_[True, point_sorted[1:] != point_sorted[:-1]]
        first_unit[point_sorted[is_first]] = unit_sorted[is_first]
    inside = first_unit >= 0
    n_outside = int((~inside).sum())

    name = "count" if weight is None else weight
    if by is None:
        sums = np.bincount(first_unit[inside], weights=values[inside], minlength=len(units_gdf))
        if weight is None:
            sums = sums.astype(np.int64)
        return pd.Series(sums, index=units_gdf.index, name=name), n_outside

    frame = pd.DataFrame(
        {"unit": first_unit[inside], "by": points[by].to_numpy()[inside], "v": values[inside]}
    )
    table = frame.pivot_table(index="unit", columns="by", values="v", aggfunc="sum", fill_value=0)
    table = table.reindex(np.arange(len(units_gdf)), fill_value=0)
    table.index = units_gdf.index
    table.columns.name = by
    if weight is None:
        table = table.astype(np.int64)
    return table, n_outside


# --------------------------------------------------------------------------------------------
# Rates
# --------------------------------------------------------------------------------------------


def rate(
    numerator: pd.Series,
    denominator: pd.Series,
    *,
    min_denominator: float = 1.0,
) -> pd.DataFrame:
    """Rate per unit of exposure, e.g. hazards per active project or per patrol visit.

    A unit whose exposure is below ``min_denominator`` (no active project, fewer patrols
    than the minimum) has no meaningful rate: it gets ``status="no_exposure"`` and a missing
    ``rate`` (``pd.NA`` in a nullable ``Float64`` column), never ``inf`` or ``NaN``. Leave
    such units out of a hotspot test (:func:`gis.hotspots.hotspot_table` does).

    Parameters
    ----------
    numerator, denominator
        Counts per unit with the same index (e.g. from :func:`count_points`).
    min_denominator
        Smallest exposure that gives a rate. Raise it (say to 5 patrols) to keep units with
        very little exposure from producing extreme rates.

    Returns
    -------
    pandas.DataFrame
        Indexed like the inputs: ``numerator``, ``denominator``, ``rate`` (``Float64``) and
        ``status`` (``"ok"`` or ``"no_exposure"``).
    """
    if not numerator.index.equals(denominator.index):
        if set(numerator.index) != set(denominator.index) or not numerator.index.is_unique:
            msg = "numerator and denominator must be indexed by the same units"
            raise GisError(msg)
        numerator = numerator.reindex(denominator.index)
    if not np.isfinite(min_denominator) or min_denominator <= 0:
        msg = f"min_denominator must be positive, got {min_denominator!r}"
        raise GisError(msg)
    num = pd.to_numeric(numerator, errors="coerce").to_numpy(dtype=float)
    den = pd.to_numeric(denominator, errors="coerce").to_numpy(dtype=float)
    if not (np.all(np.isfinite(num)) and np.all(np.isfinite(den))):
        msg = "rate inputs have missing or non-numeric values; count zeros as 0"
        raise GisError(msg)
    if (num < 0).any() or (den < 0).any():
        msg = "rate inputs must be non-negative counts or sums"
        raise GisError(msg)
    exposed = den >= min_denominator
    values = np.zeros(len(den))
    np.divide(num, den, out=values, where=exposed)
    rates = pd.array(values, dtype="Float64")
    rates[~exposed] = pd.NA
    return pd.DataFrame(
        {
            "numerator": numerator.to_numpy(),
            "denominator": denominator.to_numpy(),
            "rate": rates,
            "status": np.where(exposed, "ok", "no_exposure"),
        },
        index=denominator.index,
    )
