"""Patrol upload: idempotent, batched, each record answered on its own, acknowledged after commit.

A phone queues patrols while offline and sends them in one batch when it can. Each record
carries the phone's own ``client_id``; ``(inspector_id, client_id)`` is unique. A retry of the
same record (same key, same content) answers ``duplicate`` with the stored id; the same key with
different content answers ``conflict`` (HTTP 409 for a single record). Records that fail the
checks answer ``error`` with the field and the reason and never block the others.

The batch is written set-based (a few statements for the whole batch, inside one savepoint);
if the database still refuses it, every record is retried in its own savepoint so one bad record
cannot sink the rest. Nothing is half-written: a patrol, its visits and the per-project visit
summary go in together. The caller commits, then acknowledges; the upload's transaction runs
with ``synchronous_commit = on`` whatever the server's default, so a record acknowledged is a
record on disk (an asynchronous commit could lose the last acknowledged records in a crash).

A key still being stored by another request (the original and its retry sent at once, a phone
that gave up waiting) answers ``in_progress`` (HTTP 409 with Retry-After for a single record)
instead of waiting for it: each request holds a transaction-level advisory lock on a hash of
each key it stores, taken with ``pg_try_advisory_xact_lock`` so nobody ever waits on it.

Visits come from the sites the record names (``declared``), from the patrol point lying within
``visit_distance_m`` of an active site (``nearby``) and from tracks that dwelt near a site
(``track``, :func:`gis.tracks.dwell_visits`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from app.geoinput import parse_geometry
from app.limits import current as current_limits
from app.models import Patrol
from app.patrol_rules import ANSWERS, FORCES, PatrolRules, get_patrol_rules
from app.services import audit
from app.services.registration import CHINA_TZ
from gis._errors import GisError
from gis.tracks import CleanTrack, Track, clean_track, dwell_visits, parse_time

log = logging.getLogger(__name__)


class PatrolProblems(GisError):
    """A record failed the checks: every problem, each with its field."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{f}: {m}" for f, m in problems))


@dataclass
class ParsedPatrol:
    client_id: str
    inspector_id: str
    inspector_name: str | None
    force: str
    started_at: datetime
    ended_at: datetime | None
    lon: float
    lat: float
    track: CleanTrack | None
    project_refs: list[str]
    checklist: dict[str, str]
    photos: list[str]
    findings: str | None
    payload_hash: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.inspector_id, self.client_id)

    @property
    def patrol_on(self) -> date:
        return self.started_at.astimezone(CHINA_TZ).date()


@dataclass
class RecordResult:
    index: int
    client_id: str | None
    inspector_id: str | None
    status: str  # created, duplicate, conflict, in_progress, error
    id: int | None = None
    visits: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "client_id": self.client_id,
                               "inspector_id": self.inspector_id, "status": self.status}
        if self.id is not None:
            out["id"] = self.id
        if self.status == "created":
            out["visits"] = self.visits
        if self.errors:
            out["errors"] = self.errors
        return out


# --- checking -------------------------------------------------------------------------------


def _when(value: Any, name: str, problems: list) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            problems.append((name, "not an ISO 8601 date-time"))
            return None
    # A phone's local time without an offset is Beijing time.
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=CHINA_TZ)


def _text(raw: dict, key: str, problems: list, *, required: bool, max_len: int) -> str | None:
    value = raw.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            problems.append((key, "missing"))
        return None
    if not isinstance(value, str | int):
        problems.append((key, "must be text"))
        return None
    value = str(value).strip()
    if len(value) > max_len:
        problems.append((key, f"longer than {max_len} characters"))
        return None
    return value


def _to_wgs84(lon: np.ndarray, lat: np.ndarray, crs: str) -> tuple[np.ndarray, np.ndarray]:
    if crs == "gcj02":
        from gis.gcj02 import gcj02_to_wgs84

        lon, lat = gcj02_to_wgs84(lon, lat)
    return np.asarray(lon, float), np.asarray(lat, float)


def _lonlat_ok(lon: np.ndarray, lat: np.ndarray) -> bool:
    return bool(np.isfinite(lon).all() and np.isfinite(lat).all()
                and (np.abs(lon) <= 180).all() and (np.abs(lat) <= 90).all())


