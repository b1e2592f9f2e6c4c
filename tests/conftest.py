"""Shared fixtures: the real public test data, and a throwaway PostGIS database.

The database is real (never mocked): a fresh database is created for the test session,
migrated with Alembic, loaded with the demo district, and dropped at the end. Each test runs
in a transaction that is rolled back, so tests do not see each other's writes.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
REALDATA = ROOT.parent / "shared" / "realdata"
# One signing key for this process and the servers it starts, so that a token minted here is
# accepted by ``live_server`` too. ``TEST_ADMIN`` is a committed administrator account.
os.environ.setdefault("XIAOSAN_SECRET_KEY", secrets.token_hex(32))
TEST_ADMIN = "test-admin"
# The in-process test clients start the app once per test: no background warm-up there (it has
# its own tests in test_coverage.py); the servers started as processes warm up as in service.
os.environ.setdefault("XIAOSAN_WARMUP", "0")
# Nor does the test process freeze its objects for the garbage collector (app/gcpolicy.py):
# they are many tests' objects, not one server's.
os.environ.setdefault("XIAOSAN_GC_FREEZE", "0")


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The real public data (``../shared/realdata``); tests that need it fail without it."""
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
            _add_test_user(session, TEST_ADMIN, "admin")
            session.commit()
        yield url
    finally:
        from app.db import get_engine

        get_engine(url).dispose()
        drop_database(url)


@pytest.fixture(scope="session")
def engine(db_url: str) -> Iterator[Engine]:
    eng = create_engine(db_url)
    try:
        yield eng
    finally:
        eng.dispose()


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
            c.headers["Authorization"] = f"Bearer {_token(TEST_ADMIN, 'admin')}"
            yield c
    finally:
        app.dependency_overrides.clear()


_HASH: list[str] = []


def _add_test_user(session: Session, username: str, role: str, scope_code: str | None = None,
                   **kwargs):
    """An account for tests (its password is unknown: tests mint tokens directly)."""
    from app.security import hash_password
    from app.services.users import create_user

    if not _HASH:
        _HASH.append(hash_password(secrets.token_urlsafe(16)))
    return create_user(session, username=username, password="", role=role,
                       scope_code=scope_code, password_hash=_HASH[0], actor="tests", **kwargs)


def _token(username: str, role: str) -> str:
    from app.security import create_access_token

    return create_access_token(username, role)


@pytest.fixture
def client_as(session: Session):
    """``client_as(role, scope_code, estate_ids=..., inspector_code=...)``: a test client
    signed in as a new account of that role and scope (in the test's transaction);
    ``client_as(None)`` sends no credentials."""
    from fastapi.testclient import TestClient

    from app.db import get_session
    from app.main import app

    app.dependency_overrides[get_session] = lambda: session
    made: list[TestClient] = []

    def make(role: str | None, scope_code: str | None = None, **kwargs) -> TestClient:
        c = TestClient(app, raise_server_exceptions=False)
        made.append(c)
        if role is not None:
            user = _add_test_user(session, f"t-{role}-{uuid.uuid4().hex[:8]}", role, scope_code,
                                  **kwargs)
            session.commit()
            c.headers["Authorization"] = f"Bearer {_token(user.username, role)}"
            c.user = user
        return c

    try:
        yield make
    finally:
        for c in made:
            c.close()
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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_server(db_url: str) -> Iterator[str]:
    """The real app served by uvicorn on loopback against the test database."""
    import subprocess
    import sys
    import time
    import urllib.request

    port = _free_port()
    env = dict(os.environ, DATABASE_URL=db_url, XIAOSAN_WARMUP="1", XIAOSAN_GC_FREEZE="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/health", timeout=1)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail("the app server exited at start")
                time.sleep(0.2)
        else:
            pytest.fail("the app server did not answer within 20 s")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


ARTIFACTS = ROOT / "artifacts"
CHROMIUM = os.environ.get("XIAOSAN_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium from Debian, driven by Playwright (no browser download)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run script/bootstrap")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    """A fresh page that records console errors and failed requests (``page.problems``)."""
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="zh-CN")
    # Signed in as the test administrator on every local server (cookies ignore the port).
    from app.security import COOKIE_NAME

    context.add_cookies([{"name": COOKIE_NAME, "value": _token(TEST_ADMIN, "admin"),
                          "domain": "127.0.0.1", "path": "/", "httpOnly": True,
                          "sameSite": "Strict"}])
    pg = context.new_page()
    problems: list[str] = []
    pg.on(
        "console",
        lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    pg.problems = problems
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture
def cli(db_url: str, monkeypatch):
    """Run the ``xiaosan`` CLI against the test database: ``cli("jurisdiction", "at", ...)``.

    The CLI commits through its own engine (as it does for a user), so what it writes stays in
    the session's test database.
    """
    from typer.testing import CliRunner

    from app.cli import app
    from app.config import get_settings
    from app.db import get_engine

    monkeypatch.setitem(os.environ, "DATABASE_URL", db_url)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        yield lambda *args: runner.invoke(app, [str(a) for a in args])
    finally:
        get_engine(None).dispose()
        get_engine(db_url).dispose()
        get_engine.cache_clear()
        get_settings.cache_clear()
