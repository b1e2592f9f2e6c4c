"""Concurrent patrol uploads through a real uvicorn: none lost, none doubled, in flight answered.

The app is served by uvicorn on loopback from a throwaway database of its own (the uploads
commit, thousands of them). 50 phones upload 200 records each in offline batches while 10 % of
their records are sent again: half at the same moment as the original (the phone's retry
racing its own first attempt), half afterwards. Exactly one record per key must be stored and
every answer must agree with what is stored.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests._robust import admin_headers, private_database, serve

PHONES = 50
PER_PHONE = 200
BATCH = 50
RESEND = 0.10


@pytest.fixture(scope="module")
def server():
    from app.config import get_settings

    base = os.environ.get("TEST_DATABASE_URL") or get_settings().database_url
    with private_database(base, "conc") as url:
        headers = admin_headers(url)
        with serve(url) as srv:
            srv.headers = headers
            yield srv


@pytest.fixture(scope="module")
def db(server):
    engine = create_engine(server.db_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _grid_points(db, n: int) -> list[tuple[float, float]]:
    with db.connect() as conn:
        rows = conn.execute(text(
            """SELECT ST_X(p) AS lon, ST_Y(p) AS lat FROM (
                   SELECT ST_PointOnSurface(geom) AS p FROM grids WHERE valid_to IS NULL
                   ORDER BY code LIMIT :n) s"""), {"n": n}).all()
    return [(r.lon, r.lat) for r in rows]


def _record(inspector: str, n: int, point: tuple[float, float], day: int) -> dict:
    return {"client_id": f"c{n:04d}", "inspector_id": inspector, "force": "grid_worker",
            "started_at": f"2025-03-{1 + day % 28:02d}T09:{n % 60:02d}:00+08:00",
            "location": {"type": "Point", "coordinates": [point[0], point[1]]},
            "checklist": {}, "findings": f"巡查 {inspector} #{n}"}


class Log:
    """Every answer any phone got, per key."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.answers: list[tuple[tuple[str, str], str, int | None]] = []
        self.requests = Counter()

    def add(self, key, status: str, id_: int | None) -> None:
        with self.lock:
            self.answers.append((key, status, id_))

    def got(self, response: httpx.Response) -> None:
        with self.lock:
            self.requests[response.status_code] += 1


def _wait(response: httpx.Response) -> None:
    time.sleep(min(float(response.headers.get("Retry-After", "1")), 1.0))


def _send_batch(http: httpx.Client, records: list[dict], log: Log) -> None:
    """One batch, and the records answered ``in_progress`` again until they are settled."""
    while records:
        r = http.post("/api/patrols/batch", json={"records": records})
        log.got(r)
        if r.status_code == 503:
            _wait(r)
            continue
        assert r.status_code == 200, r.text[:500]
        again = []
        for rec, res in zip(records, r.json()["results"], strict=True):
            key = (rec["inspector_id"], rec["client_id"])
            if res["status"] == "in_progress":
                assert r.headers.get("Retry-After"), "in progress without Retry-After"
                again.append(rec)
            log.add(key, res["status"], res.get("id"))
        if again:
            _wait(r)
        records = again


def _send_one(http: httpx.Client, record: dict, log: Log) -> None:
    key = (record["inspector_id"], record["client_id"])
    while True:
        r = http.post("/api/patrols", json=record)
        log.got(r)
        if r.status_code == 409 and r.json().get("in_progress"):
            assert r.headers.get("Retry-After") and "in progress" in r.json()["detail"]
            log.add(key, "in_progress", None)
            _wait(r)
            continue
        if r.status_code == 503:
            _wait(r)
            continue
        assert r.status_code in (200, 201), r.text[:500]
        log.add(key, "created" if r.status_code == 201 else "duplicate", r.json()["id"])
        return


