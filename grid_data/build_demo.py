"""Build the demo district (Futian 福田区, Shenzhen) from open data.

Run ``python -m grid_data.build_demo [--realdata PATH] [--out grid_data/demo]``.

The district outline and the street and community codes and names are real; the street,
community and grid **polygons are derived** here, because no public source has them (see
``grid_data/README.md``). Metric work is done in EPSG:4547 (CGCS2000 / 3-degree GK CM 114E):

1. District: the Futian outline of ``ni1o1/transbigdata`` (WGS84).
2. Streets: a Voronoi diagram of every Vonng/adcode point of the district (street offices
   and communities, GCJ-02 converted to WGS84), each cell labelled with its street and
   clipped to the outline. Where the OSM road graph covers, blocks between major roads go
   whole to one street (the only street with a point inside, else the street whose cells
   cover most of the block), so that borders follow roads there.
3. Communities: the same inside each street with the community points; communities without
   a point get seeds spread over the street (farthest-point start, then Lloyd iterations on
   a lattice of samples with the known points held fixed).
4. Grids: each community is cut by the major roads; strips between carriageways and other
   thin or tiny faces are shared among the neighbouring blocks (nearest block wins), small
   blocks join a neighbour, and blocks larger than the target area are split by a
   centroidal Voronoi diagram (the whole community, where no road crosses it).
5. One coverage: the grid boundaries are snap-rounded together to 1e-7 degrees and
   polygonised; every face goes back to its grid, and communities, streets and the district
   are coverage unions of those faces. Every level therefore tiles its parent exactly in the
   written files (7 decimals).

Deterministic: no random numbers; the same inputs give byte-identical files.
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

__all__ = ["build", "main", "spread_seeds", "split_polygon", "snap_coverage"]

log = logging.getLogger(__name__)

DEFAULT_REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
DEFAULT_OUT = Path(__file__).resolve().parent / "demo"

CITY_CODE = "440300000000"
DISTRICT_CODE = "440304000000"
DISTRICT_NAME = "福田区"
DISTRICT_SHORT = "福田"  # field ``qh`` of the transbigdata district layer

METRIC_CRS = "EPSG:4547"  # CGCS2000 / 3-degree Gauss-Kruger CM 114E
METRIC_GRID_M = 1e-4  # snap-rounding grid of the metric overlays (0.1 mm)
WGS84_DECIMALS = 7
WGS84_GRID_DEG = 10.0**-WGS84_DECIMALS

TARGET_GRID_AREA_M2 = 75_000.0  # ~80 km² / ~1,000 grids
GRID_AREA_LOW = 0.5  # faces below LOW x target join a neighbour if the result stays ...
GRID_AREA_HIGH = 1.6  # ... below HIGH x target; faces above HIGH x target are split
MIN_GRID_AREA_M2 = 8_000.0  # faces below this always join a neighbour (tests: > 2,000)
MIN_GRID_WIDTH_M = 25.0  # mean width 2A/P below this: a road median or a sliver
STRIP_MAX_WIDTH_M = 70.0  # wider than MIN_GRID_WIDTH_M but elongated (Polsby-Popper below
STRIP_MAX_COMPACTNESS = 0.25  # this): the green strip between two carriageways
STRIP_SAMPLE_M = 5.0  # spacing of the block-border samples that share strips out
MIN_GRIDS_PER_COMMUNITY = 3
STREET_BLOCK_MAX_M2 = 1_500_000.0  # larger road blocks are shared among streets by Voronoi
COMMUNITY_BLOCK_MAX_M2 = 400_000.0  # the same for communities
DUPLICATE_SPREAD_M = 120.0  # radius of the circle on which communities sharing a point go
SEED_INSET_M = 100.0  # a seed moved into its street lands this far inside

# Roads of these classes bound blocks; links, residential and service roads do not.
MAJOR_HIGHWAYS = ("trunk", "primary", "secondary", "tertiary")

# 华强北街道 (split off in 2009) has no point in the 2016 adcode data, nor have its
# communities. Hand-placed, approximate: the Huaqiangbei commercial area between Shennan
# Road and Hongli Road, east of Huafu Road (WGS84). Not from a data source.
MANUAL_STREET_SEEDS: dict[str, tuple[float, float]] = {"440304011000": (114.0820, 22.5480)}

SOURCE_NOTES = {
    "district": "outline: ni1o1/transbigdata sz.json (BSD-3-Clause), WGS84",
    "street": "DERIVED polygon (Voronoi of Vonng/adcode points, CC BY 4.0); official code/name",
    "community": "DERIVED polygon (Voronoi in street, Vonng/adcode points); official code/name",
    "grid": "DERIVED demo grid, not official; roads © OpenStreetMap contributors, ODbL 1.0",
}

_TO_METRIC = Transformer.from_crs("EPSG:4326", METRIC_CRS, always_xy=True)
_TO_WGS84 = Transformer.from_crs(METRIC_CRS, "EPSG:4326", always_xy=True)


@dataclass
class Unit:
    """One territorial unit under construction (metric geometry)."""

    code: str
    name: str
    parent_code: str
    geometry: Polygon
    extra: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- inputs


def _to_metric(geom):
    return shapely.transform(geom, lambda xy: np.column_stack(_TO_METRIC.transform(*xy.T)))


def _to_wgs84(geom):
    return shapely.transform(geom, lambda xy: np.column_stack(_TO_WGS84.transform(*xy.T)))


def _metric_xy(lon, lat) -> NDArray:
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
        where the source has no point), sorted by code. Street names are the 2023 short
        names where the 2023 list has the code; ``社区居委会`` is shortened to ``社区``.
    """
    folder = realdata / "china_admin_vonng_adcode"
    rows = pd.read_csv(folder / "admin_hierarchy_5level_gcj02.csv", dtype=str)
    rows = rows[rows["code"].str.startswith(DISTRICT_CODE[:6])].copy()
    has_point = rows["longitude"].notna() & rows["latitude"].notna()
    lon, lat = gcj02_to_wgs84(  # adcode points are GCJ-02 (AMap)
        rows.loc[has_point, "longitude"].astype(float).to_numpy(),
        rows.loc[has_point, "latitude"].astype(float).to_numpy(),
    )
    rows["lon"] = np.nan
    rows["lat"] = np.nan
    rows.loc[has_point, "lon"] = lon
    rows.loc[has_point, "lat"] = lat
    rows = rows.rename(columns={"parent": "parent_code"})

    names_2023 = pd.read_csv(
        folder / "streets_2023_modood_shenzhen_xiamen_dongcheng.csv", dtype=str
    )
    short = dict(zip(names_2023["code"] + "000", names_2023["name"], strict=True))
    streets = rows[rows["rank"] == "4"].copy()
    streets["name"] = [
        short.get(c, n) for c, n in zip(streets["code"], streets["name"], strict=True)
    ]
    communities = rows[rows["rank"] == "5"].copy()
    communities["name"] = communities["name"].str.replace("社区居委会", "社区", regex=False)
    cols = ["code", "name", "parent_code", "lon", "lat"]
    return (
        streets[cols].sort_values("code").reset_index(drop=True),
        communities[cols].sort_values("code").reset_index(drop=True),
    )


