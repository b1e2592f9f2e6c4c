"""Chinese working days: the table seeded from chinesecalendar, officials' updates, the clocks."""

from __future__ import annotations

from datetime import date, timedelta

import chinese_calendar
from sqlalchemy import select

from app.models import AuditEntry
from app.services import calendar as workcal


def test_seeded_calendar_agrees_with_the_library_every_day(session):
    cal = workcal.load(session)
    day = date(2005, 1, 1)
    while day <= date(2025, 12, 31):
        assert cal.is_workday(day) == chinese_calendar.is_workday(day), day
        day += timedelta(days=1)


def test_2024_holidays_and_adjusted_working_days(session):
    cal = workcal.load(session)
    for workday in ("2024-02-04", "2024-02-18", "2024-09-29", "2024-10-12"):
        assert cal.is_workday(date.fromisoformat(workday)), workday  # Sundays / a Saturday
    for holiday in range(1, 8):
        assert not cal.is_workday(date(2024, 10, holiday))
    # Fri 27 Sep + 3 working days: Sun 29 (调休), Mon 30, then Tue 8 Oct after the holiday.
    assert cal.add_working_days(date(2024, 9, 27), 3) == date(2024, 10, 8)
    assert cal.add_working_days(date(2024, 10, 10), 3) == date(2024, 10, 14)
    assert cal.working_days_between(date(2024, 9, 27), date(2024, 10, 8)) == 3
    assert cal.add_working_days(date(2024, 2, 9), 1) == date(2024, 2, 18)


def test_working_day_arithmetic_matches_a_brute_force_count(session):
    cal = workcal.load(session)
    start = date(2023, 12, 20)
    for n in (0, 1, 3, 10, 40):
        end = cal.add_working_days(start, n)
        brute = sum(chinese_calendar.is_workday(start + timedelta(days=i))
                    for i in range(1, (end - start).days + 1))
        assert brute == n and (n == 0 or chinese_calendar.is_workday(end))


def test_an_official_adds_a_year_the_library_does_not_know(client, session):
    unknown = date(2031, 2, 3)  # a Monday the library cannot know about yet
    assert not chinese_calendar.constants.holidays.get(unknown)
    body = {"actor": "区应急管理局 张科长", "reason": "国办发明电〔2030〕7号",
            "days": [{"day": "2031-02-03", "is_workday": False, "name": "春节"},
                     {"day": "2031-02-08", "is_workday": True, "name": "春节调休上班"}]}
    r = client.put("/api/calendar/days", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["changed"][0]["was_workday"] is True
    year = client.get("/api/calendar/2031").json()
    assert year["known"] and [d["day"] for d in year["days"]] == ["2031-02-03", "2031-02-08"]
    # Fri 31 Jan + 1 working day: Mon 3 Feb is now a holiday, so Tue 4 Feb.
    r = client.get("/api/calendar", params={"start": "2031-01-31", "add": 1})
    assert r.json()["result"] == "2031-02-04"
    entries = session.scalars(select(AuditEntry).where(AuditEntry.entity == "calendar")
                              .where(AuditEntry.entity_id == "2031-02-03")).all()
    assert [(e.actor, e.from_state, e.to_state) for e in entries] == [
        ("区应急管理局 张科长", "workday", "rest")]


def test_bad_calendar_input_is_a_422(client):
    r = client.put("/api/calendar/days", json={"actor": "x", "days": [
        {"day": "2031-13-01", "is_workday": False}]})
    assert r.status_code == 422
    r = client.put("/api/calendar/days", json={"actor": "x", "days": []})
    assert r.status_code == 422


def test_add_months_clamps_to_the_month_end():
    assert workcal.add_months(date(2024, 8, 31), 6) == date(2025, 2, 28)
    assert workcal.add_months(date(2023, 8, 31), 6) == date(2024, 2, 29)
    assert workcal.add_months(date(2024, 10, 10), 6) == date(2025, 4, 10)


def test_seeding_again_keeps_an_officials_entries(session):
    workcal.upsert_days(session, days=[{"day": date(2024, 10, 1), "is_workday": True,
                                        "name": "test"}], actor="official")
    assert workcal.seed_from_library(session, actor="test") == 0
    assert workcal.load(session).is_workday(date(2024, 10, 1))
