"""Shared fixtures: the real public test data, and a throwaway PostGIS database.

The database is real (never mocked): a fresh database is created for the test session,
migrated with Alembic, loaded with the demo district, and dropped at the end. Each test runs
in a transaction that is rolled back, so tests do not see each other's writes.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
REALDATA = ROOT.parent / "shared" / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The folder of real public data (``../shared/realdata``); tests that need it fail without it."""
    if not REALDATA.is_dir():
        pytest.fail(f"real test data not found at {REALDATA}")
    return REALDATA


def _test_url() -> str:
    from app.config import get_settings

    base = os.environ.get("TEST_DATABASE_URL") or get_settings().database_url
    name = f"xiaosan_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    return make_url(base).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def db_url() -> Iterator[str]:
    """A migrated throwaway database holding the demo district; dropped afterwards."""
    from app.db import session_factory
    from app.dbsetup import drop_database, init_database
    from app.services.demo import load_demo

    url = _test_url()
    try:
        init_database(url)
    except Exception as exc:  # the database is part of the test environment: never skip
        pytest.fail(f"cannot create the test database ({exc}); is PostgreSQL running?")
    try:
        with session_factory(url)() as session:
            load_demo(session)
        yield url
    finally:
        from app.db import get_engine

        get_engine(url).dispose()
        drop_database(url)


@pytest.fixture(scope="session")
def engine(db_url: str) -> Engine:
    return create_engine(db_url)


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session inside a transaction rolled back after the test (commits become savepoints)."""
    conn = engine.connect()
    trans = conn.begin()
    s = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield s
    finally:
        s.close()
        trans.rollback()
        conn.close()


@pytest.fixture
def client(session: Session):
    """A FastAPI test client whose requests share the test's session."""
    from fastapi.testclient import TestClient

    from app.db import get_session
    from app.main import app

    app.dependency_overrides[get_session] = lambda: session
    try:
        with TestClient(app, raise_server_exceptions=False) as c:
            yield c
    finally:
        app.dependency_overrides.clear()


# In CI a skipped test is a failure: every test must really run there.
_skipped: list[str] = []


def pytest_runtest_logreport(report):
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("CI") and _skipped and exitstatus == 0:
        print(f"\nCI: {len(_skipped)} test(s) skipped, which CI counts as failure:")
        for nodeid in _skipped:
            print(f"  {nodeid}")
        session.exitstatus = 1
