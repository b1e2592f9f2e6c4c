"""Patrols, the visits they make to sites, hazards, unregistered-work leads and incidents.

A patrol is what one inspector of one force saw on one outing: a point or a cleaned GPS track
(a MultiLineStringM whose M is the fix time in Unix seconds, one line per clean segment), the
checklist answers, photos and findings. Its uploader's own id (``client_id``) makes uploads
idempotent per inspector. Each patrol yields visits (declared, a point near a site, or a track
that dwelt near a site); ``project_visit_summary`` keeps every project's last visit so the
"which sites has nobody seen" question is an index scan, not a scan of patrol points.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    Computed,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class Patrol(Base):
    __tablename__ = "patrols"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    district_code: Mapped[str] = mapped_column(String(12), nullable=False)
    client_id: Mapped[str] = mapped_column(String(64), nullable=False)
    inspector_id: Mapped[str] = mapped_column(String(64), nullable=False)
    inspector_name: Mapped[str | None] = mapped_column(String(100))
    force: Mapped[str] = mapped_column(String(16), nullable=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The Beijing-time day of ``started_at``: coverage counts site-days.
    patrol_on: Mapped[date] = mapped_column(Date, nullable=False)
    location: Mapped[Any] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False), nullable=False
    )
    # The location's coordinates, stored: the (district, day) index carries them, so the
    # aggregated tiles of a period read the points near a tile from the index alone.
    lon: Mapped[float] = mapped_column(Float, Computed("ST_X(location)", persisted=True))
    lat: Mapped[float] = mapped_column(Float, Computed("ST_Y(location)", persisted=True))
    # The Z-order key of the location's zoom-24 cell (gis/cellkey.py, migration 0013): a tile
    # is one range of keys, so the (district, day, key) index reads a tile's points day by day.
    cell_key: Mapped[int] = mapped_column(BigInteger, Computed(
        "xiaosan_cell_key(ST_X(location), ST_Y(location))", persisted=True))
    track: Mapped[Any | None] = mapped_column(
        Geometry("MULTILINESTRINGM", srid=4326, spatial_index=False)
    )
    track_report: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    street_code: Mapped[str | None] = mapped_column(String(24))
    community_code: Mapped[str | None] = mapped_column(String(24))
    grid_code: Mapped[str | None] = mapped_column(String(24))
    checklist: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    photos: Mapped[list[str]] = mapped_column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb")
    )
    findings: Mapped[str | None] = mapped_column(Text)
    payload_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    source: Mapped[str] = mapped_column(String(80), nullable=False)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )

    __table_args__ = (
        UniqueConstraint("inspector_id", "client_id"),
        Index("ix_patrols_location", "location", postgresql_using="gist"),
        Index("ix_patrols_track", "track", postgresql_using="gist"),
        Index("ix_patrols_district_code_patrol_on_cell_key", "district_code", "patrol_on",
              "cell_key", postgresql_include=["street_code", "lon", "lat"]),
        Index("ix_patrols_grid_code_patrol_on", "grid_code", "patrol_on"),
    )


class PatrolVisit(Base):
    """One patrol at one site. ``how``: declared, nearby (the patrol point) or track (dwell)."""

    __tablename__ = "patrol_visits"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    district_code: Mapped[str] = mapped_column(String(12), nullable=False)
    patrol_id: Mapped[int] = mapped_column(ForeignKey("patrols.id"), nullable=False)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), nullable=False)
    force: Mapped[str] = mapped_column(String(16), nullable=False)
    visited_on: Mapped[date] = mapped_column(Date, nullable=False)
    arrived_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    left_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    how: Mapped[str] = mapped_column(String(12), nullable=False)
    distance_m: Mapped[float | None] = mapped_column(Float)
    dwell_s: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        UniqueConstraint("patrol_id", "project_id"),
        Index("ix_patrol_visits_project_id_visited_on", "project_id", "visited_on"),
        Index("ix_patrol_visits_district_code_visited_on", "district_code", "visited_on"),
    )


class ProjectVisitSummary(Base):
    """Each project's latest visit, kept in the same transaction as the visit itself."""

    __tablename__ = "project_visit_summary"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    district_code: Mapped[str] = mapped_column(String(12), nullable=False)
    last_visit_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_visit_on: Mapped[date] = mapped_column(Date, nullable=False)
    last_force: Mapped[str] = mapped_column(String(16), nullable=False)
    visits: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )

    __table_args__ = (
        Index("ix_project_visit_summary_district_code_last_visit_on", "district_code",
              "last_visit_on"),
    )


