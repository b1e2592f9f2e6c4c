"""Tile cells counted ahead of time: the rollups of the point layers that grow with the city.

A district-wide tile of a year of patrols aggregates a million points into a few hundred cells;
reading the points takes seconds however they are indexed. A :class:`~layers.catalog.Rollup`
keeps those cells instead — per stored cell zoom, per combination of its ``dims`` columns and,
for a dated layer, per **day**, per **ten-day period** (旬: days 1–10, 11–20, 21–end), per
**month** and per **quarter** — as a count and the sums of longitude and latitude, so a tile
reads

* the quarters wholly inside the period, then the months, then the ten-day periods, then the
  days left at its edges (a year: three or four quarters, a few months, a few 旬 and at most 18
  days per cell, whatever the number of points); a layer without ``time`` keeps one bucket per
  cell (``'a'``);
* only the tile's cells: a cell's key is the Morton (Z-order) code of its column and row, so
  every cell of a tile lies in one contiguous key range of the ``(level, span, start, key)``
  B-tree.

The tile is the same as the one cut from the points: the same cells (the same ``floor``
formulas, with ``2^level`` cells around the world), the same counts and sums of the cluster
flags, and the centroid from the sums (equal to the points' mean up to rounding in the last
bits, far below a tile unit).

Statement-level triggers with transition tables keep a rollup in step with its table: an
insert adds its rows' cells (one ``INSERT … ON CONFLICT`` per statement, grouped and sorted
so that concurrent writers lock cells in one order), a delete subtracts them, an update does
both, a truncate empties it. A cell brought to zero by a delete or an update is deleted in the
same statement, so the table holds occupied cells only.

The fine levels of a rollup with ``months_from`` (patrols: cells of zoom 19–22, for the tiles
of zoom 13–16 of periods longer than a month) keep months and quarters only: days there would
multiply the rows by the days a site is visited. A period made of whole months (the pages'
"last N months" are: the current month with the N − 1 before it) is read from them; another
period takes its whole months from them and counts the days at its ends from the points.
:func:`install_sql` gives the DDL (used by migration 0006 and by a later migration that changes
a rollup: drop, then install again; it backfills from the table).
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.access import Scope
from gis import cellkey
from layers.catalog import Layer, Rollup, Sql

SPAN_DAY, SPAN_DEKAD, SPAN_MONTH, SPAN_QUARTER, SPAN_ALL = "d", "x", "m", "q", "a"
ALL_START = date(1970, 1, 1)  # the start of the one bucket of a layer without time
# Scope levels whose prefixes the rollups' code columns (street, district) answer exactly.
SCOPE_LEVELS = (None, "district", "street")


MAX_LEVEL = cellkey.KEY_LEVEL  # cell columns and rows of up to 24 bits
_morton_sql = cellkey.morton_sql
morton = cellkey.morton


def _parts(layer: Layer) -> tuple[Sql, Rollup]:
    src = layer.source
    assert isinstance(src, Sql) and src.rollup is not None
    return src, src.rollup


def _table(src: Sql) -> str:
    return src.from_.split()[0]


# --- buckets -----------------------------------------------------------------------------------


def _month_end(d: date) -> date:
    nxt = date(d.year + d.month // 12, d.month % 12 + 1, 1)
    return nxt - timedelta(days=1)


def _quarter_end(d: date) -> date:
    return _month_end(date(d.year, (d.month - 1) // 3 * 3 + 3, 1))


def _dekad(d: date) -> tuple[date, date]:
    """The ten-day period (旬) holding ``d``: its first and last day."""
    if d.day <= 10:
        return d.replace(day=1), d.replace(day=10)
    if d.day <= 20:
        return d.replace(day=11), d.replace(day=20)
    return d.replace(day=21), _month_end(d)


def buckets(since: date | None, until: date | None, first: date,
            last: date) -> list[tuple[str, date]]:
    """The fewest (span, start) buckets whose days are exactly the period's days with data.

    ``first`` and ``last`` are the first and last day holding any row: a period reaching past
    either end may take the whole month there (its other days hold nothing).
    """
    lo = since if since and since > first else first.replace(day=1)
    hi = until if until and until < last else _month_end(last)
    out: list[tuple[str, date]] = []
    d = lo
    while d <= hi:
        month_end = _month_end(d)
        dekad_start, dekad_end = _dekad(d)
        if d.day == 1 and d.month % 3 == 1 and _quarter_end(d) <= hi:
            out.append((SPAN_QUARTER, d))
            d = _quarter_end(d) + timedelta(days=1)
        elif d.day == 1 and month_end <= hi:
            out.append((SPAN_MONTH, d))
            d = month_end + timedelta(days=1)
        elif d == dekad_start and dekad_end <= hi:
            out.append((SPAN_DEKAD, d))
            d = dekad_end + timedelta(days=1)
        else:
            out.append((SPAN_DAY, d))
            d += timedelta(days=1)
    return out


def bucket_days(span: str, start: date) -> tuple[date, date]:
    """The first and last day of a bucket."""
    if span == SPAN_DAY:
        return start, start
    if span == SPAN_DEKAD:
        return _dekad(start)
    if span == SPAN_MONTH:
        return start, _month_end(start)
    if span == SPAN_QUARTER:
        return start, _quarter_end(start)
    raise ValueError(span)


# --- what a rollup can answer ------------------------------------------------------------------

_COLUMN = re.compile(r"\bt\.(\w+)")


def _columns(expr: str) -> set[str]:
    return set(_COLUMN.findall(expr))


def answers(layer: Layer, values: dict[str, Any], since: date | None, until: date | None,
            scope: Scope | None) -> bool:
    """Whether the layer's rollup gives exactly the tile the points would give."""
    src = layer.source
    if not isinstance(src, Sql) or src.rollup is None:
        return False
    r = src.rollup
    if (since or until) and r.time is None:
        return False
    dims = set(r.dims)
    for name in values:
        f = layer.filter(name)
        if f is None or f.column is None or not _columns(f.column) <= dims:
            return False
    if scope is not None and not scope.unrestricted and src.scope is not None:
        if scope.estate_ids is not None or scope.level not in SCOPE_LEVELS:
            return False
        if src.scope.get("own") and scope.inspector_code:
            return False  # the account's own rows are visible wherever they are
    return True