def load_major_roads(realdata: Path) -> shapely.Geometry:
    """Major OSM roads of the Futian graph (metric, simplified to 1 m, noded)."""
    path = realdata / "shenzhen_transbigdata" / "futian_osm_edges_wgs84.geojson"
    data = json.loads(path.read_text(encoding="utf-8"))
    lines = []
    for feature in data["features"]:
        highway = feature["properties"].get("highway") or ""
        kinds = ast.literal_eval(highway) if highway.startswith("[") else [highway]
        if any(kind in MAJOR_HIGHWAYS for kind in kinds):
            lines.append(shapely.geometry.shape(feature["geometry"]))
    metric = shapely.simplify(_to_metric(np.array(lines, dtype=object)), 1.0)
    return shapely.union_all(metric, grid_size=METRIC_GRID_M)


def load_road_graph_bytes(realdata: Path) -> bytes:
    """The raw OSMnx graphml of the Futian road network."""
    return (realdata / "shenzhen_transbigdata" / "futian_osm_network_osmnx.graphml").read_bytes()


# --------------------------------------------------------------------------- pieces and merges


def _shared_length(a: Polygon, b: Polygon) -> float:
    """Length of the border that polygons ``a`` and ``b`` share (1 mm tolerance)."""
    if not shapely.dwithin(a, b, 1e-3):
        return 0.0
    return float(shapely.length(shapely.intersection(a.boundary, shapely.buffer(b, 1e-3))))


