"""Build the demo district (Futian 福田区, Shenzhen) from open data.

Run ``python -m grid_data.build_demo [--realdata PATH] [--out grid_data/demo]``.

The official district outline, street and community codes and names are real; the street,
community and grid **polygons are derived** here (no public source has them, see
``grid_data/README.md``):

1. District: the Futian outline of ``shenzhen_transbigdata`` (WGS84).
2. Streets: a Voronoi diagram of every Vonng/adcode point of the district (street offices
   and communities, GCJ-02 converted to WGS84), each cell labelled with its street,
   dissolved by street and clipped to the outline. Detached pieces join the neighbour with
   the longest shared border.
3. Communities: inside each street, a Voronoi diagram of the community points; communities
   without a point get seeds spread over the street (farthest-point start, then Lloyd
   iterations on a lattice of sample points with the known points held fixed).
4. Grids: inside each community, faces cut by the major OSM roads where the road graph
   covers, else the whole community; faces that are too small or too thin join a neighbour,
   faces larger than the target area are split by a centroidal Voronoi diagram.
5. One coverage: the grid boundaries are snap-rounded together to 1e-7 degrees, polygonised,
   and every face is given back to its grid; communities, streets and the district are unions
   of those faces. Every level therefore tiles its parent exactly in the written files.

The build is deterministic: no randomness, and the same inputs give byte-identical files.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from pyproj import Transformer
from scipy.spatial import cKDTree
from shapely.geometry import Polygon
from shapely.ops import nearest_points

from gis.gcj02 import gcj02_to_wgs84

__all__ = ["build", "main"]

log = logging.getLogger(__name__)

DEFAULT_REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
DEFAULT_OUT = Path(__file__).resolve().parent / "demo"

CITY_CODE = "440300000000"
DISTRICT_CODE = "440304000000"
DISTRICT_NAME = "福田区"
DISTRICT_SHORT = "福田"  # field ``qh`` of the transbigdata district layer

METRIC_CRS = "EPSG:4547"  # CGCS2000 / 3-degree Gauss-Kruger CM 114E
METRIC_GRID_M = 0.01  # snap-rounding grid of the metric overlays
WGS84_DECIMALS = 7
WGS84_GRID_DEG = 10.0**-WGS84_DECIMALS

TARGET_GRID_AREA_M2 = 75_000.0  # ~80 km² / ~1,000 grids
MIN_GRID_AREA_M2 = 8_000.0  # faces below this join a neighbour (hard floor in tests: 2,000)
MIN_GRID_WIDTH_M = 25.0  # mean width 2A/P below this: a road median or a sliver
MIN_GRIDS_PER_COMMUNITY = 3
DUPLICATE_SPREAD_M = 120.0  # communities sharing one point are spread on a circle this wide
SEED_INSET_M = 100.0  # a seed moved into its street lands this far inside

# Major roads bound grids; links, residential and service roads do not.
MAJOR_HIGHWAYS = ("trunk", "primary", "secondary", "tertiary")

# 华强北街道 (split off in 2009) has no point in the 2016 adcode data, nor have its
# communities. Hand-placed, approximate: the Huaqiangbei commercial area between Shennan
# Road and Hongli Road, east of Huafu Road (WGS84). Not from a data source.
MANUAL_STREET_SEEDS: dict[str, tuple[float, float]] = {"440304011000": (114.0820, 22.5480)}

SOURCE_NOTES = {
    "district": "outline: ni1o1/transbigdata sz.json (BSD-3-Clause), WGS84",
    "street": "DERIVED polygon (Voronoi of Vonng/adcode points, CC BY 4.0); official code/name",
    "community": "DERIVED polygon (Voronoi inside street, Vonng/adcode points); official code/name",
    "grid": "DERIVED demo grid, not official",
}

_TO_METRIC = Transformer.from_crs("EPSG:4326", METRIC_CRS, always_xy=True)
_TO_WGS84 = Transformer.from_crs(METRIC_CRS, "EPSG:4326", always_xy=True)


# --------------------------------------------------------------------------- inputs


@dataclass
class Unit:
    """One territorial unit under construction (metric geometry)."""

    code: str
    name: str
    parent_code: str
    geometry: Polygon | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _to_metric(geom):
    return shapely.transform(geom, lambda xy: np.column_stack(_TO_METRIC.transform(*xy.T)))


def _to_wgs84(geom):
    return shapely.transform(geom, lambda xy: np.column_stack(_TO_WGS84.transform(*xy.T)))


def _metric_xy(lon: NDArray, lat: NDArray) -> NDArray:
    x, y = _TO_METRIC.transform(np.asarray(lon, float), np.asarray(lat, float))
    return np.column_stack([x, y])


def load_outline(realdata: Path) -> Polygon:
    """The Futian outline (WGS84) from the transbigdata district layer."""
    path = realdata / "shenzhen_transbigdata" / "shenzhen_districts_10_wgs84.geojson"
    data = json.loads(path.read_text(encoding="utf-8"))
    shapes = [
        shapely.geometry.shape(f["geometry"])
        for f in data["features"]
        if f["properties"]["qh"] == DISTRICT_SHORT
    ]
    if len(shapes) != 1:
        msg = f"expected one {DISTRICT_SHORT} feature in {path}, found {len(shapes)}"
        raise ValueError(msg)
    outline = shapes[0]
    if outline.geom_type != "Polygon":
        outline = max(shapely.get_parts(outline), key=lambda g: g.area)
    return Polygon(outline.exterior)  # the layer has no holes; drop any to be sure


def load_hierarchy(realdata: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Streets and communities of the district, with WGS84 points where adcode has one.

    Returns
    -------
    streets, communities
        Frames with ``code``, ``name``, ``parent_code``, ``lon``, ``lat`` (WGS84, NaN
        where the source has no point), sorted by code.
    """
    folder = realdata / "china_admin_vonng_adcode"
    rows = pd.read_csv(folder / "admin_hierarchy_5level_gcj02.csv", dtype=str)
    rows = rows[rows["code"].str.startswith(DISTRICT_CODE[:6])].copy()
    has_point = rows["longitude"].notna() & rows["latitude"].notna()
    lon, lat = gcj02_to_wgs84(
        rows.loc[has_point, "longitude"].astype(float).to_numpy(),
        rows.loc[has_point, "latitude"].astype(float).to_numpy(),
    )
    rows["lon"] = np.nan
    rows["lat"] = np.nan
    rows.loc[has_point, "lon"] = lon
    rows.loc[has_point, "lat"] = lat

    names_2023 = pd.read_csv(folder / "streets_2023_modood_shenzhen_xiamen_dongcheng.csv", dtype=str)
    short = dict(zip(names_2023["code"] + "000", names_2023["name"], strict=True))

    cols = ["code", "name", "parent_code", "lon", "lat"]
    streets = rows[rows["rank"] == "4"].rename(columns={"parent": "parent_code"})
    streets["name"] = [short.get(c, n) for c, n in zip(streets["code"], streets["name"])]
    communities = rows[rows["rank"] == "5"].rename(columns={"parent": "parent_code"})
    communities["name"] = communities["name"].str.replace("社区居委会", "社区", regex=False)
    return (
        streets[cols].sort_values("code").reset_index(drop=True),
        communities[cols].sort_values("code").reset_index(drop=True),
    )


