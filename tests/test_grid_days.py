"""Patrol effort per grid and day: the triggers keep it equal to a recompute through every kind
of write, concurrent uploads to one site count its day once, and blind spots read from it give
the numbers counted straight from the visits."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, text

from app.services import coverage, grid_days
from app.services.registration import today_cn
from tests._activity import world_fixtures
from tests._robust import private_database

DISTRICT = "440304000000"


world, session = world_fixtures(11, DISTRICT)


def _row(session, grid: str, day) -> tuple:
    return tuple(session.execute(text(
        "SELECT patrols, visits, site_days FROM grid_days WHERE grid_code = :g AND day = :d"),
        {"g": grid, "d": day}).one_or_none() or (0, 0, 0))


def _patrol(session, project_id: int, day, force: str = "grid_worker") -> int:
    """A new patrol point at the site on ``day`` (``session``: a Session or a Connection)."""
    return session.scalar(text(
        """INSERT INTO patrols (district_code, client_id, inspector_id, force, started_at,
                                patrol_on, location, street_code, community_code, grid_code,
                                payload_hash, source)
           SELECT district_code, 'gd-' || gen_random_uuid(), 'gd', :f,
                  (CAST(:d AS date) + time '10:00') AT TIME ZONE 'Asia/Shanghai', :d, site,
                  street_code, community_code, grid_code, 'x', 'test'
           FROM projects WHERE id = :p RETURNING id"""), {"p": project_id, "d": day, "f": force})


def _visit(session, project_id: int, day, force: str = "grid_worker",
           patrol: int | None = None) -> int:
    """A visit to the site on ``day`` by ``patrol`` (by default a new point at the site); the
    visit's id."""
    patrol = patrol or _patrol(session, project_id, day, force)
    return session.scalar(text(
        """INSERT INTO patrol_visits (district_code, patrol_id, project_id, force, visited_on,
                                      arrived_at, how, distance_m)
           SELECT district_code, :pa, id, :f, :d,
                  (CAST(:d AS date) + time '10:00') AT TIME ZONE 'Asia/Shanghai', 'nearby', 3
           FROM projects WHERE id = :p RETURNING id"""),
        {"pa": patrol, "p": project_id, "d": day, "f": force})


def _quiet_site(session) -> tuple[int, str]:
    """A site with a grid, and a day long ago on which nothing happened in that grid."""
    return tuple(session.execute(text(
        "SELECT id, grid_code FROM projects WHERE grid_code IS NOT NULL AND district_code = :d "
        "ORDER BY id LIMIT 1"), {"d": DISTRICT}).one())


def test_the_generated_world_is_counted_exactly(session):
    assert grid_days.drift(session) == 0
    visits, site_days, patrols = session.execute(text(
        "SELECT sum(visits), sum(site_days), sum(patrols) FROM grid_days")).one()
    assert visits > 1000 and patrols > 1000 and 0 < site_days <= visits
    assert session.scalar(text(
        "SELECT count(*) FROM grid_days WHERE patrols = 0 AND visits = 0 AND site_days = 0")) == 0


def test_every_kind_of_write_keeps_the_days_exact(session):
    project, grid = _quiet_site(session)
    day = today_cn() - timedelta(days=400)  # before the world's year: an empty day
    assert _row(session, grid, day) == (0, 0, 0)
    first = _visit(session, project, day)
    assert _row(session, grid, day) == (1, 1, 1)
    second = _visit(session, project, day, force="supervisor")  # same site, same day
    assert _row(session, grid, day) == (2, 2, 1)
    assert grid_days.drift(session) == 0
    # One of the two visits goes: the site was still visited that day.
    session.execute(text("DELETE FROM patrol_visits WHERE id = :i"), {"i": first})
    assert _row(session, grid, day) == (2, 1, 1)
    # The other is moved a day later: the first day has no site-day left.
    session.execute(text("UPDATE patrol_visits SET visited_on = visited_on + 1 WHERE id = :i"),
                    {"i": second})
    assert _row(session, grid, day)[1:] == (0, 0)
    assert _row(session, grid, day + timedelta(days=1))[1:] == (1, 1)
    assert grid_days.drift(session) == 0
    # The site is moved to another grid: its visits go along, its patrol points stay.
    other = session.scalar(text(
        "SELECT code FROM grids WHERE district_code = :d AND valid_to IS NULL AND code <> :g "
        "ORDER BY code LIMIT 1"), {"d": DISTRICT, "g": grid})
    before = session.scalar(text(
        "SELECT count(*) FROM patrol_visits WHERE project_id = :p"), {"p": project})
    session.execute(text("UPDATE projects SET grid_code = :g WHERE id = :p"),
                    {"g": other, "p": project})
    assert _row(session, other, day + timedelta(days=1))[1:] == (1, 1)
    assert _row(session, grid, day + timedelta(days=1))[1:] == (0, 0)
    assert before > 1 and grid_days.drift(session) == 0
    # An update that changes nothing counted, and patrol points re-filed to another grid.
    session.execute(text("UPDATE patrol_visits SET left_at = arrived_at WHERE project_id = :p"),
                    {"p": project})
    session.execute(text("UPDATE patrols SET grid_code = :g WHERE inspector_id = 'gd'"),
                    {"g": other})
    assert _row(session, grid, day) == (0, 0, 0)  # nothing left: the row is gone
    assert grid_days.drift(session) == 0
    # Deletes of patrols with their visits, many at once.
    session.execute(text(
        "DELETE FROM patrol_visits WHERE patrol_id IN (SELECT id FROM patrols WHERE grid_code = "
        ":g AND patrol_on < CURRENT_DATE - 300)"), {"g": other})
    session.execute(text(
        "DELETE FROM patrols p WHERE grid_code = :g AND patrol_on < CURRENT_DATE - 300 AND NOT "
        "EXISTS (SELECT 1 FROM patrol_visits v WHERE v.patrol_id = p.id) AND NOT EXISTS "
        "(SELECT 1 FROM hazards h WHERE h.patrol_id = p.id)"), {"g": other})
    assert grid_days.drift(session) == 0
    assert session.scalar(text(
        "SELECT count(*) FROM grid_days WHERE patrols = 0 AND visits = 0 AND site_days = 0")) == 0


