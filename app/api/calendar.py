"""The working-day calendar: read a year, let an official set days, count working days."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from app.api.access import CalendarAccess, ReferenceAccess
from app.api.deps import SessionDep
from app.services import calendar as workcal

router = APIRouter(prefix="/api/calendar", tags=["calendar"])


class DayIn(BaseModel):
    day: date
    is_workday: bool
    name: str | None = Field(None, max_length=100)


class DaysIn(BaseModel):
    days: list[DayIn] = Field(..., min_length=1)
    actor: str = Field(..., min_length=1, description="the official making the change")
    reason: str | None = Field(None, description="e.g. the State Council notice number")


@router.get("/{year}")
def get_year(year: Annotated[int, Field(ge=1990, le=2100)], session: SessionDep,
             access: ReferenceAccess):
    """The holidays and adjusted working days of a year, and its number of working days."""
    cal = workcal.load(session)
    days = workcal.year_days(session, year)
    return {
        "year": year,
        "known": bool(days),
        "working_days": cal.working_days_between(date(year - 1, 12, 31), date(year, 12, 31)),
        "days": [{"day": d.day, "is_workday": d.is_workday, "name": d.name, "source": d.source,
                  "updated_by": d.updated_by} for d in days],
    }


@router.put("/days")
def put_days(body: DaysIn, session: SessionDep, access: CalendarAccess):
    """Set days as holidays or working days (an official's upsert; audited)."""
    try:
        changed = workcal.upsert_days(
            session, days=[d.model_dump() for d in body.days], actor=access.actor(body.actor),
            reason=body.reason)
        session.commit()
    except Exception:
        session.rollback()
        raise
    return {"changed": changed}


@router.get("")
def working_days(
    session: SessionDep,
    access: ReferenceAccess,
    start: date,
    add: Annotated[int | None, Query(ge=0, le=1000)] = None,
    end: date | None = None,
):
    """The ``add``-th working day after ``start``, or the working days in (start, end]."""
    cal = workcal.load(session)
    answer: dict = {"start": start, "start_is_workday": cal.is_workday(start)}
    if add is not None:
        answer["add"] = add
        answer["result"] = cal.add_working_days(start, add)
    if end is not None:
        answer["end"] = end
        answer["working_days"] = cal.working_days_between(start, end)
    return answer
