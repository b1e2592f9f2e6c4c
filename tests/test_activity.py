"""The synthetic-activity generator: a year of registrations moved through the loop."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select, text

from app.models import AuditEntry, Project
from app.services import calendar as workcal
from app.services.activity import generate_activity

DISTRICT = "440304000000"


def fingerprint(session, source):
    return session.execute(text(
        "SELECT submitted_on, category, grid_code, state, accepted_on, closed_on FROM projects "
        "WHERE source = :s ORDER BY submitted_on, grid_code, category, state"), {"s": source}).all()


def test_a_year_of_activity_is_plausible_deterministic_and_idempotent(session):
    result = generate_activity(session, seed=7, year=2024, district_code=DISTRICT, rate=900,
                               as_of=date(2025, 6, 30))
    assert not result.skipped and 800 < result.projects < 1000
    source = "synthetic demo activity seed=7 year=2024"
    rows = session.scalars(select(Project).where(Project.source == source)).all()
    assert len(rows) == result.projects
    streets = session.scalar(text("SELECT count(*) FROM streets WHERE valid_to IS NULL"))
    assert len({p.street_code for p in rows}) == streets  # spread over the whole district
    states = result.states
    assert states["closed"] > 0.6 * result.projects and states.get("refused", 0) > 0
    cal = workcal.load(session)
    for p in rows:
        for day in (p.accepted_on, p.briefed_on, p.completion_declared_on, p.closed_on):
            assert day is None or day >= p.submitted_on
        for day in (p.briefed_on, p.closed_on):
            assert day is None or cal.is_workday(day), (p.reg_no, day)
    # Spring Festival 2024 (10–17 Feb) is quieter than an ordinary fortnight in March.
    festival = sum(date(2024, 2, 8) <= p.submitted_on <= date(2024, 2, 21) for p in rows)
    march = sum(date(2024, 3, 4) <= p.submitted_on <= date(2024, 3, 17) for p in rows)
    assert festival < march / 2
    audits = session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.data["synthetic"].as_boolean().is_(True)))
    assert audits == result.audit_entries and audits >= 4 * result.projects
    again = generate_activity(session, seed=7, year=2024, district_code=DISTRICT, rate=900)
    assert again.skipped
    first = fingerprint(session, source)
    with session.begin_nested() as nested:
        session.execute(text("ALTER TABLE projects DISABLE TRIGGER projects_no_delete"))
        session.execute(text("DELETE FROM projects WHERE source = :s"), {"s": source})
        generate_activity(session, seed=7, year=2024, district_code=DISTRICT, rate=900,
                          as_of=date(2025, 6, 30))
        assert fingerprint(session, source) == first
        nested.rollback()