def test_truncate_zeroes_what_it_empties(session):
    session.execute(text("TRUNCATE patrol_visits"))
    assert session.scalar(text("SELECT sum(visits) + sum(site_days) FROM grid_days")) == 0
    assert session.scalar(text("SELECT sum(patrols) FROM grid_days")) > 0
    assert grid_days.drift(session) == 0


def _reference(session, district: str, day, window: int) -> dict[str, tuple]:
    """Per grid, counted straight from the visits and the points: (visits, site-days, last
    patrol on or before the day)."""
    since = day - timedelta(days=window - 1)
    rows = session.execute(text(
        """SELECT g.code,
                  (SELECT count(*) FROM patrol_visits v JOIN projects p ON p.id = v.project_id
                   WHERE p.grid_code = g.code AND v.district_code = :d
                     AND v.visited_on BETWEEN :s AND :u),
                  (SELECT count(DISTINCT (v.project_id, v.visited_on)) FROM patrol_visits v
                   JOIN projects p ON p.id = v.project_id
                   WHERE p.grid_code = g.code AND v.district_code = :d
                     AND v.visited_on BETWEEN :s AND :u),
                  (SELECT max(patrol_on) FROM patrols WHERE grid_code = g.code
                   AND patrol_on <= :u)
           FROM grids g WHERE g.district_code = :d AND g.valid_to IS NULL"""),
        {"d": district, "s": since, "u": day}).all()
    return {r[0]: tuple(r[1:]) for r in rows}


@pytest.mark.parametrize("ago,window", [(0, 30), (0, 7), (45, 30), (200, 90)])
def test_blind_spots_give_the_counts_of_the_visits(session, ago, window):
    day = today_cn() - timedelta(days=ago)
    items = coverage.blind_spots(session, district=DISTRICT, on=day, window_days=window)
    got = {i["grid_code"]: (i["visits"], i["site_days"], i["last_patrol_on"]) for i in items}
    want = _reference(session, DISTRICT, day, window)
    assert got == want
    assert sum(v[0] for v in got.values()) > 0
    if window == 7:  # grids whose last patrol lies before the window are found too
        assert any(v[2] is not None and v[2] < day - timedelta(days=window - 1)
                   for v in got.values())


@pytest.fixture(scope="module")
def committed(engine):
    """A throwaway database with 40 active sites in one grid and a patrol point at each today,
    committed: for the tests of what concurrent transactions and locks do."""
    with private_database(str(engine.url.render_as_string(hide_password=False)), "gd") as url:
        eng = create_engine(url)
        try:
            with eng.begin() as conn:
                sites = conn.scalars(text(
                    """INSERT INTO projects (reg_no, public_id, district_code, street_code,
                           street_name, community_code, community_name, grid_code, grid_name,
                           kind, category, title, address, site, site_input_crs, builder,
                           contractor, investment_cny, floor_area_m2, planned_start,
                           planned_end, risk_factors, public_area, channel,
                           above_limit_reference, above_limit, high_risk, special_area,
                           reviewer_kind, reviewer_code, reviewer_name, departments, decision,
                           state, submitted_on, review_due, source, created_by)
                       SELECT 'GD' || i, 'gd' || i, g.district_code, s.code, s.name, c.code,
                              c.name, g.code, g.name, 'sporadic_work', 'residential_fitout',
                              't', 't', ST_PointOnSurface(g.geom), 'wgs84', '{}', '{}', 1, 1,
                              CURRENT_DATE, CURRENT_DATE + 9, '[]', false, 'online', false,
                              false, false, false, 'community_workstation', 'x', 'x', '[]',
                              '{}', 'in_progress', CURRENT_DATE, CURRENT_DATE + 3, 'test',
                              'test'
                       FROM grids g JOIN communities c ON c.code = g.parent_code
                       JOIN streets s ON s.code = c.parent_code
                       CROSS JOIN generate_series(1, 40) AS i
                       WHERE g.valid_to IS NULL AND c.valid_to IS NULL AND s.valid_to IS NULL
                         AND g.code = (SELECT min(code) FROM grids WHERE valid_to IS NULL)
                       ORDER BY i RETURNING id""")).all()
                patrols = {p: _patrol(conn, p, today_cn()) for p in sites}
            yield eng, sites, patrols
        finally:
            eng.dispose()


