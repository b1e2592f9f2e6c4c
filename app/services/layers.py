"""The layer catalogue at work: GeoJSON and Mapbox vector tiles from PostGIS, and the analyses.

:mod:`layers.catalog` says what each layer is; this module checks a request's parameters
against it (:func:`parse_query`), reads the rows (:func:`feature_collection`) and cuts tiles
(:func:`tile`).

Tiles are built in PostGIS with ``ST_AsMVT``/``ST_AsMVTGeom``. How they stay cheap:

- the tile's bounds are computed here and handed over as numbers: the spatial prefilter is
  ``geom && <the tile as a WGS84 box>`` on the table's own GiST index (a Web Mercator tile is a
  lon/lat rectangle), so no 3857 column or index is needed;
- points are projected to Web Mercator with the spherical formulas in SQL, not with
  ``ST_Transform`` (which costs tens of microseconds a call when applied to computed points);
- a point belongs to the tile whose cell its Mercator coordinates fall in (``floor``), so every
  point lies in exactly one tile and one cell — counts add up across tiles and zooms;
- below a layer's ``aggregate_below`` zoom (and its ``aggregate_long_below`` zoom for a period
  longer than a month), points are grouped into
  :data:`~layers.catalog.CELLS_PER_TILE`² cells per tile and each occupied cell becomes one
  point (the mean of its points) carrying ``count``: a district-wide tile of a million patrol
  points is a few thousand features, not a million;
- a date-filtered tile of a layer with a district column also names the districts near the
  tile, so the planner may answer from the (district, day) B-tree instead of the spatial index
  when the period holds few of the tile's points.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from app import jsonio
from app.access import Scope
from app.config import get_settings
from app.services import rollups
from app.services.registration import today_cn
from gis import cellkey
from gis._errors import GisError, NotEnoughDataError
from layers.catalog import (
    CELLS_PER_TILE,
    COMMON_PARAMS,
    LONG_PERIOD_DAYS,
    TILE_BUFFER,
    TILE_EXTENT,
    TILE_URL,
    Filter,
    Layer,
    Service,
    Sql,
)

log = logging.getLogger(__name__)

EARTH_RADIUS = 6378137.0
ORIGIN = math.pi * EARTH_RADIUS  # half the width of the Web Mercator world, metres
MAX_TILE_ZOOM = 24
_LEVEL_TABLES = {"district": "districts", "street": "streets", "community": "communities",
                 "grid": "grids"}
_TEXT_VALUE = re.compile(r"^[\w\-.@]{1,64}$")
_CODE_VALUE = re.compile(r"^\d{6,24}$")
_MAX_VALUES = 2000  # a whole district's grids, and then some
# How far (degrees) a row may lie outside its own district's outline and still be found by the
# district prefilter of date-filtered tiles: a point is recorded in the district whose grid
# covers it, else in its project's district (a few hundred metres off at worst).
_DISTRICT_MARGIN_DEG = 0.05


class LayerQueryError(Exception):
    """A query parameter the layer cannot take: 422 naming the parameter."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


class LayerForbidden(Exception):
    """The account may not see this layer or this area: 403."""


@dataclass
class LayerQuery:
    """A request's parameters, checked: bbox, period, and filter values as the SQL wants them."""

    bbox: tuple[float, float, float, float] | None = None
    since: date | None = None
    until: date | None = None
    values: dict[str, list[Any]] = field(default_factory=dict)
    raw: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"bbox": list(self.bbox) if self.bbox else None,
                "since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None,
                **{k: v for k, v in self.raw.items() if k not in COMMON_PARAMS}}


# --- parameters ------------------------------------------------------------------------------


