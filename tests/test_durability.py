"""Durability and idempotency of uploads: acknowledged only after a synchronous commit, and
each idempotency case answered on its own (missing key, reused key, key in flight).

The in-flight case needs two real concurrent requests and is in ``test_concurrency.py``.
"""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import event, text

from app.services import territory


@pytest.fixture
def spot(session) -> tuple[float, float]:
    row = session.execute(text(
        """SELECT ST_X(p) AS lon, ST_Y(p) AS lat FROM (
               SELECT ST_PointOnSurface(geom) AS p FROM grids WHERE valid_to IS NULL
               ORDER BY code OFFSET 7 LIMIT 1) s""")).one()
    return float(row.lon), float(row.lat)


def _record(spot, **over) -> dict:
    return {"client_id": uuid.uuid4().hex, "inspector_id": "dur-1", "force": "supervisor",
            "started_at": "2025-03-03T10:00:00+08:00",
            "location": {"type": "Point", "coordinates": list(spot)}, **over}


class SettingSpy:
    """What ``synchronous_commit`` is when a statement matching ``prefix`` has just run, asked
    on the same connection, inside the same transaction."""

    def __init__(self, session, prefix: str):
        self.prefix = prefix.lower()
        self.seen: list[str] = []
        self.conn = session.connection()
        event.listen(self.conn, "after_cursor_execute", self._after)

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().lower().startswith(self.prefix):
            self.seen.append(cursor.connection.execute("SHOW synchronous_commit").fetchone()[0])

    def close(self):
        event.remove(self.conn, "after_cursor_execute", self._after)


@pytest.fixture
def async_commit_default(session):
    """The server default made asynchronous for this test's transaction (SET LOCAL: undone by
    the rollback at the end), as a careless configuration would have it."""
    session.execute(text("SET LOCAL synchronous_commit = off"))
    assert session.scalar(text("SHOW synchronous_commit")) == "off"


def test_patrol_upload_commits_synchronously_whatever_the_default(
        client, session, spot, async_commit_default):
    spy = SettingSpy(session, "insert into patrols")
    try:
        one = client.post("/api/patrols", json=_record(spot))
        batch = client.post("/api/patrols/batch", json={"records": [_record(spot),
                                                                    _record(spot)]})
    finally:
        spy.close()
    assert one.status_code == 201, one.text
    assert batch.status_code == 200 and batch.json()["counts"] == {"created": 2}
    assert spy.seen == ["on", "on"]  # inside both upload transactions, at the INSERT


def test_boundary_import_commits_synchronously(client, session, async_commit_default):
    district = territory.current_units(session, "district")
    data = district.drop(columns=["parent_code"]).to_json().encode()
    spy = SettingSpy(session, "insert into districts")
    try:
        r = client.post("/api/boundaries/import", data={"level": "district"},
                        files={"file": ("district.geojson", data, "application/geo+json")})
    finally:
        spy.close()
    assert r.status_code == 201, r.text[:500]
    assert spy.seen == ["on"]


def test_without_the_upload_the_setting_stays_as_configured(session, async_commit_default):
    """The spy itself can tell ``off`` from ``on`` (so the tests above can fail)."""
    spy = SettingSpy(session, "insert into audit_log")
    try:
        session.execute(text("INSERT INTO audit_log (actor, entity, entity_id, action) "
                             "VALUES ('tests', 'test', '1', 'probe')"))
    finally:
        spy.close()
    assert spy.seen == ["off"]


def test_a_missing_idempotency_key_is_422_naming_it(client, session, spot):
    before = session.scalar(text("SELECT count(*) FROM patrols"))
    for missing in ("client_id", "inspector_id"):
        record = {k: v for k, v in _record(spot).items() if k != missing}
        r = client.post("/api/patrols", json=record)
        assert r.status_code == 422, r.text
        assert [d["loc"] for d in r.json()["detail"]] == [["body", missing]]
        assert r.json()["detail"][0]["msg"] == f"{missing}: missing"
    r = client.post("/api/patrols/batch", json={"records": [
        {k: v for k, v in _record(spot).items() if k != "client_id"}, _record(spot)]})
    assert [x["status"] for x in r.json()["results"]] == ["error", "created"]
    assert r.json()["results"][0]["errors"][0]["field"] == "client_id"
    gpx = (b'<?xml version="1.0"?><gpx version="1.1" creator="t"><trk><trkseg>'
           b'<trkpt lat="22.54" lon="114.05"><time>2025-03-03T02:00:00Z</time></trkpt>'
           b'</trkseg></trk></gpx>')
    r = client.post("/api/patrols/track", data={"inspector_id": "dur-1", "force": "supervisor"},
                    files={"file": ("t.gpx", gpx, "application/gpx+xml")})
    assert r.status_code == 422
    assert ["body", "client_id"] in [d["loc"] for d in r.json()["detail"]]
    assert session.scalar(text("SELECT count(*) FROM patrols")) == before + 1


def test_a_reused_key_is_a_duplicate_with_the_same_payload_and_409_with_another(
        client, session, spot):
    record = _record(spot)
    first = client.post("/api/patrols", json=record)
    assert first.status_code == 201
    same = client.post("/api/patrols", json=json.loads(json.dumps(record)))
    assert same.status_code == 200 and same.json()["id"] == first.json()["id"]
    assert same.json()["status"] == "duplicate"
    other = client.post("/api/patrols", json={**record, "findings": "changed"})
    assert other.status_code == 409 and other.json()["id"] == first.json()["id"]
    assert "different content" in other.json()["detail"] and "Retry-After" not in other.headers
    batch = client.post("/api/patrols/batch", json={"records": [record,
                                                                {**record, "findings": "x"}]})
    assert [x["status"] for x in batch.json()["results"]] == ["duplicate", "conflict"]
    n = session.scalar(text("SELECT count(*) FROM patrols WHERE client_id = :c"),
                       {"c": record["client_id"]})
    assert n == 1


def test_the_key_is_enforced_by_a_unique_constraint(session):
    """Not only by the code: two rows with one key are refused by PostgreSQL itself."""
    unique = session.execute(text(
        """SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
           WHERE c.relname = 'patrols' AND i.indisunique
             AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a
                  WHERE a.attrelid = c.oid AND a.attnum = ANY(i.indkey))
                 = ARRAY['client_id', 'inspector_id']""")).scalar()
    assert unique == 1


def test_keys_in_flight_are_claimed_per_key_or_per_inspector_for_large_batches(engine):
    """Two transactions (two connections) claiming keys as two concurrent uploads would."""
    from sqlalchemy.orm import Session

    from app.services.patrols import KEY_LOCKS_MAX, _claim

    small = [("insp-a", f"k{i}") for i in range(3)]
    large = [("insp-b", f"k{i}") for i in range(KEY_LOCKS_MAX + 1)]
    with Session(engine) as one, Session(engine) as two:
        assert _claim(one, small[:2]) == set()
        # The same key is busy; another key of the same inspector is free.
        assert _claim(two, small[1:]) == {small[1]}
        assert _claim(one, large) == set()  # a large batch holds its inspector as a whole
        assert _claim(two, [("insp-b", "another")]) == {("insp-b", "another")}
        assert _claim(two, [("insp-c", "k1")]) == set()
        locks = one.scalar(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                "AND pid = pg_backend_pid()"))
        assert locks < 10  # per inspector, not per key, for the large batch
        one.rollback()  # the end of a transaction frees its keys
        assert _claim(two, [("insp-b", "another"), small[0]]) == set()
        two.rollback()
