"""Patrol upload: idempotent retries, offline batches, per-record errors, visits and summary."""

from __future__ import annotations

import itertools
import uuid
from datetime import date, timedelta

import numpy as np
from sqlalchemy import text

from app.models import Project
from app.services import patrols
from app.services.jurisdiction import assign_point

_seq = itertools.count(1)


def grid_points(session, n: int, offset: int = 0) -> list[tuple[float, float]]:
    """Interior points of ``n`` distinct grids (deterministic)."""
    rows = session.execute(text(
        """SELECT ST_X(ST_PointOnSurface(geom)) AS lon, ST_Y(ST_PointOnSurface(geom)) AS lat
           FROM grids WHERE valid_to IS NULL ORDER BY code OFFSET :o LIMIT :n"""),
        {"n": n, "o": offset}).all()
    return [(r.lon, r.lat) for r in rows]


def make_project(session, lon: float, lat: float, *, state: str = "in_progress",
                 high_risk: bool = False, started_on: date | None = None,
                 submitted_on: date | None = None, kind: str = "small_project",
                 category: str = "residential_fitout") -> Project:
    """A registered project written directly (the registration rules are tested elsewhere)."""
    where = assign_point(session, lon, lat)
    k = next(_seq)
    started_on = started_on or date.today() - timedelta(days=20)
    submitted_on = submitted_on or started_on - timedelta(days=5)
    project = Project(
        reg_no=f"TEST{uuid.uuid4().hex[:12]}", public_id=uuid.uuid4().hex[:20],
        district_code=where.district.code, street_code=where.street.code,
        street_name=where.street.name, community_code=where.community.code,
        community_name=where.community.name, grid_code=where.grid.code,
        grid_name=where.grid.name, kind=kind, category=category, title=f"测试工程{k}",
        address="测试地址", site=f"SRID=4326;POINT({lon} {lat})", site_input_crs="wgs84",
        builder={"name": "测试"}, contractor={"name": "测试"}, investment_cny=10000,
        floor_area_m2=50, planned_start=started_on, planned_end=started_on + timedelta(days=60),
        risk_factors=["work_at_height"] if high_risk else [], public_area=False,
        channel="online", above_limit_reference=False, above_limit=False, high_risk=high_risk,
        special_area=False, reviewer_kind="community_workstation",
        reviewer_code=where.community.code, reviewer_name="测试工作站", departments=[],
        decision={}, state=state, submitted_on=submitted_on, review_due=submitted_on,
        accepted_on=submitted_on, started_on=started_on if state == "in_progress" else None,
        completion_due=started_on + timedelta(days=65), source="test", created_by="test")
    session.add(project)
    session.flush()
    return project


def record(lon, lat, *, client_id=None, inspector="insp-1", force="supervisor",
           started="2025-03-03T10:00:00+08:00", **extra):
    return {"client_id": client_id or uuid.uuid4().hex, "inspector_id": inspector,
            "force": force, "started_at": started,
            "location": {"type": "Point", "coordinates": [lon, lat]}, **extra}


def test_same_offline_batch_uploaded_twice_creates_no_duplicates(client, session):
    pts = grid_points(session, 3)
    site = make_project(session, *pts[0])
    batch = [record(*pts[0], client_id="a1", project_ids=[site.reg_no],
                    checklist={"signboard": "ok", "harness": "problem"}, photos=["p/1.jpg"]),
             record(*pts[1], client_id="a2"),
             record(*pts[2], client_id="a3", force="grid_worker", inspector="insp-2")]
    first = client.post("/api/patrols/batch", json={"records": batch})
    assert first.status_code == 200, first.text
    assert first.json()["counts"] == {"created": 3}
    ids = [r["id"] for r in first.json()["results"]]
    again = client.post("/api/patrols/batch", json={"records": batch})
    assert again.json()["counts"] == {"duplicate": 3}
    assert [r["id"] for r in again.json()["results"]] == ids
    n = session.scalar(text("SELECT count(*) FROM patrols WHERE id = ANY(:i)"), {"i": ids})
    assert n == 3
    # The declared site got exactly one visit and its summary says so.
    visits = session.execute(text(
        "SELECT how, count(*) FROM patrol_visits WHERE project_id = :p GROUP BY how"),
        {"p": site.id}).all()
    assert [tuple(v) for v in visits] == [("declared", 1)]
    summary = session.execute(text(
        "SELECT visits, last_visit_on, last_force FROM project_visit_summary "
        "WHERE project_id = :p"), {"p": site.id}).one()
    assert tuple(summary) == (1, date(2025, 3, 3), "supervisor")


def test_single_upload_retry_and_conflict_status_codes(client, session):
    (pt,) = grid_points(session, 1, offset=10)
    rec = record(*pt, client_id="c-1", findings="围挡缺失")
    created = client.post("/api/patrols", json=rec)
    assert created.status_code == 201, created.text
    assert created.headers["content-type"].startswith("application/geo+json")
    body = created.json()
    assert body["type"] == "Feature" and body["properties"]["grid_code"]
    retry = client.post("/api/patrols", json=rec)
    assert retry.status_code == 200 and retry.json()["id"] == body["id"]
    changed = client.post("/api/patrols", json={**rec, "findings": "other"})
    assert changed.status_code == 409
    assert "c-1" in changed.json()["detail"] and "different content" in changed.json()["detail"]
    # The same client id from another inspector is another record.
    other = client.post("/api/patrols", json={**rec, "inspector_id": "insp-9"})
    assert other.status_code == 201