def test_two_uploads_crediting_one_site_the_same_day_count_it_once(committed):
    """Two transactions insert a visit to one site on one day, the second while the first is
    open: the second waits for the first (the per-site lock) and sees its visit. (The patrol
    points are there before, so nothing else makes it wait.)"""
    eng, sites, _ = committed
    project, day = sites[0], today_cn()
    with eng.begin() as conn:
        patrols = [_patrol(conn, project, day, f) for f in ("grid_worker", "supervisor")]
    first = eng.connect()
    tx = first.begin()
    _visit(first, project, day, patrol=patrols[0])
    done = threading.Event()

    def second() -> None:
        with eng.begin() as conn:
            _visit(conn, project, day, force="supervisor", patrol=patrols[1])
        done.set()

    t = threading.Thread(target=second)
    t.start()
    time.sleep(1.0)
    assert not done.is_set()  # waiting for the first upload's lock on the site
    tx.commit()
    first.close()
    t.join(timeout=30)
    assert done.is_set()
    with eng.connect() as conn:
        assert conn.execute(text(
            "SELECT sum(visits), sum(site_days) FROM grid_days WHERE day = :d"),
            {"d": day}).one() == (2, 1)
        assert grid_days.drift(conn) == 0


def _locks(conn) -> tuple[int, bool]:
    """This transaction's per-site advisory locks, and whether it holds the visits table's."""
    return tuple(conn.execute(text(
        """SELECT count(*) FILTER (WHERE locktype = 'advisory' AND classid = :c),
                  coalesce(bool_or(locktype = 'relation'
                                   AND relation = 'patrol_visits'::regclass
                                   AND mode = 'ShareRowExclusiveLock' AND granted), false)
           FROM pg_locks WHERE pid = pg_backend_pid()"""),
        {"c": grid_days._LOCK_CLASS}).one())


def test_a_bulk_write_locks_the_table_not_every_site(committed):
    """Per-site locks up to the limit, counted over the transaction; past it one table lock, so
    an import of visits to 50,000 sites does not exhaust the server's lock table."""
    eng, sites, patrols = committed
    day = today_cn()

    def visits(conn, chosen: list[int]) -> None:
        conn.execute(text(
            """INSERT INTO patrol_visits (district_code, patrol_id, project_id, force,
                                          visited_on, arrived_at, how, distance_m)
               SELECT p.district_code, x.patrol, p.id, 'grid_worker', :d, now(), 'nearby', 3
               FROM unnest(CAST(:p AS bigint[]), CAST(:pa AS bigint[])) AS x(project, patrol)
               JOIN projects p ON p.id = x.project"""),
            {"p": chosen, "pa": [patrols[c] for c in chosen], "d": day})

    def counted(conn) -> tuple[int, int]:
        return tuple(conn.execute(text(
            "SELECT coalesce(sum(visits), 0), coalesce(sum(site_days), 0) FROM grid_days g "
            "JOIN projects p ON p.grid_code = g.grid_code AND p.id = :p WHERE g.day = :d"),
            {"p": sites[0], "d": day}).one())

    conn = eng.connect()
    tx = conn.begin()
    try:
        before = counted(conn)  # what other tests left (at most the first site's visits)
        # The installed trigger: per-site locks for an upload's few sites.
        visits(conn, sites[1:4])
        assert _locks(conn) == (3, False)
        conn.execute(text("DELETE FROM patrol_visits WHERE project_id = ANY(:p)"),
                     {"p": sites[1:4]})
        tx.rollback()
        # The same trigger with a limit of 12, to cross it with few sites.
        tx = conn.begin()
        conn.execute(text(grid_days.visits_function_sql(site_lock_limit=12)))
        visits(conn, sites[1:6])
        assert _locks(conn) == (5, False)
        visits(conn, sites[6:11])  # 10 sites locked in all: still one lock each
        assert _locks(conn) == (10, False)
        visits(conn, sites[11:40])  # 39 in all: past the limit, the table instead
        assert _locks(conn) == (10, True)
        conn.execute(text("DELETE FROM patrol_visits WHERE project_id = ANY(:p)"),
                     {"p": sites[1:21]})
        assert _locks(conn) == (10, True)  # no more per-site locks once the table is held
        assert counted(conn) == (before[0] + 19, before[1] + 19)
        assert grid_days.drift(conn) == 0
    finally:
        tx.rollback()
        conn.close()
