"""Many-to-many travel times and distances between sites, and the road path of a route.

With a road network, every point is first snapped to a street (:mod:`gis.snapping`) and
becomes a *virtual node* on that edge: from a point at fraction ``f`` of edge ``u → v`` one
leaves towards ``v`` at cost ``(1 - f)·t`` or, if the street is two-way for the mode, towards
``u`` at cost ``f·t`` along the twin edge; one arrives the mirror way. Two points on the same
street may also travel directly along it. Node-to-node costs come from
:func:`scipy.sparse.csgraph.dijkstra` run once from each distinct exit node, so the matrix is
exact for edge-snapped endpoints and honours one-way streets where the mode does.

Without a network (none loaded for the district yet) the fallback is the great-circle
distance times a detour factor (default 1.3, typical of dense Chinese street grids) at the
mode's speed; the result then says ``method='straight_line'`` so the caller can tell the user
the times are estimates.

The travel time of the fastest path is stored in seconds and its length in metres; a
network has one speed per mode, so the fastest path is also the shortest.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from scipy.sparse.csgraph import dijkstra
from shapely.ops import substring

from gis._errors import GisError
from gis.roads import DEFAULT_SPEEDS_KMH, MODES, RoadNetwork
from gis.snapping import DEFAULT_MAX_SNAP_M, EdgeSnap, _metric_edges, snap_to_edges

__all__ = [
    "DEFAULT_DETOUR_FACTOR",
    "TravelMatrix",
    "travel_matrix",
    "route_geometry",
    "haversine_m",
]

logger = logging.getLogger(__name__)

DEFAULT_DETOUR_FACTOR = 1.3
"""Road distance / great-circle distance assumed when no road network is loaded."""

_EARTH_RADIUS_M = 6_371_008.8
# Path choices stored per (from, to) pair: 0..3 = exit a, entry b as 2a + b through nodes;
# 4 = along the shared edge forwards, 5 = along its twin (backwards); -1 = none.
_DIRECT_FORWARD = 4
_DIRECT_BACKWARD = 5


@dataclass(eq=False)
class _PathData:
    exit_node: NDArray[np.int64]  # (n, 2)
    entry_node: NDArray[np.int64]  # (n, 2)
    row_of_node: NDArray[np.int64]  # node -> row of predecessors, -1 if not a source
    predecessors: NDArray[np.int32]  # (n_sources, n_nodes)
    choice: NDArray[np.int8]  # (n, n)


@dataclass(frozen=True, eq=False)
class TravelMatrix:
    """Travel times and distances between points, row = from, column = to.

    Attributes
    ----------
    durations_s
        Travel time in seconds; ``inf`` where no route exists; 0 on the diagonal.
    distances_m
        Route length in metres; ``inf`` where no route exists.
    method
        ``'network'`` (shortest paths on roads) or ``'straight_line'`` (great-circle
        distance × detour factor: an estimate to flag to the user).
    mode
        Travel mode.
    speed_kmh
        Speed used.
    lon, lat
        The points, WGS84.
    reachable
        False for points that could not be placed on the network (too far from any road).
    snap
        How the points were snapped (``None`` for ``straight_line``).
    detour_factor
        The factor used by ``straight_line`` (``None`` for ``network``).
    """

    durations_s: NDArray[np.float64]
    distances_m: NDArray[np.float64]
    method: str
    mode: str
    speed_kmh: float
    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    reachable: NDArray[np.bool_]
    snap: EdgeSnap | None = None
    detour_factor: float | None = None
    network: RoadNetwork | None = field(default=None, repr=False)
    _paths: _PathData | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.lon.size)

    def leg(self, i: int, j: int) -> shapely.LineString:
        """The path from point ``i`` to point ``j`` as a (lon, lat) LineString.

        On a network the path runs from the snapped position of ``i`` along the roads to the
        snapped position of ``j``; in ``straight_line`` mode it is the straight segment.
        """
        n = len(self)
        if not (0 <= i < n and 0 <= j < n):
            msg = f"leg ({i}, {j}) is outside the {n} points of the matrix"
            raise GisError(msg)
        if not np.isfinite(self.durations_s[i, j]):
            msg = (
                f"no route from point {i} to point {j}: "
                f"one is unreachable on the {self.mode} network"
            )
            raise GisError(msg)
        if self.method == "straight_line" or self._paths is None:
            return shapely.LineString([(self.lon[i], self.lat[i]), (self.lon[j], self.lat[j])])
        assert self.network is not None and self.snap is not None
        coords = _leg_metric_coords(self.network, self.snap, self._paths, i, j)
        x, y = _metric_edges(self.network).to_wgs84.transform(coords[:, 0], coords[:, 1])
        return shapely.LineString(np.column_stack([x, y]))


def haversine_m(
    lon1: ArrayLike, lat1: ArrayLike, lon2: ArrayLike, lat2: ArrayLike
) -> NDArray[np.float64]:
    """Great-circle distance in metres between (lon1, lat1) and (lon2, lat2), broadcasting."""
    lon1, lat1, lon2, lat2 = (
        np.radians(np.asarray(a, dtype=float)) for a in (lon1, lat1, lon2, lat2)
    )
    h = (
        np.sin((lat2 - lat1) / 2.0) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2.0) ** 2
    )
    return 2.0 * _EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def travel_matrix(
    network: RoadNetwork | None,
    lon: ArrayLike,
    lat: ArrayLike,
    *,
    mode: str | None = None,
    speed_kmh: float | None = None,
    snap: EdgeSnap | None = None,
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
    detour_factor: float = DEFAULT_DETOUR_FACTOR,
    keep_paths: bool = True,
) -> TravelMatrix:
    """Travel times (s) and distances (m) between all pairs of points.

    Parameters
    ----------
    network
        The road network of the travel mode, or ``None`` for the straight-line fallback.
    lon, lat
        WGS84 coordinates, 1-D arrays of one length.
    mode
        Travel mode. With a network it must match ``network.mode`` (default: that mode);
        without one it picks the speed (default ``'walk'``).
    speed_kmh
        Fallback speed; default :data:`gis.roads.DEFAULT_SPEEDS_KMH` of the mode. Ignored
        with a network, whose speed is fixed when it is built.
    snap
        Precomputed :func:`~gis.snapping.snap_to_edges` result for these points.
    max_snap_m
        Points farther than this from any road are unreachable (network only).
    detour_factor
        Road distance / great-circle distance for the fallback (≥ 1).
    keep_paths
        Keep predecessor arrays so that :meth:`TravelMatrix.leg` and :func:`route_geometry`
        can draw the road path (network only).

    Returns
    -------
    TravelMatrix
    """
    lon_arr = np.atleast_1d(np.asarray(lon, dtype=float))
    lat_arr = np.atleast_1d(np.asarray(lat, dtype=float))
    if lon_arr.ndim != 1 or lon_arr.shape != lat_arr.shape:
        msg = (
            f"lon and lat must be 1-D arrays of one length, got {lon_arr.shape} and {lat_arr.shape}"
        )
        raise GisError(msg)
    if lon_arr.size == 0:
        msg = "travel_matrix needs at least one point"
        raise GisError(msg)
    if network is None:
        return _straight_line(lon_arr, lat_arr, mode or "walk", speed_kmh, detour_factor)
    if mode is not None and mode != network.mode:
        msg = f"mode {mode!r} does not match the network, which was built for {network.mode!r}"
        raise GisError(msg)
    if snap is None:
        snap = snap_to_edges(network, lon_arr, lat_arr, max_distance_m=max_snap_m)
    elif len(snap) != lon_arr.size:
        msg = f"snap has {len(snap)} points but {lon_arr.size} coordinates were given"
        raise GisError(msg)
    durations, paths = _network_durations(network, snap, keep_paths=keep_paths)
    n_unreachable = int((~snap.reachable).sum())
    if n_unreachable:
        logger.info(
            "%d of %d points are off the %s network", n_unreachable, snap.edge.size, network.mode
        )
    return TravelMatrix(
        durations_s=durations,
        distances_m=durations * network.speed_mps,
        method="network",
        mode=network.mode,
        speed_kmh=network.speed_kmh,
        lon=lon_arr,
        lat=lat_arr,
        reachable=snap.reachable.copy(),
        snap=snap,
        network=network,
        _paths=paths,
    )


def route_geometry(matrix: TravelMatrix, stops: Sequence[int]) -> shapely.LineString:
    """The road path through a sequence of points of ``matrix``, as one (lon, lat) LineString.

    Parameters
    ----------
    matrix
        The matrix the stops index into.
    stops
        Point indices in visiting order (e.g. start, sites…, end); at least two.

    Returns
    -------
    shapely.LineString
    """
    stops = [int(s) for s in stops]
    if len(stops) < 2:
        msg = f"a route needs at least two stops, got {len(stops)}"
        raise GisError(msg)
    parts: list[NDArray] = []
    for a, b in zip(stops[:-1], stops[1:], strict=True):
        if a == b:
            continue
        coords = shapely.get_coordinates(matrix.leg(a, b))
        parts.append(coords if not parts else coords[1:])
    if not parts:
        p = (matrix.lon[stops[0]], matrix.lat[stops[0]])
        return shapely.LineString([p, p])
    return shapely.LineString(_dedupe(np.vstack(parts)))


def _straight_line(
    lon: NDArray, lat: NDArray, mode: str, speed_kmh: float | None, detour_factor: float
) -> TravelMatrix:
    if mode not in MODES:
        msg = f"travel mode {mode!r} is unknown; expected one of {', '.join(MODES)}"
        raise GisError(msg)
    if not (np.isfinite(detour_factor) and 1.0 <= detour_factor <= 5.0):
        msg = f"detour_factor must be between 1 and 5, got {detour_factor!r}"
        raise GisError(msg)
    speed = DEFAULT_SPEEDS_KMH[mode] if speed_kmh is None else float(speed_kmh)
    if not (np.isfinite(speed) and speed > 0):
        msg = f"speed_kmh must be positive, got {speed_kmh!r}"
        raise GisError(msg)
    reachable = np.isfinite(lon) & np.isfinite(lat)
    distances = haversine_m(lon[:, None], lat[:, None], lon[None, :], lat[None, :]) * detour_factor
    distances[~reachable, :] = np.inf
    distances[:, ~reachable] = np.inf
    np.fill_diagonal(distances, 0.0)
    logger.info("straight-line travel matrix for %d points (no road network)", lon.size)
    return TravelMatrix(
        durations_s=distances / (speed / 3.6),
        distances_m=distances,
        method="straight_line",
        mode=mode,
        speed_kmh=speed,
        lon=lon,
        lat=lat,
        reachable=reachable,
        detour_factor=float(detour_factor),
    )


def _network_durations(
    network: RoadNetwork, snap: EdgeSnap, *, keep_paths: bool
) -> tuple[NDArray[np.float64], _PathData | None]:
    """Exact point-to-point travel times with virtual nodes on the snapped edges."""
    n = snap.edge.size
    ok = snap.reachable
    t = network.edge_time_s
    e = np.where(ok, snap.edge, 0)
    f = np.where(ok, snap.fraction, 0.0)
    twin = network.edge_twin[e]
    has_twin = ok & (twin >= 0)
    t_twin = np.where(has_twin, t[np.maximum(twin, 0)], 0.0)  # masked by has_twin below
    u = network.edge_u[e].astype(np.int64)
    v = network.edge_v[e].astype(np.int64)
    inf = np.full(n, np.inf)
    # Leaving the point: forwards to v, or (two-way) backwards to u along the twin.
    exit_node = np.column_stack([v, u])
    exit_cost = np.column_stack(
        [np.where(ok, (1.0 - f) * t[e], inf), np.where(has_twin, f * t_twin, inf)]
    )
    # Reaching the point: from u along the edge, or (two-way) from v along the twin.
    entry_node = np.column_stack([u, v])
    entry_cost = np.column_stack(
        [np.where(ok, f * t[e], inf), np.where(has_twin, (1.0 - f) * t_twin, inf)]
    )

    sources = np.unique(exit_node[np.isfinite(exit_cost)])
    row_of_node = np.full(network.n_nodes, -1, dtype=np.int64)
    row_of_node[sources] = np.arange(sources.size)
    graph = network.csr(weight="time")
    if sources.size:
        if keep_paths:
            dist, pred = dijkstra(graph, directed=True, indices=sources, return_predecessors=True)
        else:
            dist = dijkstra(graph, directed=True, indices=sources)
            pred = None
    else:
        dist = np.full((1, network.n_nodes), np.inf)
        pred = None

    best = np.full((n, n), np.inf)
    choice = np.full((n, n), -1, dtype=np.int8)
    for a in (0, 1):
        rows = row_of_node[exit_node[:, a]]
        usable = rows >= 0
        for b in (0, 1):
            through = np.full((n, n), np.inf)
            sub = dist[np.ix_(np.maximum(rows, 0), entry_node[:, b])]
            through[usable] = (exit_cost[:, a, None] + sub + entry_cost[None, :, b])[usable]
            better = through < best
            best[better] = through[better]
            choice[better] = 2 * a + b
    # Two points on the same street: straight along it, forwards or (two-way) backwards.
    same = (e[:, None] == e[None, :]) & ok[:, None] & ok[None, :]
    ahead = f[None, :] - f[:, None]  # >= 0 where the target lies further along u -> v
    forward = np.where(same & (ahead >= 0), ahead * t[e][:, None], np.inf)
    better = forward < best
    best[better] = forward[better]
    choice[better] = _DIRECT_FORWARD
    backward = np.where(same & has_twin[:, None] & (ahead <= 0), -ahead * t_twin[:, None], np.inf)
    better = backward < best
    best[better] = backward[better]
    choice[better] = _DIRECT_BACKWARD
    np.fill_diagonal(best, 0.0)
    paths = None
    if keep_paths and pred is not None:
        paths = _PathData(
            exit_node=exit_node,
            entry_node=entry_node,
            row_of_node=row_of_node,
            predecessors=pred.astype(np.int32),
            choice=choice,
        )
    return best, paths


def _edge_between(network: RoadNetwork, p: int, q: int) -> int:
    lo, hi = network.csr_indptr[p], network.csr_indptr[p + 1]
    hits = np.flatnonzero(network.csr_indices[lo:hi] == q)
    if hits.size == 0:  # cannot happen for a predecessor chain of this graph
        msg = f"no edge between nodes {p} and {q}"
        raise GisError(msg)
    return int(network.csr_edge[lo + hits[0]])


def _piece(line: shapely.LineString, start: float, end: float) -> NDArray:
    """Coordinates of ``line`` between two fractions (reversed when ``start > end``)."""
    if start == end:
        return shapely.get_coordinates(line.interpolate(start, normalized=True))
    return shapely.get_coordinates(substring(line, start, end, normalized=True))


def _leg_metric_coords(
    network: RoadNetwork, snap: EdgeSnap, paths: _PathData, i: int, j: int
) -> NDArray:
    lines = _metric_edges(network).lines
    ei, ej = int(snap.edge[i]), int(snap.edge[j])
    fi, fj = float(snap.fraction[i]), float(snap.fraction[j])
    c = int(paths.choice[i, j])
    if i == j or c in (_DIRECT_FORWARD, _DIRECT_BACKWARD):
        return _dedupe(np.vstack([_piece(lines[ei], fi, fj), _piece(lines[ei], fj, fj)]))
    a, b = divmod(c, 2)
    first = _piece(lines[ei], fi, 1.0 if a == 0 else 0.0)
    last = _piece(lines[ej], 0.0 if b == 0 else 1.0, fj)
    start_node = int(paths.exit_node[i, a])
    node = int(paths.entry_node[j, b])
    pred = paths.predecessors[paths.row_of_node[start_node]]
    chain = [node]
    while node != start_node:
        node = int(pred[node])
        if node < 0:
            msg = f"no road path from point {i} to point {j}"
            raise GisError(msg)
        chain.append(node)
    chain.reverse()
    middle = [
        shapely.get_coordinates(lines[_edge_between(network, p, q)])
        for p, q in zip(chain[:-1], chain[1:], strict=True)
    ]
    return _dedupe(np.vstack([first, *middle, last]))


def _dedupe(coords: NDArray) -> NDArray:
    """Drop consecutive repeated coordinates (keeping at least two rows for a LineString)."""
    if len(coords) < 2:
        return np.vstack([coords, coords])
    keep = np.ones(len(coords), dtype=bool)
    keep[1:] = np.any(np.abs(np.diff(coords, axis=0)) > 1e-9, axis=1)
    out = coords[keep]
    return out if len(out) >= 2 else np.vstack([out, out])
