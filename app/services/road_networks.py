"""The road network patrol plans travel on: read once per process and travel mode.

The graph file is ``XIAOSAN_ROAD_GRAPH`` (an OSM XML or OSMnx GraphML file, optionally
compressed), by default the demo district's ``grid_data/demo/futian_roads.graphml.gz``; ``none``
turns road routing off, so plans use the straight-line estimate (and say so). Building a mode's
network from the file takes a second or two; it is then kept in memory for the life of the
process (a web worker, a CLI run), and optionally pickled under ``XIAOSAN_ROAD_CACHE_DIR`` so
that the next process starts faster.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from app import gcpolicy
from gis.roads import MODES, RoadNetwork, load_road_network

log = logging.getLogger(__name__)

_LOCK = threading.Lock()
_NETWORKS: dict[tuple[str, str], RoadNetwork | None] = {}


def road_graph_path() -> Path | None:
    """The configured road graph file, or None when road routing is off or the file is missing."""
    value = os.environ.get("XIAOSAN_ROAD_GRAPH", "").strip()
    if value.lower() == "none":
        return None
    if value:
        path = Path(value)
    else:
        from grid_data.demo_data import ROAD_GRAPH_PATH

        path = ROAD_GRAPH_PATH
    return path if path.is_file() else None


def road_network(mode: str) -> RoadNetwork | None:
    """The network of ``mode`` (walk, ebike, car), built once per process; None without one.

    A graph that cannot be read is logged and treated as absent: plans then fall back to
    straight-line estimates, flagged as such, rather than failing.
    """
    if mode not in MODES:
        raise ValueError(f"mode: must be one of {', '.join(MODES)}")
    path = road_graph_path()
    if path is None:
        return None
    key = (str(path), mode)
    with _LOCK:
        if key not in _NETWORKS:
            cache_dir = os.environ.get("XIAOSAN_ROAD_CACHE_DIR") or None
            try:
                _NETWORKS[key] = load_road_network(path, mode=mode, cache_dir=cache_dir)
                log.info("road network %s (%s): %s", path.name, mode, _NETWORKS[key].report)
                gcpolicy.settle(f"road network {mode}")  # kept for the process's life
            except Exception:  # a corrupt or foreign file must not take plans down
                log.exception("cannot read the road network %s for %s", path, mode)
                _NETWORKS[key] = None
        return _NETWORKS[key]


def clear_cache() -> None:
    """Forget the networks read so far (after the graph file changed)."""
    with _LOCK:
        _NETWORKS.clear()