def load_major_roads(realdata: Path) -> shapely.Geometry:
    """Major OSM roads of the Futian graph (metric, simplified to 1 m, one noded geometry)."""
    path = realdata / "shenzhen_transbigdata" / "futian_osm_edges_wgs84.geojson"
    data = json.loads(path.read_text(encoding="utf-8"))
    lines = []
    for feature in data["features"]:
        highway = feature["properties"].get("highway") or ""
        kinds = ast.literal_eval(highway) if highway.startswith("[") else [highway]
        if any(kind in MAJOR_HIGHWAYS for kind in kinds):
            lines.append(shapely.geometry.shape(feature["geometry"]))
    roads = shapely.simplify(_to_metric(np.array(lines, dtype=object)), 1.0)
    return shapely.union_all(roads, grid_size=METRIC_GRID_M)


def load_road_graph_bytes(realdata: Path) -> bytes:
    """The raw OSMnx graphml of the Futian road network."""
    return (realdata / "shenzhen_transbigdata" / "futian_osm_network_osmnx.graphml").read_bytes()


# --------------------------------------------------------------------------- geometry helpers


def _shared_length(a: Polygon, b: Polygon) -> float:
    """Length of the border that polygons ``a`` and ``b`` share (1 cm tolerance)."""
    if not shapely.dwithin(a, b, 0.05):
        return 0.0
    return float(shapely.length(shapely.intersection(a.boundary, shapely.buffer(b, 0.05))))