def _merge(a: Polygon, b: Polygon) -> Polygon:
    # Should two pieces only touch within the tolerance of _shared_length, the union is
    # a MultiPolygon; snap_coverage then closes the hairline gap.
    return _polygonal(shapely.union(a, b, grid_size=METRIC_GRID_M))


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    """Drop the lines and points that snap-rounding can leave beside polygons."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else Polygon()


def _absorb(keepers: list[Polygon], orphans: Sequence[Polygon]) -> list[Polygon]:
    """Merge every orphan into the keeper with which it shares the longest border.

    Keepers keep their order. Orphans touching only other orphans wait until a neighbour
    has been merged; one touching nothing joins the nearest keeper.
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


def _single_parts(
    pieces: Sequence[shapely.Geometry], anchors: Sequence[shapely.Point | None]
) -> list[Polygon]:
    """Make each piece one polygon: keep the part holding its anchor (else the largest) and
    hand its other parts to the neighbour with the longest shared border."""
    keepers: list[Polygon] = []
    orphans: list[Polygon] = []
    for piece, anchor in zip(pieces, anchors, strict=True):
        parts = sorted(shapely.get_parts(piece), key=lambda g: -g.area)
        if not parts:
            msg = "a unit has no area left (two seeds too close?)"
            raise RuntimeError(msg)
        main = 0
        if anchor is not None:
            holding = [i for i, p in enumerate(parts) if p.covers(anchor)]
            main = holding[0] if holding else 0
        keepers.append(parts[main])
        orphans.extend(p for i, p in enumerate(parts) if i != main)
    return _absorb(keepers, orphans)


def _is_block(poly: Polygon) -> bool:
    """False for faces too small, too thin, or strip-like to stand alone."""
    width = 2 * poly.area / poly.length
    compactness = 4 * np.pi * poly.area / poly.length**2  # Polsby-Popper
    if poly.area < MIN_GRID_AREA_M2 or width < MIN_GRID_WIDTH_M:
        return False
    return not (width < STRIP_MAX_WIDTH_M and compactness < STRIP_MAX_COMPACTNESS)


def _clean_faces(faces: Sequence[Polygon]) -> list[Polygon]:
    """Share the faces that are not blocks (road medians, slivers) among the blocks."""
    keep = [f for f in faces if _is_block(f)]
    if not keep:
        keep = [max(faces, key=lambda f: f.area)]
    return _distribute(keep, [f for f in faces if all(f is not k for k in keep)])


def _distribute(blocks: list[Polygon], leftovers: Sequence[Polygon]) -> list[Polygon]:
    """Give every point of the ``leftovers`` to the nearest block.

    Nearest is measured to samples every ``STRIP_SAMPLE_M`` along the blocks' borders (set
    1 m inside, so that neighbours never share a sample): a strip between two carriageways is
    cut along its middle, each half joining the block on its side.
    """
    if not leftovers:
        return list(blocks)
    region = shapely.union_all(leftovers, grid_size=METRIC_GRID_M)
    reach = shapely.buffer(region, 500.0)
    points, owners = [], []
    for k, block in enumerate(blocks):
        inset = shapely.buffer(block, -1.0)
        ring = shapely.segmentize((inset if not inset.is_empty else block).boundary, STRIP_SAMPLE_M)
        xy = shapely.get_coordinates(shapely.intersection(ring, reach))
        points.append(xy)
        owners.extend([k] * len(xy))
    stacked = np.vstack(points)
    first = np.sort(np.unique(stacked, axis=0, return_index=True)[1])  # Voronoi needs unique
    samples, owners = stacked[first], np.array(owners)[first]
    if len(set(owners.tolist())) < 2:
        return _absorb(list(blocks), list(leftovers))
    cells = _voronoi_cells(shapely.buffer(region, 1.0), samples)
    grown = []
    for k, block in enumerate(blocks):
        zone = shapely.union_all([c for c, o in zip(cells, owners, strict=True) if o == k])
        share = _polygonal(shapely.intersection(region, zone, grid_size=METRIC_GRID_M))
        grown.append(_merge(block, share) if not share.is_empty else block)
    return _single_parts(grown, [b.representative_point() for b in blocks])