def _location(raw: dict, crs: str, problems: list) -> tuple[float, float] | None:
    geometry = raw.get("location")
    if geometry is None:
        return None
    try:  # structure, finite degrees inside China, a legacy "crs" member; GCJ-02 converted
        point = parse_geometry(geometry, "location", types=("Point",), crs=crs)
    except GisError as exc:
        problems.append(("location", str(exc).removeprefix("location: ")))
        return None
    return float(point.x), float(point.y)


def _track(raw: dict, crs: str, rules: PatrolRules, problems: list) -> CleanTrack | None:
    """``track``: {"coordinates": [[lon, lat], ...], "times": [...]} (or [lon, lat, t] fixes)."""
    value = raw.get("track")
    if value is None:
        return None
    coords = value.get("coordinates") if isinstance(value, dict) else None
    if not isinstance(coords, list) or len(coords) < 2:
        problems.append(("track", "needs coordinates: at least two [lon, lat] fixes"))
        return None
    most = current_limits().track_fixes
    if len(coords) > most:
        problems.append(("track", f"{len(coords):,} fixes, more than the {most:,} allowed; "
                                  "split the track"))
        return None
    times = value.get("times")
    try:
        if times is None:
            times = [c[2] for c in coords]
        if len(times) != len(coords):
            problems.append(("track.times", "one time per fix is required"))
            return None
        lon = np.asarray([float(c[0]) for c in coords])
        lat = np.asarray([float(c[1]) for c in coords])
        t = np.asarray([_fix_time(v) for v in times])
    except (TypeError, ValueError, IndexError, GisError):
        problems.append(("track", "each fix needs numeric lon, lat and a time (ISO or Unix s)"))
        return None
    lon, lat = _to_wgs84(lon, lat, crs)
    if not _lonlat_ok(lon, lat):
        problems.append(("track", "coordinates must be longitude, latitude in degrees"))
        return None
    clean = clean_track(Track(lon, lat, t), max_speed_mps=rules.max_speed_mps,
                        max_gap_s=rules.max_gap_s, min_run_fixes=rules.min_run_fixes)
    if not clean.segments:
        problems.append(("track", "no usable segment after cleaning (jumps, gaps, repeats)"))
        return None
    return clean


def _fix_time(value: Any) -> float:
    if isinstance(value, str) and not value.replace(".", "", 1).isdigit():
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=CHINA_TZ)
        return dt.timestamp()
    return parse_time(value)


