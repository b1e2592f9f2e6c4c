"""Rankings: the numbers per street, the CSV that opens, the print page."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time

from app.services import hazards, patrols, rankings
from app.services.registration import CHINA_TZ
from tests.test_patrols import grid_points, make_project, record

DISTRICT = "440304000000"
SINCE, UNTIL = date(2025, 3, 1), date(2025, 3, 31)


def _activity(session):
    pts = grid_points(session, 2, offset=400)
    a = make_project(session, *pts[0], started_on=date(2025, 3, 5),
                     submitted_on=date(2025, 3, 1))
    make_project(session, *pts[1], started_on=date(2025, 2, 1),
                 submitted_on=date(2025, 1, 20))
    started = datetime.combine(date(2025, 3, 10), time(9), CHINA_TZ).isoformat()
    patrols.upload(session, records=[record(*pts[0], started=started)])
    h = hazards.report_hazard(session, actor="a", hazard_type="fall_from_height",
                              severity="general", project=a.id, found_on=date(2025, 3, 10))
    hazards.transition(session, hazard=h, actor="a", action="rectify",
                       evidence={"note": "ok"}, on=date(2025, 3, 11))
    return a


def test_ranking_counts_for_the_street_of_the_activity(session):
    a = _activity(session)
    rows = rankings.ranking(session, district=DISTRICT, since=SINCE, until=UNTIL)
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    assert len(rows) == 11
    mine = next(r for r in rows if r["code"] == a.street_code)
    assert mine["registrations"] >= 1 and mine["patrols"] >= 1 and mine["site_days"] >= 1
    assert mine["hazards_found"] >= 1 and mine["hazards_rectified_on_time"] >= 1
    assert mine["active_sites"] >= 1
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)


def test_ranking_csv_opens_and_html_prints(client, session):
    a = _activity(session)
    params = {"since": SINCE.isoformat(), "until": UNTIL.isoformat(), "district": DISTRICT}
    r = client.get("/api/rankings", params={**params, "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(table) == 11
    assert {"排名 rank", "名称 name", "逾期未整改 hazards_overdue"} <= set(table[0])
    assert a.street_code in {row["代码 code"] for row in table}
    page = client.get("/api/rankings", params={**params, "format": "html",
                                               "level": "community"})
    assert page.status_code == 200 and "window.print()" in page.text
    assert page.text.count("<tr>") > 100
    bad = client.get("/api/rankings", params={"since": "2025-03-02", "until": "2025-03-01"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "until"
