"""Tile rollups: the cells kept by triggers give the very tiles the points give.

A year of synthetic projects and patrols (as in test_layers) in a transaction rolled back at
the end of the module. Every comparison decodes two tiles cut by the application — one from
the rollup, one from the points (``use_rollup=False``) — and compares their features; the
stored cells are also compared with the cells recomputed from the table after inserts,
updates, deletes and a truncate.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import mapbox_vector_tile
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from app.access import Scope
from app.services import layers as svc
from app.services import rollups
from app.services.registration import today_cn
from gis import cellkey
from layers import catalog
from tests._activity import world_fixtures

DISTRICT = "440304000000"


# --- pure parts --------------------------------------------------------------------------------

_days = st.dates(min_value=date(2023, 1, 1), max_value=date(2026, 12, 31))


@settings(max_examples=400, deadline=None)
@given(_days, _days, _days, _days, st.booleans(), st.booleans())
def test_buckets_cover_exactly_the_period_with_data(a, b, c, d, open_lo, open_hi):
    first, last = sorted((a, b))
    since, until = sorted((c, d))
    since_ = None if open_lo else since
    until_ = None if open_hi else until
    chosen = rollups.buckets(since_, until_, first, last)
    covered: list[date] = []
    for span, start in chosen:
        lo, hi = rollups.bucket_days(span, start)
        covered += [lo + timedelta(days=i) for i in range((hi - lo).days + 1)]
    assert len(covered) == len(set(covered)), "buckets overlap"
    lo_ = since_ or date.min
    hi_ = until_ or date.max
    want = {first + timedelta(days=i) for i in range((last - first).days + 1)
            if lo_ <= first + timedelta(days=i) <= hi_}
    got = {day for day in covered if first <= day <= last}
    assert got == want
    # Never more than the quarters of the period, two months at each end (between a quarter
    # and the period's ends), a few ten-day periods and the edge days.
    months = (last.year - first.year) * 12 + last.month - first.month + 1
    assert len(chosen) <= months // 3 + 2 + 4 + 4 + 18
    spans = [span for span, _ in chosen]
    assert spans.count("m") <= 4 and spans.count("x") <= 4


def test_buckets_of_a_year_ending_today():
    chosen = rollups.buckets(date(2025, 11, 22), date(2026, 11, 21), date(2025, 11, 21),
                             date(2026, 11, 21))
    # December to November whole (no day after the 21st holds data yet): December, the first
    # three quarters of 2026, October and November; then the days of November 2025 from the
    # 22nd (the 旬 from the 21st is not wholly inside).
    assert [b for b in chosen if b[0] in "mq"] == [
        ("m", date(2025, 12, 1)), ("q", date(2026, 1, 1)), ("q", date(2026, 4, 1)),
        ("q", date(2026, 7, 1)), ("m", date(2026, 10, 1)), ("m", date(2026, 11, 1))]
    assert ("d", date(2025, 11, 22)) in chosen
    assert len(chosen) == 6 + 9
    assert rollups.bucket_days("q", date(2026, 7, 1)) == (date(2026, 7, 1), date(2026, 9, 30))
    # Ending a day before the data ends: November 2026 goes by 旬 and days.
    chosen = rollups.buckets(date(2025, 11, 22), date(2026, 11, 20), date(2025, 11, 21),
                             date(2026, 11, 21))
    assert ("x", date(2026, 11, 11)) in chosen and ("m", date(2026, 11, 1)) not in chosen
    assert len(chosen) == 5 + 2 + 9


def test_morton_in_sql_matches_python(engine):
    pairs = [(0, 0), (1, 0), (0, 1), (3, 5), (54321, 28600), (2**24 - 1, 2**24 - 1),
             (209715, 114688), (12345678, 7654321)]
    with engine.connect() as conn:
        for x, y in pairs:
            sql = rollups._morton_sql("CAST(:x AS bigint)", "CAST(:y AS bigint)")
            got = conn.execute(text(f"SELECT {sql}"), {"x": x, "y": y}).scalar_one()
            assert got == rollups.morton(x, y), (x, y)
    # Z-order: the cells of a tile are one contiguous run of keys.
    keys = sorted(rollups.morton(64 * 7 + i, 64 * 3 + j) for i in range(64) for j in range(64))
    assert keys[-1] - keys[0] + 1 == len(keys) == 4096


@pytest.mark.parametrize("layer", [catalog.PATROLS, catalog.PROJECTS])
def test_rollup_definitions_agree_with_their_layers(layer):
    rollups.check(layer)


# --- against the database ----------------------------------------------------------------------


world, session = world_fixtures(11, DISTRICT)


def _tiles(session, z: int) -> list[tuple[int, int]]:
    x0, y0, x1, y1 = session.execute(text(
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) e "
        "FROM districts WHERE code = :d AND valid_to IS NULL) s"), {"d": DISTRICT}).one()

    def xy(lon, lat):
        n = 1 << z
        return (int((lon + 180) / 360 * n),
                int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n))

    (ax, ay), (bx, by) = xy(x0, y1), xy(x1, y0)
    return [(x, y) for x in range(ax, bx + 1) for y in range(ay, by + 1)]


def _features(data: bytes) -> list[tuple]:
    out = []
    for layer in (mapbox_vector_tile.decode(data) if data else {}).values():
        for f in layer["features"]:
            out.append((tuple(f["geometry"]["coordinates"]),
                        tuple(sorted(f["properties"].items()))))
    return sorted(out)


def _same_tiles(session, layer, params: dict, *, zooms=(9, 10, 11, 12), scope=None,
                expect_rollup: bool = True) -> int:
    """Compare every tile over the district at the zooms; the number of features compared."""
    q = svc.parse_query(session, layer, params, tiles=True)
    assert rollups.answers(layer, q.values, q.since, q.until, scope) is expect_rollup
    n = 0
    for z in zooms:
        for x, y in _tiles(session, z):
            cells = svc.tile(session, layer, z, x, y, q, scope=scope)
            points = svc.tile(session, layer, z, x, y, q, scope=scope, use_rollup=False)
            a, b = _features(cells), _features(points)
            assert a == b, f"{layer.name} {params} z{z}/{x}/{y}: {len(a)} against {len(b)}"
            n += len(a)
    return n


def _sums(rows) -> list[float]:
    """The two sums of each cell row (its last two columns), in one flat list."""
    return [v for row in rows for v in row[-2:]]


def _stored_equals_recomputed(session, layer) -> None:
    r = layer.source.rollup
    cols = ", ".join(["level", "span", "start", "key", *r.dims])
    stored = session.execute(text(
        f"SELECT {cols}, n, sum_lon, sum_lat FROM {r.table} ORDER BY {cols}")).all()
    table = layer.source.from_.split()[0]
    fresh = session.execute(text(
        f"SELECT {cols}, n, sum_lon, sum_lat FROM ("
        f"{rollups._cells_select(layer, table, 1)}) c ORDER BY {cols}")).all()
    assert [row[:-2] for row in stored] == [row[:-2] for row in fresh]  # the cells and counts
    # The sums, up to the order their terms were added in (a quarter summed from its months).
    assert _sums(stored) == pytest.approx(_sums(fresh), rel=1e-12, abs=1e-9)


def test_patrol_tiles_from_cells_equal_tiles_from_points(session):
    today = today_cn()
    n = 0
    for params in ({}, {"since": (today - timedelta(days=364)).isoformat()},
                   {"since": "2000-01-01", "district": DISTRICT},
                   {"since": (today - timedelta(days=45)).isoformat(),
                    "until": (today - timedelta(days=3)).isoformat()}):
        n += _same_tiles(session, catalog.PATROLS, params)
    assert n > 500  # the tiles held data


def _months(today: date, n: int) -> dict[str, str]:
    """The pages' "last n months": the current month and the n - 1 before it."""
    start = today.replace(day=1)
    for _ in range(n - 1):
        start = (start - timedelta(days=1)).replace(day=1)
    return {"since": start.isoformat(), "until": today.isoformat()}