def _absorb(keepers: list[Polygon], orphans: Sequence[Polygon]) -> list[Polygon]:
    """Merge every orphan polygon into the keeper with which it shares the longest border.

    Orphans touching only other orphans wait until a neighbour has been merged; an orphan
    touching nothing (should not happen in a connected parent) joins the nearest keeper.
    """
    keepers = list(keepers)
    pending = sorted(orphans, key=lambda g: -g.area)
    while pending:
        waiting = []
        for orphan in pending:
            lengths = [_shared_length(orphan, k) for k in keepers]
            best = int(np.argmax(lengths))
            if lengths[best] > 0.0:
                keepers[best] = _merge(keepers[best], orphan)
            else:
                waiting.append(orphan)
        if len(waiting) == len(pending):
            orphan = waiting.pop(0)
            best = int(np.argmin([shapely.distance(orphan, k) for k in keepers]))
            keepers[best] = _merge(keepers[best], orphan)
        pending = waiting
    return keepers


def _merge(a: Polygon, b: Polygon) -> Polygon:
    merged = shapely.union(a, b, grid_size=METRIC_GRID_M)
    if merged.geom_type != "Polygon":  # touching at a corner only: keep a's biggest piece
        merged = max(shapely.get_parts(merged), key=lambda g: g.area)
    return merged


def _single_parts(
    pieces: Sequence[shapely.Geometry], anchors: Sequence[shapely.Point | None]
) -> list[Polygon]:
    """Make each piece one polygon: keep the part holding its anchor (else the largest) and
    hand the other parts to the neighbour with the longest shared border."""
    keepers: list[Polygon] = []
    orphans: list[Polygon] = []
    for piece, anchor in zip(pieces, anchors, strict=True):
        parts = sorted(shapely.get_parts(piece), key=lambda g: -g.area)
        main = 0
        if anchor is not None:
            holding = [i for i, p in enumerate(parts) if p.covers(anchor)]
            main = holding[0] if holding else 0
        keepers.append(parts[main])
        orphans.extend(p for i, p in enumerate(parts) if i != main)
    # Parts are merged in place: _absorb keeps the keepers' order.
    return _absorb(keepers, orphans)


def _voronoi_split(parent: Polygon, seeds: NDArray) -> list[Polygon]:
    """Voronoi cells of ``seeds`` clipped to ``parent``, one polygon per seed, in seed order."""
    if len(seeds) == 1:
        return [parent]
    cells = shapely.get_parts(
        shapely.voronoi_polygons(
            shapely.multipoints(seeds),
            extend_to=shapely.buffer(parent, 1000.0),
            ordered=True,
        )
    )
    if len(cells) != len(seeds):
        msg = f"{len(seeds)} seeds gave {len(cells)} Voronoi cells (duplicate seeds?)"
        raise ValueError(msg)
    clipped = [shapely.intersection(c, parent, grid_size=METRIC_GRID_M) for c in cells]
    return _single_parts(clipped, [shapely.Point(s) for s in seeds])


def _lattice(parent: Polygon, n_samples: int) -> NDArray:
    """About ``n_samples`` points of a square lattice inside ``parent`` (at least 1)."""
    step = max(np.sqrt(parent.area / n_samples), 1.0)
    x0, y0, x1, y1 = parent.bounds
    xs = np.arange(x0 + step / 2, x1, step)
    ys = np.arange(y0 + step / 2, y1, step)
    gx, gy = np.meshgrid(xs, ys)
    gx, gy = gx.ravel(), gy.ravel()
    inside = shapely.contains_xy(parent, gx, gy)
    points = np.column_stack([gx[inside], gy[inside]])
    if len(points) == 0:
        p = parent.point_on_surface()
        points = np.array([[p.x, p.y]])
    return points