def payload_hash(raw: dict[str, Any]) -> str:
    """The record's fingerprint: its canonical JSON (keys sorted), hashed."""
    canonical = json.dumps(raw, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                           default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_patrol(raw: dict[str, Any], *, rules: PatrolRules | None = None) -> ParsedPatrol:
    """A checked record, or :class:`PatrolProblems` listing everything wrong with it."""
    rules = rules or get_patrol_rules()
    if not isinstance(raw, dict):
        raise PatrolProblems([("record", "must be a JSON object")])
    problems: list[tuple[str, str]] = []
    client_id = _text(raw, "client_id", problems, required=True, max_len=64)
    inspector_id = _text(raw, "inspector_id", problems, required=True, max_len=64)
    inspector_name = _text(raw, "inspector_name", problems, required=False, max_len=100)
    force = raw.get("force")
    if force not in FORCES:
        problems.append(("force", f"must be one of {', '.join(FORCES)}"))
    started = _when(raw.get("started_at"), "started_at", problems)
    if started is None and not any(f == "started_at" for f, _ in problems):
        problems.append(("started_at", "missing"))
    ended = _when(raw.get("ended_at"), "ended_at", problems)
    if started and ended and ended < started:
        problems.append(("ended_at", "must not be before started_at"))
    crs = str(raw.get("crs") or "wgs84").lower()
    if crs not in ("wgs84", "gcj02"):
        problems.append(("crs", "must be wgs84 or gcj02"))
        crs = "wgs84"
    point = _location(raw, crs, problems)
    track = _track(raw, crs, rules, problems)
    if point is None and track is None and not any(
            f.startswith(("location", "track")) for f, _ in problems):
        problems.append(("location", "a GeoJSON Point or a track is required"))
    if point is None and track is not None:
        first = track.segments[0][0]
        point = (float(track.track.lon[first]), float(track.track.lat[first]))
    refs = raw.get("project_ids") or []
    if not isinstance(refs, list) or not all(isinstance(r, str | int) for r in refs):
        problems.append(("project_ids", "must be a list of project ids or registration numbers"))
        refs = []
    checklist = raw.get("checklist") or {}
    known = rules.all_checklist_codes()
    if not isinstance(checklist, dict):
        problems.append(("checklist", "must be an object of item → ok / problem / na"))
        checklist = {}
    for code, answer in checklist.items():
        if code not in known:
            problems.append((f"checklist.{code}", "not an item of any checklist"))
        elif answer not in ANSWERS:
            problems.append((f"checklist.{code}", f"must be one of {', '.join(ANSWERS)}"))
    photos = raw.get("photos") or []
    if not isinstance(photos, list) or not all(isinstance(p, str) and p for p in photos):
        problems.append(("photos", "must be a list of photo references"))
        photos = []
    elif len(photos) > 50:
        problems.append(("photos", "at most 50 photos per patrol"))
    findings = _text(raw, "findings", problems, required=False, max_len=4000)
    if problems:
        raise PatrolProblems(problems)
    assert client_id and inspector_id and started and point
    return ParsedPatrol(
        client_id=client_id, inspector_id=inspector_id, inspector_name=inspector_name,
        force=str(force), started_at=started, ended_at=ended, lon=point[0], lat=point[1],
        track=track, project_refs=[str(r) for r in refs], checklist=dict(checklist),
        photos=list(photos), findings=findings,
        payload_hash=payload_hash({k: v for k, v in raw.items() if k != "source"}),
    )


# --- storing --------------------------------------------------------------------------------


def _deg_margin(distance_m: float, lat: float) -> float:
    """A bounding-box margin in degrees that surely covers ``distance_m`` (index prefilter
    only; the distance itself is always tested on the geography)."""
    return distance_m / (110_000.0 * math.cos(math.radians(min(abs(lat) + 1.0, 89.0))))


_WHERE_SQL = """
SELECT u.ord, g.code AS grid_code, g.parent_code AS community_code,
       c.parent_code AS street_code, g.district_code
FROM unnest(CAST(:lon AS float8[]), CAST(:lat AS float8[])) WITH ORDINALITY AS u(lon, lat, ord)
LEFT JOIN LATERAL (
    SELECT code, parent_code, district_code FROM grids
    WHERE valid_to IS NULL AND ST_Covers(geom, ST_SetSRID(ST_MakePoint(u.lon, u.lat), 4326))
    ORDER BY code COLLATE "C" LIMIT 1) g ON true
LEFT JOIN communities c ON c.code = g.parent_code AND c.valid_to IS NULL
ORDER BY u.ord
"""


def _jurisdictions(session: Session, records: list[ParsedPatrol]) -> list[Any]:
    return session.execute(text(_WHERE_SQL), {"lon": [r.lon for r in records],
                                              "lat": [r.lat for r in records]}).all()


def _resolve_projects(session: Session, refs: set[str]) -> dict[str, tuple[int, str]]:
    if not refs:
        return {}
    ids = [int(r) for r in refs if r.isascii() and r.isdigit() and len(r) < 10]
    rows = session.execute(text(
        "SELECT id, reg_no, district_code FROM projects WHERE id = ANY(:ids) OR reg_no = ANY(:refs)"
    ), {"ids": ids, "refs": list(refs)}).all()
    out: dict[str, tuple[int, str]] = {}
    for r in rows:
        out[str(r.id)] = (r.id, r.district_code)
        out[r.reg_no] = (r.id, r.district_code)
    return out


def _existing(session: Session, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    if not keys:
        return {}
    rows = session.execute(text(
        """SELECT p.id, p.inspector_id, p.client_id, p.payload_hash FROM patrols p
           JOIN unnest(CAST(:i AS text[]), CAST(:c AS text[])) AS k(i, c)
             ON p.inspector_id = k.i AND p.client_id = k.c"""),
        {"i": [k[0] for k in keys], "c": [k[1] for k in keys]}).all()
    return {(r.inspector_id, r.client_id): r for r in rows}


def upload(
    session: Session,
    *,
    records: list[dict[str, Any]],
    source: str = "api",
    actor: str | None = None,
    rules: PatrolRules | None = None,
) -> list[RecordResult]:
    """Store a batch of patrol records; one result per record, in order. The caller commits."""
    rules = rules or get_patrol_rules()
    if len(records) > rules.upload_batch_max:
        raise GisError(f"records: at most {rules.upload_batch_max} per batch")
    # Acknowledged means durable: whatever the server or role default, this commit waits for
    # the WAL flush (LOCAL: only this transaction).
    session.execute(text("SET LOCAL synchronous_commit = on"))
    results: list[RecordResult | None] = [None] * len(records)
    parsed: list[tuple[int, ParsedPatrol]] = []
    for i, raw in enumerate(records):
        try:
            p = parse_patrol(raw, rules=rules)
        except PatrolProblems as exc:
            ident = raw if isinstance(raw, dict) else {}
            results[i] = RecordResult(
                i, _str_or_none(ident.get("client_id")), _str_or_none(ident.get("inspector_id")),
                "error", errors=[{"field": f, "msg": f"{f}: {m}"} for f, m in exc.problems])
            continue
        parsed.append((i, p))

    # Retries: already stored (or repeated inside this batch).
    stored = _existing(session, [p.key for _, p in parsed])
    fresh: list[tuple[int, ParsedPatrol]] = []
    first_in_batch: dict[tuple[str, str], tuple[int, ParsedPatrol]] = {}
    repeats: list[tuple[int, ParsedPatrol]] = []
    for i, p in parsed:
        if p.key in stored:
            results[i] = _retry_result(i, p, stored[p.key].id, stored[p.key].payload_hash)
        elif p.key in first_in_batch:
            repeats.append((i, p))
        else:
            first_in_batch[p.key] = (i, p)
            fresh.append((i, p))

    if fresh:
        busy = _claim(session, [p.key for _, p in fresh])
        for i, p in fresh:
            if p.key in busy:
                results[i] = _in_progress(i, p)
        fresh = [(i, p) for i, p in fresh if p.key not in busy]
    if fresh:
        try:
            with session.begin_nested():
                _store(session, fresh, results, source=source, rules=rules)
        except (DBAPIError, GisError) as exc:
            if _database_failed(exc):
                raise  # not the records' fault: nothing is stored, the caller answers 503
            log.warning("patrol batch refused as a whole (%s); storing record by record", exc)
            for i, p in fresh:
                try:
                    with session.begin_nested():
                        _store(session, [(i, p)], results, source=source, rules=rules)
                except (DBAPIError, GisError) as one:
                    if _database_failed(one):
                        raise
                    results[i] = RecordResult(i, p.client_id, p.inspector_id, "error", errors=[
                        {"field": "record", "msg": f"record: could not be stored ({_why(one)})"}])
    for i, p in repeats:
        first = results[first_in_batch[p.key][0]]
        if first is not None and first.status == "in_progress":
            results[i] = _in_progress(i, p)
        elif first is not None and first.id is not None:
            results[i] = _retry_result(i, p, first.id, first_in_batch[p.key][1].payload_hash)
        else:
            results[i] = RecordResult(i, p.client_id, p.inspector_id, "error", errors=[
                {"field": "client_id", "msg": "client_id: repeats a record of this batch that "
                                              "failed"}])
    done = [r for r in results if r is not None]
    created = [r for r in done if r.status == "created"]
    if created:
        audit.record(
            session, actor=actor or f"upload:{source}", entity="patrol_batch",
            entity_id=f"{created[0].id}-{created[-1].id}", action="upload",
            reason=f"{len(created)} created of {len(records)}",
            district_code=_batch_district(session, created),
            data={"created": len(created), "ids": [r.id for r in created][:1000],
                  "duplicate": sum(r.status == "duplicate" for r in done),
                  "conflict": sum(r.status == "conflict" for r in done),
                  "error": sum(r.status == "error" for r in done)})
    return done


# Above this many new keys in one batch, the batch locks whole inspectors instead of single
# keys: advisory locks live in PostgreSQL's shared lock table (max_locks_per_transaction ×
# connections), which thousands of keys per request would exhaust.
KEY_LOCKS_MAX = 1000
_LOCK_NS = "xiaosan.patrol"


def _claim(session: Session, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """Lock ``keys`` for this transaction; answer those another request holds right now.

    Two levels, so that small and large batches exclude each other: a small batch takes a
    shared lock per inspector and an exclusive lock per key; a large one an exclusive lock per
    inspector. The locks are released by the commit or rollback.
    """
    inspectors = sorted({i for i, _ in keys})
    per_key = len(keys) <= KEY_LOCKS_MAX
    how = "pg_try_advisory_xact_lock_shared" if per_key else "pg_try_advisory_xact_lock"
    rows = session.execute(text(
        f"""SELECT u.i, {how}(hashtextextended(:ns || chr(31) || u.i, 0)) AS got
            FROM unnest(CAST(:i AS text[])) AS u(i)"""),
        {"ns": f"{_LOCK_NS}.inspector", "i": inspectors}).all()
    held = {r.i for r in rows if not r.got}
    busy = {k for k in keys if k[0] in held}
    if per_key:
        ask = [k for k in keys if k[0] not in held]
        rows = session.execute(text(
            """SELECT k.i, k.c, pg_try_advisory_xact_lock(
                   hashtextextended(:ns || chr(31) || k.i || chr(31) || k.c, 0)) AS got
               FROM unnest(CAST(:i AS text[]), CAST(:c AS text[])) AS k(i, c)"""),
            {"ns": f"{_LOCK_NS}.key", "i": [k[0] for k in ask], "c": [k[1] for k in ask]}).all()
        busy |= {(r.i, r.c) for r in rows if not r.got}
    return busy


def _in_progress(i: int, p: ParsedPatrol) -> RecordResult:
    return RecordResult(i, p.client_id, p.inspector_id, "in_progress", errors=[{
        "field": "client_id",
        "msg": (f"client_id: {p.client_id} of inspector {p.inspector_id} is being stored by "
                "another request right now (in progress); send it again in a moment: it will "
                "answer duplicate once stored")}])


def _database_failed(exc: Exception) -> bool:
    """The connection or the server failed (lost connection, shutdown, out of resources):
    retrying record by record would fail the same way, and must not be reported per record."""
    return isinstance(exc, OperationalError | InterfaceError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated)


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)[:64]


def _why(exc: Exception) -> str:
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return str(exc.orig).splitlines()[0]
    return str(exc)


def _retry_result(i: int, p: ParsedPatrol, stored_id: int, stored_hash: str) -> RecordResult:
    if stored_hash == p.payload_hash:
        return RecordResult(i, p.client_id, p.inspector_id, "duplicate", id=stored_id)
    return RecordResult(i, p.client_id, p.inspector_id, "conflict", id=stored_id, errors=[{
        "field": "client_id",
        "msg": (f"client_id: {p.client_id} of inspector {p.inspector_id} was already uploaded "
                f"(patrol {stored_id}) with different content; send a new client_id for a "
                "new record")}])


def _batch_district(session: Session, created: list[RecordResult]) -> str | None:
    return session.scalar(text("SELECT district_code FROM patrols WHERE id = :i"),
                          {"i": created[0].id})


def _store(session: Session, batch: list[tuple[int, ParsedPatrol]],
           results: list[RecordResult | None], *, source: str, rules: PatrolRules) -> None:
    """Insert patrols, their visits and the summary for ``batch`` (set-based)."""
    places = _jurisdictions(session, [p for _, p in batch])
    projects = _resolve_projects(session, {r for _, p in batch for r in p.project_refs})
    rows, declared, problems = [], [], {}
    for (i, p), where in zip(batch, places, strict=True):
        missing = [r for r in p.project_refs if r not in projects]
        district = where.district_code
        if district is None and p.project_refs and not missing:
            district = projects[p.project_refs[0]][1]
        if missing:
            problems[i] = ("project_ids", f"no such project: {', '.join(missing[:5])}")
            continue
        if district is None:
            problems[i] = ("location", "outside every grid of the territory")
            continue
        rows.append({
            "district_code": district, "client_id": p.client_id, "inspector_id": p.inspector_id,
            "inspector_name": p.inspector_name, "force": p.force, "started_at": p.started_at,
            "ended_at": p.ended_at, "patrol_on": p.patrol_on,
            "location": f"SRID=4326;POINT({p.lon:.7f} {p.lat:.7f})",
            "track": p.track.to_ewkt() if p.track else None,
            "track_report": p.track.report() if p.track else None,
            "street_code": where.street_code, "community_code": where.community_code,
            "grid_code": where.grid_code, "checklist": p.checklist, "photos": p.photos,
            "findings": p.findings, "payload_hash": p.payload_hash, "source": source,
        })
        declared.append((p, sorted({projects[r][0] for r in p.project_refs})))
    for i, (f, m) in problems.items():
        p = dict(batch)[i]
        results[i] = RecordResult(i, p.client_id, p.inspector_id, "error",
                                  errors=[{"field": f, "msg": f"{f}: {m}"}])
    if not rows:
        return
    table = Patrol.__table__
    stmt = insert(table).on_conflict_do_nothing(
        index_elements=["inspector_id", "client_id"]
    ).returning(table.c.id, table.c.inspector_id, table.c.client_id)
    got = {(r.inspector_id, r.client_id): r.id for r in session.execute(stmt, rows)}
    index_of = {p.key: i for i, p in batch}
    new_ids: list[int] = []
    for p, _ in declared:
        i = index_of[p.key]
        if p.key in got:
            results[i] = RecordResult(i, p.client_id, p.inspector_id, "created", id=got[p.key])
            new_ids.append(got[p.key])
        else:  # a concurrent upload of the same key won the race: answer as a retry
            row = _existing(session, [p.key])[p.key]
            results[i] = _retry_result(i, p, row.id, row.payload_hash)
    if not new_ids:
        return
    visits = _declared_visits(session, [(got[p.key], ids) for p, ids in declared
                                        if p.key in got and ids])
    visits += _nearby_visits(session, new_ids, rules)
    visits += _track_visits(session, [(got[p.key], p) for p, _ in declared
                                      if p.key in got and p.track is not None], rules)
    _update_summary(session, visits)
    per_patrol: dict[int, int] = {}
    for v in visits:
        per_patrol[v[0]] = per_patrol.get(v[0], 0) + 1
    for r in results:
        if r is not None and r.status == "created" and r.id in per_patrol:
            r.visits = per_patrol[r.id]


def _declared_visits(session: Session, pairs: list[tuple[int, list[int]]]) -> list[tuple]:
    if not pairs:
        return []
    patrol_ids = [pid for pid, ids in pairs for _ in ids]
    project_ids = [prj for _, ids in pairs for prj in ids]
    return [tuple(r) for r in session.execute(text(
        """INSERT INTO patrol_visits (district_code, patrol_id, project_id, force, visited_on,
                                      arrived_at, left_at, how, distance_m)
           SELECT p.district_code, pa.id, p.id, pa.force, pa.patrol_on, pa.started_at,
                  pa.ended_at, 'declared', ST_Distance(pa.location::geography, p.site::geography)
           FROM unnest(CAST(:pa AS bigint[]), CAST(:pr AS int[])) AS k(patrol_id, project_id)
           JOIN patrols pa ON pa.id = k.patrol_id JOIN projects p ON p.id = k.project_id
           ORDER BY p.id
           ON CONFLICT (patrol_id, project_id) DO NOTHING
           RETURNING patrol_id, project_id, id"""), {"pa": patrol_ids, "pr": project_ids})]


def _nearby_visits(session: Session, patrol_ids: list[int], rules: PatrolRules) -> list[tuple]:
    lat = session.scalar(text("SELECT max(abs(ST_Y(location))) FROM patrols WHERE id = ANY(:i)"),
                         {"i": patrol_ids}) or 0.0
    return [tuple(r) for r in session.execute(text(
        """INSERT INTO patrol_visits (district_code, patrol_id, project_id, force, visited_on,
                                      arrived_at, left_at, how, distance_m)
           SELECT p.district_code, pa.id, p.id, pa.force, pa.patrol_on, pa.started_at,
                  pa.ended_at, 'nearby', ST_Distance(pa.location::geography, p.site::geography)
           FROM patrols pa JOIN projects p
             ON ST_DWithin(p.site, pa.location, :deg)
            AND ST_DWithin(p.site::geography, pa.location::geography, :d)
           WHERE pa.id = ANY(:ids) AND pa.track IS NULL AND p.state = ANY(:active)
           ORDER BY p.id
           ON CONFLICT (patrol_id, project_id) DO NOTHING
           RETURNING patrol_id, project_id, id"""),
        {"ids": patrol_ids, "active": list(rules.active_states), "d": rules.visit_distance_m,
         "deg": _deg_margin(rules.visit_distance_m, float(lat))})]


def _track_visits(session: Session, tracks: list[tuple[int, ParsedPatrol]],
                  rules: PatrolRules) -> list[tuple]:
    rows = []
    for patrol_id, p in tracks:
        assert p.track is not None
        tr = p.track.track
        kept = np.concatenate(p.track.segments)
        lon, lat = tr.lon[kept], tr.lat[kept]
        margin = _deg_margin(rules.visit_distance_m, float(np.abs(lat).max()))
        sites = session.execute(text(
            """SELECT id, ST_X(ST_PointOnSurface(site)) AS lon, ST_Y(ST_PointOnSurface(site)) AS lat
               FROM projects WHERE state = ANY(:active)
                 AND site && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)"""),
            {"active": list(rules.active_states), "x0": float(lon.min()) - margin,
             "y0": float(lat.min()) - margin, "x1": float(lon.max()) + margin,
             "y1": float(lat.max()) + margin}).all()
        if not sites:
            continue
        stays = dwell_visits(p.track, np.asarray([s.lon for s in sites]),
                             np.asarray([s.lat for s in sites]),
                             distance_m=rules.visit_distance_m,
                             min_dwell_s=rules.dwell_minutes * 60)
        best: dict[int, Any] = {}
        for stay in stays:  # one visit per site and patrol: the longest stay
            if stay.site not in best or stay.dwell_s > best[stay.site].dwell_s:
                best[stay.site] = stay
        for k, stay in best.items():
            arrived = datetime.fromtimestamp(stay.arrived, UTC)
            rows.append({"pa": patrol_id, "pr": sites[k].id, "arr": arrived,
                         "left": datetime.fromtimestamp(stay.left, UTC),
                         "on": arrived.astimezone(CHINA_TZ).date(),
                         "dist": round(stay.min_distance_m, 1), "dwell": int(stay.dwell_s)})
    if not rows:
        return []
    return [tuple(r) for r in session.execute(text(
        """INSERT INTO patrol_visits (district_code, patrol_id, project_id, force, visited_on,
                                      arrived_at, left_at, how, distance_m, dwell_s)
           SELECT p.district_code, pa.id, p.id, pa.force, k.on_day, k.arr, k.lft, 'track',
                  k.dist, k.dwell
           FROM unnest(CAST(:pa AS bigint[]), CAST(:pr AS int[]), CAST(:arr AS timestamptz[]),
                       CAST(:lft AS timestamptz[]), CAST(:on AS date[]),
                       CAST(:dist AS float8[]), CAST(:dwell AS int[]))
                AS k(patrol_id, project_id, arr, lft, on_day, dist, dwell)
           JOIN patrols pa ON pa.id = k.patrol_id JOIN projects p ON p.id = k.project_id
           ORDER BY p.id
           ON CONFLICT (patrol_id, project_id) DO NOTHING
           RETURNING patrol_id, project_id, id"""),
        {"pa": [r["pa"] for r in rows], "pr": [r["pr"] for r in rows],
         "arr": [r["arr"] for r in rows], "lft": [r["left"] for r in rows],
         "on": [r["on"] for r in rows], "dist": [r["dist"] for r in rows],
         "dwell": [r["dwell"] for r in rows]})]


_SUMMARY_UPSERT = """
INSERT INTO project_visit_summary (project_id, district_code, last_visit_at, last_visit_on,
                                   last_force, visits)
SELECT project_id, min(district_code), max(arrived_at), max(visited_on),
       (array_agg(force ORDER BY arrived_at DESC))[1], count(*)
FROM patrol_visits WHERE {where}
GROUP BY project_id ORDER BY project_id
ON CONFLICT (project_id) DO UPDATE SET
    visits = project_visit_summary.visits + EXCLUDED.visits,
    last_force = CASE WHEN EXCLUDED.last_visit_at >= project_visit_summary.last_visit_at
                      THEN EXCLUDED.last_force ELSE project_visit_summary.last_force END,
    last_visit_at = GREATEST(project_visit_summary.last_visit_at, EXCLUDED.last_visit_at),
    last_visit_on = GREATEST(project_visit_summary.last_visit_on, EXCLUDED.last_visit_on),
    updated_at = now()
"""


def _update_summary(session: Session, visits: list[tuple]) -> None:
    """Fold new visits into ``project_visit_summary`` (same transaction as the visits)."""
    if visits:
        session.execute(text(_SUMMARY_UPSERT.format(where="id = ANY(:ids)")),
                        {"ids": [v[2] for v in visits]})


def recompute_visit_summary(session: Session, *, district_code: str | None = None) -> int:
    """Rebuild the summary from ``patrol_visits`` (after a bulk load, or to check it)."""
    params: dict[str, Any] = {}
    cond = "true"
    if district_code:
        cond, params["d"] = "district_code = :d", district_code
    session.execute(text(f"DELETE FROM project_visit_summary WHERE {cond}"), params)
    session.execute(text(_SUMMARY_UPSERT.format(where=cond)), params)
    return session.scalar(text(f"SELECT count(*) FROM project_visit_summary WHERE {cond}"),
                          params) or 0


def summary_drift(session: Session, *, district_code: str | None = None) -> int:
    """Projects whose summary disagrees with their visits (0 when the summary is right)."""
    cond = "district_code = :d" if district_code else "true"
    return session.scalar(text(f"""
        WITH truth AS (SELECT project_id, max(arrived_at) AS at, count(*) AS n
                       FROM patrol_visits WHERE {cond} GROUP BY project_id)
        SELECT count(*) FROM truth t FULL JOIN
             (SELECT * FROM project_visit_summary WHERE {cond}) s USING (project_id)
        WHERE t.at IS DISTINCT FROM s.last_visit_at OR t.n IS DISTINCT FROM s.visits"""),
        {"d": district_code}) or 0


# --- reading --------------------------------------------------------------------------------


def patrol_feature(session: Session, patrol_id: int) -> dict[str, Any] | None:
    """One patrol as a GeoJSON Feature (the track when there is one, else the point)."""
    row = session.execute(text(
        """SELECT pa.*, ST_AsGeoJSON(ST_Force2D(coalesce(pa.track, pa.location)), 7)::json AS gj,
                  (SELECT coalesce(json_agg(json_build_object(
                      'project_id', v.project_id, 'how', v.how, 'visited_on', v.visited_on,
                      'distance_m', round(v.distance_m::numeric, 1), 'dwell_s', v.dwell_s)
                      ORDER BY v.project_id), '[]'::json)
                   FROM patrol_visits v WHERE v.patrol_id = pa.id) AS visits
           FROM patrols pa WHERE pa.id = :i"""), {"i": patrol_id}).mappings().first()
    if row is None:
        return None
    skip = {"gj", "location", "track", "payload_hash"}
    props = {k: (v.isoformat() if isinstance(v, date | datetime) else v)
             for k, v in row.items() if k not in skip}
    return {"type": "Feature", "id": row["id"], "geometry": row["gj"], "properties": props}


def find_patrol(session: Session, *, inspector_id: str, client_id: str) -> int | None:
    return session.scalar(text(
        "SELECT id FROM patrols WHERE inspector_id = :i AND client_id = :c"),
        {"i": inspector_id, "c": client_id})


def record_from_track_file(
    data: bytes,
    *,
    filename: str,
    inspector_id: str,
    client_id: str,
    force: str,
    inspector_name: str | None = None,
    project_ids: list[str] | None = None,
    findings: str | None = None,
) -> dict[str, Any]:
    """A patrol record from a GPX or CSV track (times as Unix seconds: GPX is UTC by its
    specification; a CSV's times without an offset are read as UTC, as GPS loggers write)."""
    from gis.tracks import read_csv, read_gpx

    reader = read_gpx if filename.lower().endswith(".gpx") or data.lstrip()[:1] == b"<" \
        else read_csv
    track = reader(data)
    order = np.argsort(track.t, kind="stable")
    start, end = float(track.t[order[0]]), float(track.t[order[-1]])
    record: dict[str, Any] = {
        "client_id": client_id, "inspector_id": inspector_id, "force": force,
        "started_at": datetime.fromtimestamp(start, UTC).isoformat(),
        "ended_at": datetime.fromtimestamp(end, UTC).isoformat(),
        "track": {"coordinates": [[float(x), float(y)] for x, y in
                                  zip(track.lon, track.lat, strict=True)],
                  "times": [float(v) for v in track.t]},
        "project_ids": project_ids or [],
    }
    if inspector_name:
        record["inspector_name"] = inspector_name
    if findings:
        record["findings"] = findings
    return record