def test_long_periods_at_street_zoom_come_from_the_month_cells(session):
    layer = catalog.PATROLS
    r = layer.source.rollup
    assert r.spans_at(18) == "dxmq" and r.spans_at(19) == "xmq" and r.spans_at(20) == "mq"
    today = today_cn()
    year = _months(today, 12)
    # z13-z16 of a year are aggregated (z16 only because the period is long) ...
    n = _same_tiles(session, layer, year, zooms=(13, 14, 16))
    assert n > 300
    q = svc.parse_query(session, layer, year, tiles=True)
    assert layer.aggregated(16, svc.long_period(layer, q)) and not layer.aggregated(17, True)
    # ... and read from the cells: each zoom's busiest tile comes from the month cells.
    for z in (13, 16):
        x, y = _busiest_tile(session, z)
        assert svc._rollup_tile(session, layer, svc.tile_bounds(z, x, y), q, None)
    # 100 days from a day other than the 1st are not whole months: at the fine levels the
    # whole months come from the cells and the days before them from their points, added
    # cell by cell; the same tile as from the points alone.
    since = today - timedelta(days=100)
    odd = {"since": (since - timedelta(days=1 if since.day == 1 else 0)).isoformat()}
    q = svc.parse_query(session, layer, odd, tiles=True)
    first, last = rollups.days_with_data(session, layer)
    edges = rollups.missing_days(rollups.buckets(q.since, q.until, first, last), 20, r)
    assert edges == [(q.since, rollups._month_end(q.since))]
    # Level 19 (zoom-13 tiles) keeps the 旬 too: only the days before the first whole 旬 are
    # counted from the points there.
    edges19 = rollups.missing_days(rollups.buckets(q.since, q.until, first, last), 19, r)
    assert edges19 == ([] if q.since.day in (1, 11, 21) else
                       [(q.since, rollups._dekad(q.since)[1])])
    for z in (12, 13):
        x, y = _busiest_tile(session, z)
        assert svc._rollup_tile(session, layer, svc.tile_bounds(z, x, y), q, None)
    assert _same_tiles(session, layer, odd, zooms=(13, 14, 16)) > 100
    # Both ends mid-month, whole months between them: two runs of days from the points.
    start = date.fromisoformat(_months(today, 5)["since"]) + timedelta(days=4)
    end = today.replace(day=1) - timedelta(days=20)
    both = {"since": start.isoformat(), "until": end.isoformat()}
    q = svc.parse_query(session, layer, both, tiles=True)
    assert len(rollups.missing_days(rollups.buckets(q.since, q.until, first, last), 20, r)) == 2
    assert _same_tiles(session, layer, both, zooms=(13, 15)) > 50
    # Within a street account's scope, the cells and the points alike.
    street = session.scalar(text(
        "SELECT street_code FROM patrols WHERE district_code = :d GROUP BY 1 "
        "ORDER BY count(*) DESC LIMIT 1"), {"d": DISTRICT})
    scope = Scope.of_account(role="street_official", scope_code=street, estate_ids=None,
                             inspector_code=None, username="s")
    assert _same_tiles(session, layer, both, zooms=(14,), scope=scope) > 0
    # Less than a whole month at a level keeping months only (zoom 14): the points answer;
    # at zoom 13 its whole 旬 come from the cells and its other days from the points.
    last_month = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    short = {"since": last_month.replace(day=2).isoformat(),
             "until": last_month.replace(day=25).isoformat()}
    q = svc.parse_query(session, layer, short, tiles=True)
    x, y = _busiest_tile(session, 14)
    assert svc._rollup_tile(session, layer, svc.tile_bounds(14, x, y), q, None) is None
    x, y = _busiest_tile(session, 13)
    assert svc._rollup_tile(session, layer, svc.tile_bounds(13, x, y), q, None)
    assert rollups.missing_days(rollups.buckets(q.since, q.until, first, last), 19, r) == [
        (q.since, q.since.replace(day=10)), (q.until.replace(day=21), q.until)]
    # A week at z16 is points, with their ids.
    week = svc.parse_query(session, layer, {}, tiles=True)
    assert not layer.aggregated(16, svc.long_period(layer, week))


