"""Snap sites to the nearest road EDGE of a :class:`~gis.roads.RoadNetwork`.

A construction site lies beside a street, rarely at an intersection: snapping to the nearest
node would add or remove up to half a block of travel. Sites are snapped to the nearest point
of the nearest street instead, found with a :class:`shapely.STRtree` over the street
geometries projected to the network's metric CRS ("project, operate, project back").

Only one edge per street is indexed (see :attr:`~gis.roads.RoadNetwork.edge_is_canonical`);
:mod:`gis.matrix` reaches the point from either end of the street when its twin exists.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from pyproj import Transformer

from gis._errors import GisError
from gis.roads import RoadNetwork

__all__ = ["EdgeSnap", "snap_to_edges", "DEFAULT_MAX_SNAP_M"]

DEFAULT_MAX_SNAP_M = 250.0
"""Sites farther than this from every street are flagged unreachable (an error in the
coordinates, or a site inside a closed campus whose roads are not mapped)."""


@dataclass(frozen=True, eq=False)
class EdgeSnap:
    """Where each site meets the road network.

    Attributes
    ----------
    edge
        Index of the (canonical) edge per site, -1 where unreachable.
    fraction
        Position along the edge from ``u`` (0) to ``v`` (1); NaN where unreachable.
    distance_m
        Straight distance from the site to the road, metres; NaN where unreachable.
    reachable
        True where a road lies within ``max_distance_m``.
    snapped_lon, snapped_lat
        The snapped point on the road, WGS84; NaN where unreachable.
    max_distance_m
        The threshold used.
    """

    edge: NDArray[np.int64]
    fraction: NDArray[np.float64]
    distance_m: NDArray[np.float64]
    reachable: NDArray[np.bool_]
    snapped_lon: NDArray[np.float64]
    snapped_lat: NDArray[np.float64]
    max_distance_m: float

    def __len__(self) -> int:
        return int(self.edge.size)


@dataclass(eq=False)
class _MetricEdges:
    """Edge geometries of a network in its metric CRS, with an STRtree over canonical edges."""

    lines: NDArray[np.object_]  # every edge, metric, u -> v
    canonical: NDArray[np.int64]  # edge index of each tree item
    tree: shapely.STRtree
    to_metric: Transformer
    to_wgs84: Transformer


_CACHE: weakref.WeakKeyDictionary[RoadNetwork, _MetricEdges] = weakref.WeakKeyDictionary()


def _metric_edges(network: RoadNetwork) -> _MetricEdges:
    """The projected edges of ``network``, built once per network object."""
    cached = _CACHE.get(network)
    if cached is not None:
        return cached
    to_metric = Transformer.from_crs("EPSG:4326", network.metric_crs, always_xy=True)
    to_wgs84 = Transformer.from_crs(network.metric_crs, "EPSG:4326", always_xy=True)
    lines = _transform(network.edge_geometry, to_metric)
    canonical = np.flatnonzero(network.edge_is_canonical)
    built = _MetricEdges(
        lines=lines,
        canonical=canonical,
        tree=shapely.STRtree(lines[canonical]),
        to_metric=to_metric,
        to_wgs84=to_wgs84,
    )
    _CACHE[network] = built
    return built


def _transform(geoms: NDArray[np.object_], transformer: Transformer) -> NDArray[np.object_]:
    def _xy(coords: NDArray) -> NDArray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, _xy)


def snap_to_edges(
    network: RoadNetwork,
    lon: ArrayLike,
    lat: ArrayLike,
    *,
    max_distance_m: float = DEFAULT_MAX_SNAP_M,
) -> EdgeSnap:
    """Snap (lon, lat) points to the nearest edge of ``network``.

    Parameters
    ----------
    network
        The road network (every edge of it is reachable: it is strongly connected).
    lon, lat
        WGS84 coordinates of the sites, 1-D arrays of one length. NaN marks a site without
        coordinates; it comes back unreachable.
    max_distance_m
        Sites farther than this from every edge are flagged unreachable.

    Returns
    -------
    EdgeSnap
    """
    lon_arr = np.atleast_1d(np.asarray(lon, dtype=float))
    lat_arr = np.atleast_1d(np.asarray(lat, dtype=float))
    if lon_arr.ndim != 1 or lon_arr.shape != lat_arr.shape:
        msg = (
            f"lon and lat must be 1-D arrays of one length, got {lon_arr.shape} and {lat_arr.shape}"
        )
        raise GisError(msg)
    if not (np.isfinite(max_distance_m) and max_distance_m > 0):
        msg = f"max_distance_m must be a positive number of metres, got {max_distance_m!r}"
        raise GisError(msg)
    valid = np.isfinite(lon_arr) & np.isfinite(lat_arr)
    bad = valid & ((np.abs(lon_arr) > 180) | (np.abs(lat_arr) > 90))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        msg = f"site {i} at ({lon_arr[i]}, {lat_arr[i]}) is not a WGS84 lon/lat"
        raise GisError(msg)
    n = lon_arr.size
    edge = np.full(n, -1, dtype=np.int64)
    fraction = np.full(n, np.nan)
    distance = np.full(n, np.nan)
    snapped_lon = np.full(n, np.nan)
    snapped_lat = np.full(n, np.nan)
    metric = _metric_edges(network)
    idx = np.flatnonzero(valid)
    if idx.size:
        x, y = metric.to_metric.transform(lon_arr[idx], lat_arr[idx])
        points = shapely.points(x, y)
        (point_pos, tree_pos), dist = metric.tree.query_nearest(
            points, max_distance=max_distance_m, return_distance=True, all_matches=False
        )
        sites = idx[point_pos]
        edges = metric.canonical[tree_pos]
        lines = metric.lines[edges]
        frac = shapely.line_locate_point(lines, points[point_pos], normalized=True)
        frac = np.clip(np.nan_to_num(frac, nan=0.0), 0.0, 1.0)
        on_road = shapely.get_coordinates(
            shapely.line_interpolate_point(lines, frac, normalized=True)
        )
        s_lon, s_lat = metric.to_wgs84.transform(on_road[:, 0], on_road[:, 1])
        edge[sites] = edges
        fraction[sites] = frac
        distance[sites] = dist
        snapped_lon[sites] = s_lon
        snapped_lat[sites] = s_lat
    return EdgeSnap(
        edge=edge,
        fraction=fraction,
        distance_m=distance,
        reachable=edge >= 0,
        snapped_lon=snapped_lon,
        snapped_lat=snapped_lat,
        max_distance_m=float(max_distance_m),
    )
