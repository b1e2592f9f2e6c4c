"""Faults: a process killed in the middle of a bulk import, PostgreSQL restarted under traffic.

Everything here runs on a private throwaway PostgreSQL cluster (its own data directory and
port, owned by the ``postgres`` OS user): the shared cluster other tests use is never stopped.

* (a) SIGKILL during a bulk import — the server in the middle of a boundary import (held at
  its very last statement, after it closed the old grids and wrote the new ones and the
  ``boundary_imports`` row), and the CLI in the middle of a project batch import — leaves no
  trace: the row counts are unchanged and the restarted server serves the old territory.
* (b) ``pg_ctl stop -m immediate`` while clients upload patrols, then a start: requests fail
  cleanly (503 with Retry-After, never a 500, never a hang) and succeed again afterwards, and
  every acknowledged record is stored.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests._robust import PrivateCluster, Server, admin_headers, load_territory

COUNTED = ("districts", "streets", "communities", "grids", "boundary_imports", "projects",
           "audit_log", "patrols")


@pytest.fixture(scope="module")
def cluster():
    pg = PrivateCluster()
    try:
        pg.init()
        url = pg.url("xiaosan_faults")
        load_territory(url)
        pg.db_url = url
        pg.headers = admin_headers(url)
        yield pg
    finally:
        from app.db import get_engine

        if getattr(pg, "db_url", None):
            get_engine(pg.db_url).dispose()
        pg.destroy()


@pytest.fixture(scope="module")
def db(cluster):
    engine = create_engine(cluster.db_url, pool_pre_ping=True)
    try:
        yield engine
    finally:
        engine.dispose()


def counts(db) -> dict[str, int]:
    with db.connect() as conn:
        return {t: conn.scalar(text(f"SELECT count(*) FROM {t}")) for t in COUNTED}


def _wait_until(predicate, timeout_s: float, what: str, every_s: float = 0.02) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every_s)
    raise AssertionError(f"timed out waiting for {what}")


def _backends(db, app_name: str) -> list[int]:
    with db.connect() as conn:
        return list(conn.scalars(text(
            "SELECT pid FROM pg_stat_activity WHERE application_name = :a"), {"a": app_name}))


def _holds(db, app_name: str, table: str, *, granted: bool = True) -> bool:
    """Whether a backend of ``app_name`` holds (or waits for) a lock on ``table``."""
    with db.connect() as conn:
        return bool(conn.scalar(text(
            """SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
               WHERE a.application_name = :a AND l.relation = CAST(:t AS regclass)
                 AND l.granted = :g"""), {"a": app_name, "t": table, "g": granted}))


# --- (a) killed during a bulk import ---------------------------------------------------------


def test_server_killed_during_a_boundary_import_leaves_nothing(cluster, db, tmp_path):
    app_name = f"victim-{uuid.uuid4().hex[:6]}"
    with db.connect() as conn:
        grids = conn.execute(text(
            """SELECT code, name, parent_code, ST_AsGeoJSON(geom, 7) AS gj FROM grids
               WHERE valid_to IS NULL ORDER BY code""")).all()
    features = [{"type": "Feature", "geometry": json.loads(g.gj),
                 "properties": {"code": g.code, "name": g.name, "parent_code": g.parent_code}}
                for g in grids]
    data = json.dumps({"type": "FeatureCollection", "features": features}).encode()
    before = counts(db)

    server = Server(cluster.db_url, env={"PGAPPNAME": app_name})
    server.start()
    try:
        with db.connect() as blocker:
            tx = blocker.begin()
            # The import's audit entry is its last write: holding the table there keeps the
            # import's transaction open with everything else written.
            blocker.execute(text("LOCK TABLE audit_log IN SHARE MODE"))
            result: dict = {}

            def upload():
                try:
                    with httpx.Client(base_url=server.base, headers=cluster.headers,
                                      timeout=120) as http:
                        result["response"] = http.post(
                            "/api/boundaries/import", data={"level": "grid"},
                            files={"file": ("grids.geojson", data, "application/geo+json")})
                except httpx.HTTPError as exc:
                    result["error"] = exc

            sender = threading.Thread(target=upload)
            sender.start()
            _wait_until(lambda: _holds(db, app_name, "audit_log", granted=False), 90,
                        "the import to reach its audit entry", every_s=0.1)
            for table in ("boundary_imports", "grids"):  # written, not committed
                assert _holds(db, app_name, table), table
            server.kill()
            sender.join(timeout=30)
            tx.rollback()
        assert "response" not in result, "the import answered before the kill"
        _wait_until(lambda: not _backends(db, app_name), 30, "the dead import's backend to go")
        assert counts(db) == before
        server.start()  # restarted: it serves the territory as it was
        with httpx.Client(base_url=server.base, headers=cluster.headers, timeout=60) as http:
            imports = http.get("/api/boundaries/imports").json()
            layer = http.get("/api/territory/grid").json()
        assert len(imports) == before["boundary_imports"]
        assert len(layer["features"]) == len(grids)
    finally:
        server.stop()
        server.log.unlink(missing_ok=True)
    with db.connect() as conn:
        orphans = conn.scalar(text(
            "SELECT count(*) FROM grids g LEFT JOIN boundary_imports b ON b.id = g.import_id "
            "WHERE g.import_id IS NOT NULL AND b.id IS NULL"))
        open_versions = conn.scalar(text(
            "SELECT count(*) FROM (SELECT code FROM grids WHERE valid_to IS NULL "
            "GROUP BY code HAVING count(*) > 1) d"))
    assert orphans == 0 and open_versions == 0
    print(f"\nfault (a) server: killed inside the import transaction (boundary_imports and "
          f"{len(grids)} grids written, uncommitted); after restart counts unchanged: {before}")


def test_cli_killed_during_a_project_batch_import_leaves_nothing(cluster, db, tmp_path):
    app_name = f"cli-victim-{uuid.uuid4().hex[:6]}"
    with db.connect() as conn:
        points = conn.execute(text(
            """SELECT ST_X(p) AS lon, ST_Y(p) AS lat FROM (
                   SELECT ST_PointOnSurface(geom) AS p FROM grids WHERE valid_to IS NULL
                   ORDER BY code) s""")).all()
    path = tmp_path / "projects.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["kind", "category", "title", "address", "lon", "lat", "builder_name",
                      "builder_phone", "contractor_name", "contractor_phone", "investment_cny",
                      "floor_area_m2", "planned_start", "planned_end", "submitted_on"])
        for k in range(2000):
            p = points[k % len(points)]
            out.writerow(["small_project", "residential_fitout", f"批量导入{k}", f"地址{k}",
                          p.lon, p.lat, "王先生", "13800138000", "某装饰公司", "0755-12345678",
                          50000, 80, "2025-03-10", "2025-05-10", "2025-03-03"])
    before = counts(db)
    env = dict(os.environ, DATABASE_URL=cluster.db_url, PGAPPNAME=app_name)
    cli = Path(sys.executable).with_name("xiaosan")
    proc = subprocess.Popen([str(cli), "projects", "import", str(path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_until(lambda: _holds(db, app_name, "projects"), 60, "the first project row")
        time.sleep(1.5)  # well into the batch: many rows written in the open transaction
        assert proc.poll() is None, "the import finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    _wait_until(lambda: not _backends(db, app_name), 30, "the dead import's backend to go")
    assert counts(db) == before
    print("\nfault (a) CLI: project import of 2000 rows killed after 1.5 s; counts unchanged")


# --- (b) PostgreSQL restarted under traffic -----------------------------------------------


class Uploader(threading.Thread):
    """A phone uploading patrols one by one, each until acknowledged (the same record again
    after a 503 or a dropped connection, as a phone does)."""

    def __init__(self, base: str, headers: dict, points, name: str, stop: threading.Event):
        super().__init__(daemon=True)
        self.base, self.headers, self.points, self.stop = base, headers, points, stop
        self.inspector = name
        self.acknowledged: dict[str, int] = {}
        self.statuses: Counter = Counter()
        self.acked_at: list[float] = []
        self.no_retry_after = 0
        self.slowest = 0.0
        self.problems: list[str] = []

    def run(self) -> None:
        n = 0
        with httpx.Client(base_url=self.base, headers=self.headers, timeout=15) as http:
            while not self.stop.is_set():
                n += 1
                p = self.points[n % len(self.points)]
                record = {"client_id": f"r{n:05d}", "inspector_id": self.inspector,
                          "force": "grid_worker", "started_at": "2025-04-01T10:00:00+08:00",
                          "location": {"type": "Point", "coordinates": [p[0], p[1]]}}
                self._until_acknowledged(http, record)

    def _until_acknowledged(self, http: httpx.Client, record: dict) -> None:
        for _ in range(200):
            started = time.monotonic()
            try:
                r = http.post("/api/patrols", json=record)
            except httpx.TimeoutException:
                self.statuses["timeout"] += 1
                self.problems.append("a request hung past 15 s")
                return
            except httpx.TransportError as exc:
                self.statuses[type(exc).__name__] += 1
                time.sleep(0.2)
                continue
            finally:
                self.slowest = max(self.slowest, time.monotonic() - started)
            self.statuses[r.status_code] += 1
            if r.status_code in (200, 201):
                self.acknowledged[record["client_id"]] = r.json()["id"]
                self.acked_at.append(time.monotonic())
                return
            if r.status_code == 503:
                if "Retry-After" not in r.headers:
                    self.no_retry_after += 1
                time.sleep(min(float(r.headers.get("Retry-After", "1")), 0.3))
                continue
            self.problems.append(f"{r.status_code}: {r.text[:200]}")
            return
        self.problems.append(f"{record['client_id']} never acknowledged")


def test_postgres_restart_under_traffic_fails_cleanly_and_loses_nothing(cluster, db):
    with db.connect() as conn:
        points = [(r.lon, r.lat) for r in conn.execute(text(
            """SELECT ST_X(p) AS lon, ST_Y(p) AS lat FROM (
                   SELECT ST_PointOnSurface(geom) AS p FROM grids WHERE valid_to IS NULL
                   ORDER BY code LIMIT 200) s"""))]
    db.dispose()
    server = Server(cluster.db_url)
    server.start()
    stop = threading.Event()
    phones = [Uploader(server.base, cluster.headers, points, f"pg-restart-{k}", stop)
              for k in range(3)]
    try:
        started = time.monotonic()
        for phone in phones:
            phone.start()
        time.sleep(2.0)
        down_at = time.monotonic()
        cluster.stop("immediate")  # a crash: no checkpoint, the WAL replays at start
        time.sleep(2.5)
        cluster.start()
        up_at = time.monotonic()
        time.sleep(3.0)
        stop.set()
        for phone in phones:
            phone.join(timeout=30)
            assert not phone.is_alive(), "an uploader hung"
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        server.stop()
        server.log.unlink(missing_ok=True)
    acknowledged = {(ph.inspector, c): i for ph in phones for c, i in ph.acknowledged.items()}
    statuses = sum((ph.statuses for ph in phones), Counter())
    with db.connect() as conn:
        stored = {(r.inspector_id, r.client_id): r.id for r in conn.execute(text(
            "SELECT id, inspector_id, client_id FROM patrols "
            "WHERE inspector_id LIKE 'pg-restart-%'"))}
    lost = {k for k in acknowledged if stored.get(k) != acknowledged[k]}
    after_restart = sum(t > up_at for ph in phones for t in ph.acked_at)
    print(f"\nfault (b): PostgreSQL down {up_at - down_at:.1f} s during {elapsed:.1f} s of "
          f"uploads by {len(phones)} phones: acknowledged {len(acknowledged)}, stored "
          f"{len(stored)}, lost {len(lost)}; answers {dict(statuses)}; 503s {statuses[503]}; "
          f"acknowledged after the restart {after_restart}; slowest request "
          f"{max(ph.slowest for ph in phones):.2f} s")
    assert not [p for ph in phones for p in ph.problems], [p for ph in phones for p in ph.problems]
    assert statuses[500] == 0
    assert statuses[503] > 0, "the outage was never seen"
    assert sum(ph.no_retry_after for ph in phones) == 0
    assert after_restart > 0, "nothing succeeded after the restart"
    assert not lost
    assert set(stored) == set(acknowledged)  # and nothing stored that was not acknowledged
    assert elapsed < 60
