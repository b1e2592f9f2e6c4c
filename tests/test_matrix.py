"""gis.snapping and gis.matrix: edge snapping, exact travel matrices, fallback, route paths.

The matrix is checked against networkx shortest paths on a graph where every snapped point
is a real node that splits its street (both directions where the street is two-way).
"""

from __future__ import annotations

from collections import defaultdict

import networkx as nx
import numpy as np
import pytest
import shapely

from gis._errors import GisError
from gis.matrix import haversine_m, route_geometry, travel_matrix
from gis.roads import network_from_graph, read_osm_graph
from gis.snapping import snap_to_edges

FUTIAN = "shenzhen_transbigdata/futian_osm_network_osmnx.graphml"


@pytest.fixture(scope="module")
def futian_graph(realdata):
    return read_osm_graph(realdata / FUTIAN)


def _reference(net, snap) -> np.ndarray:
    """All-pairs travel times by networkx, each snapped point inserted as a node."""
    t = net.edge_time_s
    g = nx.DiGraph()

    def add(a, b, w):
        if not g.has_edge(a, b) or g[a][b]["w"] > w:
            g.add_edge(a, b, w=w)

    on_edge = defaultdict(list)
    for p in np.flatnonzero(snap.reachable):
        on_edge[int(snap.edge[p])].append(int(p))
    for e in range(net.n_edges):
        u, v = int(net.edge_u[e]), int(net.edge_v[e])
        twin = int(net.edge_twin[e])
        points = on_edge.get(e, [])
        if not points and (twin < 0 or not on_edge.get(twin)):
            add(u, v, t[e])
            continue
        if not points:
            continue  # drawn from the twin, which carries the points
        points = sorted(points, key=lambda p: snap.fraction[p])
        chain = [u] + [("p", p) for p in points] + [v]
        fr = [0.0] + [float(snap.fraction[p]) for p in points] + [1.0]
        for i in range(len(chain) - 1):
            add(chain[i], chain[i + 1], (fr[i + 1] - fr[i]) * t[e])
            if twin >= 0:
                add(chain[i + 1], chain[i], (fr[i + 1] - fr[i]) * t[twin])
    n = snap.edge.size
    ref = np.full((n, n), np.inf)
    for i in range(n):
        if not snap.reachable[i]:
            ref[i, i] = 0.0
            continue
        lengths = nx.single_source_dijkstra_path_length(g, ("p", i), weight="w")
        for j in range(n):
            if snap.reachable[j]:
                ref[i, j] = lengths.get(("p", j), np.inf)
    return ref


def _small_graph() -> nx.MultiDiGraph:
    """A 3 x 2 block grid (~110 m blocks) with a one-way street 2 -> 3."""
    g = nx.MultiDiGraph(crs="epsg:4326")
    xy = {}
    for r in range(2):
        for c in range(3):
            n = 3 * r + c + 1
            xy[n] = (114.0 + 0.001 * c, 22.5 + 0.001 * r)
            g.add_node(n, x=xy[n][0], y=xy[n][1])

    def street(a, b, oneway=False):
        length = haversine_m(*xy[a], *xy[b]).item()
        g.add_edge(a, b, length=length, highway="residential", oneway=oneway)
        if not oneway:
            g.add_edge(b, a, length=length, highway="residential", oneway=False)

    street(1, 2)
    street(2, 3, oneway=True)
    street(4, 5)
    street(5, 6)
    street(1, 4)
    street(2, 5)
    street(3, 6)
    return g


def test_snap_to_edges_mid_edge_and_too_far():
    net = network_from_graph(_small_graph(), mode="car")
    # Midpoint of street 1-2, 10 m north of it; a point 2 km away; a missing coordinate.
    lon = np.array([114.0005, 114.0005, 114.02, np.nan])
    lat = np.array([22.5, 22.5 + 10 / 111_000, 22.5, np.nan])
    snap = snap_to_edges(net, lon, lat, max_distance_m=100.0)
    assert snap.reachable.tolist() == [True, True, False, False]
    e = snap.edge[0]
    ends = {int(net.node_osmid[net.edge_u[e]]), int(net.node_osmid[net.edge_v[e]])}
    assert ends == {1, 2}
    assert snap.fraction[0] == pytest.approx(0.5, abs=0.01)
    assert snap.distance_m[0] == pytest.approx(0.0, abs=0.5)
    assert snap.distance_m[1] == pytest.approx(10.0, abs=0.5)
    assert snap.snapped_lat[1] == pytest.approx(22.5, abs=1e-6)
    assert np.isnan(snap.fraction[2]) and snap.edge[3] == -1
    with pytest.raises(GisError, match="not a WGS84"):
        snap_to_edges(net, [200.0], [22.5])


