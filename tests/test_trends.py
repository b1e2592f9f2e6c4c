"""Monthly trends: each figure checked against its own SQL count per month (explicit bounds)."""

from __future__ import annotations

import calendar
from datetime import date

import pytest
from sqlalchemy import text

from app.services.activity import generate_activity
from app.services.patrol_activity import generate_patrols
from app.services.trends import monthly_trends

DISTRICT = "440304000000"
UNTIL = date(2024, 12, 20)  # mid-month: the last month is partial, as the current one is


@pytest.fixture
def activity(session):
    generate_activity(session, seed=11, year=2024, district_code=DISTRICT, rate=1500,
                      as_of=date(2025, 1, 31))
    generate_patrols(session, district_code=DISTRICT, seed=11, as_of=date(2025, 1, 31))
    return session


def _bounds(month: str) -> tuple[date, date]:
    year, mon = (int(p) for p in month.split("-"))
    return date(year, mon, 1), min(date(year, mon, calendar.monthrange(year, mon)[1]), UNTIL)


def _count(session, sql: str, first: date, last: date) -> int:
    return session.execute(text(sql), {"d": DISTRICT, "a": first, "b": last}).scalar_one()


def test_trends_match_independent_counts(activity):
    session = activity
    result = monthly_trends(session, district=DISTRICT, months=12, until=UNTIL)
    months = [row["month"] for row in result["months"]]
    assert months == [f"2024-{m:02d}" for m in range(1, 13)]
    hazards = session.execute(text(
        "SELECT found_on, due_on, rectified_on FROM hazards WHERE district_code = :d"),
        {"d": DISTRICT}).all()
    closed = session.execute(text(
        "SELECT closed_on, completion_declared_on, completion_due FROM projects "
        "WHERE district_code = :d AND closed_on IS NOT NULL"), {"d": DISTRICT}).all()
    assert sum(r["patrols"] for r in result["months"]) > 1000
    assert sum(r["hazards"] for r in result["months"]) > 10
    for row in result["months"]:
        first, last = _bounds(row["month"])
        assert row["registrations"] == _count(session, "SELECT count(*) FROM projects WHERE "
                                              "district_code = :d AND submitted_on >= :a AND "
                                              "submitted_on <= :b", first, last)
        assert row["patrols"] == _count(session, "SELECT count(*) FROM patrols WHERE "
                                        "district_code = :d AND patrol_on >= :a AND "
                                        "patrol_on <= :b", first, last)
        found = [h for h in hazards if first <= h.found_on <= last]
        decided = [h for h in found if h.rectified_on is not None or h.due_on < UNTIL]
        on_time = [h for h in decided if h.rectified_on is not None and h.rectified_on <= h.due_on]
        assert (row["hazards"], row["hazards_decided"], row["hazards_on_time"]) == (
            len(found), len(decided), len(on_time))
        assert row["hazard_on_time_rate"] == (round(len(on_time) / len(decided), 4)
                                              if decided else None)
        month_closed = [c for c in closed if first <= c.closed_on <= last]
        in_time = [c for c in month_closed if c.completion_declared_on is not None
                   and c.completion_declared_on <= c.completion_due]
        assert (row["closed"], row["closed_on_time"]) == (len(month_closed), len(in_time))
        assert row["close_on_time_rate"] == (round(len(in_time) / len(month_closed), 4)
                                             if month_closed else None)


def test_trends_api(client, activity):
    r = client.get("/api/stats/trends", params={"months": 3, "until": "2024-12-20"})
    assert r.status_code == 200
    body = r.json()
    assert [m["month"] for m in body["months"]] == ["2024-10", "2024-11", "2024-12"]
    assert body["since"] == "2024-10-01" and body["until"] == "2024-12-20"
    assert body["months"] == monthly_trends(activity, district=DISTRICT, months=3,
                                            until=UNTIL)["months"]
    for bad in ({"months": 0}, {"months": 61}, {"district": "4403"}):
        assert client.get("/api/stats/trends", params=bad).status_code == 422


def test_trends_of_an_empty_month_have_no_rate(session):
    result = monthly_trends(session, district=DISTRICT, months=2, until=date(2001, 2, 10))
    assert [r["month"] for r in result["months"]] == ["2001-01", "2001-02"]
    for row in result["months"]:
        assert row["registrations"] == row["patrols"] == row["hazards"] == 0
        assert row["hazard_on_time_rate"] is None and row["close_on_time_rate"] is None


def test_trends_of_a_street_official_count_the_street_only(client_as, activity):
    street = activity.execute(text(
        "SELECT street_code FROM projects GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")).scalar()
    official = client_as("street_official", street)
    body = official.get("/api/stats/trends", params={"months": 12, "until": "2024-12-20"}).json()
    for row in body["months"]:
        first, last = _bounds(row["month"])
        assert row["registrations"] == activity.execute(text(
            "SELECT count(*) FROM projects WHERE street_code = :s AND submitted_on >= :a "
            "AND submitted_on <= :b"), {"s": street, "a": first, "b": last}).scalar_one()
        assert row["patrols"] == activity.execute(text(
            "SELECT count(*) FROM patrols WHERE street_code = :s AND patrol_on >= :a "
            "AND patrol_on <= :b"), {"s": street, "a": first, "b": last}).scalar_one()
    everyone = monthly_trends(activity, district=DISTRICT, months=12, until=UNTIL)["months"]
    assert sum(r["registrations"] for r in body["months"]) < sum(
        r["registrations"] for r in everyone)
    assert client_as("grid_worker", "440304001018001").get("/api/stats/trends").status_code == 403
