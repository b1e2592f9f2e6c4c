"""Road networks for patrol routing: read OSM data, keep what a travel mode may use, pack it.

A patrol inspector walks, rides a patrol e-bike or drives. Each mode sees a different network:

``walk``
    Every road and footpath except motorways and trunk roads (and their links). One-way rules
    do not apply to pedestrians, so every one-way street gets its reverse direction.
``ebike``
    No motorway (expressways are closed to non-motor vehicles), and no footway, pedestrian
    street, steps, corridor or bridleway (riding on pavements and pedestrian streets is
    prohibited). Urban trunk roads stay: in Chinese cities they carry non-motor lanes or side
    roads, and without them a district falls apart (on the Futian graph, dropping trunk roads
    cuts 56 of 186 km off the main component). One-way rules are **kept on tertiary roads and
    above** (trunk, primary, secondary, tertiary and their links): these are the roads where
    riding against traffic is enforced and dangerous. On minor roads (residential, service,
    living street, unclassified, track, cycleway, path) a patrol e-bike is assumed to ride both
    ways, as it does in practice and as OSM's ``oneway:bicycle=no`` usually says. Change
    :data:`EBIKE_ONEWAY_HIGHWAYS` through the ``ebike_oneway_highways`` option if a district
    rules otherwise.
``car``
    One-way rules apply; no footway, path, pedestrian street, steps, cycleway, bridleway,
    corridor or track, and no road tagged ``access=private``.

Every mode drops ways without a ``highway`` tag, ways under construction or proposed, and
roads tagged ``access=no``. Speeds are one per mode (km/h, configurable), so travel time is
length / speed and the fastest path is also the shortest one.

After filtering, only the largest strongly connected component is kept, so that every kept
node can reach every other: a site snapped to the kept network is then always reachable.
:class:`NetworkReport` says what was cut. The result, :class:`RoadNetwork`, holds plain arrays
and a CSR adjacency (per-edge travel time in seconds) for :mod:`scipy.sparse.csgraph`.

Edges are directed. A two-way street is two edges, each the *twin* of the other (same
geometry, reversed); a one-way street is one edge without a twin. Edge geometries are
(lon, lat) LineStrings running from ``u`` to ``v``.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import pickle
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import numpy as np
import shapely
from numpy.typing import NDArray
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from gis._errors import GisError

__all__ = [
    "MODES",
    "DEFAULT_SPEEDS_KMH",
    "EBIKE_ONEWAY_HIGHWAYS",
    "NetworkReport",
    "RoadNetwork",
    "read_osm_graph",
    "network_from_graph",
    "load_road_network",
    "metric_crs_for",
]

logger = logging.getLogger(__name__)

MODES = ("walk", "ebike", "car")
"""Travel modes of patrol inspectors."""

DEFAULT_SPEEDS_KMH = {"walk": 4.5, "ebike": 15.0, "car": 25.0}
"""Average door-to-door speeds in a Chinese city centre (car: urban, with lights and parking)."""

EBIKE_ONEWAY_HIGHWAYS = frozenset(
    {
        "trunk",
        "trunk_link",
        "primary",
        "primary_link",
        "secondary",
        "secondary_link",
        "tertiary",
        "tertiary_link",
    }
)
"""Road classes on which a patrol e-bike keeps to one-way rules (see the module docstring)."""

# Not a usable road for anyone.
_NEVER = frozenset(
    {
        "construction",
        "proposed",
        "planned",
        "abandoned",
        "disused",
        "razed",
        "no",
        "raceway",
        "bus_guideway",
        "busway",
        "platform",
        "elevator",
        "escalator",
        "rest_area",
        "services",
        "bus_stop",
        "emergency_bay",
    }
)
_MODE_EXCLUDED = {
    "walk": frozenset({"motorway", "motorway_link", "trunk", "trunk_link"}),
    "ebike": frozenset(
        {
            "motorway",
            "motorway_link",
            "footway",
            "pedestrian",
            "steps",
            "corridor",
            "bridleway",
        }
    ),
    "car": frozenset(
        {"footway", "path", "pedestrian", "steps", "cycleway", "bridleway", "corridor", "track"}
    ),
}
_MODE_EXCLUDED_ACCESS = {
    "walk": frozenset({"no"}),
    "ebike": frozenset({"no"}),
    "car": frozenset({"no", "private"}),
}
# Bump when the filtering or the packed layout changes, so that old cache files are not reused.
_CACHE_VERSION = 1
_MIN_EDGE_LENGTH_M = 0.01  # csgraph treats a zero weight as "no edge"


@dataclass(frozen=True)
class NetworkReport:
    """What :func:`network_from_graph` kept and cut.

    Edge counts are directed edges (a two-way street counts twice); kilometres count each
    street once, whatever its directions.

    Attributes
    ----------
    source
        Where the graph came from (a file path or a label).
    mode
        The travel mode.
    input_nodes, input_edges, input_km
        The graph as read (every way, road or not).
    mode_edges_removed, mode_km_removed
        Edges the mode may not use (not a road, wrong class, no access).
    reverse_edges_added
        Reverse edges added because the mode ignores the one-way rule there.
    components
        Strongly connected components after the mode filter.
    cut_nodes, cut_edges, cut_km
        Nodes and edges outside the largest strongly connected component, dropped.
    nodes, edges, km
        What is kept.
    """

    source: str
    mode: str
    input_nodes: int
    input_edges: int
    input_km: float
    mode_edges_removed: int
    mode_km_removed: float
    reverse_edges_added: int
    components: int
    cut_nodes: int
    cut_edges: int
    cut_km: float
    nodes: int
    edges: int
    km: float


@dataclass(eq=False)
class RoadNetwork:
    """A road network for one travel mode, as arrays.

    Attributes
    ----------
    mode
        ``'walk'``, ``'ebike'`` or ``'car'``.
    speed_kmh
        Travel speed used for every edge.
    node_osmid
        OSM node id per node (int64).
    node_lon, node_lat
        Node coordinates, WGS84 degrees.
    edge_u, edge_v
        Node index of the tail and head of each directed edge.
    edge_length_m
        Edge length in metres.
    edge_twin
        Index of the reverse edge of the same street, or -1 for a one-way edge.
    edge_highway
        OSM ``highway`` class of each edge (several joined by ``;`` after simplification).
    edge_name
        Street name, or ``''``.
    edge_geometry
        (lon, lat) LineString per edge, from ``u`` to ``v``.
    metric_crs
        Projected CRS (``'EPSG:…'``) for metric work on this network.
    report
        What was kept and cut when the network was built.
    csr_indptr, csr_indices, csr_edge
        CSR adjacency over nodes. Between two nodes only the shortest edge is kept;
        ``csr_edge`` gives its edge index per stored entry.
    """

    mode: str
    speed_kmh: float
    node_osmid: NDArray[np.int64]
    node_lon: NDArray[np.float64]
    node_lat: NDArray[np.float64]
    edge_u: NDArray[np.int32]
    edge_v: NDArray[np.int32]
    edge_length_m: NDArray[np.float64]
    edge_twin: NDArray[np.int32]
    edge_highway: NDArray[np.object_]
    edge_name: NDArray[np.object_]
    edge_geometry: NDArray[np.object_]
    metric_crs: str
    report: NetworkReport
    csr_indptr: NDArray[np.int32] = field(repr=False)
    csr_indices: NDArray[np.int32] = field(repr=False)
    csr_edge: NDArray[np.int32] = field(repr=False)

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return int(self.node_osmid.size)

    @property
    def n_edges(self) -> int:
        """Number of directed edges."""
        return int(self.edge_u.size)

    @property
    def speed_mps(self) -> float:
        """Travel speed in metres per second."""
        return self.speed_kmh / 3.6

    @property
    def edge_time_s(self) -> NDArray[np.float64]:
        """Travel time per edge in seconds."""
        return self.edge_length_m / self.speed_mps

    @property
    def edge_is_canonical(self) -> NDArray[np.bool_]:
        """One edge per street: one-way edges, and the lower-numbered edge of each twin pair."""
        idx = np.arange(self.n_edges)
        return (self.edge_twin < 0) | (idx < self.edge_twin)

    def csr(self, *, weight: str = "time") -> csr_matrix:
        """The adjacency matrix for :mod:`scipy.sparse.csgraph`.

        Parameters
        ----------
        weight
            ``'time'`` (seconds) or ``'length'`` (metres).
        """
        if weight == "time":
            values = self.edge_time_s[self.csr_edge]
        elif weight == "length":
            values = self.edge_length_m[self.csr_edge]
        else:
            msg = f"weight must be 'time' or 'length', got {weight!r}"
            raise GisError(msg)
        n = self.n_nodes
        return csr_matrix((values, self.csr_indices, self.csr_indptr), shape=(n, n))


def metric_crs_for(lon: float, lat: float) -> str:
    """The UTM zone CRS (WGS84 datum) containing (lon, lat), as ``'EPSG:…'``.

    Shenzhen (114°E, 22.5°N) gives ``'EPSG:32650'`` (UTM 50N).
    """
    if not (np.isfinite(lon) and np.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        msg = f"cannot choose a metric CRS for ({lon}, {lat}): not a WGS84 lon/lat"
        raise GisError(msg)
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def read_osm_graph(path: str | Path) -> nx.MultiDiGraph:
    """Read a road graph from OSM XML (``.osm``, ``.osm.bz2``) or OSMnx GraphML (``.graphml[.gz]``).

    OSM XML is read with :func:`osmnx.graph_from_xml` (one-way rules kept, topology simplified,
    every component retained: :func:`network_from_graph` decides what to cut and reports it).

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    networkx.MultiDiGraph
        An OSMnx graph in WGS84.
    """
    import osmnx as ox  # heavy import, only when reading files

    path = Path(path)
    if not path.is_file():
        msg = f"road network file {str(path)!r} not found"
        raise GisError(msg)
    name = path.name.lower()
    try:
        if name.endswith((".osm", ".osm.bz2", ".xml", ".xml.bz2")):
            graph = ox.graph_from_xml(path, bidirectional=False, simplify=True, retain_all=True)
        elif name.endswith(".graphml"):
            graph = ox.load_graphml(path)
        elif name.endswith(".graphml.gz"):
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                graph = ox.load_graphml(graphml_str=fh.read())
        else:
            msg = (
                f"road network file {str(path)!r}: unknown format "
                "(expected .osm, .osm.bz2, .graphml or .graphml.gz)"
            )
            raise GisError(msg)
    except GisError:
        raise
    except Exception as exc:  # parse errors from osmnx / networkx / xml
        msg = f"road network file {str(path)!r} could not be read: {exc}"
        raise GisError(msg) from exc
    crs = str(graph.graph.get("crs", "epsg:4326")).lower()
    if crs not in ("epsg:4326", "wgs84", "+proj=longlat +datum=wgs84 +no_defs"):
        msg = f"road network file {str(path)!r} is in {crs}; project it to EPSG:4326 first"
        raise GisError(msg)
    return graph


def load_road_network(
    path: str | Path,
    *,
    mode: str = "walk",
    speed_kmh: float | None = None,
    cache_dir: str | Path | None = None,
    metric_crs: str | None = None,
    ebike_oneway_highways: Iterable[str] = EBIKE_ONEWAY_HIGHWAYS,
) -> RoadNetwork:
    """Read a road file and build the :class:`RoadNetwork` of one travel mode, with a cache.

    Parameters
    ----------
    path
        ``.osm``, ``.osm.bz2``, ``.graphml`` or ``.graphml.gz`` (WGS84).
    mode
        ``'walk'``, ``'ebike'`` or ``'car'``.
    speed_kmh
        Travel speed; default :data:`DEFAULT_SPEEDS_KMH` of the mode.
    cache_dir
        If given, the built network is pickled there under a key made of the file's SHA-256,
        the mode and the options, and read back on the next call with the same key. Only
        point this at a folder the application itself writes: pickles are trusted.
    metric_crs
        Projected CRS for metric work; default the UTM zone of the network's centre.
    ebike_oneway_highways
        Road classes on which e-bikes keep one-way rules.

    Returns
    -------
    RoadNetwork
    """
    path = Path(path)
    speed = _check_mode_speed(mode, speed_kmh)
    oneway_classes = frozenset(ebike_oneway_highways)
    cache_file = None
    if cache_dir is not None:
        if not path.is_file():
            msg = f"road network file {str(path)!r} not found"
            raise GisError(msg)
        key_text = "|".join(
            [
                _file_sha256(path),
                mode,
                repr(speed),
                str(metric_crs),
                ",".join(sorted(oneway_classes)) if mode == "ebike" else "",
                str(_CACHE_VERSION),
            ]
        )
        key = hashlib.sha256(key_text.encode()).hexdigest()[:32]
        cache_file = Path(cache_dir) / f"roads-{mode}-{key}.pkl"
        if cache_file.is_file():
            try:
                with cache_file.open("rb") as fh:
                    cached = pickle.load(fh)
                if isinstance(cached, RoadNetwork):
                    logger.debug("road network read from cache %s", cache_file)
                    return cached
            except Exception:  # a truncated or stale cache file: rebuild it
                logger.warning("ignoring unreadable road cache %s", cache_file, exc_info=True)
    graph = read_osm_graph(path)
    network = network_from_graph(
        graph,
        mode=mode,
        speed_kmh=speed,
        metric_crs=metric_crs,
        source=str(path),
        ebike_oneway_highways=oneway_classes,
    )
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            pickle.dump(network, fh, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(cache_file)  # atomic: a parallel reader never sees half a file
    return network


def network_from_graph(
    graph: nx.MultiDiGraph,
    *,
    mode: str = "walk",
    speed_kmh: float | None = None,
    metric_crs: str | None = None,
    source: str = "graph",
    ebike_oneway_highways: Iterable[str] = EBIKE_ONEWAY_HIGHWAYS,
) -> RoadNetwork:
    """Filter an OSMnx graph for a travel mode and pack it into a :class:`RoadNetwork`.

    Parameters
    ----------
    graph
        OSMnx-style MultiDiGraph in WGS84: nodes with ``x``, ``y``; edges with ``length``
        (metres), ``highway``, optionally ``oneway``, ``access``, ``name``, ``geometry``.
        Two-way streets must already have both directions, as OSMnx builds them.
    mode
        ``'walk'``, ``'ebike'`` or ``'car'``.
    speed_kmh
        Travel speed; default :data:`DEFAULT_SPEEDS_KMH` of the mode.
    metric_crs
        Projected CRS for metric work; default the UTM zone of the network's centre.
    source
        A label for the report.
    ebike_oneway_highways
        Road classes on which e-bikes keep one-way rules.

    Returns
    -------
    RoadNetwork
    """
    speed = _check_mode_speed(mode, speed_kmh)
    if graph.number_of_nodes() == 0 or graph.number_of_edges() == 0:
        msg = f"road graph {source!r} is empty"
        raise GisError(msg)
    raw = _edge_table(graph, source)
    n_nodes = raw["node_osmid"].size
    twin = _pair_twins(raw["u"], raw["v"], raw["length"])
    canonical = (twin < 0) | (np.arange(twin.size) < twin)
    input_km = float(raw["length"][canonical].sum() / 1000.0)

    keep, ignore_oneway = _mode_filter(raw, mode, frozenset(ebike_oneway_highways))
    removed = ~keep
    mode_km_removed = float(raw["length"][removed & canonical].sum() / 1000.0)

    # Keep the edges the mode may use, then add the reverse of one-way edges where it may
    # ride or walk against the traffic.
    kept = np.flatnonzero(keep)
    remap = np.full(twin.size, -1, dtype=np.int64)
    remap[kept] = np.arange(kept.size)
    u = raw["u"][kept]
    v = raw["v"][kept]
    length = raw["length"][kept]
    highway = raw["highway"][kept]
    name = raw["name"][kept]
    geometry = raw["geometry"][kept]
    new_twin = np.where(twin[kept] >= 0, remap[np.maximum(twin[kept], 0)], -1)
    add = np.flatnonzero((new_twin < 0) & ignore_oneway[kept])
    n_before_add = u.size
    new_twin[add] = n_before_add + np.arange(add.size)
    u, v = np.concatenate([u, v[add]]), np.concatenate([v, u[add]])
    length = np.concatenate([length, length[add]])
    highway = np.concatenate([highway, highway[add]])
    name = np.concatenate([name, name[add]])
    geometry = np.concatenate([geometry, shapely.reverse(geometry[add])])
    new_twin = np.concatenate([new_twin, add]).astype(np.int64)

    # Largest strongly connected component.
    adjacency = csr_matrix((np.ones(u.size), (u, v)), shape=(n_nodes, n_nodes))
    n_comp, labels = connected_components(adjacency, directed=True, connection="strong")
    used = np.zeros(n_nodes, dtype=bool)
    used[u] = True
    used[v] = True
    comp_sizes = np.bincount(labels[used], minlength=n_comp)
    largest = int(np.argmax(comp_sizes))
    in_core = labels == largest
    edge_in = in_core[u] & in_core[v]
    canon_now = (new_twin < 0) | (np.arange(new_twin.size) < new_twin)
    cut_km = float(length[~edge_in & canon_now].sum() / 1000.0)
    n_components = int(np.unique(labels[used]).size)

    node_keep = np.flatnonzero(in_core & used)
    node_map = np.full(n_nodes, -1, dtype=np.int64)
    node_map[node_keep] = np.arange(node_keep.size)
    e_keep = np.flatnonzero(edge_in)
    e_map = np.full(u.size, -1, dtype=np.int64)
    e_map[e_keep] = np.arange(e_keep.size)
    twin_final = new_twin[e_keep]
    twin_final = np.where(twin_final >= 0, e_map[np.maximum(twin_final, 0)], -1)

    node_lon = raw["x"][node_keep]
    node_lat = raw["y"][node_keep]
    final_u = node_map[u[e_keep]].astype(np.int32)
    final_v = node_map[v[e_keep]].astype(np.int32)
    final_len = np.maximum(length[e_keep], _MIN_EDGE_LENGTH_M)
    final_canon = (twin_final < 0) | (np.arange(twin_final.size) < twin_final)
    if crs_given := metric_crs:
        crs = crs_given
    else:
        crs = metric_crs_for(float(np.mean(node_lon)), float(np.mean(node_lat)))
    report = NetworkReport(
        source=source,
        mode=mode,
        input_nodes=int(n_nodes),
        input_edges=int(twin.size),
        input_km=round(input_km, 3),
        mode_edges_removed=int(removed.sum()),
        mode_km_removed=round(mode_km_removed, 3),
        reverse_edges_added=int(add.size),
        components=n_components,
        cut_nodes=int(used.sum() - node_keep.size),
        cut_edges=int(u.size - e_keep.size),
        cut_km=round(cut_km, 3),
        nodes=int(node_keep.size),
        edges=int(e_keep.size),
        km=round(float(final_len[final_canon].sum() / 1000.0), 3),
    )
    logger.info(
        "%s network from %s: %d nodes, %d edges, %.1f km kept; %d nodes / %.1f km cut",
        mode,
        source,
        report.nodes,
        report.edges,
        report.km,
        report.cut_nodes,
        report.cut_km,
    )
    indptr, indices, csr_edge = _build_csr(final_u, final_v, final_len, node_keep.size)
    return RoadNetwork(
        mode=mode,
        speed_kmh=speed,
        node_osmid=raw["node_osmid"][node_keep],
        node_lon=node_lon,
        node_lat=node_lat,
        edge_u=final_u,
        edge_v=final_v,
        edge_length_m=final_len,
        edge_twin=twin_final.astype(np.int32),
        edge_highway=highway[e_keep],
        edge_name=name[e_keep],
        edge_geometry=geometry[e_keep],
        metric_crs=crs,
        report=report,
        csr_indptr=indptr,
        csr_indices=indices,
        csr_edge=csr_edge,
    )


def _check_mode_speed(mode: str, speed_kmh: float | None) -> float:
    if mode not in MODES:
        msg = f"travel mode {mode!r} is unknown; expected one of {', '.join(MODES)}"
        raise GisError(msg)
    speed = DEFAULT_SPEEDS_KMH[mode] if speed_kmh is None else float(speed_kmh)
    if not (np.isfinite(speed) and 0.5 <= speed <= 200.0):
        msg = f"speed for mode {mode!r} must be between 0.5 and 200 km/h, got {speed_kmh!r}"
        raise GisError(msg)
    return speed


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _as_tags(value: object) -> tuple[str, ...]:
    """OSMnx stores a tag as a string, or as a list of strings after simplification."""
    if value is None:
        return ()
    if isinstance(value, list | tuple | set):
        return tuple(str(x) for x in value if x is not None)
    if isinstance(value, float) and np.isnan(value):
        return ()
    return (str(value),)


def _edge_table(graph: nx.MultiDiGraph, source: str) -> dict[str, NDArray]:
    """Nodes and edges of an OSMnx graph as arrays (node indices, lengths, tags, geometries)."""
    node_ids = list(graph.nodes)
    index = {n: i for i, n in enumerate(node_ids)}
    try:
        x = np.array([float(graph.nodes[n]["x"]) for n in node_ids])
        y = np.array([float(graph.nodes[n]["y"]) for n in node_ids])
    except KeyError as exc:
        msg = f"road graph {source!r}: a node has no 'x'/'y' coordinate"
        raise GisError(msg) from exc
    if not (np.all(np.abs(x) <= 180) and np.all(np.abs(y) <= 90)):
        msg = f"road graph {source!r}: node coordinates are not WGS84 lon/lat degrees"
        raise GisError(msg)
    try:
        osmid = np.array([int(n) for n in node_ids], dtype=np.int64)
    except (TypeError, ValueError):
        osmid = np.arange(len(node_ids), dtype=np.int64)
    us, vs, lengths, highways, access, oneway, names, geoms = [], [], [], [], [], [], [], []
    for a, b, data in graph.edges(data=True):
        ia, ib = index[a], index[b]
        us.append(ia)
        vs.append(ib)
        length = data.get("length")
        if length is None or not np.isfinite(float(length)) or float(length) < 0:
            msg = f"road graph {source!r}: edge {a}->{b} has no valid 'length'"
            raise GisError(msg)
        lengths.append(float(length))
        highways.append(_as_tags(data.get("highway")))
        access.append(_as_tags(data.get("access")))
        ow = data.get("oneway", False)
        oneway.append(any(str(t).lower() in ("true", "yes", "1", "-1") for t in _as_tags(ow)))
        names.append(";".join(_as_tags(data.get("name"))))
        geom = data.get("geometry")
        if geom is None:
            geom = shapely.LineString([(x[ia], y[ia]), (x[ib], y[ib])])
        elif isinstance(geom, str):
            geom = shapely.from_wkt(geom)
        geoms.append(geom)
    geometry = np.empty(len(geoms), dtype=object)
    geometry[:] = geoms
    geometry = _orient(geometry, np.array(us), np.array(vs), x, y)
    highway_arr = np.empty(len(highways), dtype=object)
    highway_arr[:] = highways
    access_arr = np.empty(len(access), dtype=object)
    access_arr[:] = access
    return {
        "node_osmid": osmid,
        "x": x,
        "y": y,
        "u": np.array(us, dtype=np.int64),
        "v": np.array(vs, dtype=np.int64),
        "length": np.array(lengths, dtype=float),
        "highway_tags": highway_arr,
        "highway": np.array([";".join(h) for h in highways], dtype=object),
        "access": access_arr,
        "oneway": np.array(oneway, dtype=bool),
        "name": np.array(names, dtype=object),
        "geometry": geometry,
    }


def _orient(geometry: NDArray, u: NDArray, v: NDArray, x: NDArray, y: NDArray) -> NDArray:
    """Reverse any geometry that runs from v to u, so that every edge runs from u to v."""
    first = shapely.get_coordinates(shapely.get_point(geometry, 0))
    last = shapely.get_coordinates(shapely.get_point(geometry, -1))
    d_first = np.hypot(first[:, 0] - x[u], first[:, 1] - y[u])
    d_last = np.hypot(last[:, 0] - x[u], last[:, 1] - y[u])
    flip = (d_last < d_first) & (u != v)
    if flip.any():
        geometry = geometry.copy()
        geometry[flip] = shapely.reverse(geometry[flip])
    return geometry


def _pair_twins(u: NDArray, v: NDArray, length: NDArray) -> NDArray[np.int64]:
    """Pair each edge with the reverse edge of the same street (same ends, same length)."""
    twin = np.full(u.size, -1, dtype=np.int64)
    by_ends: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i in range(u.size):
        by_ends[(int(u[i]), int(v[i]))].append(i)
    for i in range(u.size):
        if twin[i] >= 0:
            continue
        best, best_diff = -1, np.inf
        for j in by_ends.get((int(v[i]), int(u[i])), ()):
            if j == i or twin[j] >= 0:
                continue
            diff = abs(length[i] - length[j])
            if diff < best_diff:
                best, best_diff = j, diff
        if best >= 0 and best_diff <= max(1.0, 0.01 * length[i]):
            twin[i] = best
            twin[best] = i
    return twin


def _mode_filter(
    raw: dict[str, NDArray], mode: str, ebike_oneway: frozenset[str]
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Which edges the mode may use, and on which it ignores the one-way rule."""
    excluded = _NEVER | _MODE_EXCLUDED[mode]
    bad_access = _MODE_EXCLUDED_ACCESS[mode]
    n = raw["u"].size
    keep = np.zeros(n, dtype=bool)
    ignore_oneway = np.zeros(n, dtype=bool)
    for i in range(n):
        tags = raw["highway_tags"][i]
        # A simplified edge joins several ways: usable only if every part is.
        if not tags or any(t in excluded for t in tags):
            continue
        if any(a in bad_access for a in raw["access"][i]):
            continue
        keep[i] = True
        if mode == "walk":
            ignore_oneway[i] = True
        elif mode == "ebike":
            ignore_oneway[i] = not any(t in ebike_oneway for t in tags)
    return keep, ignore_oneway & raw["oneway"]


def _build_csr(
    u: NDArray, v: NDArray, length: NDArray, n_nodes: int
) -> tuple[NDArray[np.int32], NDArray[np.int32], NDArray[np.int32]]:
    """CSR arrays keeping, between two nodes, the shortest of parallel edges."""
    order = np.lexsort((length, v, u))
    su, sv = u[order], v[order]
    first = np.ones(order.size, dtype=bool)
    first[1:] = (su[1:] != su[:-1]) | (sv[1:] != sv[:-1])
    chosen = order[first]
    indptr = np.zeros(n_nodes + 1, dtype=np.int64)
    np.add.at(indptr, u[chosen] + 1, 1)
    indptr = np.cumsum(indptr)
    return (
        indptr.astype(np.int32),
        v[chosen].astype(np.int32),
        chosen.astype(np.int32),
    )
