"""Monthly trends of a district: registrations, patrols, hazards and two on-time rates.

What officials watch month by month (DOMAIN.md "What officials watch"), one row per calendar
month, the current month last (it is partial: the figures are up to today):

``registrations``
    projects submitted in the month (whatever became of them);
``patrols``
    patrols made in the month (``patrol_on``, the Beijing-time day);
``hazards``
    hazards found in the month;
``hazards_decided`` / ``hazards_on_time`` / ``hazard_on_time_rate``
    of the hazards found in the month, those whose outcome is known — rectified, or past
    their deadline as of today — and among them those rectified by the deadline. A hazard
    still inside its deadline and not yet rectified is neither late nor on time, so it is left
    out rather than counted against the month;
``closed`` / ``closed_on_time`` / ``close_on_time_rate``
    projects closed out in the month, and those whose completion was declared within its
    working-day clock (the same rule as the rankings).

A rate is ``None`` when its month has nothing to measure. With an account's ``scope`` every
count keeps only the rows inside it (a street official sees the street's months).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.services.registration import today_cn
from gis._errors import GisError

if TYPE_CHECKING:
    from app.access import Scope

MAX_MONTHS = 60

_SQL = """
WITH months AS (
    SELECT generate_series(CAST(:first AS date), CAST(:last AS date), interval '1 month')::date
           AS m),
reg AS (
    SELECT date_trunc('month', p.submitted_on)::date AS m, count(*) AS n
    FROM projects p WHERE p.district_code = :d AND p.submitted_on BETWEEN :first AND :today
      AND {in_scope_p}
    GROUP BY 1),
pat AS (
    SELECT date_trunc('month', t.patrol_on)::date AS m, count(*) AS n
    FROM patrols t WHERE t.district_code = :d AND t.patrol_on BETWEEN :first AND :today
      AND {in_scope_t}
    GROUP BY 1),
hz AS (
    SELECT date_trunc('month', h.found_on)::date AS m, count(*) AS n,
           count(*) FILTER (WHERE h.rectified_on IS NOT NULL OR h.due_on < :today) AS decided,
           count(*) FILTER (WHERE h.rectified_on IS NOT NULL AND h.rectified_on <= h.due_on)
               AS on_time
    FROM hazards h WHERE h.district_code = :d AND h.found_on BETWEEN :first AND :today
      AND {in_scope_h}
    GROUP BY 1),
cl AS (
    SELECT date_trunc('month', p.closed_on)::date AS m, count(*) AS n,
           count(*) FILTER (WHERE p.completion_declared_on IS NOT NULL
                            AND p.completion_declared_on <= p.completion_due) AS on_time
    FROM projects p WHERE p.district_code = :d AND p.closed_on BETWEEN :first AND :today
      AND {in_scope_p}
    GROUP BY 1)
SELECT months.m, coalesce(reg.n, 0) AS registrations, coalesce(pat.n, 0) AS patrols,
       coalesce(hz.n, 0) AS hazards, coalesce(hz.decided, 0) AS hazards_decided,
       coalesce(hz.on_time, 0) AS hazards_on_time, coalesce(cl.n, 0) AS closed,
       coalesce(cl.on_time, 0) AS closed_on_time
FROM months
LEFT JOIN reg ON reg.m = months.m LEFT JOIN pat ON pat.m = months.m
LEFT JOIN hz ON hz.m = months.m LEFT JOIN cl ON cl.m = months.m
ORDER BY months.m
"""


def _month_start(day: date, back: int) -> date:
    """The first day of the month ``back`` months before ``day``'s month."""
    index = day.year * 12 + day.month - 1 - back
    return date(index // 12, index % 12 + 1, 1)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def monthly_trends(
    session: Session,
    *,
    district: str,
    months: int = 12,
    until: date | None = None,
    scope: Scope | None = None,
) -> dict[str, Any]:
    """The last ``months`` calendar months up to ``until`` (default today), oldest first."""
    if not 1 <= months <= MAX_MONTHS:
        raise GisError(f"months: must be between 1 and {MAX_MONTHS}")
    today = until or today_cn()
    first = _month_start(today, months - 1)
    last = _month_start(today, 0)
    params: dict[str, Any] = {"d": district, "first": first, "last": last, "today": today}
    predicates = {}
    for alias, geom in (("p", "site"), ("t", "location"), ("h", "location")):
        if scope is None:
            predicates[f"in_scope_{alias}"] = "true"
            continue
        predicate, values = scope.sql(alias, geom=geom, key=f"scope_{alias}")
        predicates[f"in_scope_{alias}"] = predicate
        params.update(values)
    rows = session.execute(text(_SQL.format(**predicates)), params).mappings().all()
    out = []
    for r in rows:
        row = dict(r)
        row["month"] = row.pop("m").strftime("%Y-%m")
        row["hazard_on_time_rate"] = _rate(row["hazards_on_time"], row["hazards_decided"])
        row["close_on_time_rate"] = _rate(row["closed_on_time"], row["closed"])
        out.append(row)
    return {"district": district, "since": first.isoformat(), "until": today.isoformat(),
            "months": out}
