r"""Validation of one territory level (districts, streets, communities or grids) before import.

:func:`validate_level` takes the level's units (EPSG:4326, columns ``code``, ``name`` and
``parent_code``) and, optionally, the parent level, and returns a :class:`ValidationReport`:
a list of :class:`Issue` plus the repaired frame.

Unions, differences and intersections run on the WGS84 geometries as stored, whose edges are
straight lines in lon/lat (as PostGIS ``geometry(4326)`` sees them): projected first, a long
edge would bow away from its neighbour's vertices and open false slivers. Areas (m²) and
distances are measured in the UTM zone of the data (:func:`gis.projection.local_metric_crs`);
issue geometries are in EPSG:4326.

Issue kinds
-----------
======================  =========  ===============================================================
kind                    severity   meaning
======================  =========  ===============================================================
``missing_field``       error      a required column is absent, or a unit has no name
``bad_code``            error      a code is not a well-formed code of the level (gis.codes)
``duplicate_code``      error      several units share one code
``parent_mismatch``     error      a code does not extend its ``parent_code``, or the
                                   ``parent_code`` is not in the parent layer
``empty_geometry``      error      no geometry, or an empty one
``not_polygonal``       error /    nothing polygonal (error); or a collection whose
                        warning    non-polygonal parts were dropped (warning)
``invalid_geometry``    warning    repaired with ``shapely.make_valid`` (polygonal parts kept),
                                   with GEOS's reason; error if nothing polygonal survives
``gap``                 warning *  a "blind spot": part of a parent covered by no child, or
                                   without a parent layer a hole of the level's union that is
                                   not a hole of any single unit (an enclave of another area)
``overlap``             warning *  the shared area of two siblings (same ``parent_code``)
``outside_parent``      warning *  the part of a unit outside its parent
``sliver``              warning    a gap, overlap or whole unit smaller than ``sliver_area_m2``
======================  =========  ===============================================================

\* A gap, overlap or outside part of ``major_area_m2`` (1 ha) or more is an error: a hectare
that no grid answers for, or that two answer for, breaks "no blind spots" (无盲区管控).

Slivers have ``kind='sliver'`` and say what they are a sliver of in ``Issue.sliver_of``
(``'gap'``, ``'overlap'`` or ``'unit'``), so that the counts by kind keep slivers apart
from real gaps, and :meth:`ValidationReport.summary` can say "174 sliver gaps, 15.82 m² in
all". Every issue of the other kinds has ``sliver_of=None``.

Accepting an import
-------------------
``report.ok()`` (lenient) accepts when there is no error. ``report.ok(strict=True)`` accepts
only when every issue is a repaired geometry (``invalid_geometry`` warning): the repair is
mechanical and the repaired frame is what gets stored, while any sliver, gap, overlap or
outside part means the boundaries disagree, which strict mode sends back to be fixed.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, ClassVar

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from gis._errors import CRSError, GisError
from gis.codes import DEFAULT_SCHEME, LEVELS, CodeScheme, extends, validate_code
from gis.projection import local_metric_crs

__all__ = ["Issue", "ValidationReport", "validate_level", "ERROR", "WARNING"]

logger = logging.getLogger(__name__)

ERROR = "error"
WARNING = "warning"
_POLYGONAL = ("Polygon", "MultiPolygon")
_TOUCH_M = 0.01  # a gap "touches" the units within this distance (numerical slack)


@dataclass(frozen=True)
class Issue:
    """One problem found in a level.

    Attributes
    ----------
    kind, severity
        See the module docstring.
    codes
        The codes involved (unit, pair of units, parent then neighbours...); a unit without
        a usable code is named ``'row <index>'``.
    message
        One sentence for a person.
    area_m2
        The area concerned, for spatial issues; None otherwise.
    geometry
        Where the problem is (EPSG:4326): the gap, overlap or outside part, the repaired or
        offending unit; None for issues about attributes (codes, names, fields).
    sliver_of
        For ``kind='sliver'``: ``'gap'``, ``'overlap'`` or ``'unit'``; otherwise None.
    """

    kind: str
    severity: str
    codes: tuple[str, ...]
    message: str
    area_m2: float | None = None
    geometry: BaseGeometry | None = None
    sliver_of: str | None = None


@dataclass
class ValidationReport:
    """The issues of one level, and the frame with its geometries repaired."""

    level: str
    issues: list[Issue]
    repaired: gpd.GeoDataFrame
    metric_crs: CRS | None = None
    COLUMNS: ClassVar[tuple[str, ...]] = ("severity", "kind", "codes", "area_m2", "message")
    _sorted: list[Issue] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._sorted = sorted(
            self.issues, key=lambda i: (i.severity != ERROR, i.kind, -(i.area_m2 or 0.0))
        )

    def ok(self, *, strict: bool = False) -> bool:
        """Whether the level may be imported (see "Accepting an import" in the module doc)."""
        if strict:
            return all(i.kind == "invalid_geometry" and i.severity == WARNING for i in self.issues)
        return not any(i.severity == ERROR for i in self.issues)

    def counts(self) -> dict[str, int]:
        """Number of issues by kind."""
        return {kind: int(n) for kind, n in Counter(i.kind for i in self.issues).items()}

    def summary(self) -> list[str]:
        """One line per kind (slivers per ``sliver_of``): '174 sliver gaps, 15.82 m² in all...'."""
        groups: dict[str, list[Issue]] = defaultdict(list)
        for issue in self._sorted:
            label = f"sliver {issue.sliver_of}" if issue.sliver_of else issue.kind
            groups[label.replace("_", " ")].append(issue)
        lines = []
        for label, issues in groups.items():
            line = f"{len(issues)} {label}{'s' if len(issues) != 1 else ''}"
            areas = [i.area_m2 for i in issues if i.area_m2 is not None]
            if areas:
                line += f", {_fmt_area(sum(areas))} in all, largest {_fmt_area(max(areas))}"
            lines.append(line)
        return lines

    def rows(self) -> list[tuple[str, ...]]:
        """The issues as text tuples in :attr:`COLUMNS` order, errors first, for a table."""
        return [
            (
                i.severity,
                i.kind if i.sliver_of is None else f"sliver ({i.sliver_of})",
                ", ".join(i.codes),
                "" if i.area_m2 is None else _fmt_area(i.area_m2),
                i.message,
            )
            for i in self._sorted
        ]

    def to_geodataframe(self) -> gpd.GeoDataFrame:
        """The issues as a GeoDataFrame in EPSG:4326 (``codes`` joined with commas)."""
        records = [
            {
                "kind": i.kind,
                "severity": i.severity,
                "sliver_of": i.sliver_of,
                "codes": ",".join(i.codes),
                "area_m2": i.area_m2,
                "message": i.message,
            }
            for i in self._sorted
        ]
        columns = ["kind", "severity", "sliver_of", "codes", "area_m2", "message"]
        return gpd.GeoDataFrame(
            pd.DataFrame.from_records(records, columns=columns),
            geometry=[i.geometry for i in self._sorted],
            crs="EPSG:4326",
        )

    def to_geojson(self) -> dict[str, Any]:
        """The issues as an RFC 7946 FeatureCollection (WGS84, exterior rings anticlockwise)."""
        features = []
        for i in self._sorted:
            geometry = None
            if i.geometry is not None and not i.geometry.is_empty:
                geometry = mapping(shapely.orient_polygons(i.geometry))
            properties = {
                "kind": i.kind,
                "severity": i.severity,
                "sliver_of": i.sliver_of,
                "codes": list(i.codes),
                "area_m2": i.area_m2,
                "message": i.message,
            }
            features.append({"type": "Feature", "geometry": geometry, "properties": properties})
        return {"type": "FeatureCollection", "features": features}


def _fmt_area(area: float) -> str:
    return f"{area:,.2f} m²" if area >= 0.01 or area == 0 else f"{area:.1e} m²"


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    """The polygonal parts of ``geom`` as a (Multi)Polygon, possibly empty."""
    if geom.geom_type in _POLYGONAL:
        return geom
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in _POLYGONAL]
    polygons = [q for p in parts for q in shapely.get_parts(p)]
    return shapely.multipolygons(polygons) if polygons else shapely.Polygon()


def _as_wgs84(frame: gpd.GeoDataFrame, what: str) -> gpd.GeoDataFrame:
    if not isinstance(frame, gpd.GeoDataFrame):
        msg = f"{what} must be a GeoDataFrame, got {type(frame).__name__}"
        raise GisError(msg)
    if frame.crs is None:
        msg = f"{what} has no CRS; it should be EPSG:4326 (WGS84 lon/lat)"
        raise CRSError(msg)
    return frame if frame.crs.equals(CRS.from_epsg(4326)) else frame.to_crs(4326)


class _Checker:
    """Holds the state of one validation; each ``check_*`` method appends issues."""

    def __init__(self, units: gpd.GeoDataFrame, level: str, options: dict[str, Any]) -> None:
        self.units = units
        self.level = level
        self.opt = options
        self.issues: list[Issue] = []
        self.bad_codes: set[str] = set()  # labels of the units whose code is malformed
        self.labels = [
            c if isinstance(c, str) and c.strip() else f"row {idx}"
            for idx, c in zip(units.index, self._column("code"), strict=True)
        ]
        # Topology (unions, differences) runs on the stored WGS84 geometries, whose edges are
        # straight in lon/lat: projected, a long edge would bow away from the vertices of its
        # neighbour and open false slivers. Only areas and distances use the metric CRS.
        self.crs: CRS | None = None
        self.geoms: np.ndarray = np.array([], dtype=object)  # usable geometries, WGS84
        self.metric: np.ndarray = np.array([], dtype=object)  # the same, metric CRS
        self.rows: np.ndarray = np.array([], dtype=int)  # their row positions

    def _column(self, name: str) -> list[Any]:
        if name in self.units.columns:
            return [None if pd.isna(v) else v for v in self.units[name]]
        return [None] * len(self.units)

    def add(self, kind: str, severity: str, codes, message: str, **extra: Any) -> None:
        self.issues.append(Issue(kind, severity, tuple(codes), message, **extra))

    def check_fields(self, has_parent: bool) -> None:
        required = ["code", "name"]
        if has_parent or self.level != LEVELS[0]:
            required.append("parent_code")
        for name in required:
            if name not in self.units.columns:
                msg = f"the {self.level} layer has no '{name}' column"
                self.add("missing_field", ERROR, (), msg)
        if "name" in self.units.columns:
            for label, value in zip(self.labels, self._column("name"), strict=True):
                if value is None or not str(value).strip():
                    self.add("missing_field", ERROR, (label,), f"{self.level} {label} has no name")

    def check_codes(self) -> None:
        if "code" not in self.units.columns:
            return
        codes = self._column("code")
        for label, code in zip(self.labels, codes, strict=True):
            try:
                validate_code(code, self.level, scheme=self.opt["scheme"])
            except GisError as exc:
                self.bad_codes.add(label)
                self.add("bad_code", ERROR, (label,), str(exc))
        names = self._column("name")
        by_code: dict[str, list[int]] = defaultdict(list)
        for pos, code in enumerate(codes):
            if code is not None:
                by_code[str(code)].append(pos)
        for code, rows in by_code.items():
            if len(rows) > 1:
                who = ", ".join(str(names[r]) for r in rows)
                msg = f"code {code} is used by {len(rows)} {self.level} units ({who})"
                self.add("duplicate_code", ERROR, (code,), msg)

    def check_parent_codes(self, parent_codes: set[str] | None) -> None:
        if "parent_code" not in self.units.columns or "code" not in self.units.columns:
            return
        scheme = self.opt["scheme"]
        index = LEVELS.index(self.level)
        for label, code, pcode in zip(
            self.labels, self._column("code"), self._column("parent_code"), strict=True
        ):
            if pcode is None:
                self.add("parent_mismatch", ERROR, (label,), f"{label} has no parent_code")
                continue
            if parent_codes is not None and pcode not in parent_codes:
                msg = f"parent_code {pcode} of {label} is not in the parent layer"
                self.add("parent_mismatch", ERROR, (label, str(pcode)), msg)
            if index == 0 or label in self.bad_codes or label != code:
                continue  # districts have no parent level; bad codes are reported already
            if not extends(code, pcode, self.level, scheme=scheme):
                parent_level = LEVELS[index - 1]
                try:
                    validate_code(pcode, parent_level, scheme=scheme)
                    why = f"{code} does not start with {pcode[: scheme.significant(parent_level)]}"
                except GisError as exc:
                    why = str(exc)
                msg = f"{self.level} {code} is not under parent_code {pcode}: {why}"
                self.add("parent_mismatch", ERROR, (code, str(pcode)), msg)

    def check_geometries(self) -> gpd.GeoDataFrame:
        """Repair, classify and project the geometries; return the repaired frame."""
        geoms = np.asarray(self.units.geometry.values, dtype=object)
        fixed = geoms.copy()
        usable = np.zeros(len(geoms), dtype=bool)
        missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
        invalid = ~missing & ~shapely.is_valid(geoms)
        for pos in np.flatnonzero(missing):
            self.add("empty_geometry", ERROR, (self.labels[pos],), "no geometry")
        for pos in np.flatnonzero(~missing):
            label, geom = self.labels[pos], geoms[pos]
            if invalid[pos]:
                reason = shapely.is_valid_reason(geom)
                repaired = _polygonal(shapely.make_valid(geom))
                if repaired.is_empty:
                    msg = f"invalid geometry ({reason}) with nothing polygonal once repaired"
                    self.add("invalid_geometry", ERROR, (label,), msg)
                    continue
                msg = f"invalid geometry ({reason}), repaired with make_valid"
                self.add("invalid_geometry", WARNING, (label,), msg, geometry=repaired)
                geom = repaired
            elif geom.geom_type not in _POLYGONAL:
                polygonal = _polygonal(geom)
                if polygonal.is_empty:
                    msg = f"geometry is a {geom.geom_type}, not a polygon"
                    self.add("not_polygonal", ERROR, (label,), msg, geometry=geom)
                    continue
                msg = f"non-polygonal parts of a {geom.geom_type} dropped"
                self.add("not_polygonal", WARNING, (label,), msg, geometry=geom)
                geom = polygonal
            fixed[pos] = geom
            usable[pos] = True
        repaired_frame = self.units.copy()
        repaired_frame[repaired_frame.geometry.name] = gpd.GeoSeries(
            fixed, index=self.units.index, crs=4326
        )
        self.rows = np.flatnonzero(usable)
        if usable.any():
            self.crs = local_metric_crs(repaired_frame.iloc[self.rows])
            self.geoms = fixed[usable]
            self.metric = self.project(self.geoms)
            for k, area in enumerate(shapely.area(self.metric)):
                if area < self.opt["sliver_area_m2"]:
                    label = self.labels[self.rows[k]]
                    msg = f"{self.level} {label} covers only {_fmt_area(area)}"
                    extra = {"area_m2": float(area), "geometry": self.geoms[k], "sliver_of": "unit"}
                    self.add("sliver", WARNING, (label,), msg, **extra)
        return repaired_frame

    def project(self, geoms) -> np.ndarray:
        """WGS84 geometries in the metric CRS."""
        return np.asarray(gpd.GeoSeries(geoms, crs=4326).to_crs(self.crs).values, dtype=object)

    def area_issue(self, kind: str, codes, geom, area: float, what: str) -> None:
        """A gap, overlap or outside part: a sliver, a warning, or an error if major."""
        if area < self.opt["sliver_area_m2"]:
            extra = {"area_m2": area, "geometry": geom, "sliver_of": kind}
            self.add("sliver", WARNING, codes, f"sliver: {what}", **extra)
            return
        severity = ERROR if area >= self.opt["major_area_m2"] else WARNING
        self.add(kind, severity, codes, what, area_m2=area, geometry=geom)

    def siblings_key(self) -> list[Any]:
        if "parent_code" in self.units.columns:
            pcodes = self._column("parent_code")
            return [pcodes[pos] for pos in self.rows]
        return [None] * len(self.rows)

    def check_overlaps(self) -> None:
        geoms = self.geoms
        i, j = shapely.STRtree(geoms).query(geoms, predicate="intersects")
        keep = i < j
        key = self.siblings_key()
        keep &= np.array([key[a] == key[b] for a, b in zip(i, j, strict=True)], dtype=bool)
        i, j = i[keep], j[keep]
        inner = shapely.relate_pattern(geoms[i], geoms[j], "T********")
        i, j = i[inner], j[inner]
        shared = [_polygonal(g) for g in shapely.intersection(geoms[i], geoms[j])]
        for a, b, geom, area in zip(i, j, shared, shapely.area(self.project(shared)), strict=True):
            if area > 0:
                ca, cb = self.labels[self.rows[a]], self.labels[self.rows[b]]
                what = f"overlap of {_fmt_area(area)} between {ca} and {cb}"
                self.area_issue("overlap", (ca, cb), geom, float(area), what)

    def check_gaps(self, parents: dict[str, BaseGeometry] | None) -> None:
        if parents is None:
            gaps = [(None, g) for g in _union_holes(self.geoms)]
        else:
            members: dict[str, list[int]] = defaultdict(list)
            for k, pcode in enumerate(self.siblings_key()):
                members[pcode].append(k)
            gaps = []
            for pcode, pgeom in parents.items():
                children = self.geoms[members.get(pcode, [])]
                covered = shapely.union_all(children)
                # Holes inside the children's union are gaps one by one, however small (an
                # overlay would merge or drop the micro-slivers); the rest of the parent that
                # the filled union leaves uncovered is gap too.
                filled = shapely.union_all(
                    [shapely.Polygon(p.exterior) for p in shapely.get_parts(covered)
                     if p.geom_type == "Polygon"]
                )
                inner = [h for h in _union_holes(children) if h.intersects(pgeom)]
                rest = shapely.get_parts(shapely.difference(pgeom, filled))
                gaps += [(pcode, g) for g in inner]
                gaps += [(pcode, g) for g in rest if g.geom_type == "Polygon" and g.area > 0]
        if not gaps:
            return
        gap_metric = self.project([g for _, g in gaps])
        gi, ui = shapely.STRtree(self.metric).query(
            gap_metric, predicate="dwithin", distance=_TOUCH_M
        )
        beside: dict[int, list[str]] = defaultdict(list)
        for g, u in zip(gi, ui, strict=True):
            beside[int(g)].append(self.labels[self.rows[u]])
        for k, ((pcode, geom), area) in enumerate(zip(gaps, shapely.area(gap_metric), strict=True)):
            where = f" in {pcode}" if pcode is not None else ""
            near = f" beside {', '.join(beside[k])}" if beside[k] else ""
            codes = ((pcode,) if pcode is not None else ()) + tuple(beside[k])
            what = f"gap of {_fmt_area(area)}{where} covered by no {self.level}{near}"
            self.area_issue("gap", codes, geom, float(area), what)

    def check_outside(self, parents: dict[str, BaseGeometry]) -> None:
        key = self.siblings_key()
        rows = [k for k, p in enumerate(key) if p in parents]
        if not rows:
            return
        inside = np.array([parents[key[k]] for k in rows], dtype=object)
        outside = shapely.difference(self.geoms[rows], inside)
        out_areas = shapely.area(self.project(outside))
        totals = shapely.area(self.metric[rows])
        for k, geom, out, total in zip(rows, outside, out_areas, totals, strict=True):
            share = out / total if total > 0 else 0.0
            if out < self.opt["outside_tol_m2"] and share < self.opt["outside_tol_share"]:
                continue  # numerical noise along a shared boundary
            label = self.labels[self.rows[k]]
            what = f"{_fmt_area(out)} ({share:.2%}) of {label} lies outside its parent {key[k]}"
            self.area_issue("outside_parent", (label, key[k]), geom, float(out), what)


def _holes(geoms: np.ndarray) -> np.ndarray:
    """The interior rings of polygonal ``geoms``, as polygons."""
    rings, owner = shapely.get_rings(shapely.get_parts(geoms), return_index=True)
    interior = np.ones(len(rings), dtype=bool)
    interior[np.unique(owner, return_index=True)[1]] = False  # the first ring is the exterior
    return shapely.polygons(rings[interior])


def _union_holes(geoms: np.ndarray) -> list[BaseGeometry]:
    """Holes of the union of ``geoms`` minus the holes of the single polygons (enclaves)."""
    holes = _holes(np.array([shapely.union_all(geoms)], dtype=object))
    if not len(holes):
        return []
    own = _holes(geoms)
    if len(own):
        holes = shapely.difference(holes, shapely.union_all(own))
    return [p for p in shapely.get_parts(holes) if p.geom_type == "Polygon" and p.area > 0]


def validate_level(
    units: gpd.GeoDataFrame,
    *,
    level: str,
    parent: gpd.GeoDataFrame | None = None,
    scheme: CodeScheme = DEFAULT_SCHEME,
    sliver_area_m2: float = 50.0,
    major_area_m2: float = 10_000.0,
    outside_tol_share: float = 0.001,
    outside_tol_m2: float = 1.0,
) -> ValidationReport:
    """Check one level of the territory before it is imported.

    Parameters
    ----------
    units
        The level's units, EPSG:4326 (other CRSs are converted), with columns ``code``,
        ``name`` and ``parent_code`` (optional for districts).
    level
        ``'district'``, ``'street'``, ``'community'`` or ``'grid'``.
    parent
        The parent level (``code`` and geometry, EPSG:4326). With it, the gaps are the parts
        of each given parent that its children leave uncovered, so pass only the parents
        this import should cover; without it, the gaps are the holes of the level's union.
    scheme
        Digits per level of the codes.
    sliver_area_m2
        Gaps, overlaps, outside parts and units below this area are reported as slivers.
    major_area_m2
        Gaps, overlaps and outside parts of at least this area are errors.
    outside_tol_share, outside_tol_m2
        A part outside the parent is ignored when it is below both (numerical noise).

    Returns
    -------
    ValidationReport
    """
    if level not in LEVELS:
        msg = f"unknown level {level!r}: expected one of {', '.join(LEVELS)}"
        raise GisError(msg)
    units = _as_wgs84(units, f"the {level} layer")
    options = {
        "scheme": scheme,
        "sliver_area_m2": sliver_area_m2,
        "major_area_m2": major_area_m2,
        "outside_tol_share": outside_tol_share,
        "outside_tol_m2": outside_tol_m2,
    }
    checker = _Checker(units, level, options)
    parent_geoms: dict[str, BaseGeometry] | None = None
    if parent is not None:
        parent = _as_wgs84(parent, f"the parent layer of the {level} layer")
        if "code" not in parent.columns:
            msg = f"the parent layer of the {level} layer has no 'code' column"
            raise GisError(msg)
    checker.check_fields(parent is not None)
    checker.check_codes()
    checker.check_parent_codes(None if parent is None else set(parent["code"].dropna()))
    repaired = checker.check_geometries()
    if len(checker.metric):
        if parent is not None:
            usable = parent[~(parent.geometry.isna() | parent.geometry.is_empty)]
            usable = usable.drop_duplicates("code")
            repaired_parents = [_polygonal(shapely.make_valid(g)) for g in usable.geometry]
            parent_geoms = dict(zip(usable["code"], repaired_parents, strict=True))
        checker.check_overlaps()
        if parent_geoms is None or "parent_code" in units.columns:
            checker.check_gaps(parent_geoms)
        if parent_geoms is not None:
            checker.check_outside(parent_geoms)
    logger.info("validated %d %s units: %d issues", len(units), level, len(checker.issues))
    return ValidationReport(level, checker.issues, repaired, checker.crs)
