"""Sites per grid, state, risk and due base: the triggers keep them equal to a recompute through
every kind of write, a state change racing a new visit to the same site leaves them exact, and
blind spots counted from them give the numbers counted from the sites and their visits."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import text

from app.patrol_rules import PatrolRules
from app.services import coverage, grid_dues, patrols
from app.services.registration import today_cn
from tests._activity import world_fixtures
from tests.test_grid_days import _visit, committed  # noqa: F401 - the fixture is used here too
from tests.test_patrols import grid_points, make_project

DISTRICT = "440304000000"

world, session = world_fixtures(11, DISTRICT)


def _sites(session, grid: str, state: str, high_risk: bool, base_on) -> int:
    return session.scalar(text(
        "SELECT sites FROM grid_dues WHERE grid_code = :g AND state = :s AND high_risk = :h "
        "AND base_on = :b"), {"g": grid, "s": state, "h": high_risk, "b": base_on}) or 0


def _visited(session, project_id: int, day, force: str = "grid_worker") -> None:
    """A visit to the site on ``day``, folded into its summary as an upload does."""
    patrols._update_summary(session, [(None, None, _visit(session, project_id, day, force))])


def test_the_generated_world_is_counted_exactly(session):
    assert grid_dues.drift(session) == 0
    kept, projects = session.execute(text(
        "SELECT (SELECT sum(sites) FROM grid_dues), (SELECT count(*) FROM projects)")).one()
    assert projects > 1000 and kept == projects
    assert session.scalar(text("SELECT count(*) FROM grid_dues WHERE sites = 0")) == 0
    assert session.scalar(text("SELECT count(DISTINCT base_on) FROM grid_dues")) > 30


def test_every_kind_of_write_keeps_the_sites_exact(session):
    (lon, lat), (lon2, lat2) = grid_points(session, 2, offset=7)
    started = today_cn() - timedelta(days=500)  # before the world's year: a key of its own
    site = make_project(session, lon, lat, started_on=started)
    session.flush()
    key = (site.grid_code, "in_progress", False)
    assert _sites(session, *key, started) == 1
    # A visit (a new summary row): the site's base moves to the visit's day.
    day = today_cn() - timedelta(days=450)
    _visited(session, site.id, day)
    assert (_sites(session, *key, started), _sites(session, *key, day)) == (0, 1)
    # A later visit (the summary row updated), then another the same day (no move).
    later = day + timedelta(days=4)
    _visited(session, site.id, later)
    _visited(session, site.id, later, force="supervisor")
    assert (_sites(session, *key, day), _sites(session, *key, later)) == (0, 1)
    assert grid_dues.drift(session) == 0
    # The project's state, risk, grid and start change: it moves key each time.
    session.execute(text("UPDATE projects SET state = 'completion_declared' WHERE id = :p"),
                    {"p": site.id})
    assert _sites(session, site.grid_code, "completion_declared", False, later) == 1
    session.execute(text("UPDATE projects SET high_risk = true WHERE id = :p"), {"p": site.id})
    assert _sites(session, site.grid_code, "completion_declared", True, later) == 1
    other = make_project(session, lon2, lat2).grid_code
    session.execute(text("UPDATE projects SET grid_code = :g WHERE id = :p"),
                    {"g": other, "p": site.id})
    assert _sites(session, other, "completion_declared", True, later) == 1
    assert grid_dues.drift(session) == 0
    # An update that changes nothing counted, and one of many rows at once.
    session.execute(text("UPDATE projects SET title = title || '.' WHERE id = :p"),
                    {"p": site.id})
    session.execute(text(
        "UPDATE projects SET started_on = started_on - 1 WHERE district_code = :d AND "
        "state = 'in_progress' AND id IN (SELECT id FROM projects ORDER BY id LIMIT 300)"),
        {"d": DISTRICT})
    assert grid_dues.drift(session) == 0
    # The summary rebuilt (delete and insert), then the site's visits and summary deleted:
    # it is due from its start again.
    patrols.recompute_visit_summary(session, district_code=DISTRICT)
    assert grid_dues.drift(session) == 0
    session.execute(text("DELETE FROM project_visit_summary WHERE project_id = :p"),
                    {"p": site.id})
    assert _sites(session, other, "completion_declared", True, later) == 0
    assert _sites(session, other, "completion_declared", True, started) == 1
    # The summary truncated.
    session.execute(text("TRUNCATE project_visit_summary"))
    assert grid_dues.drift(session) == 0
    assert session.scalar(text("SELECT count(*) FROM grid_dues WHERE sites = 0")) == 0


@pytest.mark.parametrize("rules", [
    PatrolRules(),
    # Other active states and clocks: the states stay a parameter of the count.
    replace(PatrolRules(), active_states=("accepted", "in_progress", "closed"),
            due_days_high_risk=1, due_days_other=14),
], ids=["default", "other-rules"])
def test_blind_spots_count_as_the_sites_and_their_visits_do(session, rules):
    kept = coverage.blind_spots(session, district=DISTRICT, rules=rules)
    sites = coverage.blind_spots(session, district=DISTRICT, rules=rules, counts="sites")
    assert kept == sites
    assert sum(i["active_sites"] for i in kept) > 100
    assert sum(i["overdue_sites"] for i in kept) > 0
    assert any(0 < i["overdue_sites"] < i["active_sites"] for i in kept)


def test_kept_counts_are_for_today_only(session):
    with pytest.raises(ValueError, match="counts"):
        coverage.blind_spots(session, district=DISTRICT, on=today_cn() - timedelta(days=3),
                             counts="kept")


def _race(eng, first_sql: str, second_sql: str, params: dict) -> bool:
    """Run ``first_sql`` in an open transaction, then ``second_sql`` in another thread; commit
    the first after a second. Whether the second had to wait for the first."""
    first = eng.connect()
    tx = first.begin()
    first.execute(text(first_sql), params)
    done = threading.Event()

    def second() -> None:
        with eng.begin() as conn:
            conn.execute(text(second_sql), params)
        done.set()

    t = threading.Thread(target=second)
    t.start()
    time.sleep(1.0)
    waited = not done.is_set()
    tx.commit()
    first.close()
    t.join(timeout=30)
    assert done.is_set()
    return waited


def test_a_state_change_racing_a_new_visit_leaves_the_counts_exact(committed):  # noqa: F811
    """A project's state changes while an upload folds a visit into its summary, in either
    order: the later of the two waits for the earlier and moves the site from where the earlier
    left it."""
    eng, sites, patrol_of = committed
    state = "UPDATE projects SET state = :s WHERE id = :p"
    summary = patrols._SUMMARY_UPSERT.format(where="id = :v")
    for project, first, second, new_state in (
            (sites[5], state, summary, "completion_declared"),
            (sites[6], summary, state, "closed")):
        with eng.begin() as conn:  # the visit the summary will fold in
            visit = _visit(conn, project, today_cn() - timedelta(days=1),
                           patrol=patrol_of[project])
        assert _race(eng, first, second, {"p": project, "s": new_state, "v": visit})
        with eng.connect() as conn:
            assert grid_dues.drift(conn) == 0
            assert conn.scalar(text(
                "SELECT sites FROM grid_dues g JOIN projects p ON p.grid_code = g.grid_code "
                "AND p.state = g.state WHERE p.id = :p AND g.base_on = :b"),
                {"p": project, "b": today_cn() - timedelta(days=1)}) == 1


def test_installed_on_a_full_database_it_is_filled_exactly(session):
    """The migration's statements, run again on the world (in the test's transaction): the
    table is dropped with its triggers and filled from what is there."""
    before = session.execute(text(
        "SELECT grid_code, state, high_risk, base_on, sites FROM grid_dues ORDER BY 1, 2, 3, 4"
    )).all()
    for statement in grid_dues.drop_sql():
        session.execute(text(statement))
    assert not grid_dues.is_installed(session)
    for statement in grid_dues.install_sql():
        session.execute(text(statement))
    after = session.execute(text(
        "SELECT grid_code, state, high_risk, base_on, sites FROM grid_dues ORDER BY 1, 2, 3, 4"
    )).all()
    assert after == before and len(after) > 100
