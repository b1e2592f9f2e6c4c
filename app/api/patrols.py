"""Patrols: idempotent upload (one record or an offline batch), GPS track files, checklists."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, File, Form, HTTPException, Query, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text

from app.access import FIELD_ROLES
from app.api.access import Access, ChangeAccess, ListAccess, ReadAccess, ReferenceAccess
from app.api.deps import GeoJSONResponse, SessionDep
from app.api.territory import parse_bbox
from app.patrol_rules import FORCES, get_patrol_rules
from app.services import patrols

router = APIRouter(prefix="/api", tags=["patrols"])
# Seconds to wait before sending again a record another request is storing (it takes ms).
RETRY_IN_PROGRESS_S = "1"


class BatchIn(BaseModel):
    records: list[dict[str, Any]] = Field(..., description="records as the phone queued them")


def _refused(i: int, raw: Any, field: str, msg: str) -> patrols.RecordResult:
    ident = raw if isinstance(raw, dict) else {}
    return patrols.RecordResult(
        i, patrols._str_or_none(ident.get("client_id")),
        patrols._str_or_none(ident.get("inspector_id")), "error",
        errors=[{"field": field, "msg": f"{field}: {msg}"}])


def _scope_check(session, access: Access, i: int, raw: Any) -> patrols.RecordResult | None:
    """A refusal for one record the account may not file, else None.

    Field accounts (grid workers, inspectors, property staff) file their own patrols only: the
    record's ``inspector_id`` must be their inspector code. Declared projects must be ones the
    account can see (one outside answers as one that does not exist).
    """
    if access.scope.unrestricted or not isinstance(raw, dict):
        return None
    if access.user.role in FIELD_ROLES and str(raw.get("inspector_id") or "") != (
            access.scope.inspector_code or ""):
        return _refused(i, raw, "inspector_id",
                        f"you may upload only your own patrols ({access.scope.inspector_code})")
    refs = raw.get("project_ids") or []
    if isinstance(refs, list):
        predicate, params = access.where("t", geom="site")
        hidden = []
        for ref in (str(r) for r in refs if isinstance(r, str | int)):
            by_id = " OR t.id = :i" if ref.isascii() and ref.isdigit() and len(ref) < 10 else ""
            found = session.execute(text(
                f"SELECT 1 FROM projects t WHERE (t.reg_no = :r{by_id}) AND {predicate}"),
                {"r": ref, "i": int(ref) if by_id else None, **params}).first()
            if found is None:
                hidden.append(ref)
        if hidden:
            return _refused(i, raw, "project_ids", f"no such project: {', '.join(hidden[:5])}")
    return None


def _upload(session, records, source: str, access: Access):
    refused = {i: r for i, raw in enumerate(records)
               if (r := _scope_check(session, access, i, raw)) is not None}
    kept = [raw for i, raw in enumerate(records) if i not in refused]
    index = [i for i in range(len(records)) if i not in refused]
    try:
        stored = patrols.upload(session, records=kept, source=source,
                                actor=access.actor()) if kept else []
        created = [r.id for r in stored if r.status == "created" and r.id is not None]
        if created and not access.scope.unrestricted:
            predicate, params = access.where("t", own="inspector_id")
            inside = set(session.scalars(text(
                f"SELECT t.id FROM patrols t WHERE t.id = ANY(:ids) AND {predicate}"),
                {"ids": created, **params}))
            if set(created) - inside:
                session.rollback()
                raise HTTPException(403, "location: the patrol lies outside your area")
        session.commit()  # acknowledge only what is committed
    except Exception:
        session.rollback()
        raise
    results: list[patrols.RecordResult] = list(refused.values())
    for i, r in zip(index, stored, strict=True):
        r.index = i
        results.append(r)
    return sorted(results, key=lambda r: r.index)


@router.post("/patrols", response_class=GeoJSONResponse, status_code=201)
def upload_one(session: SessionDep, access: ChangeAccess,
               record: Annotated[dict[str, Any], Body()]):
    """One patrol record: 201 stored, 200 already stored (a retry), 409 same id other content."""
    refusal = _scope_check(session, access, 0, record)
    if refusal is not None and refusal.errors[0]["field"] == "inspector_id":
        raise HTTPException(403, refusal.errors[0]["msg"])
    (result,) = _upload(session, [record], "api", access)
    if result.status == "error":
        return JSONResponse(status_code=422, content={"detail": [
            {"loc": ["body", e["field"]], "msg": e["msg"], "type": "value_error"}
            for e in result.errors]})
    if result.status == "conflict":
        return JSONResponse(status_code=409, content={"detail": result.errors[0]["msg"],
                                                      "id": result.id})
    if result.status == "in_progress":  # the same key is being stored by a concurrent request
        return JSONResponse(status_code=409, content={"detail": result.errors[0]["msg"],
                                                      "in_progress": True},
                            headers={"Retry-After": RETRY_IN_PROGRESS_S})
    assert result.id is not None
    if result.status == "duplicate" and not access.visible(session, "patrols", result.id,
                                                          own="inspector_id"):
        raise HTTPException(404, f"patrol: no patrol {result.id}")
    feature = patrols.patrol_feature(session, result.id)
    return GeoJSONResponse({**feature, "status": result.status},
                           status_code=201 if result.status == "created" else 200)


@router.post("/patrols/batch")
def upload_batch(session: SessionDep, access: ChangeAccess, body: BatchIn):
    """An offline batch: each record answered on its own (created/duplicate/conflict/error)."""
    results = _upload(session, body.records, "api-batch", access)
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    body = {"counts": counts, "results": [r.as_dict() for r in results]}
    if counts.get("in_progress"):  # those records are to be sent again shortly
        return JSONResponse(body, headers={"Retry-After": RETRY_IN_PROGRESS_S})
    return body


@router.post("/patrols/track", response_class=GeoJSONResponse, status_code=201)
async def upload_track(
    session: SessionDep,
    access: ChangeAccess,
    file: Annotated[UploadFile, File(description="GPX, or CSV with lon, lat, time")],
    inspector_id: Annotated[str, Form()],
    client_id: Annotated[str, Form()],
    force: Annotated[Literal["supervisor", "grid_worker", "property", "public"], Form()],
    inspector_name: Annotated[str | None, Form()] = None,
    project_ids: Annotated[str | None, Form(description="comma-separated")] = None,
    findings: Annotated[str | None, Form()] = None,
):
    """A patrol from a GPS track file: cleaned (jumps, gaps), visits inferred from dwell."""
    data = await file.read()
    record = patrols.record_from_track_file(
        data, filename=file.filename or "track", inspector_id=inspector_id,
        client_id=client_id, force=force, inspector_name=inspector_name,
        project_ids=[p.strip() for p in (project_ids or "").split(",") if p.strip()],
        findings=findings)
    return upload_one(session, access, record)


@router.get("/patrols/checklist")
def checklist(
    access: ReferenceAccess,
    kind: Literal["small_project", "sporadic_work"] | None = None,
    risk_factors: Annotated[list[str] | None, Query()] = None,
):
    """The patrol checklist (巡查指引) for a kind of work and its risk factors."""
    items = get_patrol_rules().checklist_for(kind, risk_factors or [])
    return {"kind": kind, "forces": FORCES,
            "items": [{"code": c, "question": q} for c, q in items]}


@router.get("/patrols", response_class=GeoJSONResponse)
def list_patrols(
    session: SessionDep,
    access: ListAccess,
    district: Annotated[str | None, Query(pattern=r"^\d{12}$")] = None,
    grid: str | None = None,
    inspector_id: str | None = None,
    force: str | None = None,
    since: date | None = None,
    until: date | None = None,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat")] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
):
    """Patrol points as GeoJSON (newest first), filtered by place, person, force and day."""
    box = parse_bbox(bbox)
    if since and until and until < since:
        raise HTTPException(422, "until: must not be before since")
    predicate, scope_params = access.where("patrols", own="inspector_id")
    rows = session.execute(text(
        f"""SELECT id, inspector_id, inspector_name, force, patrol_on, started_at, grid_code,
                  (track IS NOT NULL) AS has_track, ST_X(location) AS lon, ST_Y(location) AS lat
           FROM patrols
           WHERE (CAST(:d AS text) IS NULL OR district_code = :d)
             AND (CAST(:g AS text) IS NULL OR grid_code = :g)
             AND (CAST(:i AS text) IS NULL OR inspector_id = :i)
             AND (CAST(:f AS text) IS NULL OR force = :f)
             AND (CAST(:s AS date) IS NULL OR patrol_on >= :s)
             AND (CAST(:u AS date) IS NULL OR patrol_on <= :u)
             AND (CAST(:x0 AS float8) IS NULL
                  OR location && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))
             AND {predicate}
           ORDER BY started_at DESC LIMIT :lim"""),
        {"d": district, "g": grid, "i": inspector_id, "f": force, "s": since, "u": until,
         "x0": box[0] if box else None, "y0": box[1] if box else None,
         "x1": box[2] if box else None, "y1": box[3] if box else None, "lim": limit,
         **scope_params}).all()
    features = [{
        "type": "Feature", "id": r.id,
        "geometry": {"type": "Point", "coordinates": [round(r.lon, 7), round(r.lat, 7)]},
        "properties": {"id": r.id, "inspector_id": r.inspector_id,
                       "inspector_name": r.inspector_name, "force": r.force,
                       "patrol_on": r.patrol_on.isoformat(),
                       "started_at": r.started_at.isoformat(), "grid_code": r.grid_code,
                       "has_track": r.has_track}} for r in rows]
    return GeoJSONResponse({"type": "FeatureCollection", "features": features})


@router.get("/patrols/{patrol_id}", response_class=GeoJSONResponse)
def get_patrol(patrol_id: int, session: SessionDep, access: ReadAccess):
    """One patrol with its track (if any) and the visits it made."""
    visible = access.visible(session, "patrols", patrol_id, own="inspector_id")
    feature = patrols.patrol_feature(session, patrol_id) if visible else None
    if feature is None:
        raise HTTPException(404, f"patrol: no patrol {patrol_id}")
    return GeoJSONResponse(feature)