def _busiest_tile(session, z: int) -> tuple[int, int]:
    return tuple(session.execute(text(
        "SELECT floor((ST_X(location) + 180) / 360 * 2 ^ :z)::int, "
        "floor((1 - ln(tan(pi() / 4 + radians(ST_Y(location)) / 2)) / pi()) / 2 * 2 ^ :z)::int "
        "FROM patrols WHERE district_code = :d GROUP BY 1, 2 ORDER BY count(*) DESC LIMIT 1"),
        {"z": z, "d": DISTRICT}).one())


def _cell24(lon: float, lat: float) -> tuple[int, int]:
    return (math.floor((lon + 180.0) / 360.0 * 2.0 ** 24),
            math.floor((1.0 - math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) / math.pi)
                       / 2.0 * 2.0 ** 24))


def test_patrols_store_the_key_of_their_location(session):
    rows = session.execute(text(
        "SELECT cell_key, lon, lat FROM patrols ORDER BY id LIMIT 200")).all()
    assert len(rows) == 200
    for r in rows:
        assert r.cell_key == cellkey.morton(*_cell24(r.lon, r.lat))
    moved = session.execute(text(
        "UPDATE patrols SET location = ST_SetSRID(ST_MakePoint(114.0553, 22.5431), 4326) "
        "WHERE id = (SELECT min(id) FROM patrols) RETURNING cell_key")).scalar_one()
    assert moved == cellkey.morton(*_cell24(114.0553, 22.5431))


