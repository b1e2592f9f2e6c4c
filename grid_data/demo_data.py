"""The demo district shipped with the product: Futian (福田区), Shenzhen.

The files in ``grid_data/demo/`` are built by :mod:`grid_data.build_demo` from open data
(see ``grid_data/README.md``). The district outline and the codes and names are real; the
street, community and grid polygons are **derived**, not official boundaries.

Levels are named as in :data:`gis.codes.LEVELS`: ``district``, ``street``, ``community``,
``grid``. Every layer is WGS84 (EPSG:4326) with the fields ``code``, ``name``,
``parent_code`` and ``level``, and each level tiles its parent exactly.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd

if TYPE_CHECKING:
    import networkx as nx

__all__ = [
    "DEMO_DIR",
    "DEMO_DISTRICT_CODE",
    "DEMO_LEVELS",
    "ROAD_GRAPH_PATH",
    "demo_level_path",
    "load_demo_level",
    "load_road_graph",
]

DEMO_DIR = Path(__file__).resolve().parent / "demo"
DEMO_DISTRICT_CODE = "440304000000"
DEMO_LEVELS: tuple[str, ...] = ("district", "street", "community", "grid")
ROAD_GRAPH_PATH = DEMO_DIR / "futian_roads.graphml.gz"
"""Gzipped OSMnx graphml of the Futian road network (© OpenStreetMap contributors, ODbL 1.0)."""

_FILE_NAMES = {
    "district": "district.geojson",
    "street": "streets.geojson",
    "community": "communities.geojson",
    "grid": "grids.geojson",
}


def demo_level_path(level: str) -> Path:
    """Path of the demo GeoJSON file of ``level``.

    Parameters
    ----------
    level
        One of ``'district'``, ``'street'``, ``'community'``, ``'grid'``.

    Returns
    -------
    pathlib.Path
        The file in :data:`DEMO_DIR` (it exists once the demo has been built).

    Raises
    ------
    ValueError
        If ``level`` is not a level name.
    """
    try:
        return DEMO_DIR / _FILE_NAMES[level]
    except KeyError:
        msg = f"unknown level {level!r}; expected one of {', '.join(DEMO_LEVELS)}"
        raise ValueError(msg) from None


def load_demo_level(level: str) -> gpd.GeoDataFrame:
    """Read one level of the demo district.

    Parameters
    ----------
    level
        One of ``'district'``, ``'street'``, ``'community'``, ``'grid'``.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per unit, sorted by ``code``; codes are strings; CRS EPSG:4326.
    """
    frame = gpd.read_file(demo_level_path(level))
    for column in ("code", "parent_code"):
        frame[column] = frame[column].astype(str)
    if frame.crs is None:  # GeoJSON is WGS84 by definition (RFC 7946)
        frame = frame.set_crs("EPSG:4326")
    return frame.sort_values("code", ignore_index=True)


def load_road_graph() -> nx.MultiDiGraph:
    """The Futian OSMnx road graph (WGS84, all ways: filter ``highway`` for driving).

    Returns
    -------
    networkx.MultiDiGraph
        1,751 nodes and 4,009 directed edges with ``length`` in metres.
    """
    import osmnx  # heavy import, only when routing needs it

    text = gzip.decompress(ROAD_GRAPH_PATH.read_bytes()).decode("utf-8")
    return osmnx.load_graphml(graphml_str=text)
