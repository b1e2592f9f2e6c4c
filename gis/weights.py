"""Sparse spatial weights for local statistics, with islands and components reported.

A :class:`Weights` holds an ``n × n`` :class:`scipy.sparse.csr_matrix` (row ``i`` lists the
neighbours of unit ``i``), the unit ids in row order, and the transform it carries:

- ``"O"``: as built (binary for every builder here);
- ``"B"``: binary, every link weighs 1;
- ``"R"``: row-standardised, every row sums to 1 (islands keep an empty row).

Builders:

- :func:`contiguity_weights` for polygons (queen: any shared boundary point; rook: a shared
  edge), with fast exact paths for :func:`gis.aggregation.h3_units` (``h3.grid_disk``) and
  :func:`gis.aggregation.fishnet_units` (row/column arithmetic), and an STRtree otherwise;
- :func:`h3_weights` and :func:`fishnet_weights` for those paths directly;
- :func:`distance_band_weights` (metres, inclusive) and :func:`knn_weights`;
- :func:`read_gal` for GAL files (the PySAL reference data);
- :func:`connect_islands` to give islands their nearest units as neighbours.

An *island* is a unit without a neighbour. Local statistics cannot test an island, so the
estimators in :mod:`gis.hotspots` give it the class ``"island"``; ``n_components`` counts
connected parts of the neighbour graph (an island is a part of its own). Report both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from os import PathLike
from typing import Literal

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from numpy.typing import ArrayLike, NDArray
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from gis._errors import GeometryError, GisError
from gis.aggregation import _to_metric

__all__ = [
    "Weights",
    "contiguity_weights",
    "h3_weights",
    "fishnet_weights",
    "distance_band_weights",
    "knn_weights",
    "connect_islands",
    "read_gal",
]

Transform = Literal["O", "B", "R"]


@dataclass(frozen=True, eq=False)
class Weights:
    """Spatial weights: a sparse matrix, the unit ids of its rows, and its transform.

    Attributes
    ----------
    sparse : scipy.sparse.csr_matrix
        ``n × n``, float64; ``sparse[i, j]`` is the weight of unit ``j`` in unit ``i``'s
        neighbourhood. The diagonal is normally empty (Gi* adds the self weight itself).
    ids : pandas.Index
        Unit ids in row order, unique.
    transform : {"O", "B", "R"}
        See the module docstring.
    """

    sparse: sp.csr_matrix
    ids: pd.Index
    transform: Transform = "O"

    def __post_init__(self) -> None:
        matrix = sp.csr_matrix(self.sparse, dtype=np.float64)
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
        matrix.sort_indices()
        n = matrix.shape[0]
        if matrix.shape != (n, n):
            msg = f"weights must be square, got shape {matrix.shape}"
            raise GisError(msg)
        ids = pd.Index(self.ids)
        if len(ids) != n:
            msg = f"{len(ids)} ids for a {n} × {n} weights matrix"
            raise GisError(msg)
        if not ids.is_unique:
            msg = f"unit ids must be unique; repeated: {list(ids[ids.duplicated()][:5])}"
            raise GisError(msg)
        if matrix.nnz and (not np.all(np.isfinite(matrix.data)) or (matrix.data < 0).any()):
            msg = "weights must be finite and non-negative"
            raise GisError(msg)
        if self.transform not in ("O", "B", "R"):
            msg = f"transform must be 'O', 'B' or 'R', got {self.transform!r}"
            raise GisError(msg)
        object.__setattr__(self, "sparse", matrix)
        object.__setattr__(self, "ids", ids)

    @property
    def n(self) -> int:
        """Number of units."""
        return self.sparse.shape[0]

    @cached_property
    def cardinalities(self) -> NDArray[np.int64]:
        """Number of neighbours of each unit (self links not counted)."""
        off_diagonal = self.sparse - sp.diags(self.sparse.diagonal())
        off_diagonal.eliminate_zeros()
        return np.diff(off_diagonal.indptr).astype(np.int64)

    @cached_property
    def island_mask(self) -> NDArray[np.bool_]:
        """True for units without a neighbour."""
        return self.cardinalities == 0

    @cached_property
    def islands(self) -> pd.Index:
        """Ids of the units without a neighbour."""
        return self.ids[self.island_mask]

    @cached_property
    def component_labels(self) -> NDArray[np.int32]:
        """Connected part of each unit (links taken as undirected)."""
        _, labels = connected_components(self.sparse, directed=True, connection="weak")
        return labels

    @cached_property
    def n_components(self) -> int:
        """Number of connected parts of the neighbour graph, islands included."""
        return int(self.component_labels.max()) + 1 if self.n else 0

    @property
    def is_symmetric(self) -> bool:
        """Whether ``sparse`` equals its transpose (k-nearest weights usually do not)."""
        return (self.sparse != self.sparse.T).nnz == 0

    def transformed(self, transform: Transform) -> Weights:
        """A copy with ``transform`` applied: ``"B"`` binary, ``"R"`` rows sum to 1."""
        if transform not in ("O", "B", "R"):
            msg = f"transform must be 'O', 'B' or 'R', got {transform!r}"
            raise GisError(msg)
        if transform == "O":
            return self
        return Weights(_apply_transform(self.sparse, transform), self.ids, transform)

    def subset(self, ids: Iterable[object]) -> Weights:
        """Weights among ``ids`` only (in that order), e.g. the units with exposure.

        Units that lose all their neighbours become islands. The transform is re-applied.
        """
        wanted = pd.Index(list(ids))
        positions = self.ids.get_indexer(wanted)
        if (positions < 0).any():
            msg = f"unknown unit ids: {list(wanted[positions < 0][:5])}"
            raise GisError(msg)
        matrix = self.sparse[positions][:, positions]
        if self.transform == "R":
            matrix = _apply_transform(matrix, "R")
        return Weights(matrix, wanted, self.transform)

    def describe(self) -> dict[str, object]:
        """Figures to report with any map built on these weights."""
        card = self.cardinalities
        return {
            "n_units": self.n,
            "n_links": int(card.sum()),
            "mean_neighbours": float(card.mean()) if self.n else 0.0,
            "min_neighbours": int(card.min()) if self.n else 0,
            "max_neighbours": int(card.max()) if self.n else 0,
            "n_islands": int(self.island_mask.sum()),
            "islands": list(self.islands),
            "n_components": self.n_components,
            "transform": self.transform,
        }


def _apply_transform(matrix: sp.csr_matrix, transform: Transform) -> sp.csr_matrix:
    """``matrix`` made binary (``"B"``) or row-standardised (``"R"``); empty rows stay empty."""
    out = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    out.eliminate_zeros()
    if transform == "B":
        out.data[:] = 1.0
    elif transform == "R":
        row_sums = np.asarray(out.sum(axis=1)).ravel()
        scale = np.divide(1.0, row_sums, out=np.zeros_like(row_sums), where=row_sums > 0)
        out.data *= np.repeat(scale, np.diff(out.indptr))
    return out


def _from_pairs(i: ArrayLike, j: ArrayLike, ids: pd.Index) -> Weights:
    """Binary weights from directed links ``i → j`` (self links dropped)."""
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    keep = i != j
    n = len(ids)
    matrix = sp.csr_matrix((np.ones(int(keep.sum())), (i[keep], j[keep])), shape=(n, n))
    matrix.data[:] = 1.0  # duplicates summed by the constructor
    return Weights(matrix, ids, "B")


# --------------------------------------------------------------------------------------------
# Contiguity
# --------------------------------------------------------------------------------------------


def contiguity_weights(
    units: gpd.GeoDataFrame | gpd.GeoSeries,
    *,
    rule: Literal["queen", "rook"] = "queen",
    tolerance_m: float = 0.0,
) -> Weights:
    """Contiguity weights between polygons.

    Units from :func:`gis.aggregation.h3_units` or :func:`gis.aggregation.fishnet_units`
    (recognised by ``units.attrs["unit_kind"]``) take the exact fast path of their kind;
    other polygons (the official grids) are matched with an STRtree.

    Parameters
    ----------
    units
        Polygons; the index gives the unit ids.
    rule
        ``"queen"``: units sharing any boundary point are neighbours; ``"rook"``: units
        sharing an edge of positive length. Hexagons have only one kind of neighbour.
    tolerance_m
        Queen only: polygons closer than this many metres count as touching, to bridge
        slivers and gaps in digitised grids. Measured in a metric CRS.

    Returns
    -------
    Weights
        Binary (``transform="B"``).
    """
    if rule not in ("queen", "rook"):
        msg = f"rule must be 'queen' or 'rook', got {rule!r}"
        raise GisError(msg)
    if tolerance_m < 0 or (tolerance_m > 0 and rule == "rook"):
        msg = "tolerance_m must be >= 0, and is only supported for queen contiguity"
        raise GisError(msg)
    kind = units.attrs.get("unit_kind")
    if kind == "h3" and tolerance_m == 0:
        return h3_weights(units.index)
    if kind == "fishnet" and tolerance_m == 0 and {"row", "col"} <= set(units.columns):
        return fishnet_weights(units["row"], units["col"], rule=rule, ids=units.index)

    geoms = units.geometry if isinstance(units, gpd.GeoDataFrame) else units
    if geoms.isna().any() or geoms.is_empty.any():
        msg = "some units have no geometry; contiguity needs every polygon"
        raise GeometryError(msg)
    ids = pd.Index(units.index)
    if tolerance_m > 0:
        geoms = _to_metric(geoms)
        tree = shapely.STRtree(geoms.values)
        i, j = tree.query(geoms.values, predicate="dwithin", distance=tolerance_m)
        return _from_pairs(i, j, ids)
    values = geoms.values
    i, j = shapely.STRtree(values).query(values, predicate="intersects")
    if rule == "rook":
        off = i != j
        i, j = i[off], j[off]
        boundaries = shapely.boundary(values)
        shared = shapely.length(shapely.intersection(boundaries[i], boundaries[j]))
        i, j = i[shared > 0], j[shared > 0]
    return _from_pairs(i, j, ids)


def h3_weights(cells: Iterable[str], *, k: int = 1) -> Weights:
    """Weights between H3 cells: neighbours are the cells within ``k`` grid steps.

    Cells of the list only: a cell whose ring holds no listed cell is an island.
    """
    ids = pd.Index(list(cells), dtype=object)
    if k < 1:
        msg = f"k must be at least 1, got {k}"
        raise GisError(msg)
    resolutions = {h3.get_resolution(c) for c in ids} if len(ids) else set()
    if len(resolutions) > 1:
        msg = f"H3 cells of mixed resolutions {sorted(resolutions)}"
        raise GisError(msg)
    position = {cell: p for p, cell in enumerate(ids)}
    rows: list[int] = []
    cols: list[int] = []
    for p, cell in enumerate(ids):
        for neighbour in h3.grid_disk(cell, k):
            q = position.get(neighbour)
            if q is not None and q != p:
                rows.append(p)
                cols.append(q)
    return _from_pairs(rows, cols, ids)


_ROOK_STEPS = ((-1, 0), (1, 0), (0, -1), (0, 1))
_QUEEN_STEPS = _ROOK_STEPS + ((-1, -1), (-1, 1), (1, -1), (1, 1))


def fishnet_weights(
    rows: ArrayLike,
    cols: ArrayLike,
    *,
    rule: Literal["queen", "rook"] = "queen",
    ids: Sequence[object] | pd.Index | None = None,
) -> Weights:
    """Contiguity between square cells given their row and column numbers.

    Cells missing from the lists (outside the study area) are simply not neighbours, so a
    cell cut off from the rest is an island.

    Parameters
    ----------
    rows, cols
        Integer row and column of each cell.
    rule
        ``"queen"`` (8 neighbours) or ``"rook"`` (4).
    ids
        Unit ids in the same order; default ``0 .. n-1``.
    """
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    if rows.shape != cols.shape or rows.ndim != 1:
        msg = "rows and cols must be 1-d arrays of the same length"
        raise GisError(msg)
    if rule not in ("queen", "rook"):
        msg = f"rule must be 'queen' or 'rook', got {rule!r}"
        raise GisError(msg)
    n = len(rows)
    index = pd.RangeIndex(n) if ids is None else pd.Index(ids)
    if n == 0:
        return Weights(sp.csr_matrix((0, 0)), index, "B")
    r0, c0 = rows.min(), cols.min()
    r, c = rows - r0, cols - c0
    lookup = np.full((r.max() + 3, c.max() + 3), -1, dtype=np.int64)  # 1-cell margin around
    lookup[r + 1, c + 1] = np.arange(n)
    if (lookup >= 0).sum() != n:
        msg = "two cells share a (row, col)"
        raise GisError(msg)
    steps = _QUEEN_STEPS if rule == "queen" else _ROOK_STEPS
    src = np.tile(np.arange(n), len(steps))
    dst = np.concatenate([lookup[r + 1 + dr, c + 1 + dc] for dr, dc in steps])
    keep = dst >= 0
    return _from_pairs(src[keep], dst[keep], index)


# --------------------------------------------------------------------------------------------
# Distance-based
# --------------------------------------------------------------------------------------------


def _metric_coords(
    points: gpd.GeoDataFrame | gpd.GeoSeries | ArrayLike, ids: Sequence[object] | None
) -> tuple[NDArray[np.float64], pd.Index]:
    """(n, 2) metric coordinates and ids; polygons stand for their centroid."""
    if isinstance(points, gpd.GeoDataFrame | gpd.GeoSeries):
        geoms = points.geometry if isinstance(points, gpd.GeoDataFrame) else points
        if geoms.isna().any() or geoms.is_empty.any():
            msg = "some units have no geometry"
            raise GeometryError(msg)
        metric = _to_metric(geoms)
        xy = shapely.get_coordinates(metric.centroid.values)
        index = pd.Index(points.index) if ids is None else pd.Index(ids)
    else:
        xy = np.asarray(points, dtype=float)
        if xy.ndim != 2 or xy.shape[1] != 2:
            msg = "coordinates must be an (n, 2) array of metric x, y"
            raise GisError(msg)
        index = pd.RangeIndex(len(xy)) if ids is None else pd.Index(ids)
    if not np.all(np.isfinite(xy)):
        msg = "coordinates must be finite"
        raise GeometryError(msg)
    return xy, index


def distance_band_weights(
    points: gpd.GeoDataFrame | gpd.GeoSeries | ArrayLike,
    *,
    threshold_m: float,
    ids: Sequence[object] | None = None,
) -> Weights:
    """Binary weights linking units within ``threshold_m`` metres (inclusive).

    Parameters
    ----------
    points
        A GeoDataFrame/GeoSeries with a CRS (projected to the UTM zone of its centre when in
        lon/lat; polygons stand for their centroid), or an ``(n, 2)`` array of coordinates
        already in metres.
    threshold_m
        Band radius in metres; a pair at exactly this distance is linked (as in PySAL).
    ids
        Unit ids; default the GeoDataFrame index or ``0 .. n-1``.
    """
    if not np.isfinite(threshold_m) or threshold_m <= 0:
        msg = f"threshold_m must be a positive number of metres, got {threshold_m!r}"
        raise GisError(msg)
    xy, index = _metric_coords(points, ids)
    pairs = cKDTree(xy).query_pairs(threshold_m, output_type="ndarray")
    i = np.concatenate([pairs[:, 0], pairs[:, 1]])
    j = np.concatenate([pairs[:, 1], pairs[:, 0]])
    return _from_pairs(i, j, index)


def knn_weights(
    points: gpd.GeoDataFrame | gpd.GeoSeries | ArrayLike,
    *,
    k: int,
    ids: Sequence[object] | None = None,
) -> Weights:
    """Binary weights linking each unit to its ``k`` nearest others (not symmetric).

    No unit is an island, which makes k-nearest a fallback for sparse point layers; ties at
    the k-th distance are broken by the KD-tree's order.
    """
    xy, index = _metric_coords(points, ids)
    n = len(xy)
    if not 1 <= k < n:
        msg = f"k must be between 1 and n - 1 = {n - 1}, got {k}"
        raise GisError(msg)
    _, nearest = cKDTree(xy).query(xy, k=k + 1)
    own = np.arange(n)[:, None]
    is_self = nearest == own
    # Drop the unit itself; when duplicates pushed it out of the k + 1, drop the farthest.
    is_self[~is_self.any(axis=1), -1] = True
    neighbours = nearest[~is_self].reshape(n, k)
    return _from_pairs(np.repeat(np.arange(n), k), neighbours.ravel(), index)


def connect_islands(
    w: Weights,
    units: gpd.GeoDataFrame | gpd.GeoSeries | ArrayLike,
    *,
    k: int = 1,
) -> Weights:
    """Weights in which every island is linked, both ways, to its ``k`` nearest units.

    Use it when islands (a grid across a river, an isolated community) must take part in
    the test rather than be reported as ``island``; say so with the map. Distances are
    between centroids, in metres.

    Parameters
    ----------
    w
        Weights with islands (returned unchanged without any).
    units
        The units of ``w``, indexed by its ids (a GeoDataFrame/GeoSeries with a CRS), or an
        ``(n, 2)`` array of metric coordinates in the row order of ``w``.
    k
        Neighbours given to each island.
    """
    if not w.island_mask.any():
        return w
    if isinstance(units, gpd.GeoDataFrame | gpd.GeoSeries):
        if not (units.index.is_unique and len(units) == w.n and units.index.isin(w.ids).all()):
            msg = "units must be indexed by the ids of the weights"
            raise GisError(msg)
        units = units.loc[w.ids]
    xy, _ = _metric_coords(units, list(w.ids))
    if len(xy) != w.n:
        msg = f"{len(xy)} coordinates for {w.n} units"
        raise GisError(msg)
    if not 1 <= k < w.n:
        msg = f"k must be between 1 and n - 1 = {w.n - 1}, got {k}"
        raise GisError(msg)
    islands = np.flatnonzero(w.island_mask)
    _, nearest = cKDTree(xy).query(xy[islands], k=k + 1)
    is_self = nearest == islands[:, None]
    is_self[~is_self.any(axis=1), -1] = True
    targets = nearest[~is_self].reshape(len(islands), k).ravel()
    sources = np.repeat(islands, k)
    links = sp.csr_matrix(
        (np.ones(2 * len(sources)), (np.r_[sources, targets], np.r_[targets, sources])),
        shape=(w.n, w.n),
    )
    links.data[:] = 1.0  # two islands nearest to each other: one link, not two
    base = _apply_transform(w.sparse, "B") if w.transform == "R" else w.sparse
    joined = Weights(base.maximum(links), w.ids, "B" if w.transform == "R" else w.transform)
    return joined.transformed("R") if w.transform == "R" else joined


# --------------------------------------------------------------------------------------------
# GAL files
# --------------------------------------------------------------------------------------------


def read_gal(path: str | PathLike[str]) -> Weights:
    """Read a GAL contiguity file (GeoDa / PySAL) as binary weights.

    The header is either ``n`` or ``0 n shapefile key``; then, for each unit, a line
    ``id k`` and a line of its ``k`` neighbour ids. Unit order is the order of the file; ids
    are integers when every id is one, strings otherwise.
    """
    with open(path, encoding="utf-8") as stream:
        tokens_by_line = [line.split() for line in stream if line.strip()]
    if not tokens_by_line:
        msg = f"{path}: empty GAL file"
        raise GisError(msg)
    header = tokens_by_line[0]
    n = int(header[1] if len(header) == 4 else header[0])
    body = tokens_by_line[1:]  # blank lines (the empty neighbour line of an island) dropped
    unit_ids: list[str] = []
    neighbours: list[list[str]] = []
    line = 0
    for record in range(1, n + 1):
        try:
            unit_id, count = body[line][0], int(body[line][1])
        except (IndexError, ValueError) as exc:
            msg = f"{path}: malformed GAL file at record {record} of {n}"
            raise GisError(msg) from exc
        line += 1
        listed: list[str] = []
        if count:
            listed = body[line] if line < len(body) else []
            line += 1
        if len(listed) != count:
            msg = f"{path}: unit {unit_id} announces {count} neighbours, lists {len(listed)}"
            raise GisError(msg)
        unit_ids.append(unit_id)
        neighbours.append(listed)
    if line != len(body):
        msg = f"{path}: {len(body) - line} lines after the {n} records the header announces"
        raise GisError(msg)
    ids: pd.Index = pd.Index(unit_ids)
    if all(s.lstrip("-").isdigit() for s in unit_ids):
        ids = pd.Index([int(s) for s in unit_ids])
    position = {s: p for p, s in enumerate(unit_ids)}
    try:
        i = [p for p, listed in enumerate(neighbours) for _ in listed]
        j = [position[s] for listed in neighbours for s in listed]
    except KeyError as exc:
        msg = f"{path}: neighbour {exc.args[0]!r} is not a unit of the file"
        raise GisError(msg) from exc
    return _from_pairs(i, j, ids)