def test_points_read_by_day_and_cell_key_equal_the_spatial_read(session, monkeypatch):
    """The points of a tile read day by day through the (district, day, key) index give the
    tile read through the spatial index (the keyed read turned off), at every zoom, for a
    week, the edge days of a year and a filter the cells cannot answer."""
    layer = catalog.PATROLS
    today = today_cn()
    year = {"since": (today - timedelta(days=364)).isoformat()}
    cases = [({}, (10, 13, 16, 17, 18)), (year, (13, 14, 16)),
             ({**year, "force": "supervisor"}, (12, 17)),
             ({"since": (today - timedelta(days=40)).isoformat(),
               "until": (today - timedelta(days=20)).isoformat()}, (15, 18))]
    n = 0
    for params, zooms in cases:
        q = svc.parse_query(session, layer, params, tiles=True)
        for z in zooms:
            x, y = _busiest_tile(session, z)
            for dx, dy in ((0, 0), (1, 0), (0, 1)):
                keyed = svc.tile(session, layer, z, x + dx, y + dy, q)
                with monkeypatch.context() as m:
                    m.setattr(svc, "MAX_KEYED_DAYS", 0)
                    spatial = svc.tile(session, layer, z, x + dx, y + dy, q)
                a, b = _features(keyed), _features(spatial)
                assert a == b, f"{params} z{z}/{x + dx}/{y + dy}: {len(a)} against {len(b)}"
                n += len(a)
    assert n > 300
    # The keyed read is the plan: one range of the index per day, no spatial index.
    conds, params = svc._conditions(layer, svc.parse_query(session, layer, {}, tiles=True), None)
    b = svc.tile_bounds(15, *_busiest_tile(session, 15))
    keyed = svc._point_prefilter(session, layer, b,
                                 svc.parse_query(session, layer, {}, tiles=True), conds, params,
                                 aggregated=True)
    assert keyed and len(params["key_days"]) <= 7 and "t.cell_key BETWEEN" in " ".join(conds)
    params.update(layer="patrols", extent=svc.TILE_EXTENT, mx0=b.mx0, my0=b.my0, mx1=b.mx1,
                  my1=b.my1)
    plan = "\n".join(session.execute(text(
        "EXPLAIN " + svc._point_tile_sql(layer, conds, True, keyed=True)), params).scalars())
    assert "ix_patrols_district_code_patrol_on_cell_key" in plan
    assert "ix_patrols_location" not in plan


def test_project_tiles_from_cells_equal_tiles_from_points(session):
    n = _same_tiles(session, catalog.PROJECTS, {}, zooms=(9, 10, 11, 12, 13, 14))
    n += _same_tiles(session, catalog.PROJECTS, {"state": "active", "risk": "high"},
                     zooms=(10, 12, 14))
    assert n > 200


def test_scopes_and_filters_the_cells_cannot_answer_read_the_points(session):
    street = session.scalar(text(
        "SELECT street_code FROM patrols WHERE district_code = :d GROUP BY 1 "
        "ORDER BY count(*) DESC LIMIT 1"), {"d": DISTRICT})
    community = session.scalar(text(
        "SELECT community_code FROM patrols WHERE street_code = :s GROUP BY 1 "
        "ORDER BY count(*) DESC LIMIT 1"), {"s": street})
    year = {"since": "2000-01-01"}
    street_scope = Scope.of_account(role="street_official", scope_code=street, estate_ids=None,
                                    inspector_code=None, username="s")
    assert _same_tiles(session, catalog.PATROLS, year, zooms=(10, 12), scope=street_scope) > 0
    community_scope = Scope.of_account(role="community", scope_code=community,
                                       estate_ids=None, inspector_code=None, username="c")
    assert _same_tiles(session, catalog.PATROLS, year, zooms=(10, 12), scope=community_scope,
                       expect_rollup=False) > 0
    # force is not a dimension of the patrol cells: the points answer, the same way.
    _same_tiles(session, catalog.PATROLS, {**year, "force": "supervisor"}, zooms=(10,),
                expect_rollup=False)
    # An inspector's own patrols are visible outside the scope: the points answer.
    inspector = Scope.of_account(role="inspector", scope_code=street, estate_ids=None,
                                 inspector_code="insp-1", username="i")
    assert not rollups.answers(catalog.PATROLS, {}, None, None, inspector)