def days_with_data(session: Session, layer: Layer) -> tuple[date | None, date | None]:
    """The first and last day holding any row of a dated rollup (from its coarsest level's
    day buckets, which :func:`check` makes sure it keeps: two index probes)."""
    _, r = _parts(layer)
    return session.execute(text(
        f"SELECT min(start), max(start) FROM {r.table} "
        f"WHERE level = :level AND span = '{SPAN_DAY}'"), {"level": min(r.levels)}).one()


def check(layer: Layer) -> None:
    """The rollup's definition agrees with its layer (called by the tests for every layer)."""
    src, r = _parts(layer)
    for name, expr in src.cluster_sums.items():
        missing = _columns(expr) - set(r.dims)
        assert not missing, f"{layer.name}: cluster sum {name} needs {missing} in the rollup"
    if r.time:
        assert src.time == f"t.{r.time}", f"{layer.name}: rollup time is not the layer's time"
        assert SPAN_DAY in r.spans_at(min(r.levels)), f"{layer.name}: no days at all"
    assert layer.aggregate_below is not None


# --- the tile ----------------------------------------------------------------------------------


def tile_sql(layer: Layer, level: int, key0: int, key1: int, values: dict[str, Any],
             scope: Scope | None, *, with_time: bool,
             points: str | None = None) -> tuple[str, dict[str, Any]]:
    """The tile's statement over the rollup: cells of ``level`` with keys in [key0, key1] and
    the buckets bound as ``:spans``/``:starts``; ``:mx0…:my1``, ``:extent``, ``:layer`` and
    the Mercator formulas are the caller's (see ``app.services.layers``).

    ``points``: a statement giving more cells of the same level and shape (``key``, the dims,
    ``n``, ``sum_lon``, ``sum_lat``), counted from the points of days no kept bucket holds; they
    are added to the stored ones cell by cell (:func:`points_sql`).
    """
    from app.services.layers import _MERCATOR_X, _MERCATOR_Y

    src, r = _parts(layer)
    conds = ["t.level = :level", "t.key BETWEEN :key0 AND :key1", "t.n <> 0"]
    params: dict[str, Any] = {"level": level, "key0": key0, "key1": key1}
    for name, vals in values.items():
        f = layer.filter(name)
        assert f is not None and f.column is not None
        conds.append(f"{f.column} = ANY(:f_{name})")
        params[f"f_{name}"] = vals
    if scope is not None and not scope.unrestricted and src.scope is not None:
        codes = tuple(c for c in ("street_code", "district_code") if c in r.dims)
        predicate, scope_params = scope.sql("t", geom=None, codes=codes, key="scope")
        conds.append(predicate)
        params.update(scope_params)
    sums = "".join(f', coalesce(sum(t.n) FILTER (WHERE {expr}), 0)::int AS "{name}"'
                   for name, expr in src.cluster_sums.items())
    point = (f"ST_MakePoint({_MERCATOR_X.format(lon='sum(t.sum_lon) / sum(t.n)')}, "
             f"{_MERCATOR_Y.format(lat='sum(t.sum_lat) / sum(t.n)')})")
    join = ("FROM unnest(CAST(:spans AS text[]), CAST(:starts AS date[])) AS b(span, start) "
            f"JOIN {r.table} t ON t.span = b.span AND t.start = b.start" if with_time else
            f"FROM {r.table} t")
    if not with_time:
        conds += [f"t.span = '{SPAN_ALL}'", f"t.start = DATE '{ALL_START.isoformat()}'"]
    cells = (f"SELECT t.key, {', '.join(f't.{d}' for d in r.dims)}, t.n, t.sum_lon, t.sum_lat "
             f"{join} WHERE {' AND '.join(conds)}")
    if points:
        cells = f"{cells} UNION ALL {points}"
    return (f"""
        SELECT ST_AsMVT(q, :layer, :extent, 'geom') FROM (
          SELECT sum(t.n)::int AS count{sums},
                 ST_AsMVTGeom(ST_SetSRID({point}, 3857),
                              ST_MakeEnvelope(:mx0, :my0, :mx1, :my1, 3857), :extent, 0, false)
                   AS geom
          FROM ({cells}) t
          GROUP BY t.key HAVING sum(t.n) > 0) q""", params)