def parse_bbox(value: str) -> tuple[float, float, float, float]:
    """``minlon,minlat,maxlon,maxlat`` in WGS84, min < max, inside the lon/lat ranges."""
    try:
        parts = [float(v) for v in value.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 4 or not all(math.isfinite(v) for v in parts):
        raise LayerQueryError("bbox", f"expected minlon,minlat,maxlon,maxlat, got {value!r}")
    x0, y0, x1, y1 = parts
    if not (-180 <= x0 < x1 <= 180 and -90 <= y0 < y1 <= 90):
        raise LayerQueryError(
            "bbox", f"{value!r}: need -180 <= minlon < maxlon <= 180 and "
                    "-90 <= minlat < maxlat <= 90 (WGS84 degrees, lon first)")
    return x0, y0, x1, y1


def _date(name: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise LayerQueryError(name, f"expected a day as YYYY-MM-DD, got {value!r}") from None


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _check_codes(session: Session, f: Filter, codes: list[str]) -> None:
    bad = [c for c in codes if not _CODE_VALUE.match(c)]
    if bad:
        raise LayerQueryError(f.name, f"{bad[0]!r} is not a territory code (digits only)")
    table = _LEVEL_TABLES[f.level or ""]
    found = set(session.scalars(
        text(f"SELECT code FROM {table} WHERE code = ANY(:c) AND valid_to IS NULL"),
        {"c": codes}))
    missing = [c for c in codes if c not in found]
    if missing:
        raise LayerQueryError(f.name, f"no current {f.level} {missing[0]}")


def _filter_values(session: Session, f: Filter, value: str) -> tuple[list[Any], str]:
    items = _split(value)
    if not items:
        raise LayerQueryError(f.name, "empty value")
    if len(items) > 1 and not f.many:
        raise LayerQueryError(f.name, "takes one value")
    if len(items) > _MAX_VALUES:
        raise LayerQueryError(f.name, f"at most {_MAX_VALUES} values")
    if f.kind == "enum":
        allowed = f.allowed()
        out: list[Any] = []
        for item in items:
            if item in f.aliases:
                out.extend(f.aliases[item])
            elif item in allowed:
                out.append(item)
            else:
                names = [*allowed, *f.aliases]
                raise LayerQueryError(f.name, f"unknown value {item!r}; one of {', '.join(names)}")
        out = list(dict.fromkeys(out))
        return [f.sql_values.get(v, v) for v in out], ",".join(items)
    if f.kind == "code":
        _check_codes(session, f, items)
        return items, ",".join(items)
    if f.kind == "text":
        bad = [i for i in items if not _TEXT_VALUE.match(i)]
        if bad:
            raise LayerQueryError(f.name, f"{bad[0]!r}: letters, digits and -_.@ only")
        return items, ",".join(items)
    try:
        number = float(items[0])
    except ValueError:
        raise LayerQueryError(f.name, f"expected a number, got {items[0]!r}") from None
    low = f.minimum if f.minimum is not None else -math.inf
    high = f.maximum if f.maximum is not None else math.inf
    if not (math.isfinite(number) and low <= number <= high):
        raise LayerQueryError(f.name, f"must be a number from {low:g} to {high:g}")
    return [number], items[0]


def parse_query(session: Session, layer: Layer, params: Mapping[str, Any], *,
                tiles: bool = False, today: date | None = None) -> LayerQuery:
    """Check every parameter against the layer: unknown names and values are errors."""
    q = LayerQuery()
    getlist = getattr(params, "getlist", None)
    accepted = {f.name for f in layer.filters} | (set() if tiles else {"bbox"}) | (
        {"since", "until"} if layer.has_time else set())
    for name in params:
        if tiles and name == "bbox":
            raise LayerQueryError("bbox", "tiles are cut by z/x/y; leave bbox out")
        if name not in accepted:
            raise LayerQueryError(
                name, f"unknown parameter for layer {layer.name}; it takes "
                      f"{', '.join(sorted(accepted)) or 'none'}")
        values = getlist(name) if getlist else [params[name]]
        value = ",".join(str(v) for v in values)
        q.raw[name] = value
        if name == "bbox":
            q.bbox = parse_bbox(value)
        elif name in ("since", "until"):
            setattr(q, name, _date(name, value))
        else:
            f = layer.filter(name)
            assert f is not None
            q.values[name], q.raw[name] = _filter_values(session, f, value)
    for f in layer.filters:
        if f.default is not None and f.name not in q.values:
            q.values[f.name], _ = _filter_values(session, f, f.default)
    if layer.default_days and q.since is None:
        q.until = q.until or today or today_cn()
        q.since = q.until - timedelta(days=layer.default_days - 1)
    if q.since and q.until and q.since > q.until:
        raise LayerQueryError("until", f"{q.until} is before since {q.since}")
    return q


# --- SQL layers: shared pieces ---------------------------------------------------------------


def tables_present(session: Session, names: tuple[str, ...]) -> bool:
    return all(session.scalar(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": n})
               for n in names)


def _conditions(layer: Layer, q: LayerQuery, scope: Scope | None) -> tuple[list[str], dict]:
    src = layer.source
    assert isinstance(src, Sql)
    conds, params = [src.where], {}
    if src.time and q.since:
        conds.append(f"{src.time} >= :since")
        params["since"] = q.since
    if src.time and q.until:
        conds.append(f"{src.time} <= :until")
        params["until"] = q.until
    for name, values in q.values.items():
        f = layer.filter(name)
        assert f is not None and f.column is not None
        conds.append(f"{f.column} = ANY(:f_{name})")
        params[f"f_{name}"] = values
    if src.scope is not None and scope is not None:
        spec = dict(src.scope)
        alias = spec.pop("alias", "t")
        predicate, scope_params = scope.sql(alias, key="scope", **spec)
        conds.append(predicate)
        params.update(scope_params)
    return conds, params


@functools.lru_cache(maxsize=64)
def _link_names(template: str) -> tuple[str, ...]:
    return tuple(re.findall(r"{(\w+)}", template))


def _link(template: str | None, props: dict[str, Any]) -> str | None:
    if not template:
        return None
    names = _link_names(template)
    if any(props.get(n) is None for n in names):
        return None
    return template.format(**{n: props[n] for n in names})


def _too_many(layer: Layer, cap: int) -> LayerQueryError:
    tiles = TILE_URL.replace("{name}", layer.name) if layer.tiles else None
    hint = f", or load the vector tiles {tiles} instead" if tiles else ""
    return LayerQueryError(
        "bbox", f"more than {cap:,} features match (the GeoJSON limit of layer {layer.name}); "
                f"narrow bbox, since/until or the filters{hint}")


def empty_collection(layer: Layer, q: LayerQuery, **extra: Any) -> dict[str, Any]:
    return {"type": "FeatureCollection", "layer": layer.name, "count": 0,
            "filters": q.describe(), "features": [], **extra}


# --- GeoJSON -----------------------------------------------------------------------------------


def feature_collection(session: Session, layer: Layer, q: LayerQuery, *,
                       scope: Scope | None = None) -> dict[str, Any]:
    """The layer's features as an RFC 7946 FeatureCollection (coordinates to 6 decimals)."""
    if isinstance(layer.source, Service):
        return _service_collection(session, layer, q, scope)
    return json.loads(feature_collection_json(session, layer, q, scope=scope))


def feature_collection_json(session: Session, layer: Layer, q: LayerQuery, *,
                            scope: Scope | None = None) -> bytes:
    """:func:`feature_collection` of a SQL layer as UTF-8 JSON text, written by PostgreSQL.

    Every feature is built by ``json_build_object`` in the statement and the features are
    joined there too: the rows never become Python objects (a district's thousand grid
    outlines or four thousand open hazards cost a third of the time they would).
    """
    src = layer.source
    assert isinstance(src, Sql)
    if src.requires and not tables_present(session, src.requires):
        return jsonio.dumps(empty_collection(layer, q,
                                             note="the tables of this layer do not exist yet"))
    conds, params = _conditions(layer, q, scope)
    if q.bbox:
        conds.append(f"{src.index_geom} && ST_MakeEnvelope(:bx0, :by0, :bx1, :by1, 4326)")
        conds.append(f"ST_Intersects({src.geom}, ST_MakeEnvelope(:bx0, :by0, :bx1, :by1, 4326))")
        params.update(dict(zip(("bx0", "by0", "bx1", "by1"), q.bbox, strict=True)))
    columns = ", ".join(f'{expr} AS "{name}"' for name, expr in src.columns.items())
    props = [f"'{name}', r.\"{name}\"" for name in src.columns]
    props.append(f"'link', {_link_sql(layer.link)}")
    if layer.public_link:
        props.append(f"'public_link', {_link_sql(layer.public_link)}")
    feature = ["'type', 'Feature'", *(["'id', r.\"id\""] if src.id else []),
               "'geometry', r.__geojson::json",
               f"'properties', json_build_object({', '.join(props)})"]
    sql = (f"SELECT count(*), coalesce(string_agg(json_build_object({', '.join(feature)})::text, "
           f"',' ORDER BY r.__ord), '') FROM ("
           f"SELECT ST_AsGeoJSON({src.geom}, 6) AS __geojson, {columns}, "
           f"row_number() OVER (ORDER BY {src.order}) AS __ord FROM {src.from_} "
           f"WHERE {' AND '.join(conds)} ORDER BY {src.order} LIMIT :cap) r")
    params["cap"] = layer.geojson_cap + 1
    # The cost PostGIS declares for ST_Intersects makes the planner compile a statement of a few
    # milliseconds (JIT: 8 ms and more), as for the tiles.
    session.execute(text("SET LOCAL jit = off"))
    count, features = session.execute(text(sql), params).one()
    if count > layer.geojson_cap:
        raise _too_many(layer, layer.geojson_cap)
    head = jsonio.dumps({"type": "FeatureCollection", "layer": layer.name, "count": count,
                         "filters": q.describe()})
    return head[:-1] + b',"features":[' + features.encode() + b"]}"


def _link_sql(template: str | None) -> str:
    """:func:`_link` in SQL over the row ``r``: NULL when a field it names is NULL."""
    if not template:
        return "NULL::text"
    parts = re.split(r"{(\w+)}", template)
    return "(" + " || ".join(
        f'(r."{part}")::text' if i % 2 else "'" + part.replace("'", "''") + "'"
        for i, part in enumerate(parts) if part) + ")"


# --- tiles -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TileBounds:
    """A tile in Web Mercator metres and as the WGS84 box it covers."""

    z: int
    x: int
    y: int
    mx0: float
    my0: float
    mx1: float
    my1: float

    @property
    def size(self) -> float:
        return self.mx1 - self.mx0

    def lonlat(self, margin: float = 0.0) -> tuple[float, float, float, float]:
        """The WGS84 box of the tile grown by ``margin`` (a share of its width) on all sides."""
        pad = margin * self.size

        def lon(mx: float) -> float:
            return max(-180.0, min(180.0, math.degrees(mx / EARTH_RADIUS)))

        def lat(my: float) -> float:
            return math.degrees(math.atan(math.sinh(max(-ORIGIN, min(ORIGIN, my)) / EARTH_RADIUS)))

        return (lon(self.mx0 - pad), lat(self.my0 - pad), lon(self.mx1 + pad),
                lat(self.my1 + pad))


def tile_bounds(z: int, x: int, y: int) -> TileBounds:
    """The bounds of XYZ tile z/x/y (y counted from the north), as ``ST_TileEnvelope``."""
    size = 2 * ORIGIN / (1 << z)
    mx0 = -ORIGIN + x * size
    my1 = ORIGIN - y * size
    return TileBounds(z, x, y, mx0, my1 - size, mx0 + size, my1)


def valid_tile(z: int, x: int, y: int) -> bool:
    return 0 <= z <= MAX_TILE_ZOOM and 0 <= x < (1 << z) and 0 <= y < (1 << z)


# Web Mercator of a WGS84 point, as SQL (the spherical formulas EPSG:3857 is defined by).
_MERCATOR_X = f"({EARTH_RADIUS!r} * radians({{lon}}))"
_MERCATOR_Y = f"({EARTH_RADIUS!r} * ln(tan(pi() / 4 + radians({{lat}}) / 2)))"
# The XYZ cell (a tile of zoom L) a WGS84 point falls in, with :cells = 2^L: the slippy-map
# formulas, floored, so every point lies in exactly one cell of each zoom.
_CELL_X = "floor((__lon + 180.0) / 360.0 * :cells)::bigint"
_CELL_Y = "floor((1.0 - ln(tan(pi() / 4 + radians(__lat) / 2)) / pi()) / 2.0 * :cells)::bigint"


def long_period(layer: Layer, q: LayerQuery, today: date | None = None) -> bool:
    """Whether the query's period is longer than LONG_PERIOD_DAYS (or has no start)."""
    if not layer.has_time:
        return False
    if q.since is None:
        return True
    return ((q.until or today or today_cn()) - q.since).days + 1 > LONG_PERIOD_DAYS


def tile(session: Session, layer: Layer, z: int, x: int, y: int, q: LayerQuery, *,
         scope: Scope | None = None, use_rollup: bool = True) -> bytes:
    """Tile z/x/y of the layer as a Mapbox vector tile; ``b""`` when nothing is in it.

    An aggregated tile of a layer with a :class:`~layers.catalog.Rollup` is read from its
    cells when they answer the query exactly (:func:`app.services.rollups.answers`, and the
    period is made of the buckets kept at the tile's level); else, and with
    ``use_rollup=False`` (the benchmark's peer, the tests' reference), from the points.
    """
    src = layer.source
    assert isinstance(src, Sql)
    if not layer.min_zoom <= z <= layer.max_zoom:
        return b""
    if src.requires and not tables_present(session, src.requires):
        return b""
    bounds = tile_bounds(z, x, y)
    shift = CELLS_PER_TILE.bit_length() - 1
    aggregated = layer.aggregated(z, long_period(layer, q))
    if (use_rollup and aggregated and src.rollup is not None
            and z + shift in src.rollup.levels
            and rollups.answers(layer, q.values, q.since, q.until, scope)):
        data = _rollup_tile(session, layer, bounds, q, scope)
        if data is not None:
            return data
    conds, params = _conditions(layer, q, scope)
    params.update(layer=layer.name, extent=TILE_EXTENT, mx0=bounds.mx0, my0=bounds.my0,
                  mx1=bounds.mx1, my1=bounds.my1)
    if layer.geometry == "point":
        keyed = _point_prefilter(session, layer, bounds, q, conds, params, aggregated=aggregated)
        sql = _point_tile_sql(layer, conds, aggregated, keyed=keyed)
    else:
        near, _, _ = _period_index(session, layer, bounds, q)
        if near:
            conds.append(f"{src.district} = ANY(:near_districts)")
            params["near_districts"] = near
        lon0, lat0, lon1, lat1 = bounds.lonlat(TILE_BUFFER / TILE_EXTENT)
        conds.append(f"{src.index_geom} && ST_MakeEnvelope(:lon0, :lat0, :lon1, :lat1, 4326)")
        params.update(lon0=lon0, lat0=lat0, lon1=lon1, lat1=lat1, buffer=TILE_BUFFER)
        sql = _shape_tile_sql(layer, conds)
    return _run_tile(session, sql, params)


def _point_prefilter(session: Session, layer: Layer, bounds: TileBounds, q: LayerQuery,
                     conds: list[str], params: dict[str, Any], *, aggregated: bool,
                     days: list[date] | None = None) -> bool:
    """Add to ``conds``/``params`` what finds the points of the tile: the districts near it;
    each day of the period with the tile's range of cell keys (a layer with ``cell_key``), or
    else its box (unless the period alone is the better read, see :func:`_period_index`); and
    its cells (``:cells``, ``:cx0…:cy1``: one per tile, or the tile's CELLS_PER_TILE² when
    ``aggregated``). ``days``: the days read, when not the whole period of ``q``. True when
    the read is keyed: then ``:key_shift`` turns a point's key into its cell's (``__key``, see
    :func:`_points_in_cells_sql`), and the key range alone is the exact test of the tile."""
    src = layer.source
    assert isinstance(src, Sql)
    near, period_only, held = _period_index(session, layer, bounds, q,
                                            days=len(days) if days is not None else None)
    if near:
        conds.append(f"{src.district} = ANY(:near_districts)")
        params["near_districts"] = near
    lon0, lat0, lon1, lat1 = bounds.lonlat()
    eps = 1e-9  # the exact test is on the cell; the box only prefilters
    params.update(lon0=lon0 - eps, lat0=lat0 - eps, lon1=lon1 + eps, lat1=lat1 + eps)
    keyed = _keyed_days(src, q, held, days) if near else None
    if keyed is not None:
        # One short range of the (district, day, key) B-tree per day: the tile's points only.
        conds.append(f"{src.time} = ANY(:key_days)")
        conds.append(f"{src.cell_key} BETWEEN :point_key0 AND :point_key1")
        key0, key1 = cellkey.tile_key_range(bounds.z, bounds.x, bounds.y)
        params.update(key_days=keyed, point_key0=key0, point_key1=key1)
    elif not period_only:
        conds.append(f"{src.index_geom} && ST_MakeEnvelope(:lon0, :lat0, :lon1, :lat1, 4326)")
    shift = CELLS_PER_TILE.bit_length() - 1 if aggregated else 0
    x, y, z = bounds.x, bounds.y, bounds.z
    params.update(cells=float(1 << (z + shift)), cx0=x << shift, cx1=((x + 1) << shift) - 1,
                  cy0=y << shift, cy1=((y + 1) << shift) - 1,
                  key_shift=2 * (cellkey.KEY_LEVEL - z - shift))
    return keyed is not None


def _run_tile(session: Session, sql: str, params: dict[str, Any]) -> bytes:
    # A tile is one statement of a few milliseconds among many: compiling it (JIT) or starting
    # parallel workers costs more than it saves, and its cells are grouped in memory by hash.
    for setting in ("jit = off", "max_parallel_workers_per_gather = 0", "enable_sort = off",
                    "work_mem = '32MB'"):
        session.execute(text(f"SET LOCAL {setting}"))
    data = session.scalar(text(sql), params)
    return bytes(data) if data else b""


def _rollup_tile(session: Session, layer: Layer, bounds: TileBounds, q: LayerQuery,
                 scope: Scope | None) -> bytes | None:
    """An aggregated tile from the layer's rollup (see :mod:`app.services.rollups`); None when
    the period is not made of the buckets kept at the tile's level (the points answer)."""
    src = layer.source
    assert isinstance(src, Sql) and src.rollup is not None
    r = src.rollup
    shift = CELLS_PER_TILE.bit_length() - 1
    level = bounds.z + shift
    x0, y0 = bounds.x << shift, bounds.y << shift
    key0 = rollups.morton(x0, y0)
    key1 = rollups.morton(x0 + CELLS_PER_TILE - 1, y0 + CELLS_PER_TILE - 1)
    with_time = r.time is not None
    points, extra = None, {}
    if with_time:
        first, last = rollups.days_with_data(session, layer)
        chosen = rollups.buckets(q.since, q.until, first, last) if first else []
        if not chosen:
            return b""
        kept = [b for b in chosen if b[0] in r.spans_at(level)]
        if not kept:
            return None
        extra = {"spans": [b[0] for b in kept], "starts": [b[1] for b in kept]}
        edges = rollups.missing_days(chosen, level, r)
        if edges:
            # Days the level keeps no bucket for (the ends of a period that is not whole
            # months, at the levels that keep months only): counted from their points into
            # the same cells and added to the stored ones.
            conds, point_params = _conditions(layer, replace(q, since=None, until=None), scope)
            conds.append("(" + " OR ".join(
                f"{src.time} BETWEEN :edge{i}_0 AND :edge{i}_1" for i in range(len(edges)))
                + ")")
            for i, (d0, d1) in enumerate(edges):
                point_params.update({f"edge{i}_0": d0, f"edge{i}_1": d1})
            keyed = _point_prefilter(session, layer, bounds,
                                     replace(q, since=edges[0][0], until=edges[-1][1]), conds,
                                     point_params, aggregated=True,
                                     days=[d0 + timedelta(days=i) for d0, d1 in edges
                                           for i in range((d1 - d0).days + 1)])
            rows = _points_in_cells_sql(layer, conds, [f"t.{d} AS {d}" for d in r.dims],
                                        keyed=keyed)
            points = rollups.points_sql(layer, rows, keyed=keyed)
            extra.update(point_params)
    sql, params = rollups.tile_sql(layer, level, key0, key1, q.values, scope,
                                   with_time=with_time, points=points)
    params.update(extra, layer=layer.name, extent=TILE_EXTENT, mx0=bounds.mx0, my0=bounds.my0,
                  mx1=bounds.mx1, my1=bounds.my1)
    return _run_tile(session, sql, params)


# The most days a tile asks the (district, day, key) index for one by one (one descent each).
MAX_KEYED_DAYS = 400


def _keyed_days(src: Sql, q: LayerQuery, held: tuple[date, date] | None,
                days: list[date] | None) -> list[date] | None:
    """The days to read through the cell-key index: ``days``, or those of the period that hold
    rows in the districts (``held``: their first and last day); None where the layer has no
    key, the period is open or longer than MAX_KEYED_DAYS."""
    if not src.cell_key or held is None or (days is None and q.since is None):
        return None
    if days is None:
        first = max(q.since, held[0])
        last = min(q.until, held[1]) if q.until else held[1]
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    if len(days) > MAX_KEYED_DAYS:
        return None
    return days or [held[0] - timedelta(days=1)]  # no day of the period holds a row


def _period_index(session: Session, layer: Layer, bounds: TileBounds,
                  q: LayerQuery, *, days: int | None = None,
                  ) -> tuple[list[str], bool, tuple[date, date] | None]:
    """The districts near the tile, whether to read by period alone, and the first and last
    day holding rows in those districts (None: none).

    For a layer with a district column and a date filter, naming the districts lets the planner
    read the rows of the period from the (district, day) B-tree, alone or ANDed with the
    spatial index. Left to choose, it ANDs both bitmaps even for a district-wide tile, whose
    spatial half then costs as much as the whole tile; so when the period is a smaller share of
    the district's history than the tile is of the district's extent (a week against a
    district-wide tile), the spatial test is left to the cells and only the period index is
    read. ``([], False, None)``: no district prefilter (the spatial index, as for any layer).
    """
    src = layer.source
    assert isinstance(src, Sql)
    if not (src.district and src.time and q.since):
        return [], False, None
    lon0, lat0, lon1, lat1 = bounds.lonlat()
    rows = session.execute(text(
        """SELECT code, ST_XMin(geom) AS x0, ST_YMin(geom) AS y0, ST_XMax(geom) AS x1,
                  ST_YMax(geom) AS y1 FROM districts
           WHERE valid_to IS NULL
             AND ST_Expand(geom, :m) && ST_MakeEnvelope(:a, :b, :c, :d, 4326)"""),
        {"m": _DISTRICT_MARGIN_DEG, "a": lon0, "b": lat0, "c": lon1, "d": lat1}).all()
    if not rows:
        return [], False, None
    codes = [r.code for r in rows]
    x0, y0 = min(r.x0 for r in rows), min(r.y0 for r in rows)
    x1, y1 = max(r.x1 for r in rows), max(r.y1 for r in rows)
    overlap = (max(0.0, min(x1, lon1) - max(x0, lon0)) * max(0.0, min(y1, lat1) - max(y0, lat0)))
    tile_share = overlap / max((x1 - x0) * (y1 - y0), 1e-12)
    # One district at a time: min() over "= ANY" would read the whole index.
    first, last = session.execute(text(
        f"""SELECT min(s.first), max(s.last) FROM unnest(CAST(:d AS text[])) AS d(code)
            CROSS JOIN LATERAL (SELECT min({src.time}) AS first, max({src.time}) AS last
                                FROM {src.from_} WHERE {src.district} = d.code) s"""),
        {"d": codes}).one()
    if first is None:
        return codes, False, None
    # The period's share of the rows: its days among the days of the district's history (up
    # to today, whatever the period's end: the rows after it are in the spatial index too).
    today = today_cn()
    history = max((max(today, q.until or today) - min(first, q.since)).days + 1, 1)
    period_share = (days or ((q.until or today) - q.since).days + 1) / history
    return codes, period_share < tile_share, (first, last)


def _point_tile_sql(layer: Layer, conds: list[str], aggregated: bool, *,
                    keyed: bool = False) -> str:
    """Points of the tile, or one point per occupied cell with ``count`` (``aggregated``);
    ``keyed``: ``conds`` read the tile's keys (:func:`_point_prefilter`), cells are keys.

    The subqueries with ``OFFSET 0`` are evaluated once each, in order: the geometry, then its
    coordinates, then its cell (inlined, the planner would repeat the expressions wherever
    they are used: the filter, the grouping, the output).
    """
    src = layer.source
    assert isinstance(src, Sql)
    envelope = "ST_MakeEnvelope(:mx0, :my0, :mx1, :my1, 3857)"
    if aggregated:
        carried = [f'({expr}) AS "__s_{name}"' for name, expr in src.cluster_sums.items()]
    else:
        carried = [f'{expr} AS "{name}"' for name, expr in src.columns.items()]
        carried += [f"{src.id} AS __fid"] if src.id else []
    cells = _points_in_cells_sql(layer, conds, carried, keyed=keyed)
    if aggregated:
        sums = "".join(f', (count(*) FILTER (WHERE "__s_{name}"))::int AS "{name}"'
                       for name in src.cluster_sums)
        point = (f"ST_MakePoint({_MERCATOR_X.format(lon='avg(__lon)')}, "
                 f"{_MERCATOR_Y.format(lat='avg(__lat)')})")
        select = (f"SELECT count(*)::int AS count{sums}, ST_AsMVTGeom(ST_SetSRID({point}, 3857), "
                  f"{envelope}, :extent, 0, false) AS geom FROM ({cells}) k "
                  + ("GROUP BY __key" if keyed else "GROUP BY __cx, __cy"))
        mvt = "ST_AsMVT(q, :layer, :extent, 'geom')"
    else:
        names = ", ".join([f'"{name}"' for name in src.columns] + (["__fid"] if src.id else []))
        point = (f"ST_MakePoint({_MERCATOR_X.format(lon='__lon')}, "
                 f"{_MERCATOR_Y.format(lat='__lat')})")
        select = (f"SELECT {names}, ST_AsMVTGeom(ST_SetSRID({point}, 3857), {envelope}, "
                  f":extent, 0, false) AS geom FROM ({cells}) k")
        mvt = "ST_AsMVT(q, :layer, :extent, 'geom'" + (", '__fid')" if src.id else ")")
    return f"SELECT {mvt} FROM ({select}) q"


def _points_in_cells_sql(layer: Layer, conds: list[str], carried: list[str], *,
                         keyed: bool = False) -> str:
    """The rows matching ``conds`` that lie in the cells ``:cx0…:cy1`` of ``2^:cells``, with
    the ``carried`` columns, ``__lon``, ``__lat`` and their cell ``__cx``, ``__cy``; or, when
    ``keyed`` (``conds`` hold the tile's key range, exact), their cell's key ``__key``: the
    point's zoom-24 key without its last ``:key_shift`` bits (no formula per row)."""
    src = layer.source
    assert isinstance(src, Sql)
    where = " AND ".join(conds)
    if keyed:
        assert src.cell_key and src.lonlat
        lon, lat = src.lonlat
        columns = ", ".join([*carried, f"{lon} AS __lon", f"{lat} AS __lat",
                             f"{src.cell_key} >> :key_shift AS __key"])
        return f"SELECT {columns} FROM {src.from_} WHERE {where}"
    # The box again on the coordinates (a comparison, where the rows were read by period
    # alone), so that the cell formulas run only for the rows near the tile.
    def box(lon: str, lat: str) -> str:
        return f"{lon} BETWEEN :lon0 AND :lon1 AND {lat} BETWEEN :lat0 AND :lat1"

    if src.lonlat:  # stored: an index carrying them answers without reading the table's rows
        lon, lat = src.lonlat
        columns = ", ".join([*carried, f"{lon} AS __lon", f"{lat} AS __lat"])
        near = f"SELECT {columns} FROM {src.from_} WHERE {where} AND {box(lon, lat)} OFFSET 0"
    else:
        rows = (f"SELECT {', '.join([*carried, f'{src.geom} AS __g'])} FROM {src.from_} "
                f"WHERE {where} OFFSET 0")
        coords = f"SELECT *, ST_X(__g) AS __lon, ST_Y(__g) AS __lat FROM ({rows}) r OFFSET 0"
        near = f"SELECT * FROM ({coords}) n WHERE {box('__lon', '__lat')} OFFSET 0"
    cells = f"SELECT *, {_CELL_X} AS __cx, {_CELL_Y} AS __cy FROM ({near}) c OFFSET 0"
    return (f"SELECT * FROM ({cells}) k "
            "WHERE __cx BETWEEN :cx0 AND :cx1 AND __cy BETWEEN :cy0 AND :cy1")


def _shape_tile_sql(layer: Layer, conds: list[str]) -> str:
    src = layer.source
    assert isinstance(src, Sql)
    cols = ", ".join(f'{expr} AS "{name}"' for name, expr in src.columns.items())
    fid = f", {src.id} AS __fid" if src.id else ""
    mvt = "ST_AsMVT(q, :layer, :extent, 'geom'" + (", '__fid')" if src.id else ")")
    return f"""
        SELECT {mvt} FROM (
            SELECT {cols}{fid}, ST_AsMVTGeom(ST_Transform({src.geom}, 3857),
                   ST_MakeEnvelope(:mx0, :my0, :mx1, :my1, 3857), :extent, :buffer, true) AS geom
            FROM {src.from_}
            WHERE {' AND '.join(conds)}
              AND {src.index_geom} && ST_MakeEnvelope(:lon0, :lat0, :lon1, :lat1, 4326)) q
        WHERE q.geom IS NOT NULL"""


# --- analysis layers ---------------------------------------------------------------------------


def _area(scope: Scope | None, q: LayerQuery) -> dict[str, str | None]:
    """District, street and community of an analysis, narrowed to the account's own area: the
    statistics of a street account never see events from outside its street."""
    district = (q.values.get("district") or [None])[0]
    street = (q.values.get("street") or [None])[0]
    community = (q.values.get("community") or [None])[0]
    if scope is not None and not scope.unrestricted:
        if scope.estate_ids is not None or scope.level not in ("district", "street",
                                                               "community"):
            raise LayerForbidden("scope: analysis layers need a community, street or district "
                                 "account")
        if district and scope.district != district:
            raise LayerForbidden(f"district: {district} is outside your area")
        district = scope.district
        for name, code in (("street", street), ("community", community)):
            if code and not scope.covers_unit(code):
                raise LayerForbidden(f"{name}: {code} is outside your area")
        if scope.level == "street" and not street and not community:
            street = scope.code
        elif scope.level == "community" and not community:
            community = scope.code
    return {"district": district or get_settings().demo_district, "street": street,
            "community": community}


def _one(q: LayerQuery, name: str) -> Any:
    values = q.values.get(name)
    return values[0] if values else None


def _service_collection(session: Session, layer: Layer, q: LayerQuery,
                        scope: Scope | None) -> dict[str, Any]:
    from app.services import coverage, hotspots

    src = layer.source
    assert isinstance(src, Service)
    extra: dict[str, Any] = {}
    try:
        if src.name == "uncovered":
            district = _one(q, "district") or (scope.district if scope else None)
            fc = coverage.uncovered_areas(session, district=district or
                                          get_settings().demo_district,
                                          min_area_m2=float(_one(q, "min_area_m2")))
        elif src.name == "blind_spots":
            district = _area(scope, q)["district"]
            on = q.until or today_cn()
            since = q.since or on - timedelta(days=29)
            window = (on - since).days + 1
            if not 1 <= window <= 366:
                raise LayerQueryError("since", "the patrol window is 1 to 366 days")
            items = coverage.blind_spots(session, district=district, on=on, window_days=window,
                                         scope=scope)
            fc = coverage.blind_spots_geojson(items, only_blind=True)
            for f in fc["features"]:
                f["properties"]["blind_class"] = _blind_class(f["properties"])
            extra = {"on": on.isoformat(), "window_days": window}
        else:
            area = _area(scope, q)
            filters = hotspots.make_filters(
                session, district=area["district"], street=area["street"],
                community=area["community"], events=_one(q, "events") or "hazards",
                hazard_type=q.values.get("hazard_type"), severity=q.values.get("severity"),
                kind=_one(q, "kind"), category=_one(q, "category"))
            if src.name == "density":
                fc = hotspots.density(session, filters=filters, start=q.since, end=q.until,
                                      cell_m=float(_one(q, "cell_m")),
                                      bandwidth_m=_one(q, "bandwidth_m"), output="contours")
                _bands(fc)
            else:
                result = hotspots.hotspot_map(session, filters=filters, start=q.since,
                                              end=q.until,
                                              measure=_one(q, "measure") or "per_project")
                fc = hotspots.feature_collection(result)
    except NotEnoughDataError as exc:
        return empty_collection(layer, q, note=str(exc))
    except GisError as exc:  # a value the analysis refuses: name the parameter of this API
        field, _, why = str(exc).partition(":")
        name = {"period": "since", "start": "since", "end": "until"}.get(field.strip(),
                                                                          field.strip())
        raise LayerQueryError(name or "input", why.strip() or str(exc)) from None
    features = fc.pop("features")
    if q.bbox:
        features = _in_bbox(features, q.bbox)
    if len(features) > layer.geojson_cap:
        raise _too_many(layer, layer.geojson_cap)
    for f in features:
        f["properties"]["link"] = _link(layer.link, f["properties"])
    meta = {k: v for k, v in fc.items() if k != "type"}
    return {"type": "FeatureCollection", "layer": layer.name, "count": len(features),
            "filters": q.describe(), **extra, "meta": meta, "features": features}


def _blind_class(props: dict[str, Any]) -> str:
    overdue = props.get("overdue_sites") or 0
    if overdue >= 4:
        return "overdue_many"
    if overdue >= 2:
        return "overdue_few"
    if overdue == 1:
        return "overdue_one"
    return "no_patrols"


def _bands(fc: dict[str, Any]) -> None:
    """Name the three contour levels (25, 50, 75 % of the peak) low, medium, high."""
    levels = sorted({f["properties"]["level"] for f in fc["features"]})
    names = dict(zip(levels, ("low", "medium", "high")[-len(levels):] if levels else (),
                     strict=True))
    for f in fc["features"]:
        f["properties"]["band"] = names[f["properties"]["level"]]


def _in_bbox(features: list[dict[str, Any]], bbox: tuple[float, float, float, float]) -> list:
    box = shapely.box(*bbox)

    def shape(g: Any) -> Any:
        return shapely.from_geojson(g.text if isinstance(g, jsonio.RawJSON) else json.dumps(g))

    geoms = [shape(f["geometry"]) if f["geometry"] else None for f in features]
    return [f for f, g in zip(features, geoms, strict=True)
            if g is not None and g.intersects(box)]