def test_triggers_keep_the_cells_through_every_kind_of_write(session):
    for layer in (catalog.PATROLS, catalog.PROJECTS):
        _stored_equals_recomputed(session, layer)
    ids = session.scalars(text(
        "SELECT id FROM patrols WHERE district_code = :d ORDER BY id LIMIT 300"),
        {"d": DISTRICT}).all()
    # Moved, re-dated, re-filed to another street; some deleted; a batch inserted.
    session.execute(text(
        "UPDATE patrols SET location = ST_Translate(location, 0.003, -0.002), "
        "patrol_on = patrol_on - 17 WHERE id = ANY(:ids)"), {"ids": ids[:100]})
    session.execute(text(
        "UPDATE patrols SET street_code = (SELECT min(street_code) FROM patrols) "
        "WHERE id = ANY(:ids)"), {"ids": ids[100:150]})
    session.execute(text(
        "UPDATE patrols SET street_code = NULL WHERE id = ANY(:ids)"), {"ids": ids[150:160]})
    session.execute(text("DELETE FROM patrol_visits WHERE patrol_id = ANY(:ids)"),
                    {"ids": ids[200:300]})
    session.execute(text(
        "DELETE FROM patrols p WHERE id = ANY(:ids) AND NOT EXISTS ("
        "SELECT 1 FROM hazards h WHERE h.patrol_id = p.id) AND NOT EXISTS ("
        "SELECT 1 FROM unregistered_works u WHERE u.patrol_id = p.id)"), {"ids": ids[200:300]})
    session.execute(text(
        """INSERT INTO patrols (district_code, client_id, inspector_id, force, started_at,
                                patrol_on, location, street_code, community_code, grid_code,
                                payload_hash, source)
           SELECT district_code, 'rollup-test-' || id, inspector_id, force, started_at,
                  patrol_on + 1, ST_Translate(location, 0.0001, 0.0001), street_code,
                  community_code, grid_code, 'x', 'test'
           FROM patrols WHERE id = ANY(:ids)"""), {"ids": ids[160:200]})
    session.execute(text(
        "UPDATE projects SET state = 'closed' WHERE id IN (SELECT id FROM projects "
        "WHERE state = 'in_progress' ORDER BY id LIMIT 40)"))
    session.execute(text(
        "UPDATE projects SET site = ST_Translate(site, 0.002, 0.001) WHERE id IN ("
        "SELECT id FROM projects ORDER BY id LIMIT 20)"))
    for layer in (catalog.PATROLS, catalog.PROJECTS):
        _stored_equals_recomputed(session, layer)
    _same_tiles(session, catalog.PATROLS, {"since": "2000-01-01"}, zooms=(10, 12))
    _same_tiles(session, catalog.PROJECTS, {"state": "active"}, zooms=(10, 12))


def test_truncate_empties_the_cells(session):
    session.execute(text("TRUNCATE patrols CASCADE"))
    assert session.scalar(text("SELECT count(*) FROM patrol_cells")) == 0
    layer = catalog.PATROLS
    q = svc.parse_query(session, layer, {"since": "2000-01-01"}, tiles=True)
    x, y = _tiles(session, 10)[0]
    assert svc.tile(session, layer, 10, x, y, q) == b""


def test_quarters_summed_from_the_months_equal_the_kept_ones(session):
    """Migration 0012 sums the quarter cells of a database from its month cells: the same
    cells the triggers keep."""
    layer = catalog.PATROLS
    r = layer.source.rollup
    kept = session.scalar(text(f"SELECT count(*) FROM {r.table} WHERE span = 'q'"))
    assert kept > 1000
    assert session.scalar(text(
        f"SELECT count(DISTINCT level) FROM {r.table} WHERE span = 'q'")) == len(r.levels)
    cols = ", ".join(["level", "span", "start", "key", *r.dims])

    def quarters() -> list:
        return session.execute(text(
            f"SELECT {cols}, n, sum_lon, sum_lat FROM {r.table} WHERE span = 'q' "
            f"ORDER BY {cols}")).all()

    before = quarters()
    session.execute(text(f"DELETE FROM {r.table} WHERE span = 'q'"))
    session.execute(text(rollups.quarters_sql(layer)))
    after = quarters()
    assert [row[:-2] for row in after] == [row[:-2] for row in before]  # the cells and counts
    assert _sums(after) == pytest.approx(_sums(before), rel=1e-12)
