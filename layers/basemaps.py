"""Basemaps: our own roads (offline, the default) or one of three tile services.

``XIAOSAN_BASEMAP`` picks the base a page opens with; the others stay in the layer control.

``none``
    No tile server at all: the page draws the demo road graph (``/api/basemap/roads``, built
    here from the GraphML by :func:`roads_geojson`) under the boundaries. Works on an intranet
    with no internet, which is where most district platforms run.
``osm``
    OpenStreetMap's standard tiles (WGS84 data on Web Mercator; overlays need no shift).
``tianditu``
    The national platform (天地图), CGCS2000 ≈ WGS84 at map scales. Needs a key
    (``XIAOSAN_TIANDITU_KEY``); without one the entry is not offered at all.
``gaode``
    Gaode/AMap tiles are drawn in GCJ-02. When it is the active base the page draws DISPLAY
    copies of every overlay shifted WGS84 → GCJ-02 in the browser (the port of
    :func:`gis.gcj02.wgs84_to_gcj02` in ``xs-shell.js``); what is stored never changes.

Tile addresses point outside, which :func:`layers.offline.localise` allows: it refuses outside
scripts and stylesheets, not images a user chose to load.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_BASEMAP = "none"
ROADS_URL = "/api/basemap/roads"


@dataclass(frozen=True)
class Basemap:
    """One base layer as the page's script builds it."""

    name: str
    title_key: str
    kind: str  # "roads" (our GeoJSON) or "tiles"
    datum: str  # the datum the base is drawn in: "wgs84" or "gcj02"
    url: str = ""
    subdomains: str = ""
    attribution: str = ""
    max_zoom: int = 19
    labels_url: str = ""  # a second tile layer of place names drawn over the first

    def for_page(self, title: str) -> dict[str, Any]:
        return {**asdict(self), "title": title}


_TIANDITU = (
    "https://t{s}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
    "&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles"
    "&TILEMATRIX={{z}}&TILEROW={{y}}&TILECOL={{x}}&tk={key}"
)


def basemaps(env: Mapping[str, str] | None = None) -> list[Basemap]:
    """The bases this installation offers, in layer-control order."""
    env = os.environ if env is None else env
    out = [
        Basemap("none", "basemap.none", "roads", "wgs84", url=ROADS_URL),
        Basemap(
            "osm",
            "basemap.osm",
            "tiles",
            "wgs84",
            url="https://tile.openstreetmap.org/{z}/{x}/{y}.png",
            attribution="© OpenStreetMap contributors",
            max_zoom=19,
        ),
    ]
    key = env.get("XIAOSAN_TIANDITU_KEY", "").strip()
    if key:
        out.append(
            Basemap(
                "tianditu",
                "basemap.tianditu",
                "tiles",
                "wgs84",
                url=_TIANDITU.format(s="{s}", layer="vec", key=key),
                labels_url=_TIANDITU.format(s="{s}", layer="cva", key=key),
                subdomains="01234567",
                attribution="© 天地图 Tianditu",
                max_zoom=18,
            )
        )
    out.append(
        Basemap(
            "gaode",
            "basemap.gaode",
            "tiles",
            "gcj02",
            url="https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1"
            "&style=8&x={x}&y={y}&z={z}",
            subdomains="1234",
            attribution="© 高德地图 AutoNavi",
            max_zoom=18,
        )
    )
    return out


def active_basemap(env: Mapping[str, str] | None = None) -> str:
    """The base a page opens with: ``XIAOSAN_BASEMAP`` if offered here, else ``none``.

    An unknown name, or ``tianditu`` without a key, falls back to the offline base with a
    warning: a map with our roads is better than a grey page.
    """
    env = os.environ if env is None else env
    wanted = env.get("XIAOSAN_BASEMAP", DEFAULT_BASEMAP).strip().lower() or DEFAULT_BASEMAP
    offered = {b.name for b in basemaps(env)}
    if wanted not in offered:
        log.warning("XIAOSAN_BASEMAP=%s is not available here (offered: %s); using %s",
                    wanted, ", ".join(sorted(offered)), DEFAULT_BASEMAP)
        return DEFAULT_BASEMAP
    return wanted