def points_sql(layer: Layer, rows: str, *, keyed: bool = False) -> str:
    """Cells in the shape of the rollup's, counted from ``rows`` (a statement giving the
    rollup's dims, ``__lon``, ``__lat`` and the cell ``__cx``, ``__cy`` of each point, or,
    ``keyed``, the cell's key ``__key``)."""
    _, r = _parts(layer)
    dims = ", ".join(f"p.{d}" for d in r.dims)
    cell = ["k.__key"] if keyed else ["k.__cx", "k.__cy"]
    key = "p.__key" if keyed else _morton_sql("p.__cx", "p.__cy")
    group = ", ".join([*cell, *(f"k.{d}" for d in r.dims)])
    return f"""SELECT {key} AS key, {dims}, p.n, p.sum_lon, p.sum_lat
        FROM (SELECT {group}, count(*)::int AS n, sum(k.__lon) AS sum_lon,
                     sum(k.__lat) AS sum_lat
              FROM ({rows}) k GROUP BY {group}) p"""


def missing_days(chosen: list[tuple[str, date]], level: int,
                 rollup: Rollup) -> list[tuple[date, date]]:
    """The day ranges of the buckets ``level`` does not keep, adjacent ones merged."""
    out: list[tuple[date, date]] = []
    for span, start in chosen:
        if span in rollup.spans_at(level):
            continue
        first, last = bucket_days(span, start)
        if out and out[-1][1] + timedelta(days=1) == first:
            out[-1] = (out[-1][0], last)
        else:
            out.append((first, last))
    return out


# --- DDL ---------------------------------------------------------------------------------------