def _agglomerate(faces: Sequence[Polygon], low: float, high: float) -> list[Polygon]:
    """Merge faces smaller than ``low`` into the neighbour with the longest shared border,
    as long as the result stays below ``high``; smallest first."""
    faces = list(faces)
    frozen = [False] * len(faces)
    while True:
        small = [i for i, f in enumerate(faces) if f.area < low and not frozen[i]]
        if not small or len(faces) == 1:
            return faces
        i = min(small, key=lambda j: (faces[j].area, j))
        shared = [
            (_shared_length(faces[i], f), j)
            for j, f in enumerate(faces)
            if j != i and faces[i].area + f.area <= high
        ]
        shared = [s for s in shared if s[0] > 0.0]
        if not shared:
            frozen[i] = True
            continue
        _, j = max(shared, key=lambda s: (s[0], -s[1]))
        faces[j] = _merge(faces[j], faces[i])
        frozen[j] = False
        del faces[i], frozen[i]


def _road_faces(parent: Polygon, roads: shapely.Geometry) -> list[Polygon]:
    """Faces of ``parent`` cut by ``roads`` (just ``[parent]`` if no road crosses it)."""
    inside = shapely.intersection(roads, parent, grid_size=METRIC_GRID_M)
    if shapely.length(inside) < 1.0:
        return [parent]
    lines = shapely.union_all([parent.boundary, inside], grid_size=METRIC_GRID_M)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(lines)))
    faces = [f for f in faces if parent.covers(f.representative_point())]
    gap = parent.area - sum(f.area for f in faces)
    if abs(gap) > 1.0 + 1e-6 * parent.area:  # rounding of the outline only
        log.warning("road faces leave %.1f m² of a unit; keeping it whole", gap)
        return [parent]
    return faces


# --------------------------------------------------------------------------- seeds and splits


