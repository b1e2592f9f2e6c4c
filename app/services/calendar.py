"""Chinese working days: weekends and public holidays off, adjusted weekends (调休) on.

The ``calendar_days`` table holds every day that breaks the Monday–Friday rule (holidays,
adjusted working weekends). It is seeded from the ``chinesecalendar`` package for the years it
knows and an official can upsert the days of a year the package does not know yet (the State
Council publishes its notice each November). Days absent from the table follow the weekday rule.
"""

from __future__ import annotations

import calendar as _cal
import logging
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.models import CalendarDay
from app.services import audit
from gis._errors import GisError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkingCalendar:
    """An in-memory view of the exceptions: cheap to build, cheap to ask (a few hundred days)."""

    exceptions: dict[date, bool]

    def is_workday(self, day: date) -> bool:
        known = self.exceptions.get(day)
        return known if known is not None else day.weekday() < 5

    def add_working_days(self, start: date, n: int) -> date:
        """The ``n``-th working day after ``start`` (``start`` itself not counted; n=0: start)."""
        day = start
        remaining = n
        while remaining > 0:
            day += timedelta(days=1)
            if self.is_workday(day):
                remaining -= 1
        return day

    def next_workday(self, day: date) -> date:
        """``day`` if it is a working day, else the first one after it."""
        while not self.is_workday(day):
            day += timedelta(days=1)
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end]; negative when end is before start."""
        if end < start:
            return -self.working_days_between(end, start)
        span = (end - start).days
        return sum(self.is_workday(start + timedelta(days=i)) for i in range(1, span + 1))


def load(session: Session) -> WorkingCalendar:
    """The working calendar as the database holds it now."""
    rows = session.execute(select(CalendarDay.day, CalendarDay.is_workday)).all()
    return WorkingCalendar({r.day: r.is_workday for r in rows})


def add_months(day: date, months: int) -> date:
    """Same day ``months`` later, clamped to the month's end (31 Aug + 6 months → 28/29 Feb)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, _cal.monthrange(year, month)[1]))


def library_days() -> list[tuple[date, bool, str]]:
    """Every exception day ``chinesecalendar`` knows: (day, is_workday, name)."""
    from chinese_calendar import constants

    days = [(d, False, str(name)) for d, name in constants.holidays.items()]
    days += [(d, True, f"{name} 调休上班") for d, name in constants.workdays.items()]
    return sorted(days)


def library_version() -> str:
    from importlib.metadata import version

    return f"chinesecalendar {version('chinesecalendar')}"


def seed_from_library(session: Session, *, actor: str) -> int:
    """Add the library's days that the table lacks; an official's own entries are kept."""
    source = library_version()
    rows = [
        {"day": d, "is_workday": w, "name": n, "source": source, "updated_by": actor}
        for d, w, n in library_days()
    ]
    if not rows:
        return 0
    result = session.execute(
        insert(CalendarDay).values(rows).on_conflict_do_nothing(index_elements=["day"])
        .returning(CalendarDay.day)
    )
    added = len(result.all())
    if added:
        audit.record(
            session, actor=actor, entity="calendar", entity_id=source, action="seed",
            reason=f"{added} days added from {source}", data={"added": added},
        )
    return added


def upsert_days(
    session: Session, *, days: list[dict], actor: str, reason: str | None = None
) -> list[dict]:
    """Set the given days (``day``, ``is_workday``, ``name``): an official's calendar notice.

    Each change is audited with the previous value. Setting a day back to its weekday rule is
    allowed (it is stored, which documents that an official confirmed it).
    """
    if not days:
        raise GisError("days: at least one day is required")
    seen: set[date] = set()
    for i, entry in enumerate(days):
        if not isinstance(entry.get("day"), date):
            raise GisError(f"days[{i}].day: a date (YYYY-MM-DD) is required")
        if not isinstance(entry.get("is_workday"), bool):
            raise GisError(f"days[{i}].is_workday: true or false is required")
        if entry["day"] in seen:
            raise GisError(f"days[{i}].day: {entry['day']} appears twice")
        seen.add(entry["day"])
    existing = {
        r.day: r
        for r in session.scalars(select(CalendarDay).where(CalendarDay.day.in_(seen))).all()
    }
    changed = []
    for entry in days:
        day, workday, name = entry["day"], entry["is_workday"], entry.get("name")
        old = existing.get(day)
        before = old.is_workday if old is not None else day.weekday() < 5
        stmt = insert(CalendarDay).values(
            day=day, is_workday=workday, name=name, source="official", updated_by=actor
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["day"],
            set_={"is_workday": workday, "name": name, "source": "official",
                  "updated_by": actor, "updated_at": func.now()},
        )
        session.execute(stmt)
        audit.record(
            session, actor=actor, entity="calendar", entity_id=day.isoformat(), action="set_day",
            from_state="workday" if before else "rest", to_state="workday" if workday else "rest",
            reason=reason or name,
        )
        changed.append({"day": day, "is_workday": workday, "name": name, "was_workday": before})
    return changed


def year_days(session: Session, year: int) -> list[CalendarDay]:
    """The stored exception days of one year."""
    return list(
        session.scalars(
            select(CalendarDay)
            .where(CalendarDay.day >= date(year, 1, 1), CalendarDay.day <= date(year, 12, 31))
            .order_by(CalendarDay.day)
        )
    )


def known_years(session: Session) -> list[int]:
    days = session.scalars(select(CalendarDay.day)).all()
    return sorted({d.year for d in days})
