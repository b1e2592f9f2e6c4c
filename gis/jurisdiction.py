"""Jurisdiction in bulk: which territorial unit (grid, community, street...) covers each point.

The project's rule
------------------
A point belongs to the polygon that **covers** it, boundary included (GEOS / PostGIS
``covers``). Where several polygons cover it — a point on an edge or vertex shared by
neighbouring grids, or inside an overlap of badly digitised ones — **the covering polygon with
the smallest code wins**, codes compared as strings (Python ``str`` order, i.e. Unicode code
points; in PostgreSQL that is ``COLLATE "C"``, not the database's default collation). A point no
polygon covers is *outside*: it gets ``-1`` / ``None`` and is reported, never dropped.

The online (one point at a time) PostGIS query must apply the same rule::

    SELECT code FROM grid
    WHERE ST_Covers(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))
    ORDER BY code COLLATE "C"
    LIMIT 1;

How :class:`PolygonLocator` is both fast and exact
--------------------------------------------------
A uniform raster is laid over the polygons' bounds (degrees; only cell membership is computed
there, nothing metric). Every ring edge is rasterised into the cells whose box, widened by a
safety margin far larger than floating-point rounding, it touches ("boundary cells"). Then:

* **Interior cells** (touched by no edge): the covering set is constant over a connected run of
  them, so the 4-connected components are labelled and one exact GEOS test per component fills
  the lookup table. Points there cost one table lookup.
* **Single-edge boundary cells** (one distinct segment crosses the cell; a segment shared by two
  grids counts once): the segment splits the cell into two sides whose owners are known from the
  rings' orientation. A point's side is the sign of a floating-point orientation determinant
  accepted only when it passes Shewchuk's static error bound, so the sign is the exact one.
* Everything else — cells holding a vertex or several edges, and points whose orientation is
  too close to zero to trust (points *on* an edge) — is tested exactly with prepared GEOS
  geometries against the cell's short candidate list, in code order.

If some polygons overlap (interiors intersect, checked with GEOS ``relate`` at build time), a
polygon may cover a whole boundary cell of another without touching it; such cells get it as an
extra candidate and skip the single-edge shortcut. The answers are therefore identical to
``covers`` plus the smallest-code rule, whatever the input; speed is what depends on the data.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import ArrayLike, NDArray
from pyproj import CRS
from scipy import ndimage

from gis._errors import CRSError, GeometryError, GisError

__all__ = ["PolygonLocator", "assign_points", "assign_polygons"]

logger = logging.getLogger(__name__)

_PAD = 2  # empty cells around the bounds: clamped far-away points land in the outer ring
_MARGIN = 1e-4  # safety margin around each cell box, in cells (rounding is ~1e-9 cells)
_MIN_CELL_REL = 1e-7  # smallest cell size relative to the largest coordinate magnitude
_TARGET_BOUNDARY = 0.02  # wanted share of the raster area in boundary cells (auto cell size)
# Shewchuk's ccwerrboundA is (3 + 16 eps) eps = 3.33e-16; a larger bound only sends more points
# to the exact GEOS test.
_ORIENT_ERRBOUND = 4e-16
_CHUNK = 1 << 16  # points per batch in locate(): keeps the temporaries in cache
_NO_RANK = np.iinfo(np.int64).max


class PolygonLocator:
    """Assign many (lon, lat) points to the polygon covering each one, fast and exactly.

    Build once from the polygons (e.g. the grids after boundaries were redrawn), then call
    :meth:`locate` or :meth:`assign` on arrays of points. See the module docstring for the rule
    (covers, boundary included; smallest code wins; outside gives -1 / None).

    Parameters
    ----------
    geometries : array_like of shapely.Polygon or shapely.MultiPolygon
        Valid, non-empty polygons in WGS84 (lon, lat degrees).
    codes : sequence
        One unique code per polygon; compared as ``str`` for the smallest-code rule.
    cell_size : float, optional
        Raster cell size in degrees. By default chosen from the total boundary length so that
        about 2 % of the bounds lie in boundary cells, within ``max_cells``.
    max_cells : int, default 2**24
        Upper bound on the raster size (4 bytes of lookup table per cell).

    Attributes
    ----------
    codes : numpy.ndarray of object
        The codes, in input order; :meth:`locate` returns indices into it.
    geometries : numpy.ndarray of shapely geometries
        Private prepared copies of the polygons, in input order.
    cell_size : float
        Raster cell size in degrees.
    shape : tuple of int
        Raster (rows, columns), padding included.
    n_boundary_cells, n_single_edge_cells : int
        Cells touched by an edge, and those of them crossed by exactly one segment.
    has_overlaps : bool
        Whether some polygons' interiors intersect.
    build_seconds : float
        Wall time of the build.
    """

    def __init__(
        self,
        geometries: ArrayLike,
        codes: Sequence[Any] | ArrayLike,
        *,
        cell_size: float | None = None,
        max_cells: int = 1 << 24,
    ) -> None:
        started = time.perf_counter()
        geoms, self.codes = _checked_input(geometries, codes)
        # Private copies: prepare() caches an index inside the geometry object, and the
        # caller's own geometries should stay as they were.
        self.geometries = shapely.from_wkb(shapely.to_wkb(geoms))
        shapely.prepare(self.geometries)
        n = len(self.geometries)
        order = np.argsort(np.array([str(c) for c in self.codes], dtype=object), kind="stable")
        self._rank_to_poly = order.astype(np.int64)
        self._rank = np.empty(n, dtype=np.int64)
        self._rank[order] = np.arange(n)
        self._tree = shapely.STRtree(self.geometries)
        self._setup_raster(cell_size, max_cells)
        self._build_tables()
        self.build_seconds = time.perf_counter() - started
        logger.debug(
            "PolygonLocator: %d polygons, raster %s of %.3g deg, %d boundary cells "
            "(%d single-edge), overlaps=%s, built in %.2f s",
            n,
            self.shape,
            self.cell_size,
            self.n_boundary_cells,
            self.n_single_edge_cells,
            self.has_overlaps,
            self.build_seconds,
        )

    @classmethod
    def from_frame(
        cls,
        polygons: gpd.GeoDataFrame,
        *,
        code_column: str = "code",
        cell_size: float | None = None,
        max_cells: int = 1 << 24,
    ) -> PolygonLocator:
        """Build from a GeoDataFrame with a code column (reprojected to EPSG:4326 if needed).

        Parameters
        ----------
        polygons : geopandas.GeoDataFrame
            Polygons with a CRS; other CRSs than EPSG:4326 are converted.
        code_column : str, default "code"
            Column holding the unique codes.
        cell_size, max_cells
            As for :class:`PolygonLocator`.

        Returns
        -------
        PolygonLocator
        """
        polygons = _to_wgs84(polygons, what="polygons")
        if code_column not in polygons.columns:
            msg = f"polygons have no column {code_column!r}"
            raise GisError(msg)
        return cls(
            polygons.geometry.to_numpy(),
            polygons[code_column].to_numpy(dtype=object),
            cell_size=cell_size,
            max_cells=max_cells,
        )

    # ----------------------------------------------------------------------------- queries
    def locate(self, lon: ArrayLike, lat: ArrayLike) -> NDArray[np.intp]:
        """Index (into :attr:`codes`) of the polygon covering each point, -1 where outside.

        Parameters
        ----------
        lon, lat : array_like of float
            Point coordinates in WGS84 degrees, same shape. Non-finite values are outside.

        Returns
        -------
        numpy.ndarray of intp
            Same shape as ``lon``.
        """
        x = np.asarray(lon, dtype=np.float64)
        y = np.asarray(lat, dtype=np.float64)
        if x.shape != y.shape:
            msg = f"lon and lat differ in shape: {x.shape} vs {y.shape}"
            raise GisError(msg)
        shape = x.shape
        x = np.ascontiguousarray(x).ravel()
        y = np.ascontiguousarray(y).ravel()
        out = np.empty(x.size, dtype=np.intp)
        todo_points, todo_cells = [], []
        for start in range(0, x.size, _CHUNK):
            stop = min(start + _CHUNK, x.size)
            answer, cell = self._lookup(x[start:stop], y[start:stop])
            out[start:stop] = answer
            todo = np.flatnonzero(answer < -1)
            todo_points.append(todo + start)
            # Boundary cells are numbered within their raster row (keeps the table int16).
            todo_cells.append(self._row_first[cell[todo] // self.shape[1]] - 2 - answer[todo])
        if todo_points:
            todo = np.concatenate(todo_points)
            out[todo] = self._resolve_boundary(x[todo], y[todo], np.concatenate(todo_cells))
        return out.reshape(shape)

    def assign(self, lon: ArrayLike, lat: ArrayLike) -> NDArray[np.object_]:
        """Code of the polygon covering each point, ``None`` where outside.

        Parameters
        ----------
        lon, lat : array_like of float
            Point coordinates in WGS84 degrees, same shape.

        Returns
        -------
        numpy.ndarray of object
        """
        codes_or_none = np.append(self.codes, None)  # index -1 picks the trailing None
        return codes_or_none[self.locate(lon, lat)]

    @property
    def nbytes(self) -> int:
        """Memory held by the lookup structures, in bytes (geometries excluded)."""
        arrays = [
            self._table,
            self._row_first,
            self._seg_of_cell,
            self._left,
            self._right,
            self._cand_start,
            self._cand_poly,
            self._seg_xy,
            self._rank,
            self._rank_to_poly,
        ]
        return int(sum(a.nbytes for a in arrays))

    def _lookup(
        self, x: NDArray[np.float64], y: NDArray[np.float64]
    ) -> tuple[NDArray[np.signedinteger], NDArray[np.int32]]:
        """Cell of each point and its table value: polygon, -1 outside, <= -2 boundary cell."""
        nrows, ncols = self.shape
        # fmax/fmin map NaN to 0 and clamp far points into the empty outer ring of cells.
        fx = np.subtract(x, self._x0)
        fx *= self._inv_h
        np.fmax(fx, 0.0, out=fx)
        np.fmin(fx, ncols - 1, out=fx)
        fy = np.subtract(y, self._y0)
        fy *= self._inv_h
        np.fmax(fy, 0.0, out=fy)
        np.fmin(fy, nrows - 1, out=fy)
        cell = fy.astype(np.int32)
        cell *= ncols
        cell += fx.astype(np.int32)
        return self._table.take(cell), cell

    def _resolve_boundary(
        self, x: NDArray[np.float64], y: NDArray[np.float64], bcell: NDArray[np.int32]
    ) -> NDArray[np.int32]:
        """Answers for points in boundary cells: orientation shortcut, else exact GEOS."""
        answer = np.full(x.size, -1, dtype=np.int32)
        seg = self._seg_of_cell[bcell]
        single = np.flatnonzero(seg >= 0)
        exact = np.flatnonzero(seg < 0)
        if single.size:
            ax, ay, bx, by = self._seg_xy[:, seg[single]]
            px, py = x[single], y[single]
            det_left = (ax - px) * (by - py)
            det_right = (ay - py) * (bx - px)
            det = det_left - det_right
            bound = _ORIENT_ERRBOUND * (np.abs(det_left) + np.abs(det_right))
            cells = bcell[single]
            on_left = det > bound
            on_right = -det > bound
            answer[single[on_left]] = self._left[cells[on_left]]
            answer[single[on_right]] = self._right[cells[on_right]]
            unsure = single[~(on_left | on_right)]
            if unsure.size:
                exact = np.concatenate([exact, unsure])
        if exact.size:
            answer[exact] = self._exact(x[exact], y[exact], bcell[exact])
        return answer

    def _exact(
        self, x: NDArray[np.float64], y: NDArray[np.float64], bcell: NDArray[np.int32]
    ) -> NDArray[np.int32]:
        """GEOS covers-test against each cell's candidates (in code order); first hit wins."""
        first = self._cand_start[bcell]
        count = self._cand_start[bcell + 1] - first
        pair_point = np.repeat(np.arange(x.size), count)
        offset_in_cell = np.arange(pair_point.size) - np.repeat(np.cumsum(count) - count, count)
        pair_poly = self._cand_poly[np.repeat(first, count) + offset_in_cell]
        hit = shapely.intersects_xy(self.geometries[pair_poly], x[pair_point], y[pair_point])
        hits = np.flatnonzero(hit)
        hit_point = pair_point[hits]
        first_hit = np.ones(hits.size, dtype=bool)
        first_hit[1:] = hit_point[1:] != hit_point[:-1]
        answer = np.full(x.size, -1, dtype=np.int32)
        answer[hit_point[first_hit]] = pair_poly[hits[first_hit]]
        return answer

    # ------------------------------------------------------------------------------- build
    def _setup_raster(self, cell_size: float | None, max_cells: int) -> None:
        minx, miny, maxx, maxy = shapely.total_bounds(self.geometries)
        width, height = maxx - minx, maxy - miny
        h_min = _MIN_CELL_REL * max(1.0, abs(minx), abs(maxx), abs(miny), abs(maxy))
        if not 0 < max_cells < 2**31:  # cell numbers are int32 in the hot loop
            msg = f"max_cells must be between 1 and 2**31 - 1, got {max_cells!r}"
            raise GisError(msg)

        def n_cells(h: float) -> int:
            return (int(width / h) + 2 * _PAD + 1) * (int(height / h) + 2 * _PAD + 1)

        if cell_size is None:
            boundary_length = 0.5 * float(shapely.length(self.geometries).sum())
            h = _TARGET_BOUNDARY * width * height / (1.3 * boundary_length)
            h = max(h, np.sqrt(width * height / max_cells), h_min)
            while n_cells(h) > max_cells:
                h *= 1.05
        else:
            h = float(cell_size)
            if not h >= h_min:
                msg = f"cell_size {cell_size!r} is below the minimum {h_min:.3g} degrees"
                raise GisError(msg)
            if n_cells(h) > max_cells:
                msg = (
                    f"cell_size {h:.3g} gives {n_cells(h)} cells, more than max_cells="
                    f"{max_cells}; use a larger cell_size or raise max_cells"
                )
                raise GisError(msg)
        self.cell_size = h
        self._inv_h = 1.0 / h
        self._x0 = minx - _PAD * h
        self._y0 = miny - _PAD * h
        self.shape = (int(height / h) + 2 * _PAD + 1, int(width / h) + 2 * _PAD + 1)

    def _build_tables(self) -> None:
        nrows, ncols = self.shape
        edges = _ring_edges(self.geometries)
        h = self.cell_size
        cell, edge = _touched_cells(
            (edges["ax"] - self._x0) / h,
            (edges["ay"] - self._y0) / h,
            (edges["bx"] - self._x0) / h,
            (edges["by"] - self._y0) / h,
            shape=self.shape,
        )
        rank = self._rank[edges["poly"][edge]]
        order = np.argsort(cell * len(self._rank) + rank)
        cell, edge, rank = cell[order], edge[order], rank[order]
        starts = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
        bcells = cell[starts]
        group = np.cumsum(np.r_[True, cell[1:] != cell[:-1]]) - 1
        self.n_boundary_cells = int(bcells.size)

        # Owners of each side of the segment, for cells crossed by a single segment.
        left = edges["left"][edge]
        self._left = self._owner(np.minimum.reduceat(np.where(left, rank, _NO_RANK), starts))
        self._right = self._owner(np.minimum.reduceat(np.where(left, _NO_RANK, rank), starts))
        seg = edges["seg"][edge]
        nseg = int(seg.max()) + 1
        cell_seg = _sorted_unique(group * nseg + seg)
        seg_count = np.bincount(cell_seg // nseg, minlength=bcells.size)
        seg_of_cell = np.full(bcells.size, -1, dtype=np.int32)
        single = seg_count == 1
        seg_of_cell[single] = cell_seg[np.cumsum(seg_count)[single] - 1] % nseg

        n = len(self._rank)
        keys = _sorted_unique(group * n + rank)  # (boundary cell, rank of a touching polygon)
        overlapping = _overlapping(self.geometries, self._tree)
        self.has_overlaps = bool(overlapping.size)
        if self.has_overlaps:
            # An overlapping polygon may cover a whole boundary cell of another without
            # touching it (then it covers the cell centre): add it as a candidate and drop the
            # single-edge shortcut there, whose side owners only know the touching polygons.
            rows, cols = np.divmod(bcells, ncols)
            centres = shapely.points(self._x0 + (cols + 0.5) * h, self._y0 + (rows + 0.5) * h)
            in_cell, k = shapely.STRtree(self.geometries[overlapping]).query(
                centres, predicate="intersects"
            )
            extra = in_cell * n + self._rank[overlapping[k]]
            pos = np.minimum(np.searchsorted(keys, extra), keys.size - 1)
            covers_whole = extra[keys[pos] != extra]
            seg_of_cell[covers_whole // n] = -1
            keys = _sorted_unique(np.concatenate([keys, covers_whole]))
        self._cand_poly = self._rank_to_poly[keys % n].astype(np.int32)
        counts = np.bincount(keys // n, minlength=bcells.size)
        self._cand_start = np.r_[0, np.cumsum(counts)].astype(np.int64)
        self._seg_of_cell = seg_of_cell
        self.n_single_edge_cells = int((seg_of_cell >= 0).sum())
        self._seg_xy = np.ascontiguousarray(edges["seg_xy"].T)  # rows: ax, ay, bx, by
        # Table values: polygon index, -1 outside, or -2 - (number of the boundary cell within
        # its row). Row-local numbers fit int16 when the raster is under 32k columns, which
        # halves the table and makes the random lookups (the hot spot) faster.
        small = len(self._rank) < 2**15 and ncols < 2**15
        table_dtype = np.int16 if small else np.int32
        bcell_row = bcells // ncols
        self._row_first = np.searchsorted(bcell_row, np.arange(nrows)).astype(np.int64)
        self._table = self._interior_table(bcells, table_dtype)
        local = np.arange(bcells.size) - self._row_first[bcell_row]
        self._table[bcells] = (-2 - local).astype(table_dtype)

    def _owner(self, min_rank: NDArray[np.int64]) -> NDArray[np.int32]:
        owner = np.full(min_rank.size, -1, dtype=np.int32)
        claimed = min_rank != _NO_RANK
        owner[claimed] = self._rank_to_poly[min_rank[claimed]]
        return owner

    def _interior_table(
        self, bcells: NDArray[np.int64], dtype: type[np.signedinteger]
    ) -> NDArray[np.signedinteger]:
        """Lookup table with the answer of every interior cell (boundary cells overwritten later).

        Interior cells touch no edge, so each 4-connected run of them lies in one constant
        covering set; one exact test at a representative cell centre answers the whole run.
        """
        nrows, ncols = self.shape
        interior = np.ones(nrows * ncols, dtype=bool)
        interior[bcells] = False
        labels, n_labels = ndimage.label(interior.reshape(nrows, ncols))
        del interior
        rep_row = np.empty(n_labels, dtype=np.int64)
        rep_col = np.empty(n_labels, dtype=np.int64)
        for k, (rows, cols) in enumerate(ndimage.find_objects(labels)):
            rep_row[k] = rows.start
            rep_col[k] = cols.start + int(np.argmax(labels[rows.start, cols] == k + 1))
        h = self.cell_size
        reps = shapely.points(self._x0 + (rep_col + 0.5) * h, self._y0 + (rep_row + 0.5) * h)
        rep, poly = self._tree.query(reps, predicate="intersects")
        best = np.full(n_labels + 1, _NO_RANK, dtype=np.int64)
        np.minimum.at(best, rep + 1, self._rank[poly])
        label_answer = self._owner(best)
        label_answer[0] = -1  # label 0 = boundary cells, overwritten by the caller
        return label_answer.astype(dtype)[labels.ravel()]


def assign_points(
    polygons: gpd.GeoDataFrame,
    lon: ArrayLike,
    lat: ArrayLike,
    *,
    code_column: str = "code",
) -> NDArray[np.object_]:
    """Code of the polygon covering each point (smallest code on shared boundaries), else None.

    A one-shot wrapper around :class:`PolygonLocator`; build the locator yourself to reuse it.

    Parameters
    ----------
    polygons : geopandas.GeoDataFrame
        Polygons with a CRS and a unique code column.
    lon, lat : array_like of float
        WGS84 point coordinates.
    code_column : str, default "code"

    Returns
    -------
    numpy.ndarray of object
    """
    return PolygonLocator.from_frame(polygons, code_column=code_column).assign(lon, lat)


def assign_polygons(
    sites: gpd.GeoDataFrame | gpd.GeoSeries,
    polygons: gpd.GeoDataFrame,
    *,
    code_column: str = "code",
    metric_crs: Any = None,
) -> NDArray[np.object_]:
    """Code of the polygon overlapping each site polygon the most; ties go to the smallest code.

    Areas are compared in an equal-area projection (by default a Lambert azimuthal equal-area
    centred on the polygons), so the winner is the one with the largest true overlap area.
    Overlaps within one part in 1e9 of the largest are ties. A site overlapping no polygon
    with positive area gets None.

    Parameters
    ----------
    sites : geopandas.GeoDataFrame or geopandas.GeoSeries
        Site polygons (e.g. construction site outlines), with a CRS.
    polygons : geopandas.GeoDataFrame
        Territorial polygons with a CRS and a unique code column.
    code_column : str, default "code"
    metric_crs : optional
        Any CRS pyproj accepts, to compute the areas in instead of the default.

    Returns
    -------
    numpy.ndarray of object
        One code (or None) per site, in site order.
    """
    polygons = _to_wgs84(polygons, what="polygons")
    sites = _to_wgs84(sites, what="sites")
    if code_column not in polygons.columns:
        msg = f"polygons have no column {code_column!r}"
        raise GisError(msg)
    site_geoms = sites.geometry.to_numpy()
    kinds = shapely.get_type_id(site_geoms)
    if np.any(~np.isin(kinds, [3, 6])) or np.any(shapely.is_empty(site_geoms)):
        msg = "sites must be non-empty Polygons or MultiPolygons"
        raise GeometryError(msg)
    grid_geoms, codes = _checked_input(
        polygons.geometry.to_numpy(), polygons[code_column].to_numpy(dtype=object)
    )
    if metric_crs is None:
        minx, miny, maxx, maxy = shapely.total_bounds(grid_geoms)
        metric_crs = CRS.from_proj4(
            f"+proj=laea +lat_0={(miny + maxy) / 2} +lon_0={(minx + maxx) / 2} "
            "+ellps=GRS80 +units=m +no_defs"
        )
    grid_m = gpd.GeoSeries(grid_geoms, crs=4326).to_crs(metric_crs).to_numpy()
    site_m = gpd.GeoSeries(site_geoms, crs=4326).to_crs(metric_crs).to_numpy()
    site, grid = shapely.STRtree(grid_m).query(site_m, predicate="intersects")
    area = shapely.area(shapely.intersection(site_m[site], grid_m[grid]))
    str_codes = np.array([str(c) for c in codes], dtype=object)
    pairs = pd.DataFrame({"site": site, "area": area, "code": str_codes[grid], "grid": grid})
    pairs = pairs[pairs["area"] > 0]
    largest = pairs.groupby("site")["area"].transform("max")
    tied = pairs[pairs["area"] >= largest * (1 - 1e-9)]
    winner = tied.sort_values(["site", "code"]).drop_duplicates("site")
    result = np.full(len(site_geoms), None, dtype=object)
    result[winner["site"].to_numpy()] = codes[winner["grid"].to_numpy()]
    return result


# ---------------------------------------------------------------------------------- helpers
def _to_wgs84(frame: Any, *, what: str) -> Any:
    if frame.crs is None:
        msg = f"{what} have no CRS; set it (EPSG:4326 for WGS84 lon/lat) before assigning"
        raise CRSError(msg)
    if CRS.from_user_input(frame.crs).to_epsg() != 4326:
        logger.info("reprojecting %s from %s to EPSG:4326", what, frame.crs)
        frame = frame.to_crs(4326)
    return frame


def _checked_input(
    geometries: ArrayLike, codes: Sequence[Any] | ArrayLike
) -> tuple[NDArray[np.object_], NDArray[np.object_]]:
    geoms = np.asarray(geometries, dtype=object).ravel()
    code_arr = np.empty(len(codes), dtype=object)
    code_arr[:] = list(codes)
    if geoms.size == 0:
        msg = "no polygons given"
        raise GeometryError(msg)
    if code_arr.size != geoms.size:
        msg = f"{geoms.size} polygons but {code_arr.size} codes"
        raise GisError(msg)
    kinds = shapely.get_type_id(geoms)  # -1 for None
    bad = np.flatnonzero(~np.isin(kinds, [3, 6]) | shapely.is_empty(geoms))
    if bad.size:
        msg = f"polygon {code_arr[bad[0]]!r} is missing, empty or not a (Multi)Polygon"
        raise GeometryError(msg)
    invalid = np.flatnonzero(~shapely.is_valid(geoms))
    if invalid.size:
        reason = shapely.is_valid_reason(geoms[invalid[0]])
        msg = f"{invalid.size} invalid polygons, e.g. {code_arr[invalid[0]]!r}: {reason}"
        raise GeometryError(msg)
    as_str = pd.Series([str(c) for c in code_arr])
    if as_str.duplicated().any():
        msg = f"codes must be unique; repeated: {as_str[as_str.duplicated()].iloc[0]!r}"
        raise GisError(msg)
    return geoms, code_arr


def _ring_edges(geoms: NDArray[np.object_]) -> dict[str, NDArray[Any]]:
    """Every non-degenerate ring edge, with its polygon, side of the interior and segment id.

    Segments are normalised so that ``a < b`` lexicographically; ``left`` says whether the
    polygon's interior lies to the left of a→b. Identical segments of neighbouring polygons
    share one ``seg`` id.
    """
    parts, part_poly = shapely.get_parts(geoms, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    is_hole = np.arange(rings.size) != np.searchsorted(ring_part, ring_part)
    interior_left = shapely.is_ccw(rings) != is_hole
    xy, xy_ring = shapely.get_coordinates(rings, return_index=True)
    same_ring = xy_ring[:-1] == xy_ring[1:]
    a, b, ring = xy[:-1][same_ring], xy[1:][same_ring], xy_ring[:-1][same_ring]
    keep = np.any(a != b, axis=1)
    a, b, ring = a[keep], b[keep], ring[keep]
    swap = (a[:, 0] > b[:, 0]) | ((a[:, 0] == b[:, 0]) & (a[:, 1] > b[:, 1]))
    a, b = np.where(swap[:, None], b, a), np.where(swap[:, None], a, b)
    seg_xy, seg = np.unique(np.hstack([a, b]), axis=0, return_inverse=True)
    return {
        "ax": a[:, 0],
        "ay": a[:, 1],
        "bx": b[:, 0],
        "by": b[:, 1],
        "poly": part_poly[ring_part[ring]],
        "left": interior_left[ring] != swap,
        "seg": seg.ravel().astype(np.int64),
        "seg_xy": seg_xy,
    }


def _touched_cells(
    ua: NDArray[np.float64],
    va: NDArray[np.float64],
    ub: NDArray[np.float64],
    vb: NDArray[np.float64],
    *,
    shape: tuple[int, int],
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(cell, edge) pairs for every cell whose widened box an edge touches (cell units).

    Each edge is walked along its major axis, so the slope used is at most 1 and rounding
    stays ~1e-12 cells, far inside the margin.
    """
    steep = np.abs(vb - va) > np.abs(ub - ua)
    flat = np.flatnonzero(~steep)
    tall = np.flatnonzero(steep)
    c1, r1, e1 = _walk(ua[flat], va[flat], ub[flat], vb[flat], n_major=shape[1], n_minor=shape[0])
    r2, c2, e2 = _walk(va[tall], ua[tall], vb[tall], ub[tall], n_major=shape[0], n_minor=shape[1])
    cell = np.concatenate([r1 * shape[1] + c1, r2 * shape[1] + c2])
    edge = np.concatenate([flat[e1], tall[e2]])
    return cell, edge


def _walk(
    ma: NDArray[np.float64],
    na: NDArray[np.float64],
    mb: NDArray[np.float64],
    nb: NDArray[np.float64],
    *,
    n_major: int,
    n_minor: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Cells touched by segments with |slope| <= 1 along the major axis m (minor axis n)."""
    lo, hi = np.minimum(ma, mb), np.maximum(ma, mb)
    first = np.floor(lo - _MARGIN).astype(np.int64)
    count = np.floor(hi + _MARGIN).astype(np.int64) - first + 1
    edge = np.repeat(np.arange(ma.size), count)
    major = first[edge] + np.arange(edge.size) - np.repeat(np.cumsum(count) - count, count)
    slope = np.divide(nb - na, mb - ma, out=np.zeros_like(ma), where=mb != ma)[edge]
    m0 = np.maximum(lo[edge], major - _MARGIN)
    m1 = np.minimum(hi[edge], major + 1 + _MARGIN)
    n0 = na[edge] + (m0 - ma[edge]) * slope
    n1 = na[edge] + (m1 - ma[edge]) * slope
    minor_first = np.floor(np.minimum(n0, n1) - _MARGIN).astype(np.int64)
    minor_count = np.floor(np.maximum(n0, n1) + _MARGIN).astype(np.int64) - minor_first + 1
    pair = np.repeat(np.arange(edge.size), minor_count)
    minor = (
        minor_first[pair]
        + np.arange(pair.size)
        - np.repeat(np.cumsum(minor_count) - minor_count, minor_count)
    )
    major = major[pair]
    inside = (major >= 0) & (major < n_major) & (minor >= 0) & (minor < n_minor)
    return major[inside], minor[inside], edge[pair][inside]


def _sorted_unique(keys: NDArray[np.int64]) -> NDArray[np.int64]:
    """np.unique for int64 keys by sorting (numpy 2.3+'s hash-based unique is much slower here)."""
    keys = np.sort(keys)
    return keys[np.r_[True, keys[1:] != keys[:-1]]]


def _overlapping(geoms: NDArray[np.object_], tree: shapely.STRtree) -> NDArray[np.int64]:
    """Indices of the polygons whose interior meets another's (exact, GEOS relate)."""
    i, j = tree.query(geoms, predicate="intersects")
    keep = i < j
    i, j = i[keep], j[keep]
    meet = shapely.relate_pattern(geoms[i], geoms[j], "T********")
    return np.unique(np.concatenate([i[meet], j[meet]])).astype(np.int64)