class ViolationItem(Base):
    """One item of the enforcement catalogue (category, item, clause, legal basis, measure).

    Reference data, not a fact: ``district_code`` is null for items that apply everywhere.
    """

    __tablename__ = "violation_catalogue"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    district_code: Mapped[str | None] = mapped_column(String(12))
    category_code: Mapped[str] = mapped_column(String(8), nullable=False)
    category: Mapped[str] = mapped_column(String(100), nullable=False)
    item: Mapped[str] = mapped_column(Text, nullable=False)
    clause: Mapped[str] = mapped_column(Text, nullable=False)
    legal_basis: Mapped[str] = mapped_column(Text, nullable=False)
    measure: Mapped[str] = mapped_column(Text, nullable=False)
    department: Mapped[str] = mapped_column(String(40), nullable=False)
    example: Mapped[bool] = mapped_column(Boolean, nullable=False)
    source: Mapped[str] = mapped_column(Text, nullable=False)


class Hazard(Base):
    """A hazard (隐患) and its loop: found → ordered → rectified → verified, or → escalated."""

    __tablename__ = "hazards"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    district_code: Mapped[str] = mapped_column(String(12), nullable=False)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"))
    patrol_id: Mapped[int | None] = mapped_column(ForeignKey("patrols.id"))
    location: Mapped[Any] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False), nullable=False
    )
    street_code: Mapped[str | None] = mapped_column(String(24))
    community_code: Mapped[str | None] = mapped_column(String(24))
    grid_code: Mapped[str | None] = mapped_column(String(24))
    hazard_type: Mapped[str] = mapped_column(String(24), nullable=False)
    severity: Mapped[str] = mapped_column(String(12), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    photos: Mapped[list[str]] = mapped_column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb")
    )
    found_on: Mapped[date] = mapped_column(Date, nullable=False)
    found_by: Mapped[str] = mapped_column(String(100), nullable=False)
    responsible: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    due_on: Mapped[date] = mapped_column(Date, nullable=False)
    state: Mapped[str] = mapped_column(String(12), nullable=False)
    ordered_on: Mapped[date | None] = mapped_column(Date)
    rectified_on: Mapped[date | None] = mapped_column(Date)
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    verified_on: Mapped[date | None] = mapped_column(Date)
    escalated_on: Mapped[date | None] = mapped_column(Date)
    violation_code: Mapped[str | None] = mapped_column(ForeignKey("violation_catalogue.code"))
    enforcement_department: Mapped[str | None] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(80), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )

    __table_args__ = (
        Index("ix_hazards_location", "location", postgresql_using="gist"),
        Index("ix_hazards_district_code_state_due_on", "district_code", "state", "due_on"),
        Index("ix_hazards_project_id", "project_id"),
        Index("ix_hazards_found_on", "found_on"),
    )


class UnregisteredWork(Base):
    """Work seen on patrol or reported by the public, matched against registrations nearby."""

    __tablename__ = "unregistered_works"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    district_code: Mapped[str] = mapped_column(String(12), nullable=False)
    location: Mapped[Any] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False), nullable=False
    )
    street_code: Mapped[str | None] = mapped_column(String(24))
    community_code: Mapped[str | None] = mapped_column(String(24))
    grid_code: Mapped[str | None] = mapped_column(String(24))
    category: Mapped[str | None] = mapped_column(String(40))
    description: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(10), nullable=False)
    reported_by: Mapped[str] = mapped_column(String(100), nullable=False)
    reported_on: Mapped[date] = mapped_column(Date, nullable=False)
    patrol_id: Mapped[int | None] = mapped_column(ForeignKey("patrols.id"))
    photos: Mapped[list[str]] = mapped_column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb")
    )
    # lead (to register), matched (an active registration is there), registered, dismissed.
    state: Mapped[str] = mapped_column(String(12), nullable=False)
    matched_project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"))
    match_distance_m: Mapped[float | None] = mapped_column(Float)
    candidates: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb")
    )
    source: Mapped[str] = mapped_column(String(80), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )

    __table_args__ = (
        Index("ix_unregistered_works_location", "location", postgresql_using="gist"),
        Index("ix_unregistered_works_district_code_state", "district_code", "state"),
    )


class Incident(Base):
    """An accident at a small work: type, day, place, casualties."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    district_code: Mapped[str] = mapped_column(String(12), nullable=False)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"))
    incident_type: Mapped[str] = mapped_column(String(24), nullable=False)
    occurred_on: Mapped[date] = mapped_column(Date, nullable=False)
    location: Mapped[Any] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False), nullable=False
    )
    street_code: Mapped[str | None] = mapped_column(String(24))
    community_code: Mapped[str | None] = mapped_column(String(24))
    grid_code: Mapped[str | None] = mapped_column(String(24))
    deaths: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    injuries: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    work_kind: Mapped[str | None] = mapped_column(String(20))
    description: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(80), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )

    __table_args__ = (
        Index("ix_incidents_location", "location", postgresql_using="gist"),
        Index("ix_incidents_district_code_occurred_on", "district_code", "occurred_on"),
    )
