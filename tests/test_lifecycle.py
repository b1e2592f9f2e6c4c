"""The closed loop: transitions, clocks in working days, overdue lists, the audit trail."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from app.models import AuditEntry, Project
from app.services import lifecycle, registration
from gis._errors import GisError
from tests.test_registration import declaration, quiet_site


def submit(session, k=0, **over) -> Project:
    site = quiet_site(session, k)
    project = registration.submit(session, raw=declaration(site["lon"], site["lat"], **over),
                                  actor="applicant:王先生")
    session.commit()  # a savepoint here: an API error's rollback must not undo the fixture
    return project


def move(client, ref, action, **body):
    return client.post(f"/api/projects/{ref}/transitions",
                       json={"action": action, "actor": "tester", **body})


def test_the_whole_loop_through_the_api_with_its_clocks_and_audit_trail(client, session):
    site = quiet_site(session)
    created = client.post("/api/projects", json=declaration(site["lon"], site["lat"]))
    ref = created.json()["properties"]["reg_no"]
    steps = [
        ("accept", {"on": "2024-10-10"}),
        ("brief", {"on": "2024-10-12"}),  # a Saturday that was a working day (调休)
        ("start", {"on": "2024-10-14"}),
        ("declare_completion", {"on": "2024-11-18", "finished_on": "2024-11-15"}),
        ("close", {"on": "2024-11-19", "reason": "verified on site"}),
    ]
    props = None
    for action, body in steps:
        r = move(client, ref, action, **body)
        assert r.status_code == 200, (action, r.text)
        props = r.json()["properties"]
        if action == "accept":
            # 3 working days after Thu 10 Oct: Fri 11, Sat 12 (调休), Mon 14.
            assert props["briefing_due"] == "2024-10-14"
            assert props["valid_until"] == "2025-04-10"
            assert props["receipt_no"]
    assert props["state"] == "closed" and props["allowed_actions"] == []
    # Finished Fri 15 Nov → declare by Wed 20 Nov.
    assert props["completion_due"] == "2024-11-20"
    history = client.get(f"/api/projects/{ref}/history").json()["history"]
    assert [(h["action"], h["from_state"], h["to_state"]) for h in history] == [
        ("submit", None, "submitted"),
        ("accept", "submitted", "accepted"),
        ("brief", "accepted", "briefed"),
        ("start", "briefed", "in_progress"),
        ("declare_completion", "in_progress", "completion_declared"),
        ("close", "completion_declared", "closed"),
    ]
    assert all(h["actor"] for h in history)
    assert history[-1]["reason"] == "verified on site"
    assert client.get(f"/api/projects/{ref}/receipt").json()["valid_until"] == "2025-04-10"


def test_a_transition_that_is_not_allowed_is_a_422_and_changes_nothing(client, session):
    project = submit(session)
    entries = session.scalar(select(func.count()).select_from(AuditEntry))
    r = move(client, project.reg_no, "brief", on="2024-10-08")
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "action"]
    assert "cannot brief a project that is submitted" in r.json()["detail"][0]["msg"]
    assert move(client, project.reg_no, "fly").status_code == 422
    early = move(client, project.reg_no, "accept", on="2024-09-01")
    assert early.status_code == 422 and early.json()["detail"][0]["loc"] == ["body", "on"]
    no_reason = move(client, project.reg_no, "return")
    assert no_reason.json()["detail"][0]["loc"] == ["body", "reason"]
    session.refresh(project)
    assert project.state == "submitted"
    assert session.scalar(select(func.count()).select_from(AuditEntry)) == entries


def test_returned_registration_is_corrected_and_decided_again(client, session):
    project = submit(session, 1)
    r = move(client, project.reg_no, "return", on="2024-09-30",
             reason="missing: contractor licence")
    assert r.json()["properties"]["state"] == "returned"
    r = move(client, project.reg_no, "resubmit", on="2024-10-08",
             changes={"risk_factors": ["lifting_machinery"]})
    props = r.json()["properties"]
    assert props["state"] == "submitted" and props["high_risk"] is True
    assert props["reviewer_kind"] == "street_construction_office"
    assert props["review_due"] == "2024-10-11"


def test_extension_once_expiry_and_revocation(session):
    project = submit(session, 2)
    lifecycle.transition(session, project=project, action="accept", actor="r",
                         on=date(2024, 10, 8))
    assert lifecycle.expire_due(session, on=date(2025, 4, 8)) == 0
    assert lifecycle.expire_due(session, on=date(2025, 4, 9)) == 1
    assert project.state == "expired"
    lifecycle.transition(session, project=project, action="extend", actor="applicant",
                         on=date(2025, 4, 10), new_planned_end=date(2025, 6, 30))
    assert project.state == "accepted" and project.valid_until == date(2025, 10, 8)
    with pytest.raises(GisError, match="already extended"):
        lifecycle.transition(session, project=project, action="extend", actor="applicant",
                             on=date(2025, 4, 11))
    with pytest.raises(GisError, match="^ground:"):
        lifecycle.transition(session, project=project, action="revoke", actor="patrol",
                             reason="works beyond the registered floor")
    lifecycle.transition(session, project=project, action="revoke", actor="patrol:张三",
                         ground="beyond_scope", reason="works beyond the registered floor",
                         on=date(2025, 5, 6))
    assert project.state == "revoked"
    actions = session.scalars(select(AuditEntry.action).where(
        AuditEntry.entity_id == project.reg_no).order_by(AuditEntry.id)).all()
    assert actions == ["submit", "accept", "expire", "extend", "revoke"]


def test_patrol_closes_a_project_found_finished(session):
    project = submit(session, 3)
    for action, day in (("accept", date(2024, 10, 8)), ("brief", date(2024, 10, 9)),
                        ("start", date(2024, 10, 9))):
        lifecycle.transition(session, project=project, action=action, actor="r", on=day)
    lifecycle.transition(session, project=project, action="close", actor="patrol:李四",
                         on=date(2024, 12, 2))
    assert project.state == "closed" and project.state_reason == "found finished on patrol"
    assert project.finished_on == date(2024, 12, 2)


def test_overdue_items_by_place_and_by_who_must_act(client, session):
    project = submit(session, 4)
    street, grid = project.street_code, project.grid_code
    on_time = client.get("/api/projects/overdue", params={"on": "2024-10-08", "grid": grid})
    assert project.reg_no not in [i["reg_no"] for i in on_time.json()["items"]]
    late = client.get("/api/projects/overdue", params={"on": "2024-10-10", "grid": grid}).json()
    item = next(i for i in late["items"] if i["reg_no"] == project.reg_no)
    assert item["clock"] == "review" and item["due"] == "2024-10-08"
    assert item["actor_kind"] == "community_workstation"
    assert item["working_days_late"] == 2
    by_street = client.get("/api/projects/overdue/summary",
                           params={"on": "2024-10-10", "by": "street"}).json()["groups"]
    assert any(g["code"] == street and g["clocks"].get("review") for g in by_street)
    by_actor = client.get("/api/projects/overdue/summary",
                          params={"on": "2024-10-10", "by": "actor"}).json()["groups"]
    assert any(g["code"] == "community_workstation" for g in by_actor)
    lifecycle.transition(session, project=project, action="accept", actor="r",
                         on=date(2024, 10, 10))
    lifecycle.transition(session, project=project, action="brief", actor="r",
                         on=date(2024, 10, 11))
    items = lifecycle.overdue(session, on=date(2024, 11, 25), grid=grid, actor_kind="builder")
    late_decl = next(i for i in items if i["reg_no"] == project.reg_no)
    assert late_decl["clock"] == "completion_declaration" and late_decl["due"] == date(2024, 11, 20)


def test_projects_are_never_deleted(session):
    project = submit(session, 5)
    session.flush()
    with pytest.raises(DBAPIError, match="never deleted"):
        with session.begin_nested():
            session.execute(text("DELETE FROM projects WHERE id = :i"), {"i": project.id})