def _lattice(parent: Polygon, n_samples: int) -> NDArray:
    """About ``n_samples`` points of a square lattice inside ``parent`` (at least 1)."""
    step = max(np.sqrt(parent.area / n_samples), 1.0)
    x0, y0, x1, y1 = parent.bounds
    gx, gy = np.meshgrid(np.arange(x0 + step / 2, x1, step), np.arange(y0 + step / 2, y1, step))
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
        Polygon (metric CRS) to place the seeds in.
    fixed
        ``(m, 2)`` seeds that do not move (may be empty).
    n_free
        Number of seeds to place.
    n_samples, n_iter
        Lattice size and number of Lloyd iterations.

    Returns
    -------
    numpy.ndarray
        ``(n_free, 2)`` new seeds, all inside ``parent``.
    """
    fixed = np.asarray(fixed, dtype=float).reshape(-1, 2)
    samples = _lattice(parent, max(n_samples, 40 * (n_free + len(fixed))))
    picked: list[NDArray] = []
    if len(fixed):
        dist = cKDTree(fixed).query(samples)[0]
    else:  # start next to the centroid
        centre = np.asarray(parent.centroid.coords[0])
        picked.append(samples[int(np.argmin(np.hypot(*(samples - centre).T)))])
        dist = np.hypot(*(samples - picked[0]).T)
    while len(picked) < n_free:
        picked.append(samples[int(np.argmax(dist))])
        dist = np.minimum(dist, np.hypot(*(samples - picked[-1]).T))
    free = np.array(picked, dtype=float).reshape(-1, 2)
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


def _voronoi_cells(parent: Polygon, seeds: NDArray) -> list[shapely.Geometry]:
    """Voronoi cells of ``seeds`` clipped to ``parent``, in seed order (may be multipart)."""
    if len(seeds) == 1:
        return [parent]
    cells = shapely.get_parts(
        shapely.voronoi_polygons(
            shapely.multipoints(seeds), extend_to=shapely.buffer(parent, 1000.0), ordered=True
        )
    )
    if len(cells) != len(seeds):
        msg = f"{len(seeds)} seeds gave {len(cells)} Voronoi cells (duplicate seeds?)"
        raise ValueError(msg)
    return [_polygonal(shapely.intersection(c, parent, grid_size=METRIC_GRID_M)) for c in cells]


def split_polygon(parent: Polygon, k: int) -> list[Polygon]:
    """Split ``parent`` (metric CRS) into ``k`` compact polygons (centroidal Voronoi).

    Parameters
    ----------
    parent
        The polygon to split.
    k
        Number of pieces; ``k <= 1`` returns ``[parent]``.

    Returns
    -------
    list of shapely.Polygon
        ``k`` polygons that tile ``parent`` (up to the 0.1 mm overlay grid).
    """
    if k <= 1:
        return [parent]
    seeds = spread_seeds(parent, np.empty((0, 2)), k)
    return _single_parts(_voronoi_cells(parent, seeds), [shapely.Point(s) for s in seeds])


def _partition(
    parent: Polygon,
    seeds: NDArray,
    labels: Sequence[str],
    roads: shapely.Geometry,
    *,
    max_block_m2: float,
) -> list[shapely.Geometry]:
    """Share ``parent`` among the labels of ``seeds``: labelled Voronoi cells, except that
    road blocks up to ``max_block_m2`` go whole to one label (the only one with a seed in the
    block, else the one whose cells cover most of it). One geometry per label, in order of
    first appearance."""
    order = list(dict.fromkeys(labels))
    label_index = np.array([order.index(label) for label in labels])
    cells = _voronoi_cells(parent, seeds)
    points = shapely.points(seeds)
    pieces: list[list[shapely.Geometry]] = [[] for _ in order]
    faces = _road_faces(parent, roads)
    for face in faces:
        inside = sorted(set(label_index[shapely.contains(face, points)].tolist()))
        whole = len(faces) > 1 and face.area <= max_block_m2 and _is_block(face)
        overlaps = np.zeros(len(order))
        parts = [
            _polygonal(shapely.intersection(face, cell, grid_size=METRIC_GRID_M)) for cell in cells
        ]
        for part, owner in zip(parts, label_index, strict=True):
            overlaps[owner] += part.area
        if whole and len(inside) <= 1:
            owner = inside[0] if inside else int(np.argmax(overlaps))
            pieces[owner].append(face)
            continue
        for part, owner in zip(parts, label_index, strict=True):
            if not part.is_empty:
                pieces[owner].append(part)
    return [_polygonal(shapely.union_all(p, grid_size=METRIC_GRID_M)) for p in pieces]


# --------------------------------------------------------------------------- levels


def derive_streets(
    outline_m: Polygon, streets: pd.DataFrame, communities: pd.DataFrame, roads: shapely.Geometry
) -> list[Unit]:
    """Street polygons: labelled Voronoi of all adcode points, snapped to road blocks."""
    seeds: list[tuple[float, float, str]] = []
    for frame, key in ((streets, "code"), (communities, "parent_code")):
        located = frame.dropna(subset=["lon"])
        xy = _metric_xy(located["lon"], located["lat"])
        seeds.extend((x, y, s) for (x, y), s in zip(xy, located[key], strict=True))
    for code, (lon, lat) in sorted(MANUAL_STREET_SEEDS.items()):
        ((x, y),) = _metric_xy([lon], [lat])
        seeds.append((x, y, code))
    seeds = sorted(set(seeds), key=lambda s: (s[2], s[0], s[1]))
    codes = streets["code"].tolist()
    missing = sorted(set(codes) - {s[2] for s in seeds})
    if missing:
        msg = f"streets without any seed point: {missing}"
        raise ValueError(msg)
    seeds = [s for s in seeds if s[2] in codes]  # in label order == code order
    pieces = _partition(
        outline_m,
        np.array([s[:2] for s in seeds]),
        [s[2] for s in seeds],
        roads,
        max_block_m2=STREET_BLOCK_MAX_M2,
    )
    anchors = [
        shapely.Point(_metric_xy([row.lon], [row.lat])[0]) if pd.notna(row.lon) else None
        for row in streets.itertuples()
    ]
    units = []
    for row, poly in zip(streets.itertuples(), _single_parts(pieces, anchors), strict=True):
        if pd.notna(row.lon):
            seed = "adcode street point and community points"
        elif row.code in MANUAL_STREET_SEEDS:
            seed = "hand-placed point (no open point)"
        else:
            seed = "community points"
        units.append(Unit(row.code, row.name, DISTRICT_CODE, poly, {"seed": seed}))
    return units


def _community_seeds(street: Unit, members: pd.DataFrame) -> tuple[NDArray, list[str]]:
    """Seeds of the communities of one street (metric) and how each was obtained."""
    poly = street.geometry
    inner = shapely.buffer(poly, -SEED_INSET_M)
    if inner.is_empty:
        inner = poly
    seeds = np.full((len(members), 2), np.nan)
    how = ["spread inside street"] * len(members)
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
                how[i] = "adcode point shared with another community, spread"
    for i in np.flatnonzero(located):
        point = shapely.Point(seeds[i])
        if not poly.contains(point):
            seeds[i] = nearest_points(inner, point)[0].coords[0]
            how[i] = "adcode point outside derived street, moved inside"
    free = ~located
    if free.any():
        seeds[free] = spread_seeds(poly, seeds[located], int(free.sum()))
    return seeds, how


def derive_communities(
    streets: Sequence[Unit], communities: pd.DataFrame, roads: shapely.Geometry
) -> list[Unit]:
    """Community polygons: Voronoi of community seeds inside each street."""
    units = []
    for street in streets:
        members = communities[communities["parent_code"] == street.code].reset_index(drop=True)
        if members.empty:
            msg = f"street {street.code} has no communities"
            raise ValueError(msg)
        seeds, how = _community_seeds(street, members)
        codes = members["code"].tolist()
        pieces = _partition(
            street.geometry, seeds, codes, roads, max_block_m2=COMMUNITY_BLOCK_MAX_M2
        )
        polys = _single_parts(pieces, [shapely.Point(s) for s in seeds])
        for row, poly, h in zip(members.itertuples(), polys, how, strict=True):
            units.append(Unit(row.code, row.name, street.code, poly, {"seed": h}))
    return units


def derive_grids(community: Unit, roads: shapely.Geometry) -> list[tuple[Polygon, str]]:
    """Grid polygons of one community, each with how it was made.

    ``"road block"``: bounded by major roads and the community border only (strips and
    slivers shared out among blocks included); ``"road block split"``: a piece of a
    centroidal Voronoi split of a road block too big for one grid; ``"voronoi"``: a piece
    of a centroidal Voronoi split of a community that no major road crosses.
    """
    target = TARGET_GRID_AREA_M2
    faces = _road_faces(community.geometry, roads)
    by_roads = len(faces) > 1
    blocks = _agglomerate(_clean_faces(faces), GRID_AREA_LOW * target, GRID_AREA_HIGH * target)
    grids: list[tuple[Polygon, str]] = []
    for block in blocks:
        k = round(block.area / target) if block.area > GRID_AREA_HIGH * target else 1
        if k >= 2:
            method = "road block split" if by_roads else "voronoi"
            grids.extend((p, method) for p in split_polygon(block, k))
        else:
            grids.append((block, "road block" if by_roads else "voronoi"))
    while len(grids) < MIN_GRIDS_PER_COMMUNITY:
        grids.sort(key=lambda g: -g[0].area)
        biggest, method = grids.pop(0)
        need = MIN_GRIDS_PER_COMMUNITY - len(grids)
        method = "road block split" if method.startswith("road") else "voronoi"
        grids.extend((p, method) for p in split_polygon(biggest, need))
    return grids


# --------------------------------------------------------------------------- one coverage


def snap_coverage(polygons_wgs84: Sequence[Polygon]) -> list[Polygon]:
    """Snap-round a (nearly exact) polygon coverage to ``WGS84_GRID_DEG`` as one network.

    All boundaries are noded and rounded together, polygonised into faces, and every face
    goes to the input polygon that overlaps it most (slivers and hairline gaps of the input
    included). Adjacent outputs then share identical vertices, so writing them with
    ``WGS84_DECIMALS`` decimals keeps the coverage exact.

    Parameters
    ----------
    polygons_wgs84
        Polygons (WGS84) that tile an area up to sub-centimetre slivers and gaps.

    Returns
    -------
    list of shapely.Polygon
        One polygon per input, in input order, with coordinates on the 1e-7 degree grid.
    """
    network = shapely.union_all([p.boundary for p in polygons_wgs84], grid_size=WGS84_GRID_DEG)
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
    _reunite(faces, owner)
    out = []
    for j in range(len(polygons_wgs84)):
        mine = faces[owner == j]
        if len(mine) == 0:
            msg = f"polygon {j} lost all its area when snapped to the coverage"
            raise RuntimeError(msg)
        # coverage_union only dissolves shared edges: no new vertices, no re-rounding.
        out.append(shapely.coverage_union_all(mine))
    return out


def _reunite(faces: NDArray, owner: NDArray, *, max_rounds: int = 10) -> None:
    """Give faces cut off from the main part of their owner to the neighbouring owner with
    which they share the longest border (in place), so that every owner is one polygon."""
    tree = shapely.STRtree(faces)
    for _ in range(max_rounds):
        moved = 0
        for j in np.unique(owner):
            mine = np.flatnonzero(owner == j)
            union = shapely.coverage_union_all(faces[mine])
            if union.geom_type == "Polygon":
                continue
            main = max(shapely.get_parts(union), key=lambda g: g.area)
            for i in mine:
                if main.covers(faces[i].representative_point()):
                    continue
                shared: dict[int, float] = {}
                for n in tree.query(faces[i], predicate="touches"):
                    if owner[n] != j:
                        common = shapely.intersection(faces[i].boundary, faces[n].boundary)
                        shared[int(owner[n])] = shared.get(int(owner[n]), 0.0) + common.length
                if shared:
                    owner[i] = max(sorted(shared), key=lambda k: shared[k])
                    moved += 1
        if not moved:
            return


def _union_by(
    parts: Sequence[Polygon], keys: Sequence[str], wanted: Sequence[str]
) -> list[shapely.Geometry]:
    return [
        shapely.coverage_union_all([p for p, k in zip(parts, keys, strict=True) if k == w])
        for w in wanted
    ]


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
    """Write a FeatureCollection (WGS84), one feature per line, 7 decimals, no trailing 0s."""
    lines = [f'{{"type":"FeatureCollection","name":"{name}","features":[']
    for i, (props, geom) in enumerate(features):
        props_json = json.dumps(props, ensure_ascii=False, separators=(",", ":"))
        sep = "," if i < len(features) - 1 else ""
        lines.append(
            f'{{"type":"Feature","properties":{props_json},"geometry":{_geometry_json(geom)}}}'
            + sep
        )
    lines.append("]}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _grid_order(polys: Sequence[Polygon]) -> list[int]:
    """Grid numbering: rows of ~220 m from north to south, west to east within a row."""
    points = [p.representative_point() for p in polys]
    return sorted(
        range(len(polys)), key=lambda i: (-round(points[i].y / 0.002), points[i].x, points[i].y)
    )


# --------------------------------------------------------------------------- main


def _check_layer(level: str, features: Sequence[tuple[dict, shapely.Geometry]]) -> None:
    """Refuse to write a layer that is not an exact coverage of single valid polygons."""
    for props, geom in features:
        if geom.geom_type != "Polygon" or not geom.is_valid:
            msg = f"{level} {props['code']} is not one valid polygon ({geom.geom_type})"
            raise RuntimeError(msg)
    geoms = np.array([geom for _, geom in features], dtype=object)
    if not shapely.coverage_is_valid(geoms):
        msg = f"{level}: shared edges do not match exactly (not a valid coverage)"
        raise RuntimeError(msg)


def build(realdata: Path = DEFAULT_REALDATA, out: Path = DEFAULT_OUT) -> dict[str, int]:
    """Build the demo district into ``out``.

    Parameters
    ----------
    realdata
        The shared real-data folder (with ``shenzhen_transbigdata/`` and
        ``china_admin_vonng_adcode/``).
    out
        Output folder; created if missing, files in it are overwritten.

    Returns
    -------
    dict
        Number of features per written layer.
    """
    started = time.perf_counter()
    outline_m = _to_metric(load_outline(realdata))
    streets_df, communities_df = load_hierarchy(realdata)
    roads = load_major_roads(realdata)

    streets = derive_streets(outline_m, streets_df, communities_df, roads)
    communities = derive_communities(streets, communities_df, roads)
    grid_polys: list[Polygon] = []
    grid_info: list[tuple[str, str]] = []  # (community code, method)
    for community in communities:
        for poly, method in derive_grids(community, roads):
            grid_polys.append(poly)
            grid_info.append((community.code, method))
    log.info(
        "%d streets, %d communities, %d grids (metric build %.1f s)",
        len(streets), len(communities), len(grid_polys), time.perf_counter() - started,
    )  # fmt: skip

    snapped = snap_coverage([_to_wgs84(p) for p in grid_polys])
    grid_parent = [info[0] for info in grid_info]
    community_geoms = _union_by(snapped, grid_parent, [c.code for c in communities])
    street_of = {c.code: c.parent_code for c in communities}
    street_geoms = _union_by(
        community_geoms, [street_of[c.code] for c in communities], [s.code for s in streets]
    )
    district_geom = shapely.coverage_union_all(street_geoms)

    grid_features = []
    for community in communities:
        mine = [i for i, parent in enumerate(grid_parent) if parent == community.code]
        for seq, k in enumerate(_grid_order([snapped[i] for i in mine]), start=1):
            i = mine[k]
            props = {
                "code": f"{community.code}{seq:03d}",
                "name": f"{community.name}第{seq}网格",
                "parent_code": community.code,
                "level": "grid",
                "method": grid_info[i][1],
                "source": SOURCE_NOTES["grid"],
            }
            grid_features.append((props, snapped[i]))

    def _unit_props(unit: Unit, level: str) -> dict[str, str]:
        return {
            "code": unit.code,
            "name": unit.name,
            "parent_code": unit.parent_code,
            "level": level,
            "seed": unit.extra["seed"],
            "source": SOURCE_NOTES[level],
        }

    district_props = {
        "code": DISTRICT_CODE,
        "name": DISTRICT_NAME,
        "parent_code": CITY_CODE,
        "level": "district",
        "source": SOURCE_NOTES["district"],
    }
    layers = {
        "district": [(district_props, district_geom)],
        "streets": [
            (_unit_props(u, "street"), g) for u, g in zip(streets, street_geoms, strict=True)
        ],
        "communities": [
            (_unit_props(u, "community"), g)
            for u, g in zip(communities, community_geoms, strict=True)
        ],
        "grids": grid_features,
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, features in layers.items():
        _check_layer(name, features)
        write_geojson(out / f"{name}.geojson", name, features)
    graph = gzip.compress(load_road_graph_bytes(realdata), compresslevel=9, mtime=0)
    (out / "futian_roads.graphml.gz").write_bytes(graph)
    counts = {name: len(features) for name, features in layers.items()}
    log.info("wrote %s: %s in %.1f s", out, counts, time.perf_counter() - started)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: build the demo district files."""
    parser = argparse.ArgumentParser(description="Build the Futian demo district from open data.")
    parser.add_argument(
        "--realdata",
        type=Path,
        default=DEFAULT_REALDATA,
        help="folder of the shared real data (default: ../shared/realdata)",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output folder (default: grid_data/demo)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    build(args.realdata, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
