"""Create the database, its extensions and its schema: what ``xiaosan db init`` does.

Idempotent: run it again and it only migrates what is missing.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.config import get_settings

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
EXTENSIONS = ("postgis",)
OPTIONAL_EXTENSIONS = ("pgrouting",)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def ensure_database(url: str) -> bool:
    """Create the database named in ``url`` if it does not exist. True if it was created."""
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}
            )
            if exists:
                return False
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
            log.info("created database %s", target.database)
            return True
    finally:
        admin.dispose()


def ensure_extensions(url: str) -> list[str]:
    """Create PostGIS (required) and pgRouting (when installed). Returns those present."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    present = []
    try:
        with engine.connect() as conn:
            for ext in EXTENSIONS:
                conn.execute(text(f"CREATE EXTENSION IF NOT EXISTS {ext}"))
                present.append(ext)
            available = set(conn.scalars(text("SELECT name FROM pg_available_extensions")))
            for ext in OPTIONAL_EXTENSIONS:
                if ext in available:
                    conn.execute(text(f"CREATE EXTENSION IF NOT EXISTS {ext}"))
                    present.append(ext)
    finally:
        engine.dispose()
    return present


def migrate(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def init_database(url: str | None = None) -> None:
    """Create (if needed), add extensions, migrate to head."""
    url = url or get_settings().database_url
    ensure_database(url)
    ensure_extensions(url)
    migrate(url)


def drop_database(url: str) -> None:
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
    finally:
        admin.dispose()
