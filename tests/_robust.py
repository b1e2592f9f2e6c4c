"""Helpers shared by the robustness tests (fuzzing, limits, concurrency, faults).

The concurrency and fault tests commit thousands of rows, kill processes and restart
PostgreSQL, so they never use the shared session database: they make their own throwaway
database (:func:`private_database`), or their own throwaway PostgreSQL cluster
(:class:`PrivateCluster`), and serve the app from it with uvicorn (:func:`serve`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
PG_BIN = Path(os.environ.get("XIAOSAN_PG_BIN", "/usr/lib/postgresql/15/bin"))
ADMIN = "robust-admin"


def auth_headers(client) -> dict[str, str]:
    """The credentials the ``client`` fixture sends by default (none while the API is open).

    Requests built by hand (Schemathesis cases, raw httpx against a server) carry these
    explicitly, so the same tests run with or without authentication in front of the API.
    """
    value = client.headers.get("authorization")
    return {"Authorization": value} if value else {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def admin_headers(url: str) -> dict[str, str]:
    """A Bearer token for an administrator account created in the database at ``url``.

    Servers started by :func:`serve` inherit this process's ``XIAOSAN_SECRET_KEY`` (set by
    ``conftest``), so they accept the token.
    """
    from app.db import get_engine, session_factory
    from app.security import create_access_token, hash_password
    from app.services.users import create_user, get_user

    with session_factory(url)() as session:
        if get_user(session, ADMIN) is None:
            create_user(session, username=ADMIN, password="", role="admin", scope_code=None,
                        password_hash=hash_password(uuid.uuid4().hex), actor="tests")
            session.commit()
    # No pooled connection may outlive this call: the fault tests stop the server under it.
    get_engine(url).dispose()
    return {"Authorization": f"Bearer {create_access_token(ADMIN, 'admin')}"}


def load_territory(url: str) -> None:
    """Migrate the database at ``url`` and load the demo district into it."""
    from app.db import get_engine, session_factory
    from app.dbsetup import init_database
    from app.services.demo import load_demo

    init_database(url)
    with session_factory(url)() as session:
        load_demo(session)
        session.commit()
    get_engine(url).dispose()


@contextlib.contextmanager
def private_database(base_url: str, tag: str) -> Iterator[str]:
    """A migrated throwaway database with the demo district, on the server of ``base_url``."""
    from app.db import get_engine
    from app.dbsetup import drop_database

    name = f"xiaosan_{tag}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = make_url(base_url).set(database=name).render_as_string(hide_password=False)
    try:
        load_territory(url)
        yield url
    finally:
        get_engine(url).dispose()
        drop_database(url)


class Server:
    """The app under uvicorn on loopback (a subprocess that can be killed and restarted)."""

    def __init__(self, db_url: str, *, env: dict[str, str] | None = None, workers: int = 1):
        self.db_url = db_url
        self.extra = env or {}
        self.workers = workers
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        # The server's own log (it warns on every 503) goes to a file, not the test output.
        self.log = Path(tempfile.mkstemp(prefix="xiaosan-server-", suffix=".log")[1])

    def start(self, timeout_s: float = 30.0) -> None:
        env = dict(os.environ, DATABASE_URL=self.db_url, XIAOSAN_WARMUP="1",
                   XIAOSAN_GC_FREEZE="1", **self.extra)
        cmd = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1",
               "--port", str(self.port), "--log-level", "warning"]
        if self.workers > 1:
            cmd += ["--workers", str(self.workers)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.base}/health", timeout=1)
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("the app server exited at start") from None
                time.sleep(0.1)
        raise RuntimeError(f"the app server did not answer within {timeout_s:.0f} s")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no rollback, no goodbye."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def serve(db_url: str, **kwargs) -> Iterator[Server]:
    server = Server(db_url, **kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        server.log.unlink(missing_ok=True)


class PrivateCluster:
    """A throwaway PostgreSQL cluster on a free port, owned by the ``postgres`` OS user.

    For tests that stop the database server: the shared cluster on 5432 is never touched.
    ``initdb`` refuses to run as root, so every server command runs as ``postgres``.
    """

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="xiaosan-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.log = self.dir / "server.log"
        shutil.chown(self.dir, "postgres", "postgres")

    def _as_postgres(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(a) for a in args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        self._as_postgres(PG_BIN / "initdb", "-D", self.data, "--auth=trust", "-U", "postgres",
                          "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync")
        self.start()

    def start(self) -> None:
        opts = (f"-c port={self.port} -c listen_addresses=127.0.0.1 "
                f"-c unix_socket_directories={self.dir} -c fsync=on "
                "-c shared_buffers=64MB -c max_connections=60")
        self._as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-l", self.log, "-o", opts,
                          "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop",
                          check=False)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