# --- the offline base: our road graph as simplified GeoJSON --------------------------------

# OSM highway tag → drawing class (major roads wide, paths thin).
ROAD_CLASSES: dict[str, str] = {
    **dict.fromkeys(("motorway", "trunk", "primary", "motorway_link", "trunk_link",
                     "primary_link"), "major"),
    **dict.fromkeys(("secondary", "tertiary", "secondary_link", "tertiary_link"), "medium"),
    **dict.fromkeys(("residential", "living_street", "unclassified", "service", "road"),
                    "minor"),
}
ROADS_SIMPLIFY_M = 2.0
_CACHE_VERSION = 2


def _road_class(highway: object) -> str:
    tags = highway if isinstance(highway, list) else [highway]
    classes = [ROAD_CLASSES.get(str(t), "path") for t in tags]
    for c in ("major", "medium", "minor"):
        if c in classes:
            return c
    return "path"


def build_roads_geojson(path: str | Path, *, simplify_m: float = ROADS_SIMPLIFY_M
                        ) -> dict[str, Any]:
    """The road graph as a FeatureCollection of LineStrings, one per street (not per direction).

    A two-way street is two directed edges in the graph; drawing both doubles the bytes for
    nothing, so the graph is made undirected first (osmnx keeps one edge of each reciprocal
    pair with the same geometry). Geometries are simplified in the network's UTM zone
    (``simplify_m`` metres, never degrees) and rounded to 6 decimals (~0.1 m).
    """
    import numpy as np
    import osmnx as ox
    import shapely
    from pyproj import Transformer

    from gis.roads import metric_crs_for, read_osm_graph

    graph = ox.convert.to_undirected(read_osm_graph(path))
    xs = [float(d["x"]) for _, d in graph.nodes(data=True)]
    ys = [float(d["y"]) for _, d in graph.nodes(data=True)]
    crs = metric_crs_for(float(np.mean(xs)), float(np.mean(ys)))
    forward = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    back = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lines, props = [], []
    for u, v, data in graph.edges(data=True):
        geom = data.get("geometry")
        if geom is None:
            nu, nv = graph.nodes[u], graph.nodes[v]
            geom = shapely.LineString([(nu["x"], nu["y"]), (nv["x"], nv["y"])])
        elif isinstance(geom, str):
            geom = shapely.from_wkt(geom)
        lines.append(geom)
        name = data.get("name")
        props.append({"class": _road_class(data.get("highway")),
                      "name": ";".join(name) if isinstance(name, list) else name})
    metric = shapely.transform(np.asarray(lines, dtype=object), lambda xy: np.column_stack(
        forward.transform(xy[:, 0], xy[:, 1])))
    simple = shapely.simplify(metric, simplify_m, preserve_topology=True)
    wgs = shapely.transform(simple, lambda xy: np.round(np.column_stack(
        back.transform(xy[:, 0], xy[:, 1])), 6))
    features = [
        {"type": "Feature", "geometry": json.loads(shapely.to_geojson(g)), "properties": p}
        for g, p in zip(wgs, props, strict=True)
    ]
    return {"type": "FeatureCollection", "features": features}


def roads_geojson_bytes(path: str | Path, *, cache_dir: str | Path | None = None) -> bytes:
    """The roads as gzipped GeoJSON bytes, cached on disk by the source file's SHA-256.

    Reading the GraphML takes seconds (osmnx); the result changes only with the file, so it is
    built once and kept as ``basemap-roads-<hash>.geojson.gz`` in ``cache_dir``.
    """
    path = Path(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"basemap-roads-{digest}-v{_CACHE_VERSION}.geojson.gz"
        if cache_file.is_file():
            return cache_file.read_bytes()
    body = gzip.compress(json.dumps(build_roads_geojson(path), ensure_ascii=False,
                                    separators=(",", ":")).encode(), mtime=0)
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(body)
        tmp.replace(cache_file)  # atomic: a parallel reader never sees half a file
    return body