def test_one_bad_record_does_not_sink_the_batch(client, session):
    pts = grid_points(session, 2, offset=20)
    batch = [record(*pts[0], client_id="ok-1"),
             record(*pts[1], client_id="bad-1", ended_at="2025-03-03T09:00:00+08:00"),
             record(*pts[1], client_id="bad-2", force="ufo"),
             record(0.0, 0.0, client_id="bad-3"),
             record(*pts[1], client_id="bad-4", project_ids=["XS-NO-SUCH"]),
             record(*pts[1], client_id="bad-5", checklist={"nonsense": "ok"}),
             {"inspector_id": "x"}]
    r = client.post("/api/patrols/batch", json={"records": batch})
    assert r.status_code == 200
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["created"] + ["error"] * 6
    fields = [x["errors"][0]["field"] for x in results[1:]]
    assert fields == ["ended_at", "force", "location", "project_ids", "checklist.nonsense",
                      "client_id"]
    assert results[1]["errors"][0]["msg"] == "ended_at: must not be before started_at"
    assert session.scalar(text("SELECT count(*) FROM patrols WHERE client_id LIKE 'bad-%'")) == 0


def test_repeat_inside_one_batch_is_a_duplicate(session):
    (pt,) = grid_points(session, 1, offset=30)
    rec = record(*pt, client_id="twice")
    results = patrols.upload(session, records=[rec, rec, {**rec, "findings": "x"}])
    assert [r.status for r in results] == ["created", "duplicate", "conflict"]
    assert results[0].id == results[1].id == results[2].id


def test_point_near_an_active_site_is_a_visit_and_summary_stays_exact(session):
    pts = grid_points(session, 2, offset=40)
    lon, lat = pts[0]
    near = make_project(session, lon, lat)
    closed = make_project(session, lon + 0.0002, lat, state="closed")
    far = make_project(session, *pts[1])
    # 30 m east of the site: within the default 50 m.
    dlon = 30 / (111_320 * np.cos(np.radians(lat)))
    results = patrols.upload(session, records=[
        record(lon + dlon, lat, started="2025-04-01T09:00:00+08:00"),
        record(lon + dlon, lat, started="2025-04-03T09:00:00+08:00", force="property")])
    assert all(r.status == "created" and r.visits == 1 for r in results)
    rows = session.execute(text(
        "SELECT project_id, how, round(distance_m) AS d FROM patrol_visits "
        "WHERE patrol_id = ANY(:i)"), {"i": [r.id for r in results]}).all()
    assert {(r.project_id, r.how) for r in rows} == {(near.id, "nearby")}
    assert all(25 <= r.d <= 35 for r in rows)
    s = session.execute(text("SELECT * FROM project_visit_summary WHERE project_id = :p"),
                        {"p": near.id}).mappings().one()
    assert (s["visits"], s["last_visit_on"], s["last_force"]) == (2, date(2025, 4, 3), "property")
    assert session.scalar(text("SELECT count(*) FROM project_visit_summary "
                               "WHERE project_id IN (:a, :b)"), {"a": closed.id, "b": far.id}) == 0
    assert patrols.summary_drift(session) == 0
    session.execute(text("DELETE FROM project_visit_summary"))
    assert patrols.summary_drift(session) > 0
    patrols.recompute_visit_summary(session)
    assert patrols.summary_drift(session) == 0


def test_track_patrol_visits_where_it_dwelt(session):
    (pt,) = grid_points(session, 1, offset=50)
    lon0, lat0 = pt
    m = 1 / (111_320 * np.cos(np.radians(lat0)))  # degrees of longitude per metre
    site = make_project(session, lon0 + 100 * m, lat0, high_risk=True)
    passed = make_project(session, lon0 + 250 * m, lat0)
    # Walk east at 1.5 m/s, stand 6 min at the first site, walk past the second.
    xs = np.concatenate([np.arange(0, 100, 15.0), np.full(36, 100.0), np.arange(115, 400, 15.0)])
    coords = [[lon0 + x * m, lat0] for x in xs]
    times = [1_741_000_000 + 10 * i for i in range(len(xs))]
    rec = {"client_id": "trk-1", "inspector_id": "insp-t", "force": "grid_worker",
           "started_at": "2025-03-03T10:00:00+08:00",
           "track": {"coordinates": coords, "times": times}}
    (res,) = patrols.upload(session, records=[rec])
    assert res.status == "created", res.errors
    visits = session.execute(text(
        "SELECT project_id, how, dwell_s FROM patrol_visits WHERE patrol_id = :i"),
        {"i": res.id}).all()
    assert [(v.project_id, v.how) for v in visits] == [(site.id, "track")]
    assert visits[0].dwell_s >= 300
    assert passed.id not in [v.project_id for v in visits]
    stored = session.execute(text(
        "SELECT ST_GeometryType(track) AS gtype, ST_NDims(track) AS nd, ST_M(ST_StartPoint("
        "ST_GeometryN(track, 1))) AS m0 FROM patrols WHERE id = :i"), {"i": res.id}).one()
    assert stored.gtype == "ST_MultiLineString" and stored.m0 == times[0]


def test_track_file_upload_from_geolife(client, session, realdata):
    path = realdata / "beijing_geolife_sample/geolife_user000_20081023025304.csv"
    # Beijing is not in the demo district: the patrol must name a site there to be placed.
    (pt,) = grid_points(session, 1, offset=60)
    site = make_project(session, *pt)
    with path.open("rb") as fh:
        r = client.post("/api/patrols/track", files={"file": ("geolife.csv", fh, "text/csv")},
                        data={"inspector_id": "geo", "client_id": "geolife-1",
                              "force": "public", "project_ids": site.reg_no})
    assert r.status_code == 201, r.text
    report = r.json()["properties"]["track_report"]
    assert report["dropped"] == {"speed_jump": 2} and report["segments"] == 3
    assert r.json()["geometry"]["type"] == "MultiLineString"
