"""Coverage: unpatrolled sites (summary and as-of paths agree), blind spots, forces, uncovered."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from sqlalchemy import text

from app.services import coverage, patrols
from app.services.registration import CHINA_TZ, today_cn
from tests.test_patrols import grid_points, make_project, record

DISTRICT = "440304000000"


def _visit(session, project, days_ago: int, force="supervisor", inspector="i-1"):
    day = today_cn() - timedelta(days=days_ago)
    lon, lat = session.execute(text(
        "SELECT ST_X(site), ST_Y(site) FROM projects WHERE id = :i"), {"i": project.id}).one()
    started = datetime.combine(day, time(10), CHINA_TZ).isoformat()
    (r,) = patrols.upload(session, records=[record(lon, lat, started=started, force=force,
                                                   inspector=inspector)])
    assert r.status == "created" and r.visits >= 1


def _scenario(session):
    pts = grid_points(session, 4, offset=100)
    start = today_cn() - timedelta(days=40)
    sites = {
        "high_seen_recently": make_project(session, *pts[0], high_risk=True, started_on=start),
        "high_seen_5_days_ago": make_project(session, *pts[1], high_risk=True, started_on=start),
        "other_seen_5_days_ago": make_project(session, *pts[2], started_on=start),
        "other_never_seen": make_project(session, *pts[3], started_on=start),
        "other_just_started": make_project(session, pts[3][0] + 0.003, pts[3][1],
                                           started_on=today_cn() - timedelta(days=2)),
    }
    _visit(session, sites["high_seen_recently"], 1)
    _visit(session, sites["high_seen_5_days_ago"], 5)
    _visit(session, sites["other_seen_5_days_ago"], 5)
    return sites


def test_unpatrolled_sites_by_risk_worst_first(session):
    sites = _scenario(session)
    ids = {p.id: name for name, p in sites.items()}
    items = coverage.unpatrolled_sites(session, district=DISTRICT)
    ours = [ids[i["id"]] for i in items if i["id"] in ids]
    # High risk is due every 3 days, others every 7; never seen counts from the start.
    assert ours == ["other_never_seen", "high_seen_5_days_ago"]
    never = next(i for i in items if i["id"] == sites["other_never_seen"].id)
    assert never["never_visited"] and never["days_since"] == 40 and never["overdue_days"] == 33
    high = next(i for i in items if i["id"] == sites["high_seen_5_days_ago"].id)
    assert high["days_since"] == 5 and high["due_days"] == 3 and high["last_force"] == "supervisor"


def test_summary_path_and_as_of_path_agree(session):
    sites = _scenario(session)
    ids = {p.id for p in sites.values()}
    now = {i["id"] for i in coverage.unpatrolled_sites(session, district=DISTRICT)} & ids
    # Yesterday, as of the visits table (the historical path): the same sites plus none new,
    # since yesterday "high_seen_recently" had just been visited.
    yesterday = today_cn() - timedelta(days=1)
    past = coverage.unpatrolled_sites(session, district=DISTRICT, on=yesterday)
    assert {i["id"] for i in past} & ids == now
    # Ten days ago the 5-days-ago visits had not happened: those sites were not overdue then
    # only if they were within their grace; high risk started 30 days earlier, so overdue.
    earlier = {i["id"] for i in coverage.unpatrolled_sites(
        session, district=DISTRICT, on=today_cn() - timedelta(days=10))} & ids
    assert sites["high_seen_5_days_ago"].id in earlier
    assert sites["other_just_started"].id not in earlier  # not yet registered to start


def test_blind_spots_name_the_grids_with_overdue_sites(client, session):
    sites = _scenario(session)
    r = client.get("/api/coverage/blind-spots", params={"district": DISTRICT,
                                                         "only_blind": "true"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    grids = {f["id"]: f["properties"] for f in r.json()["features"]}
    assert sites["other_never_seen"].grid_code in grids
    assert sites["high_seen_recently"].grid_code not in grids
    g = grids[sites["other_never_seen"].grid_code]
    assert g["overdue_sites"] >= 1 and g["blind_spot"]
    assert r.json()["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    seen = grids.get(sites["high_seen_5_days_ago"].grid_code)
    assert seen and seen["visits"] >= 1 and seen["days_since_patrol"] == 5


def test_several_forces_same_site_same_day_count_once_and_each_is_credited(session):
    (pt,) = grid_points(session, 1, offset=200)
    site = make_project(session, *pt)
    for force, inspector in (("supervisor", "a"), ("grid_worker", "b"), ("property", "c")):
        _visit(session, site, 2, force=force, inspector=inspector)
    day = today_cn() - timedelta(days=2)
    got = coverage.coverage_by_force(session, district=DISTRICT, since=day, until=day)
    assert got["visits"] >= 3
    mine = session.execute(text(
        "SELECT count(DISTINCT (project_id, visited_on)) FROM patrol_visits WHERE project_id=:p"),
        {"p": site.id}).scalar()
    assert mine == 1
    assert set(got["by_force"]) >= {"supervisor", "grid_worker", "property"}


def test_unpatrolled_api_geojson_and_uncovered(client, session):
    sites = _scenario(session)
    r = client.get("/api/coverage/unpatrolled", params={"district": DISTRICT})
    assert r.status_code == 200
    body = r.json()
    assert body["type"] == "FeatureCollection"
    assert sites["other_never_seen"].id in [f["id"] for f in body["features"]]
    u = client.get("/api/coverage/uncovered", params={"district": DISTRICT})
    assert u.status_code == 200 and u.json()["type"] == "FeatureCollection"
    bad = client.get("/api/coverage/forces", params={"since": "2025-02-01",
                                                     "until": "2025-01-01"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "until"]


def test_uncovered_areas_follow_the_territory(session):
    """The answer is kept per territory version: closing a grid shows its land at once."""
    before = coverage.uncovered_areas(session, district=DISTRICT, min_area_m2=50)
    code, area = session.execute(text(
        "SELECT code, ST_Area(geom::geography) FROM grids WHERE district_code = :d "
        "AND valid_to IS NULL ORDER BY ST_Area(geom) DESC LIMIT 1"), {"d": DISTRICT}).one()
    session.execute(text("UPDATE grids SET valid_to = now() WHERE code = :c AND valid_to IS NULL"),
                    {"c": code})
    after = coverage.uncovered_areas(session, district=DISTRICT, min_area_m2=50)
    gained = (sum(f["properties"]["area_m2"] for f in after["features"])
              - sum(f["properties"]["area_m2"] for f in before["features"]))
    assert gained == pytest.approx(area, rel=0.01)
    # The copy handed out is the caller's: changing it changes nothing kept.
    after["features"].clear()
    again = coverage.uncovered_areas(session, district=DISTRICT, min_area_m2=50)
    assert again["features"]


def test_warm_up_primes_the_pool_and_keeps_the_outlines(engine):
    from app import warmup

    coverage._OUTLINES.clear()
    coverage._UNCOVERED.clear()
    done = warmup.warm(engine)
    assert done["done"] and done["ms"] > 0
    assert engine.pool.checkedin() >= engine.pool.size()  # the connections stay open
    assert [k[1] for k in coverage._OUTLINES] == [DISTRICT]
    assert [k[1] for k in coverage._UNCOVERED] == [DISTRICT]
    with engine.connect() as conn:
        grids = conn.scalar(text("SELECT count(*) FROM grids WHERE district_code = :d AND "
                                 "valid_to IS NULL"), {"d": DISTRICT})
    assert len(next(iter(coverage._OUTLINES.values()))) == grids


def test_warm_up_stops_at_shutdown_and_gives_its_connections_back(engine):
    from app import warmup

    coverage._OUTLINES.clear()
    coverage._UNCOVERED.clear()
    told = warmup.Warmup(engine)  # the server shuts down before the warm-up begins
    told.stopping.set()
    told.thread.start()
    told.stop()
    assert not told.thread.is_alive()
    assert not coverage._OUTLINES and not coverage._UNCOVERED  # no step after being told
    with pytest.raises(warmup.Stopped):
        warmup.warm(engine, told.stopping)

    running = warmup.Warmup(engine)  # and while it runs: stop waits until it has let go
    running.thread.start()
    running.stop()
    assert not running.thread.is_alive()
    assert engine.pool.checkedout() == 0