def spread_seeds(
    parent: Polygon, fixed: NDArray, n_free: int, *, n_samples: int = 3000, n_iter: int = 40
) -> NDArray:
    """Place ``n_free`` seeds in ``parent`` so that, with the ``fixed`` ones, cells are even.

    Farthest-point sampling on a lattice of sample points gives the start; Lloyd iterations
    (each free seed moves to the centroid of the samples nearest to it) even out the cells
    while the fixed seeds stay put. Deterministic: no random numbers.

    Parameters
    ----------
    parent
        Polygon (metric) to place the seeds in.
    fixed
        ``(m, 2)`` seeds that do not move (may be empty).
    n_free
        Number of seeds to place.
    n_samples, n_iter
        Lattice size and Lloyd iterations.

    Returns
    -------
    numpy.ndarray
        ``(n_free, 2)`` new seeds, each on a lattice sample or a centroid of samples.
    """
    samples = _lattice(parent, max(n_samples, 40 * (n_free + len(fixed))))
    fixed = np.asarray(fixed, dtype=float).reshape(-1, 2)
    free_list: list[NDArray] = []
    if len(fixed):
        dist = cKDTree(fixed).query(samples)[0]
    else:  # start next to the centroid
        centre = np.asarray(parent.centroid.coords[0])
        first = samples[int(np.argmin(np.hypot(*(samples - centre).T)))]
        free_list.append(first)
        dist = np.hypot(*(samples - first).T)
    while len(free_list) < n_free:
        pick = samples[int(np.argmax(dist))]
        free_list.append(pick)
        dist = np.minimum(dist, np.hypot(*(samples - pick).T))
    free = np.array(free_list, dtype=float).reshape(-1, 2)
    for _ in range(n_iter):
        nearest = cKDTree(np.vstack([fixed, free])).query(samples)[1] - len(fixed)
        for j in range(n_free):
            mine = samples[nearest == j]
            if len(mine):
                free[j] = mine.mean(axis=0)
    # A centroid of a non-convex cell can fall outside the parent: use its nearest sample.
    outside = ~shapely.contains_xy(parent, free[:, 0], free[:, 1])
    if outside.any():
        free[outside] = samples[cKDTree(samples).query(free[outside])[1]]
    return free


def split_polygon(parent: Polygon, k: int) -> list[Polygon]:
    """Split ``parent`` into ``k`` compact pieces (centroidal Voronoi)."""
    if k <= 1:
        return [parent]
    return _voronoi_split(parent, spread_seeds(parent, np.empty((0, 2)), k))


# --------------------------------------------------------------------------- levels


def derive_streets(outline_m: Polygon, streets: pd.DataFrame, communities: pd.DataFrame
                   ) -> list[Unit]:
    """Street polygons: labelled Voronoi of all adcode points, dissolved by street."""
    seeds: list[tuple[float, float, str]] = []
    for frame, key in ((streets, "code"), (communities, "parent_code")):
        located = frame.dropna(subset=["lon"])
        xy = _metric_xy(located["lon"].to_numpy(), located["lat"].to_numpy())
        seeds.extend((x, y, s) for (x, y), s in zip(xy, located[key], strict=True))
    for code, (lon, lat) in sorted(MANUAL_STREET_SEEDS.items()):
        (x, y), = _metric_xy(np.array([lon]), np.array([lat]))
        seeds.append((x, y, code))
    seeds = sorted(set(seeds), key=lambda s: (s[2], s[0], s[1]))
    codes = streets["code"].tolist()
    missing = [c for c in codes if c not in {s[2] for s in seeds}]
    if missing:
        msg = f"streets without any seed point: {missing}"
        raise ValueError(msg)
    labels = np.array([s[2] for s in seeds])
    cells = _voronoi_split(outline_m, np.array([s[:2] for s in seeds]))
    pieces = [shapely.union_all([c for c, l in zip(cells, labels) if l == code],
                                grid_size=METRIC_GRID_M) for code in codes]
    own = {}
    for code in codes:
        rows = streets[streets["code"] == code].dropna(subset=["lon"])
        own[code] = (shapely.Point(_metric_xy(rows["lon"], rows["lat"])[0])
                     if len(rows) else None)
    polys = _single_parts(pieces, [own[c] for c in codes])
    units = []
    for (_, row), poly in zip(streets.iterrows(), polys, strict=True):
        seed = ("adcode street point" if pd.notna(row["lon"])
                else "hand-placed" if row["code"] in MANUAL_STREET_SEEDS
                else "community points")
        units.append(Unit(row["code"], row["name"], DISTRICT_CODE, poly, {"seed": seed}))
    return units