def test_matrix_equals_networkx_on_small_graph_with_one_way():
    net = network_from_graph(_small_graph(), mode="car", speed_kmh=36.0)
    # Two points on the one-way street 2 -> 3 (0.25 and 0.75), two on street 4-5,
    # one near node 6, one off the map.
    lon = np.array([114.00125, 114.00175, 114.00025, 114.0008, 114.00199, 114.05])
    lat = np.array([22.5, 22.5, 22.501, 22.501, 22.50099, 22.5])
    m = travel_matrix(net, lon, lat, max_snap_m=50.0)
    assert m.method == "network"
    assert m.reachable.tolist() == [True] * 5 + [False]
    ref = _reference(net, m.snap)
    assert np.allclose(m.durations_s, ref, rtol=1e-9, atol=1e-6, equal_nan=False)
    # Along the one-way street: direct forwards (50 m at 10 m/s), round the block backwards.
    block = haversine_m(114.001, 22.5, 114.002, 22.5).item()
    assert m.durations_s[0, 1] == pytest.approx(0.5 * block / 10.0, rel=1e-3)
    assert m.durations_s[1, 0] > 3 * m.durations_s[0, 1]
    assert np.isinf(m.durations_s[5, :5]).all() and m.durations_s[5, 5] == 0.0
    assert np.allclose(m.distances_m[:5, :5], m.durations_s[:5, :5] * 10.0)


def test_matrix_equals_networkx_on_futian(futian_graph):
    rng = np.random.default_rng(7)
    for mode in ("car", "walk"):
        net = network_from_graph(futian_graph, mode=mode)
        lon = rng.uniform(114.000, 114.037, 40)
        lat = rng.uniform(22.518, 22.548, 40)
        # Put a few points on the same edge, to exercise the along-the-street case.
        g = net.edge_geometry[int(np.argmax(net.edge_length_m))]
        for k, f in enumerate((0.2, 0.5, 0.8)):
            p = g.interpolate(f, normalized=True)
            lon[k], lat[k] = p.x, p.y
        m = travel_matrix(net, lon, lat)
        assert m.reachable.sum() >= 30
        ref = _reference(net, m.snap)
        assert np.allclose(m.durations_s, ref, rtol=1e-9, atol=1e-6), mode
        if mode == "car":
            finite = np.isfinite(m.durations_s)
            assert not np.allclose(m.durations_s[finite], m.durations_s.T[finite])


def test_route_geometry_follows_the_roads(futian_graph):
    net = network_from_graph(futian_graph, mode="ebike")
    rng = np.random.default_rng(3)
    edges = rng.choice(np.flatnonzero(net.edge_is_canonical), 6, replace=False)
    pts = [net.edge_geometry[e].interpolate(0.3, normalized=True) for e in edges]
    lon = np.array([p.x for p in pts])
    lat = np.array([p.y for p in pts])
    m = travel_matrix(net, lon, lat)
    stops = [0, 3, 1, 5, 0]
    line = route_geometry(m, stops)
    xy = np.asarray(line.coords)
    walked = haversine_m(xy[:-1, 0], xy[:-1, 1], xy[1:, 0], xy[1:, 1]).sum()
    expected = sum(m.distances_m[a, b] for a, b in zip(stops[:-1], stops[1:], strict=True))
    assert walked == pytest.approx(expected, rel=0.005)
    assert haversine_m(*xy[0], lon[0], lat[0]) < 1.0
    assert haversine_m(*xy[-1], lon[0], lat[0]) < 1.0
    leg = m.leg(3, 1)
    assert isinstance(leg, shapely.LineString) and leg.length > 0
    with pytest.raises(GisError, match="at least two stops"):
        route_geometry(m, [2])


def test_straight_line_fallback_is_flagged():
    lon = np.array([114.0, 114.0, 114.01])
    lat = np.array([22.5, 22.6, 22.5])
    m = travel_matrix(None, lon, lat, mode="ebike")
    assert m.method == "straight_line" and m.detour_factor == 1.3
    d = haversine_m(114.0, 22.5, 114.0, 22.6).item()
    assert d == pytest.approx(11_119.5, rel=1e-3)  # 0.1 degree of latitude
    assert m.distances_m[0, 1] == pytest.approx(1.3 * d)
    assert m.durations_s[0, 1] == pytest.approx(1.3 * d / (15.0 / 3.6))
    assert np.allclose(m.durations_s, m.durations_s.T) and np.all(np.diag(m.durations_s) == 0)
    walk = travel_matrix(None, lon, lat, detour_factor=1.0, speed_kmh=3.6)
    assert walk.mode == "walk" and walk.durations_s[0, 1] == pytest.approx(d)
    line = route_geometry(m, [0, 1, 2])
    assert len(line.coords) == 3
    with pytest.raises(GisError, match="detour_factor"):
        travel_matrix(None, lon, lat, detour_factor=0.5)


def test_bad_matrix_inputs():
    net = network_from_graph(_small_graph(), mode="car")
    with pytest.raises(GisError, match="one length"):
        travel_matrix(net, [114.0, 114.001], [22.5])
    with pytest.raises(GisError, match="does not match"):
        travel_matrix(net, [114.0], [22.5], mode="walk")
    with pytest.raises(GisError, match="at least one point"):
        travel_matrix(None, [], [])
