"""gis.roads: reading OSM XML and GraphML, mode filters, the strongly connected core, caching."""

from __future__ import annotations

import gzip
import shutil

import networkx as nx
import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components, dijkstra

from gis._errors import GisError
from gis.roads import (
    load_road_network,
    metric_crs_for,
    network_from_graph,
    read_osm_graph,
)

FUTIAN = "shenzhen_transbigdata/futian_osm_network_osmnx.graphml"
OAKLAND = "osm_raw_samples/West-Oakland.osm.bz2"
BAVARIA = "osm_raw_samples/planet_10.068_48.135_10.071_48.137.osm"


@pytest.fixture(scope="module")
def futian_graph(realdata):
    return read_osm_graph(realdata / FUTIAN)


def _strongly_connected(net) -> bool:
    n_comp, _ = connected_components(net.csr(), directed=True, connection="strong")
    return n_comp == 1


def _report_adds_up(net) -> None:
    r = net.report
    assert r.input_edges - r.mode_edges_removed + r.reverse_edges_added - r.cut_edges == r.edges
    assert r.edges == net.n_edges and r.nodes == net.n_nodes
    assert r.nodes + r.cut_nodes <= r.input_nodes
    assert r.km + r.cut_km + r.mode_km_removed == pytest.approx(r.input_km, abs=0.01)


def test_raw_osm_bz2_sample_loads_for_every_mode(realdata):
    graph = read_osm_graph(realdata / OAKLAND)
    assert graph.number_of_nodes() == 84
    counts = {}
    for mode in ("walk", "ebike", "car"):
        net = network_from_graph(graph, mode=mode, source="oakland")
        _report_adds_up(net)
        assert _strongly_connected(net)
        assert net.metric_crs == "EPSG:32610"  # UTM 10N, Oakland
        counts[mode] = (net.n_nodes, net.n_edges)
    # Footways and cycleways make the walk network the largest, cars the smallest.
    assert counts["walk"][1] > counts["ebike"][1] > counts["car"][1] > 0
    # Ways without a highway tag (buildings, areas) are never roads.
    assert all(h for h in network_from_graph(graph, mode="walk").edge_highway)


def test_raw_osm_xml_sample_loads(realdata):
    net = load_road_network(realdata / BAVARIA, mode="car")
    assert net.metric_crs == "EPSG:32632"
    assert (net.n_nodes, net.n_edges) == (11, 20)
    assert net.report.components == 1 and net.report.cut_nodes == 0
    walk = load_road_network(realdata / BAVARIA, mode="walk")
    assert walk.report.components == 2 and walk.report.cut_nodes == 2
    assert _strongly_connected(walk)


def test_futian_counts_after_mode_filter(futian_graph):
    assert (futian_graph.number_of_nodes(), futian_graph.number_of_edges()) == (1751, 4009)
    expected = {  # nodes, directed edges, components before the cut, nodes cut
        "walk": (1689, 4942, 4, 10),
        "ebike": (1345, 3058, 45, 115),
        "car": (1335, 2743, 36, 66),
    }
    for mode, (nodes, edges, components, cut) in expected.items():
        net = network_from_graph(futian_graph, mode=mode, source="futian")
        r = net.report
        assert (r.nodes, r.edges, r.components, r.cut_nodes) == (nodes, edges, components, cut)
        _report_adds_up(net)
        assert _strongly_connected(net)
        assert net.metric_crs == "EPSG:32650"
    car = network_from_graph(futian_graph, mode="car")
    banned = {"footway", "path", "pedestrian", "steps", "cycleway"}
    assert not any(banned & set(h.split(";")) for h in car.edge_highway)
    walk = network_from_graph(futian_graph, mode="walk")
    assert not any({"motorway", "trunk"} & set(h.split(";")) for h in walk.edge_highway)


def _a_oneway_street(futian_graph):
    for u, v, data in futian_graph.edges(data=True):
        if (
            data.get("oneway") is True
            and data.get("highway") == "secondary"
            and data["length"] > 80
        ):
            if not futian_graph.has_edge(v, u):
                return u, v, data["length"]
    raise AssertionError("no one-way secondary street in the Futian graph")


