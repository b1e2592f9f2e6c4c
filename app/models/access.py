"""Accounts, failed logins (for throttling) and public reports received through Open311.

An account has one role and, for the territorial roles, one territory code (its scope: a
district, street, community or grid code; everything whose code starts with that unit's
significant digits is inside). Property companies are confined to their estates
(``estate_ids``), inspectors additionally own the patrols filed under their ``inspector_code``.
Accounts are never deleted, only disabled, so the audit log's actors stay resolvable.
``changed_at`` moves whenever the password, role, scope or the active flag changes: tokens
issued before it are refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base

ROLE_NAMES = ("grid_worker", "community", "property", "street_official", "district_official",
              "dispatcher", "inspector", "public_reporter", "admin")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    display_name: Mapped[str] = mapped_column(String(100), nullable=False)
    password_hash: Mapped[str] = mapped_column(String(200), nullable=False)
    role: Mapped[str] = mapped_column(String(24), nullable=False)
    scope_code: Mapped[str | None] = mapped_column(String(24))
    estate_ids: Mapped[list[int]] = mapped_column(
        ARRAY(Integer), nullable=False, server_default=text("'{}'::integer[]")
    )
    inspector_code: Mapped[str | None] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    changed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )

    __table_args__ = (
        CheckConstraint(
            "role IN (" + ", ".join(f"'{r}'" for r in ROLE_NAMES) + ")", name="role"
        ),
        Index("ix_users_scope_code", "scope_code"),
    )


class LoginFailure(Base):
    """One failed password check: by account name and by client address, for throttling."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), nullable=False)
    client_ip: Mapped[str] = mapped_column(String(64), nullable=False)
    at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )

    __table_args__ = (
        Index("ix_login_failures_username_at", "username", "at"),
        Index("ix_login_failures_client_ip_at", "client_ip", "at"),
    )


class ServiceRequest(Base):
    """A public report (Open311 GeoReport v2) and the lead it became for the grid's workers.

    The reporter's address is kept only as a keyed digest (``client_key``), enough to rate-limit
    and never shown. ``contact`` (e-mail, phone, name when given) is for staff only.
    """

    __tablename__ = "service_requests"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    service_code: Mapped[str] = mapped_column(String(32), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    location: Mapped[Any] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False), nullable=False
    )
    address_string: Mapped[str | None] = mapped_column(Text)
    district_code: Mapped[str | None] = mapped_column(String(12))
    street_code: Mapped[str | None] = mapped_column(String(24))
    community_code: Mapped[str | None] = mapped_column(String(24))
    grid_code: Mapped[str | None] = mapped_column(String(24))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("unregistered_works.id"))
    photo: Mapped[bytes | None] = mapped_column(LargeBinary)
    photo_type: Mapped[str | None] = mapped_column(String(32))
    contact: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    account: Mapped[str | None] = mapped_column(String(64))
    client_key: Mapped[str] = mapped_column(String(64), nullable=False)
    requested_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )

    __table_args__ = (
        Index("ix_service_requests_location", "location", postgresql_using="gist"),
        Index("ix_service_requests_client_key_requested_at", "client_key", "requested_at"),
        Index("ix_service_requests_grid_code", "grid_code"),
    )
