"""Hazards: deadlines in working days, the loop and its audit, enforcement, leads, incidents."""

from __future__ import annotations

from datetime import date

from sqlalchemy import text

from app.services import hazards
from tests.test_patrols import grid_points, make_project


def test_hazard_loop_through_the_api_with_deadline_and_audit(client, session):
    (pt,) = grid_points(session, 1, offset=300)
    site = make_project(session, *pt, high_risk=True)
    r = client.post("/api/hazards", json={
        "hazard_type": "fall_from_height", "severity": "general", "project": site.reg_no,
        "found_on": "2024-09-27", "photos": ["h/1.jpg"], "actor": "supervisor:李"})
    assert r.status_code == 201, r.text
    props = r.json()["properties"]
    # Found Fri 27 Sep 2024; 3 working days: Sun 29 Sep (调休), Mon 30 Sep, then the National
    # Day holiday to 7 Oct; Tue 8 Oct.
    assert props["due_on"] == "2024-10-08" and props["state"] == "found"
    assert props["responsible"]["party"] == "contractor"
    hid = r.json()["id"]
    steps = [({"action": "order", "on": "2024-09-27"}, "ordered"),
             ({"action": "rectify", "on": "2024-09-30",
               "evidence": {"photos": ["h/1-fixed.jpg"]}}, "rectified"),
             ({"action": "reject", "reason": "安全带未系挂"}, "ordered"),
             ({"action": "rectify", "on": "2024-10-08", "evidence": {"note": "已整改"}},
              "rectified"),
             ({"action": "verify", "on": "2024-10-09"}, "verified")]
    for body, state in steps:
        m = client.post(f"/api/hazards/{hid}/transitions", json={**body, "actor": "supervisor:李"})
        assert m.status_code == 200, m.text
        assert m.json()["properties"]["state"] == state
    trail = session.execute(text(
        "SELECT action, from_state, to_state FROM audit_log WHERE entity = 'hazard' "
        "AND entity_id = :i ORDER BY id"), {"i": str(hid)}).all()
    assert [t.action for t in trail] == ["find", "order", "rectify", "reject", "rectify",
                                         "verify"]
    late = client.post(f"/api/hazards/{hid}/transitions",
                       json={"action": "order", "actor": "x"})
    assert late.status_code == 422
    assert late.json()["detail"][0]["msg"].startswith("action: cannot order a hazard")


def test_rectify_needs_evidence_and_escalation_needs_a_catalogue_item(session):
    (pt,) = grid_points(session, 1, offset=310)
    site = make_project(session, *pt)
    h = hazards.report_hazard(session, actor="a", hazard_type="electric_shock",
                              severity="immediate", project=site.id, found_on=date(2025, 3, 3))
    assert h.due_on == date(2025, 3, 3)
    for kwargs, field in (({"action": "rectify"}, "evidence"),
                          ({"action": "escalate"}, "violation_code"),
                          ({"action": "escalate", "violation_code": "NOPE"}, "violation_code")):
        try:
            hazards.transition(session, hazard=h, actor="a", **kwargs)
        except hazards.GisError as exc:
            assert str(exc).startswith(f"{field}:")
        else:
            raise AssertionError(kwargs)
    hazards.transition(session, hazard=h, actor="a", action="escalate",
                       violation_code="V04-01", on=date(2025, 3, 4))
    assert h.state == "escalated" and h.enforcement_department == "emergency"
    example = session.execute(text("SELECT count(*), bool_and(example), count(DISTINCT "
                                   "category_code) FROM violation_catalogue")).one()
    assert example[1] is True and example[2] == 8


def test_overdue_hazards_are_listed(session):
    (pt,) = grid_points(session, 1, offset=320)
    site = make_project(session, *pt)
    old = hazards.report_hazard(session, actor="a", hazard_type="fire", severity="general",
                                project=site.id, found_on=date(2025, 1, 6))
    done = hazards.report_hazard(session, actor="a", hazard_type="fire", severity="general",
                                 project=site.id, found_on=date(2025, 1, 6))
    hazards.transition(session, hazard=done, actor="a", action="rectify",
                       evidence={"note": "ok"}, on=date(2025, 1, 7))
    items = hazards.overdue_hazards(session, on=date(2025, 2, 1))
    ids = [i["id"] for i in items]
    assert old.id in ids and done.id not in ids
    assert next(i for i in items if i["id"] == old.id)["days_late"] > 0


def test_unregistered_work_is_matched_or_becomes_a_lead(client, session):
    (pt,) = grid_points(session, 1, offset=330)
    lon, lat = pt
    site = make_project(session, lon, lat, category="residential_fitout")
    near = client.post("/api/unregistered", json={
        "location": {"type": "Point", "coordinates": [lon + 0.0002, lat]},
        "channel": "patrol", "category": "residential_fitout", "actor": "grid:王"})
    assert near.status_code == 201
    assert near.json()["state"] == "matched" and near.json()["matched_project_id"] == site.id
    other = client.post("/api/unregistered", json={
        "location": {"type": "Point", "coordinates": [lon + 0.0002, lat]},
        "channel": "public", "category": "billboard", "actor": "public"})
    assert other.json()["state"] == "lead" and other.json()["candidates"]
    lead_id = other.json()["id"]
    bad = client.post(f"/api/unregistered/{lead_id}/transitions",
                      json={"action": "dismiss", "actor": "x"})
    assert bad.status_code == 422
    ok = client.post(f"/api/unregistered/{lead_id}/transitions",
                     json={"action": "register", "actor": "x", "project": site.reg_no})
    assert ok.json()["state"] == "registered"
    layer = client.get("/api/unregistered").json()
    assert layer["type"] == "FeatureCollection" and len(layer["features"]) >= 2


def test_incidents_layer(client, session):
    (pt,) = grid_points(session, 1, offset=340)
    r = client.post("/api/incidents", json={
        "incident_type": "fall_from_height", "occurred_on": "2024-06-03", "injuries": 1,
        "location": {"type": "Point", "coordinates": list(pt)}, "actor": "emergency"})
    assert r.status_code == 201 and r.json()["grid_code"]
    bad = client.post("/api/incidents", json={
        "incident_type": "alien", "occurred_on": "2024-06-03",
        "location": {"type": "Point", "coordinates": list(pt)}, "actor": "x"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "incident_type"
    layer = client.get("/api/incidents", params={"since": "2024-06-01"})
    assert layer.headers["content-type"].startswith("application/geo+json")
    assert any(f["properties"]["incident_type"] == "fall_from_height"
               for f in layer.json()["features"])
