"""Registrations of small works and the layers routing reads: special places, estates, calendar.

A project row holds the registration as declared, the decision taken on it (and why), where it
lies (street, community, grid as they were at registration), who reviews it, its loop state and
its clock deadlines. Its history is the audit log (entity ``project``); nothing is deleted.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reg_no: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    public_id: Mapped[str] = mapped_column(String(24), nullable=False, unique=True)
    district_code: Mapped[str] = mapped_column(String(12), nullable=False)
    street_code: Mapped[str] = mapped_column(String(24), nullable=False)
    street_name: Mapped[str] = mapped_column(String(200), nullable=False)
    community_code: Mapped[str] = mapped_column(String(24), nullable=False)
    community_name: Mapped[str] = mapped_column(String(200), nullable=False)
    grid_code: Mapped[str] = mapped_column(String(24), nullable=False)
    grid_name: Mapped[str] = mapped_column(String(200), nullable=False)

    # As declared.
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    category: Mapped[str] = mapped_column(String(40), nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    address: Mapped[str] = mapped_column(Text, nullable=False)
    site: Mapped[Any] = mapped_column(
        Geometry("GEOMETRY", srid=4326, spatial_index=False), nullable=False
    )
    site_input_crs: Mapped[str] = mapped_column(String(16), nullable=False)
    builder: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    contractor: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    investment_cny: Mapped[Decimal] = mapped_column(Numeric(14, 2), nullable=False)
    floor_area_m2: Mapped[Decimal] = mapped_column(Numeric(12, 2), nullable=False)
    planned_start: Mapped[date] = mapped_column(Date, nullable=False)
    planned_end: Mapped[date] = mapped_column(Date, nullable=False)
    risk_factors: Mapped[list[str]] = mapped_column(JSONB, nullable=False)
    public_area: Mapped[bool] = mapped_column(Boolean, nullable=False)
    channel: Mapped[str] = mapped_column(String(10), nullable=False)
    above_limit_reference: Mapped[bool] = mapped_column(Boolean, nullable=False)

    # As decided (and why: ``decision`` holds every rule that fired).
    above_limit: Mapped[bool] = mapped_column(Boolean, nullable=False)
    high_risk: Mapped[bool] = mapped_column(Boolean, nullable=False)
    special_area: Mapped[bool] = mapped_column(Boolean, nullable=False)
    reviewer_kind: Mapped[str] = mapped_column(String(32), nullable=False)
    reviewer_code: Mapped[str] = mapped_column(String(40), nullable=False)
    reviewer_name: Mapped[str] = mapped_column(String(200), nullable=False)
    departments: Mapped[list[str]] = mapped_column(JSONB, nullable=False)
    decision: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)

    # The loop.
    state: Mapped[str] = mapped_column(String(24), nullable=False)
    state_reason: Mapped[str | None] = mapped_column(Text)
    submitted_on: Mapped[date] = mapped_column(Date, nullable=False)
    review_due: Mapped[date] = mapped_column(Date, nullable=False)
    accepted_on: Mapped[date | None] = mapped_column(Date)
    briefing_due: Mapped[date | None] = mapped_column(Date)
    briefed_on: Mapped[date | None] = mapped_column(Date)
    started_on: Mapped[date | None] = mapped_column(Date)
    # Completion must be declared within N working days of the (planned, then actual) end.
    completion_due: Mapped[date | None] = mapped_column(Date)
    finished_on: Mapped[date | None] = mapped_column(Date)
    completion_declared_on: Mapped[date | None] = mapped_column(Date)
    closed_on: Mapped[date | None] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    extensions: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default=text("0"))
    receipt_no: Mapped[str | None] = mapped_column(String(40))

    source: Mapped[str] = mapped_column(String(80), nullable=False)
    created_by: Mapped[str] = mapped_column(String(100), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )

    __table_args__ = (
        Index("ix_projects_site", "site", postgresql_using="gist"),
        # Covering: blind spots count active and overdue sites per grid from the index alone.
        Index("ix_projects_district_code_state", "district_code", "state",
              postgresql_include=["grid_code", "high_risk", "started_on", "briefed_on",
                                  "accepted_on", "submitted_on", "id"]),
        Index("ix_projects_street_code", "street_code"),
        Index("ix_projects_community_code", "community_code"),
        Index("ix_projects_grid_code", "grid_code"),
        Index("ix_projects_source", "source"),
        Index("ix_projects_submitted_on", "submitted_on"),
    )


class SpecialPlace(Base):
    """Schools, hospitals, factories…: places patrol staff find hard to enter (000 row 5)."""

    __tablename__ = "special_places"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    district_code: Mapped[str] = mapped_column(String(12), nullable=False)
    kind: Mapped[str] = mapped_column(String(24), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    geom: Mapped[Any] = mapped_column(
        Geometry("GEOMETRY", srid=4326, spatial_index=False), nullable=False
    )
    source: Mapped[str] = mapped_column(Text, nullable=False)
    synthetic: Mapped[bool] = mapped_column(Boolean, nullable=False)

    __table_args__ = (
        Index("ix_special_places_geom", "geom", postgresql_using="gist"),
        Index("ix_special_places_district_code", "district_code"),
    )


class Estate(Base):
    """A residential estate (小区) and the property company that manages it."""

    __tablename__ = "estates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    district_code: Mapped[str] = mapped_column(String(12), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    property_company: Mapped[str] = mapped_column(String(200), nullable=False)
    property_phone: Mapped[str | None] = mapped_column(String(40))
    geom: Mapped[Any] = mapped_column(
        Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False
    )
    source: Mapped[str] = mapped_column(Text, nullable=False)
    synthetic: Mapped[bool] = mapped_column(Boolean, nullable=False)

    __table_args__ = (
        Index("ix_estates_geom", "geom", postgresql_using="gist"),
        Index("ix_estates_district_code", "district_code"),
    )


class CalendarDay(Base):
    """A day that is not an ordinary Monday–Friday workday or Saturday/Sunday rest day.

    National (the State Council's holiday notice), so it carries no district code. Days absent
    from the table follow the weekday rule.
    """

    __tablename__ = "calendar_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    is_workday: Mapped[bool] = mapped_column(Boolean, nullable=False)
    name: Mapped[str | None] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(100), nullable=False)
    updated_by: Mapped[str] = mapped_column(String(100), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
