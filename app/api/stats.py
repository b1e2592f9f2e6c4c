"""Statistics for officials: monthly trends of registrations, patrols, hazards, on-time rates."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from app.api.access import AnalyseAccess
from app.api.deps import SessionDep
from app.config import get_settings
from app.services import trends

router = APIRouter(prefix="/api/stats", tags=["stats"])


@router.get("/trends")
def monthly_trends(
    session: SessionDep,
    access: AnalyseAccess,
    district: Annotated[str | None, Query(pattern=r"^\d{12}$", description="default: the demo")]
    = None,
    months: Annotated[int, Query(ge=1, le=trends.MAX_MONTHS)] = 12,
    until: Annotated[date | None, Query(description="last day counted; default today")] = None,
):
    """One row per calendar month, oldest first (definitions: app/services/trends.py); an
    account sees the counts of its own area."""
    district = access.district(district, get_settings().demo_district)
    return trends.monthly_trends(session, district=district, months=months, until=until,
                                 scope=None if access.scope.unrestricted else access.scope)
