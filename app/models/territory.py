"""The territory: district > street > community > grid, each a versioned MultiPolygon layer.

A unit is current while ``valid_to`` is null. Redrawing a level closes the current rows
(``valid_to`` = the import time) and inserts the new ones, so history is never lost and a
fact can be traced to the boundaries in force when it was recorded. Parents are referenced by
code (codes are stable across redraws; row ids are not).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from app.models.base import Base


class BoundaryImport(Base):
    """One import of one level from one file: what came in and what the validation said."""

    __tablename__ = "boundary_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    level: Mapped[str] = mapped_column(String(16), nullable=False)
    district_code: Mapped[str] = mapped_column(String(12), nullable=False)
    source_file: Mapped[str] = mapped_column(Text, nullable=False)
    source_crs: Mapped[str] = mapped_column(String(64), nullable=False)
    feature_count: Mapped[int] = mapped_column(Integer, nullable=False)
    closed_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    report: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    actor: Mapped[str] = mapped_column(String(100), nullable=False)
    imported_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class _Unit:
    """Columns shared by the four levels."""

    level: str = ""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(24), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    district_code: Mapped[str] = mapped_column(String(12), nullable=False)
    geom: Mapped[Any] = mapped_column(
        Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False
    )
    valid_from: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    source_crs: Mapped[str] = mapped_column(String(64), nullable=False)
    source_file: Mapped[str] = mapped_column(Text, nullable=False)

    @declared_attr
    def import_id(cls) -> Mapped[int | None]:  # noqa: N805
        return mapped_column(ForeignKey("boundary_imports.id"))

    @declared_attr.directive
    def __table_args__(cls):  # noqa: N805
        name = cls.__tablename__
        return (
            Index(f"ix_{name}_geom", "geom", postgresql_using="gist"),
            # One current unit per code; closed versions may repeat it.
            Index(
                f"uq_{name}_current_code",
                "code",
                unique=True,
                postgresql_where=text("valid_to IS NULL"),
            ),
            Index(f"ix_{name}_district_code", "district_code"),
        )


class District(_Unit, Base):
    __tablename__ = "districts"
    level = "district"


class Street(_Unit, Base):
    __tablename__ = "streets"
    level = "street"
    parent_code: Mapped[str] = mapped_column(String(24), nullable=False)


class Community(_Unit, Base):
    __tablename__ = "communities"
    level = "community"
    parent_code: Mapped[str] = mapped_column(String(24), nullable=False)


class Grid(_Unit, Base):
    __tablename__ = "grids"
    level = "grid"
    parent_code: Mapped[str] = mapped_column(String(24), nullable=False)


LEVEL_MODELS: dict[str, type[_Unit]] = {
    "district": District,
    "street": Street,
    "community": Community,
    "grid": Grid,
}
LEVELS: tuple[str, ...] = ("district", "street", "community", "grid")
PARENT_LEVEL: dict[str, str | None] = {
    "district": None,
    "street": "district",
    "community": "street",
    "grid": "community",
}