def _community_seeds(street: Unit, members: pd.DataFrame) -> tuple[NDArray, list[str]]:
    """Seeds of the communities of one street (metric) and how each was obtained."""
    poly = street.geometry
    inner = shapely.buffer(poly, -SEED_INSET_M)
    if inner.is_empty:
        inner = poly
    seeds = np.full((len(members), 2), np.nan)
    how = ["spread"] * len(members)
    located = members["lon"].notna().to_numpy()
    if located.any():
        seeds[located] = _metric_xy(members.loc[located, "lon"], members.loc[located, "lat"])
    # Communities sharing one point: spread them on a small circle around it.
    groups: dict[tuple[float, float], list[int]] = {}
    for i in np.flatnonzero(located):
        groups.setdefault((round(seeds[i, 0], 1), round(seeds[i, 1], 1)), []).append(int(i))
    for group in groups.values():
        for j, i in enumerate(group):
            how[i] = "adcode point"
            if len(group) > 1:
                angle = 2 * np.pi * j / len(group)
                seeds[i] += DUPLICATE_SPREAD_M * np.array([np.cos(angle), np.sin(angle)])
                how[i] = "adcode point (shared, spread)"
    for i in np.flatnonzero(located):
        point = shapely.Point(seeds[i])
        if not poly.contains(point):
            seeds[i] = nearest_points(inner, point)[0].coords[0]
            how[i] = "adcode point moved inside street"
    free = ~located
    if free.any():
        seeds[free] = spread_seeds(poly, seeds[located], int(free.sum()))
    return seeds, how


def derive_communities(streets: list[Unit], communities: pd.DataFrame) -> list[Unit]:
    """Community polygons: Voronoi of community seeds inside each street."""
    units = []
    for street in streets:
        members = communities[communities["parent_code"] == street.code].reset_index(drop=True)
        if members.empty:
            msg = f"street {street.code} has no communities"
            raise ValueError(msg)
        seeds, how = _community_seeds(street, members)
        polys = _voronoi_split(street.geometry, seeds)
        for (_, row), poly, h in zip(members.iterrows(), polys, how, strict=True):
            units.append(Unit(row["code"], row["name"], street.code, poly, {"seed": h}))
    return units


def _is_small_or_thin(poly: Polygon) -> bool:
    return poly.area < MIN_GRID_AREA_M2 or 2 * poly.area / poly.length < MIN_GRID_WIDTH_M


def _road_faces(community: Polygon, roads: shapely.Geometry) -> list[Polygon]:
    """Faces of ``community`` cut by the major roads (just the community if none cross)."""
    inside = shapely.intersection(roads, community, grid_size=METRIC_GRID_M)
    if shapely.length(inside) < 1.0:
        return [community]
    lines = shapely.union_all([community.boundary, inside], grid_size=METRIC_GRID_M)
    faces = list(shapely.get_parts(shapely.polygonize(shapely.get_parts(lines))))
    faces = [f for f in faces if community.covers(f.representative_point())]
    gap = community.area - sum(f.area for f in faces)
    if abs(gap) > 1.0:  # polygonize should cover the community exactly
        log.warning("road faces leave %.1f m² of a community; using it whole", gap)
        return [community]
    return faces