def _phone(server, k: int, points, log: Log) -> None:
    rng = random.Random(k)
    inspector = f"conc-{k:02d}"
    records = [_record(inspector, n, rng.choice(points), k) for n in range(PER_PHONE)]
    resent = rng.sample(records, int(PER_PHONE * RESEND))
    racing, later = resent[: len(resent) // 2], resent[len(resent) // 2:]
    limits = httpx.Limits(max_connections=2)
    with httpx.Client(base_url=server.base, headers=server.headers, timeout=60,
                      limits=limits) as http:
        # The retry of half the resent records starts together with the original batches.
        racer = threading.Thread(target=lambda: [_send_one(http, r, log) for r in racing])
        racer.start()
        for i in range(0, PER_PHONE, BATCH):
            _send_batch(http, records[i:i + BATCH], log)
        racer.join()
        _send_batch(http, later, log)  # the phone never saw the acknowledgement: sends again


def test_fifty_phones_upload_ten_thousand_records_with_retries(server, db):
    points = _grid_points(db, 400)
    # The peer, measured in the same run: one phone alone, the same batches, no retries.
    alone, solo = Log(), [_record("conc-solo", n, points[n % len(points)], 0)
                          for n in range(1000)]
    with httpx.Client(base_url=server.base, headers=server.headers, timeout=60) as http:
        started = time.perf_counter()
        for i in range(0, len(solo), BATCH):
            _send_batch(http, solo[i:i + BATCH], alone)
        solo_rate = len(solo) / (time.perf_counter() - started)
    assert Counter(s for _, s, _ in alone.answers) == {"created": len(solo)}

    log = Log()
    started = time.perf_counter()
    with ThreadPoolExecutor(PHONES) as pool:
        for f in [pool.submit(_phone, server, k, points, log) for k in range(PHONES)]:
            f.result()
    elapsed = time.perf_counter() - started

    total = PHONES * PER_PHONE
    statuses = Counter(s for _, s, _ in log.answers)
    created: dict[tuple[str, str], int] = {}
    for key, status, id_ in log.answers:
        if status == "created":
            assert key not in created, f"{key} created twice"
            created[key] = id_
    assert len(created) == total, statuses
    for key, status, id_ in log.answers:
        assert status in ("created", "duplicate", "in_progress"), (key, status)
        if status == "duplicate":
            assert id_ == created[key], (key, id_, created[key])
    with db.connect() as conn:
        stored, keys, ids = conn.execute(text(
            """SELECT count(*), count(DISTINCT (inspector_id, client_id)),
                      count(DISTINCT id) FILTER (WHERE id = ANY(:ids))
               FROM patrols WHERE inspector_id LIKE 'conc-%' AND inspector_id <> 'conc-solo'"""),
            {"ids": list(created.values())}).one()
    assert (stored, keys, ids) == (total, total, total)
    resent = int(PER_PHONE * RESEND) * PHONES
    print(f"\nconcurrency: {PHONES} phones × {PER_PHONE} records = {total} + {resent} resent; "
          f"stored {stored}, duplicates answered {statuses['duplicate']}, in progress answered "
          f"{statuses['in_progress']}; HTTP {dict(log.requests)}; {elapsed:.1f} s, "
          f"{total / elapsed:,.0f} records/s (one phone alone, batches of {BATCH}: "
          f"{solo_rate:,.0f} records/s)")
    assert elapsed < 60


def test_a_key_in_flight_is_409_in_progress_with_retry_after(server, db):
    """Two real concurrent requests for one key: the second is told the first is in progress.

    The first request is held inside its transaction (after it claimed the key) by a table
    lock this test takes, so the overlap is certain rather than a matter of timing.
    """
    rec = _record("conc-flight", 1, _grid_points(db, 1)[0], 1)
    rec["client_id"] = uuid.uuid4().hex
    other = {**rec, "client_id": uuid.uuid4().hex}
    def client() -> httpx.Client:
        return httpx.Client(base_url=server.base, headers=server.headers, timeout=60)

    with client() as a, client() as b, client() as c, db.connect() as blocker:
        tx = blocker.begin()
        blocker.execute(text("LOCK TABLE patrols IN SHARE MODE"))  # INSERTs wait for it
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(a.post, "/api/patrols", json=rec)
            _wait_for_blocked_inserts(db, 1)
            second = b.post("/api/patrols", json=rec)
            changed = b.post("/api/patrols", json={**rec, "findings": "other content"})
            batch = pool.submit(c.post, "/api/patrols/batch", json={"records": [rec, other]})
            _wait_for_blocked_inserts(db, 2)  # the batch has claimed ``other``, and is held
            tx.rollback()
            first, batch = first.result(), batch.result()
    assert second.status_code == 409, second.text
    assert second.headers["Retry-After"] == "1"
    assert second.json()["in_progress"] is True and "in progress" in second.json()["detail"]
    assert "client_id" in second.json()["detail"]
    assert changed.status_code == 409 and changed.json()["in_progress"] is True
    assert first.status_code == 201, first.text
    assert batch.status_code == 200 and batch.headers.get("Retry-After") == "1"
    assert [r["status"] for r in batch.json()["results"]] == ["in_progress", "created"]
    # Settled: the same record is a duplicate, other content under the key a conflict.
    with httpx.Client(base_url=server.base, headers=server.headers, timeout=60) as http:
        again = http.post("/api/patrols", json=rec)
        clash = http.post("/api/patrols", json={**rec, "findings": "other content"})
        missing = http.post("/api/patrols", json={k: v for k, v in rec.items()
                                                  if k != "client_id"})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert clash.status_code == 409 and "in_progress" not in clash.json()
    assert "Retry-After" not in clash.headers and "different content" in clash.json()["detail"]
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "client_id"]
    with db.connect() as conn:
        n = conn.scalar(text("SELECT count(*) FROM patrols WHERE client_id = ANY(:c)"),
                        {"c": [rec["client_id"], other["client_id"]]})
    assert n == 2


def _wait_for_blocked_inserts(db, n: int, timeout_s: float = 20.0) -> None:
    """Until ``n`` backends wait for the table lock on ``patrols`` (their INSERT)."""
    deadline = time.monotonic() + timeout_s
    with db.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.scalar(text(
                """SELECT count(DISTINCT pid) FROM pg_locks
                   WHERE relation = 'patrols'::regclass AND NOT granted"""))
            if waiting >= n:
                return
            time.sleep(0.02)
    raise AssertionError(f"{n} upload(s) never reached their INSERT")