def _cells_select(layer: Layer, rows: str, sign: int, *,
                  only: tuple[int, str] | None = None) -> str:
    """The cells of the rows of ``rows`` (a table or transition table), signed, grouped;
    ``only``: those of one (level, span)."""
    src, r = _parts(layer)
    dims = ", ".join(f"p.{d}" for d in r.dims)
    if r.time:
        spans = (f"(VALUES ('{SPAN_DAY}', p.__day), "
                 f"('{SPAN_DEKAD}', make_date(extract(year FROM p.__day)::int, "
                 "extract(month FROM p.__day)::int, CASE WHEN extract(day FROM p.__day) <= 10 "
                 "THEN 1 WHEN extract(day FROM p.__day) <= 20 THEN 11 ELSE 21 END)), "
                 f"('{SPAN_MONTH}', date_trunc('month', p.__day)::date), "
                 f"('{SPAN_QUARTER}', date_trunc('quarter', p.__day)::date)) AS s(span, start)")
        day = f"t.{r.time} AS __day, "
    else:
        spans = f"(VALUES ('{SPAN_ALL}', DATE '{ALL_START.isoformat()}')) AS s(span, start)"
        day = ""
    from app.services.layers import _CELL_X, _CELL_Y  # the formulas the tiles cut by

    cells = "power(2::float8, l.level)"
    levels = ", ".join(str(v) for v in r.levels)
    keep = ""
    if r.time and r.months_from is not None:
        keep = f"WHERE l.level < {r.months_from} OR s.span IN ('{SPAN_MONTH}', '{SPAN_QUARTER}')"
        if r.dekads_to is not None:
            keep += f" OR (l.level <= {r.dekads_to} AND s.span = '{SPAN_DEKAD}')"
    if only is not None:
        levels, keep = str(only[0]), f"WHERE s.span = '{only[1]}'"
    return f"""
        SELECT l.level::smallint, s.span, s.start, {_morton_sql('c.cx', 'c.cy')} AS key,
               {dims}, ({sign} * count(*))::int AS n, {sign} * sum(p.__lon) AS sum_lon,
               {sign} * sum(p.__lat) AS sum_lat
        FROM (SELECT g.*, ST_X(g.__g) AS __lon, ST_Y(g.__g) AS __lat FROM (
                SELECT {', '.join(f't.{d}' for d in r.dims)}, {day}{src.geom} AS __g
                FROM {rows} t WHERE ({src.where})) g
              WHERE g.__g IS NOT NULL AND NOT ST_IsEmpty(g.__g)) p
        CROSS JOIN unnest(ARRAY[{levels}]) AS l(level)
        CROSS JOIN LATERAL (SELECT {_CELL_X.replace(':cells', cells)} AS cx,
                                   {_CELL_Y.replace(':cells', cells)} AS cy) c
        CROSS JOIN LATERAL {spans}
        {keep}
        GROUP BY 1, 2, 3, 4, {', '.join(str(i) for i in range(5, 5 + len(r.dims)))}
        ORDER BY 1, 2, 3, 4, {', '.join(str(i) for i in range(5, 5 + len(r.dims)))}"""


def _upsert(layer: Layer, rows: str, sign: int, *, returning: bool = False) -> str:
    _, r = _parts(layer)
    key = ", ".join(["level", "span", "start", "key", *r.dims])
    return f"""
        INSERT INTO {r.table} AS c ({key}, n, sum_lon, sum_lat)
        {_cells_select(layer, rows, sign)}
        ON CONFLICT ({key}) DO UPDATE SET n = c.n + excluded.n,
            sum_lon = c.sum_lon + excluded.sum_lon, sum_lat = c.sum_lat + excluded.sum_lat
        {'RETURNING c.level, c.span, c.start, c.key, c.n' if returning else ''}"""


def function_sql(layer: Layer) -> str:
    """The trigger function keeping the layer's rollup (``CREATE OR REPLACE``)."""
    _, r = _parts(layer)
    return f"""CREATE OR REPLACE FUNCTION {r.table}_keep() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
          levels smallint[]; spans text[]; starts date[]; keys bigint[];
        BEGIN
          IF TG_OP = 'TRUNCATE' THEN
            TRUNCATE {r.table};
            RETURN NULL;
          END IF;
          IF TG_OP IN ('UPDATE', 'DELETE') THEN
            -- Subtract, then drop the cells brought to zero (the rows they were made of
            -- are gone: an empty cell is no row, as if it had never been).
            WITH up AS ({_upsert(layer, 'old_rows', -1, returning=True)})
            SELECT array_agg(level), array_agg(span), array_agg(start), array_agg(key)
              INTO levels, spans, starts, keys FROM up WHERE n = 0;
            IF levels IS NOT NULL THEN
              DELETE FROM {r.table} c
              USING unnest(levels, spans, starts, keys) AS z(level, span, start, key)
              WHERE c.level = z.level AND c.span = z.span AND c.start = z.start
                AND c.key = z.key AND c.n = 0;
            END IF;
          END IF;
          IF TG_OP IN ('UPDATE', 'INSERT') THEN {_upsert(layer, 'new_rows', 1)};
          END IF;
          RETURN NULL;
        END $$"""