def derive_grids(community: Unit, roads: shapely.Geometry) -> list[tuple[Polygon, str]]:
    """Grid polygons of one community with the method that made each."""
    faces = _road_faces(community.geometry, roads)
    by_roads = len(faces) > 1
    keep = [f for f in faces if not _is_small_or_thin(f)]
    if not keep:
        keep = [max(faces, key=lambda f: f.area)]
    orphans = [f for f in faces if all(f is not k for k in keep)]
    blocks = _absorb(keep, orphans)

    grids: list[tuple[Polygon, str]] = []
    for block in blocks:
        k = round(block.area / TARGET_GRID_AREA_M2)
        pieces = split_polygon(block, k) if k >= 2 else [block]
        label = "voronoi" if not by_roads else "road block" if len(pieces) == 1 else (
            "road block + voronoi"
        )
        grids.extend((p, label) for p in pieces)
    while len(grids) < MIN_GRIDS_PER_COMMUNITY:
        grids.sort(key=lambda g: -g[0].area)
        biggest, label = grids.pop(0)
        need = MIN_GRIDS_PER_COMMUNITY - len(grids)
        label = "road block + voronoi" if label.startswith("road") else "voronoi"
        grids.extend((p, label) for p in split_polygon(biggest, need))
    small = [g for g in grids if g[0].area < MIN_GRID_AREA_M2]
    if small and len(grids) > len(small):
        big = [g for g in grids if g[0].area >= MIN_GRID_AREA_M2]
        merged = _absorb([g[0] for g in big], [g[0] for g in small])
        grids = [(m, g[1]) for m, g in zip(merged, big, strict=True)]
    return grids


# --------------------------------------------------------------------------- one coverage


def snap_coverage(polygons_wgs84: Sequence[Polygon]) -> list[Polygon]:
    """Snap-round a (nearly exact) polygon coverage to ``WGS84_GRID_DEG`` as one network.

    All boundaries are noded and rounded together, polygonised into faces, and every face goes
    to the input polygon that overlaps it most (slivers and gaps of the input included).
    Adjacent outputs then share identical vertices, so rounding to 7 decimals on writing
    keeps the coverage exact.
    """
    network = shapely.union_all(
        [p.boundary for p in polygons_wgs84], grid_size=WGS84_GRID_DEG
    )
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(network)))
    tree = shapely.STRtree(polygons_wgs84)
    owner = np.empty(len(faces), dtype=int)
    for i, face in enumerate(faces):
        candidates = tree.query(face, predicate="intersects")
        if len(candidates) == 0:
            owner[i] = int(tree.nearest(face))
            continue
        areas = shapely.area(shapely.intersection(face, np.take(polygons_wgs84, candidates)))
        owner[i] = int(candidates[int(np.argmax(areas))])
    out = []
    for j in range(len(polygons_wgs84)):
        mine = faces[owner == j]
        if len(mine) == 0:
            msg = f"polygon {j} lost all its area when snapped to the coverage"
            raise RuntimeError(msg)
        out.append(shapely.union_all(mine, grid_size=WGS84_GRID_DEG))
    return out


def _union_by(parts: Sequence[Polygon], keys: Sequence[str], wanted: Sequence[str]
              ) -> list[shapely.Geometry]:
    return [shapely.union_all([p for p, k in zip(parts, keys) if k == w],
                              grid_size=WGS84_GRID_DEG) for w in wanted]


# --------------------------------------------------------------------------- writing


def _fmt(value: float) -> str:
    text = f"{value:.{WGS84_DECIMALS}f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _ring(coords: NDArray) -> str:
    return "[" + ",".join(f"[{_fmt(x)},{_fmt(y)}]" for x, y in coords) + "]"


def _geometry_json(geom: Polygon) -> str:
    geom = shapely.orient_polygons(geom)  # RFC 7946: exterior counter-clockwise
    rings = [geom.exterior, *geom.interiors]
    body = ",".join(_ring(np.asarray(r.coords)) for r in rings)
    return '{"type":"Polygon","coordinates":[' + body + "]}"