def test_car_keeps_one_way_rules_and_walk_does_not(futian_graph):
    u, v, length = _a_oneway_street(futian_graph)
    for mode, reverse_allowed in (("car", False), ("walk", True)):
        net = network_from_graph(futian_graph, mode=mode)
        idx = {int(o): i for i, o in enumerate(net.node_osmid)}
        a, b = idx[u], idx[v]
        forward = [e for e in range(net.n_edges) if net.edge_u[e] == a and net.edge_v[e] == b]
        assert forward, mode
        e = forward[0]
        assert bool(net.edge_twin[e] >= 0) is reverse_allowed, mode
        times = dijkstra(net.csr(weight="length"), directed=True, indices=[a, b])
        assert times[0, b] == pytest.approx(length, rel=1e-6)
        if reverse_allowed:  # walking back is the same street
            assert times[1, a] == pytest.approx(length, rel=1e-6)
        else:  # driving back goes round the block
            assert times[1, a] > length + 50


def test_ebike_keeps_one_way_on_main_roads_only():
    graph = nx.MultiDiGraph(crs="epsg:4326")
    coords = {1: (114.0, 22.5), 2: (114.001, 22.5), 3: (114.001, 22.501), 4: (114.0, 22.501)}
    for n, (x, y) in coords.items():
        graph.add_node(n, x=x, y=y)
    # A one-way primary 1->2, a one-way residential 3->4, two-way residential 2-3 and 4-1.
    graph.add_edge(1, 2, length=103.0, highway="primary", oneway=True)
    graph.add_edge(3, 4, length=103.0, highway="residential", oneway=True)
    for a, b in ((2, 3), (4, 1)):
        graph.add_edge(a, b, length=111.0, highway="residential", oneway=False)
        graph.add_edge(b, a, length=111.0, highway="residential", oneway=False)
    net = network_from_graph(graph, mode="ebike")
    pairs = {
        (int(net.node_osmid[a]), int(net.node_osmid[b]))
        for a, b in zip(net.edge_u, net.edge_v, strict=True)
    }
    assert (2, 1) not in pairs  # primary: no riding against traffic
    assert (4, 3) in pairs  # residential: both ways
    assert net.report.reverse_edges_added == 1
    car = network_from_graph(graph, mode="car")
    assert car.report.reverse_edges_added == 0


def test_speed_sets_edge_times(futian_graph):
    net = network_from_graph(futian_graph, mode="car", speed_kmh=36.0)
    assert np.allclose(net.edge_time_s, net.edge_length_m / 10.0)
    with pytest.raises(GisError, match="speed"):
        network_from_graph(futian_graph, mode="car", speed_kmh=0.0)
    with pytest.raises(GisError, match="travel mode 'bus'"):
        network_from_graph(futian_graph, mode="bus")


def test_cache_and_gzipped_graphml(realdata, tmp_path):
    gz = tmp_path / "futian.graphml.gz"
    with (realdata / FUTIAN).open("rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    cache = tmp_path / "cache"
    first = load_road_network(gz, mode="ebike", cache_dir=cache)
    files = list(cache.glob("roads-ebike-*.pkl"))
    assert len(files) == 1
    second = load_road_network(gz, mode="ebike", cache_dir=cache)
    assert second is not first
    assert np.array_equal(first.edge_u, second.edge_u)
    assert first.report == second.report
    assert first.report.nodes == 1345
    # Another speed is another key.
    load_road_network(gz, mode="ebike", speed_kmh=12.0, cache_dir=cache)
    assert len(list(cache.glob("roads-ebike-*.pkl"))) == 2
    # A damaged cache file is rebuilt, not trusted.
    files[0].write_bytes(b"not a pickle")
    again = load_road_network(gz, mode="ebike", cache_dir=cache)
    assert again.report == first.report


def test_bad_files_are_refused(tmp_path):
    with pytest.raises(GisError, match="not found"):
        read_osm_graph(tmp_path / "missing.osm")
    odd = tmp_path / "roads.shp"
    odd.write_text("x")
    with pytest.raises(GisError, match="unknown format"):
        read_osm_graph(odd)
    broken = tmp_path / "broken.graphml"
    broken.write_text("<graphml><oops")
    with pytest.raises(GisError, match="could not be read"):
        read_osm_graph(broken)


def test_metric_crs_for():
    assert metric_crs_for(114.05, 22.54) == "EPSG:32650"
    assert metric_crs_for(116.4, 39.9) == "EPSG:32650"
    assert metric_crs_for(-122.3, 37.8) == "EPSG:32610"
    assert metric_crs_for(151.2, -33.9) == "EPSG:32756"
    with pytest.raises(GisError):
        metric_crs_for(500.0, 22.0)