def install_sql(layer: Layer) -> list[str]:
    """Statements creating the layer's rollup table, its triggers, and filling it."""
    src, r = _parts(layer)
    assert max(r.levels) <= MAX_LEVEL
    table = _table(src)
    key = ", ".join(["level", "span", "start", "key", *r.dims])
    fn = f"{r.table}_keep"
    return [
        f"""CREATE TABLE {r.table} AS
            SELECT 0::smallint AS level, ''::text AS span, DATE '{ALL_START.isoformat()}' AS start,
                   0::bigint AS key, {', '.join(f't.{d}' for d in r.dims)}, 0::integer AS n,
                   0::float8 AS sum_lon, 0::float8 AS sum_lat
            FROM {table} t WITH NO DATA""",
        *(f"ALTER TABLE {r.table} ALTER COLUMN {c} SET NOT NULL"
          for c in ("level", "span", "start", "key", "n", "sum_lon", "sum_lat")),
        f"COMMENT ON TABLE {r.table} IS 'Tile cells of layer {layer.name}, kept by triggers on "
        f"{table} (app/services/rollups.py)'",
        f"CREATE UNIQUE INDEX ux_{r.table} ON {r.table} ({key}) NULLS NOT DISTINCT",
        function_sql(layer),
        f"CREATE TRIGGER {r.table}_ins AFTER INSERT ON {table} REFERENCING NEW TABLE AS "
        f"new_rows FOR EACH STATEMENT EXECUTE FUNCTION {fn}()",
        f"CREATE TRIGGER {r.table}_upd AFTER UPDATE ON {table} REFERENCING OLD TABLE AS "
        f"old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {fn}()",
        f"CREATE TRIGGER {r.table}_del AFTER DELETE ON {table} REFERENCING OLD TABLE AS "
        f"old_rows FOR EACH STATEMENT EXECUTE FUNCTION {fn}()",
        f"CREATE TRIGGER {r.table}_trunc AFTER TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {fn}()",
        f"INSERT INTO {r.table} ({key}, n, sum_lon, sum_lat) {_cells_select(layer, table, 1)}",
        f"ANALYZE {r.table}",
    ]


def quarters_sql(layer: Layer) -> str:
    """The quarter cells of a rollup that keeps months but not yet quarters, summed from its
    month cells (each quarter is its three months exactly)."""
    _, r = _parts(layer)
    key = ", ".join(["level", "span", "start", "key", *r.dims])
    dims = ", ".join(r.dims)
    return f"""
        INSERT INTO {r.table} ({key}, n, sum_lon, sum_lat)
        SELECT level, '{SPAN_QUARTER}', date_trunc('quarter', start)::date AS quarter, key, {dims},
               sum(n)::int, sum(sum_lon), sum(sum_lat)
        FROM {r.table} WHERE span = '{SPAN_MONTH}'
        GROUP BY level, quarter, key, {dims} HAVING sum(n) <> 0
        ORDER BY level, quarter, key, {dims}"""


def span_cells_sql(layer: Layer, level: int, span: str) -> list[str]:
    """The cells of one (level, span) made again from the table: those there deleted, then
    counted from the points (a rollup that starts keeping a span at a level)."""
    _, r = _parts(layer)
    key = ", ".join(["level", "span", "start", "key", *r.dims])
    table = _table(layer.source)
    return [f"DELETE FROM {r.table} WHERE level = {int(level)} AND span = '{span}'",
            f"INSERT INTO {r.table} ({key}, n, sum_lon, sum_lat) "
            f"{_cells_select(layer, table, 1, only=(level, span))}"]


def drop_sql(layer: Layer) -> list[str]:
    src, r = _parts(layer)
    table = _table(src)
    return [*(f"DROP TRIGGER IF EXISTS {r.table}_{k} ON {table}"
              for k in ("ins", "upd", "del", "trunc")),
            f"DROP FUNCTION IF EXISTS {r.table}_keep()", f"DROP TABLE IF EXISTS {r.table}"]