def write_geojson(path: Path, name: str, features: Sequence[tuple[dict, Polygon]]) -> None:
    """Write a FeatureCollection, one feature per line, coordinates with 7 decimals."""
    lines = [f'{{"type":"FeatureCollection","name":"{name}","features":[']
    for i, (props, geom) in enumerate(features):
        sep = "," if i < len(features) - 1 else ""
        props_json = json.dumps(props, ensure_ascii=False, separators=(",", ":"))
        lines.append(
            f'{{"type":"Feature","properties":{props_json},"geometry":{_geometry_json(geom)}}}'
            + sep
        )
    lines.append("]}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _grid_order(polys: Sequence[Polygon]) -> list[int]:
    """Grid numbering: rows of ~220 m from north to south, west to east within a row."""
    points = [p.representative_point() for p in polys]
    return sorted(range(len(polys)), key=lambda i: (-round(points[i].y / 0.002),
                                                    points[i].x, points[i].y))


# --------------------------------------------------------------------------- main


def build(realdata: Path = DEFAULT_REALDATA, out: Path = DEFAULT_OUT) -> dict[str, int]:
    """Build the demo district into ``out``; return the number of units per level."""
    started = time.perf_counter()
    outline_m = _to_metric(load_outline(realdata))
    streets_df, communities_df = load_hierarchy(realdata)
    roads = load_major_roads(realdata)

    streets = derive_streets(outline_m, streets_df, communities_df)
    log.info("streets: %d", len(streets))
    communities = derive_communities(streets, communities_df)
    log.info("communities: %d", len(communities))

    grid_polys: list[Polygon] = []
    grid_info: list[tuple[str, str]] = []  # (community code, method)
    for community in communities:
        for poly, method in derive_grids(community, roads):
            grid_polys.append(poly)
            grid_info.append((community.code, method))
    log.info("grids: %d (metric build %.1f s)", len(grid_polys), time.perf_counter() - started)

    snapped = snap_coverage([_to_wgs84(p) for p in grid_polys])
    community_codes = [c.code for c in communities]
    street_codes = [s.code for s in streets]
    grid_parent = [g[0] for g in grid_info]
    community_geoms = _union_by(snapped, grid_parent, community_codes)
    street_of = {c.code: c.parent_code for c in communities}
    street_geoms = _union_by(community_geoms, [street_of[c] for c in community_codes],
                             street_codes)
    district_geom = shapely.union_all(street_geoms, grid_size=WGS84_GRID_DEG)

    grid_features = []
    for community, geom in zip(communities, community_geoms, strict=True):
        mine = [i for i, parent in enumerate(grid_parent) if parent == community.code]
        for seq, i in enumerate(_grid_order([snapped[i] for i in mine]), start=1):
            index = mine[i]
            props = {"code": f"{community.code}{seq:03d}", "name": f"{community.name}第{seq}网格",
                     "parent_code": community.code, "level": "grid",
                     "method": grid_info[index][1], "source": SOURCE_NOTES["grid"]}
            grid_features.append((props, snapped[index]))

    out.mkdir(parents=True, exist_ok=True)
    levels = {
        "district": [({"code": DISTRICT_CODE, "name": DISTRICT_NAME, "parent_code": CITY_CODE,
                       "level": "district", "source": SOURCE_NOTES["district"]}, district_geom)],
        "streets": [({"code": u.code, "name": u.name, "parent_code": u.parent_code,
                      "level": "street", "seed": u.extra["seed"],
                      "source": SOURCE_NOTES["street"]}, g)
                    for u, g in zip(streets, street_geoms, strict=True)],
        "communities": [({"code": u.code, "name": u.name, "parent_code": u.parent_code,
                          "level": "community", "seed": u.extra["seed"],
                          "source": SOURCE_NOTES["community"]}, g)
                        for u, g in zip(communities, community_geoms, strict=True)],
        "grids": grid_features,
    }
    for name, features in levels.items():
        for props, geom in features:
            if geom.geom_type != "Polygon" or not geom.is_valid:
                msg = f"{props['code']} is not one valid polygon ({geom.geom_type})"
                raise RuntimeError(msg)
        write_geojson(out / f"{name}.geojson", name, features)
    (out / "futian_roads.graphml.gz").write_bytes(
        gzip.compress(load_road_graph_bytes(realdata), compresslevel=9, mtime=0)
    )
    counts = {name: len(features) for name, features in levels.items()}
    log.info("wrote %s: %s in %.1f s", out, counts, time.perf_counter() - started)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realdata", type=Path, default=DEFAULT_REALDATA,
                        help="folder of the shared real data (default: ../shared/realdata)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="output folder (default: grid_data/demo)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    build(args.realdata, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
