"""The inspector roster and stored patrol route plans.

An inspector starts the day at the community workstation (``start_point``) and walks, rides an
e-bike or drives (``mode``) within a shift, with an optional lunch break, in the grids they are
allowed (``allowed_grids``; null means any grid of their street).

A route plan is never overwritten: a re-plan (new pins, a fixed order, a changed roster) is a
new row with ``parent_id`` set, the same ``root_id`` and ``version`` n + 1. ``inputs`` holds
everything the planner was given (inspectors, sites with priorities and windows, pins, fixed
orders, the matrix source, the solver settings), so a stored plan can be explained and
re-computed later even after the roster or the candidate sites have changed. Per inspector
(and per day of a week plan) ``route_plan_routes`` keeps the road geometry and totals, its
``route_plan_stops`` the ordered visits with times; ``route_plan_left_out`` names every site
not planned and why.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Time,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class Inspector(Base):
    """A patrol inspector of a street (the roster dispatchers plan with)."""

    __tablename__ = "inspectors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    district_code: Mapped[str] = mapped_column(String(12), nullable=False)
    street_code: Mapped[str] = mapped_column(String(24), nullable=False)
    community_code: Mapped[str | None] = mapped_column(String(24))
    start_point: Mapped[Any] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False), nullable=False
    )
    end_point: Mapped[Any | None] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    mode: Mapped[str] = mapped_column(String(8), nullable=False)
    shift_start: Mapped[time] = mapped_column(Time, nullable=False)
    shift_end: Mapped[time] = mapped_column(Time, nullable=False)
    # The lunch break may start between these two times and lasts ``lunch_minutes``.
    lunch_earliest: Mapped[time | None] = mapped_column(Time)
    lunch_latest: Mapped[time | None] = mapped_column(Time)
    lunch_minutes: Mapped[int | None] = mapped_column(Integer)
    allowed_grids: Mapped[list[str] | None] = mapped_column(ARRAY(String(24)))
    max_stops: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    source: Mapped[str] = mapped_column(String(80), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )

    __table_args__ = (
        CheckConstraint("mode IN ('walk', 'ebike', 'car')", name="mode"),
        CheckConstraint("shift_end > shift_start", name="shift"),
        Index("ix_inspectors_street_code", "street_code"),
    )


class RoutePlan(Base):
    """One version of a day's (or a week's) patrol plan for a street or a district."""

    __tablename__ = "route_plans"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    district_code: Mapped[str] = mapped_column(String(12), nullable=False)
    street_code: Mapped[str | None] = mapped_column(String(24))
    kind: Mapped[str] = mapped_column(String(8), nullable=False)  # 'day' or 'week'
    plan_date: Mapped[date] = mapped_column(Date, nullable=False)
    days: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("1"))
    status: Mapped[str] = mapped_column(String(8), nullable=False, server_default="draft")
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    root_id: Mapped[int | None] = mapped_column(ForeignKey("route_plans.id"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("route_plans.id"))
    created_by: Mapped[str] = mapped_column(String(100), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    issued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # 'roads', 'roads+straight_line' (legs off the network estimated) or 'straight_line'.
    matrix_source: Mapped[str] = mapped_column(String(24), nullable=False)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    summary: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)

    __table_args__ = (
        CheckConstraint("status IN ('draft', 'issued')", name="status"),
        CheckConstraint("kind IN ('day', 'week')", name="kind"),
        UniqueConstraint("root_id", "version"),
        Index("ix_route_plans_district_code_plan_date", "district_code", "plan_date"),
    )


class RoutePlanRoute(Base):
    """One inspector's route on one day of a plan: road geometry and totals."""

    __tablename__ = "route_plan_routes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("route_plans.id"), nullable=False)
    day_index: Mapped[int] = mapped_column(Integer, nullable=False)
    route_date: Mapped[date] = mapped_column(Date, nullable=False)
    inspector_code: Mapped[str] = mapped_column(String(32), nullable=False)
    colour: Mapped[str] = mapped_column(String(7), nullable=False)
    geometry: Mapped[Any | None] = mapped_column(
        Geometry("LINESTRING", srid=4326, spatial_index=False)
    )
    distance_m: Mapped[float] = mapped_column(Float, nullable=False)
    travel_s: Mapped[float] = mapped_column(Float, nullable=False)
    depart_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    return_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    detail: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )

    __table_args__ = (UniqueConstraint("plan_id", "day_index", "inspector_code"),)


class RoutePlanStop(Base):
    """A planned visit: sequence number in the route, site, times."""

    __tablename__ = "route_plan_stops"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("route_plans.id"), nullable=False)
    route_id: Mapped[int] = mapped_column(ForeignKey("route_plan_routes.id"), nullable=False)
    sequence: Mapped[int] = mapped_column(Integer, nullable=False)
    site_key: Mapped[str] = mapped_column(String(40), nullable=False)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"))
    hazard_id: Mapped[int | None] = mapped_column(ForeignKey("hazards.id"))
    kind: Mapped[str] = mapped_column(String(24), nullable=False)
    mandatory: Mapped[bool] = mapped_column(Boolean, nullable=False)
    location: Mapped[Any] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False), nullable=False
    )
    arrive_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    start_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    depart_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    wait_s: Mapped[float] = mapped_column(Float, nullable=False)
    travel_s: Mapped[float] = mapped_column(Float, nullable=False)
    distance_m: Mapped[float | None] = mapped_column(Float)
    fixed: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))

    __table_args__ = (
        UniqueConstraint("route_id", "sequence"),
        Index("ix_route_plan_stops_plan_id", "plan_id"),
    )


class RoutePlanLeftOut(Base):
    """A candidate site not in the plan, with the reason and the constraint behind it."""

    __tablename__ = "route_plan_left_out"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("route_plans.id"), nullable=False)
    day_index: Mapped[int] = mapped_column(Integer, nullable=False)
    site_key: Mapped[str] = mapped_column(String(40), nullable=False)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"))
    hazard_id: Mapped[int | None] = mapped_column(ForeignKey("hazards.id"))
    kind: Mapped[str] = mapped_column(String(24), nullable=False)
    mandatory: Mapped[bool] = mapped_column(Boolean, nullable=False)
    location: Mapped[Any] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False), nullable=False
    )
    reason: Mapped[str] = mapped_column(String(32), nullable=False)
    constraint_name: Mapped[str] = mapped_column(String(32), nullable=False)
    detail: Mapped[str] = mapped_column(Text, nullable=False)

    __table_args__ = (Index("ix_route_plan_left_out_plan_id", "plan_id"),)
