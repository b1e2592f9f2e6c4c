"""Open311 GeoReport v2 (``/open311/v2``): the public reports small works safety on a map.

Anyone may list the services, file a request and follow it — without an account, as the
standard intends — and sees the public fields only: the id, the service, the status, the
times, the place rounded to about 100 m and the grid it was routed to. The description, any
contact details and the photo stay with the staff whose area it lies in (the photo at
``requests/{id}/media``). A request is routed to its grid by the jurisdiction rule
(:mod:`app.services.jurisdiction`) and becomes an unregistered-work lead there, which the
grid's workers see in their lists. Filing is rate-limited per client address (429).

References: GeoReport v2, http://wiki.open311.org/GeoReport_v2 .
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import warnings
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy import select, text

from app.api.access import OptionalUser, ReadAccess
from app.api.auth import client_ip
from app.api.deps import SessionDep
from app.models import ServiceRequest
from app.security import secret_key
from app.services import audit, hazards, jurisdiction
from gis._errors import GisError

router = APIRouter(prefix="/open311/v2", tags=["open311"])

SERVICES: dict[str, dict[str, str]] = {
    "unregistered_works": {
        "service_name": "未登记施工 · Works without registration",
        "description": "装修、改造、拆除等施工未见登记公示牌。"
                       "Building, refitting or demolition without a registration signboard.",
        "keywords": "unregistered,registration,signboard,登记,公示牌",
    },
    "unsafe_work_at_height": {
        "service_name": "高处作业不安全 · Unsafe work at height",
        "description": "脚手架、吊篮、外墙作业无防护或未系安全带。"
                       "Scaffolds, gondolas or facade work without protection or harness.",
        "keywords": "height,scaffold,harness,高处,脚手架",
    },
    "construction_debris": {
        "service_name": "建筑垃圾 · Construction debris",
        "description": "建筑垃圾乱堆乱放、堵塞通道或从高处抛掷。"
                       "Debris dumped, blocking a way or thrown from height.",
        "keywords": "debris,waste,rubble,建筑垃圾",
    },
    "other": {
        "service_name": "其他安全隐患 · Other safety concern",
        "description": "其他与小散工程、零星作业有关的安全问题。"
                       "Any other safety concern about small works or sporadic work.",
        "keywords": "other,safety,其他",
    },
}
SERVICE_NOTICE = ("已转交所在网格的网格员核查，一般 3 个工作日内处理。"
                  "Passed to the grid worker of the place; usually checked within 3 working days.")
IMAGE_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
MAX_PIXELS = 40_000_000
PUBLIC_DECIMALS = 3  # about 100 m: where, without pointing at a door


def _int_env(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def max_photo_bytes() -> int:
    return _int_env("XIAOSAN_OPEN311_MAX_PHOTO_BYTES", 5 * 1024 * 1024)


def per_hour() -> int:
    return _int_env("XIAOSAN_OPEN311_PER_HOUR", 10)


def client_key(ip: str) -> str:
    """A keyed digest of the caller's address: enough to count, not to recover it."""
    return hmac.new(secret_key().encode(), ip.encode(), hashlib.sha256).hexdigest()[:32]


def _status(state: str | None) -> tuple[str, str | None]:
    return {
        "lead": ("open", None),
        "matched": ("open", "matches a registered work nearby; being checked"),
        "registered": ("closed", "the work has been registered"),
        "dismissed": ("closed", "checked: no action needed"),
    }.get(state or "", ("open", None))


@router.get("/services.json")
def services():
    """The services a report can be filed under."""
    return [{"service_code": code, "service_name": s["service_name"],
             "description": s["description"], "metadata": False, "type": "realtime",
             "keywords": s["keywords"], "group": "small_works_safety"}
            for code, s in SERVICES.items()]


def _check_photo(data: bytes) -> str:
    """The MIME type of an acceptable image, judged by its content (never by its name)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                kind = img.format
                width, height = img.size
                img.verify()
    except (UnidentifiedImageError, Image.DecompressionBombError,
            Image.DecompressionBombWarning, OSError, SyntaxError, ValueError) as exc:
        raise GisError("media: not a readable JPEG, PNG or WebP image") from exc
    if kind not in IMAGE_FORMATS:
        raise GisError(f"media: {kind} images are not accepted (JPEG, PNG or WebP)")
    if width * height > MAX_PIXELS:
        raise GisError(f"media: the image is larger than {MAX_PIXELS // 1_000_000} megapixels")
    return IMAGE_FORMATS[kind]


def _rate_limit(session, key: str) -> None:
    limit = per_hour()
    since = datetime.now(UTC) - timedelta(hours=1)
    times = session.scalars(
        select(ServiceRequest.requested_at).where(ServiceRequest.client_key == key,
                                                  ServiceRequest.requested_at > since)
        .order_by(ServiceRequest.requested_at.desc()).limit(limit)).all()
    if len(times) >= limit:
        wait = int((times[-1] + timedelta(hours=1) - datetime.now(UTC)).total_seconds()) + 1
        raise HTTPException(429, f"too many reports from your address: at most {limit} an hour",
                            headers={"Retry-After": str(max(1, wait))})


@router.post("/requests.json", status_code=201)
async def create_request(
    request: Request,
    session: SessionDep,
    user: OptionalUser,
    service_code: Annotated[str, Form(max_length=32)],
    lat: Annotated[float, Form(ge=-90, le=90)],
    long: Annotated[float, Form(ge=-180, le=180)],  # noqa: A002 (the standard's name)
    description: Annotated[str | None, Form(max_length=4000)] = None,
    address_string: Annotated[str | None, Form(max_length=500)] = None,
    email: Annotated[str | None, Form(max_length=200)] = None,
    phone: Annotated[str | None, Form(max_length=40)] = None,
    first_name: Annotated[str | None, Form(max_length=100)] = None,
    last_name: Annotated[str | None, Form(max_length=100)] = None,
    media: Annotated[UploadFile | None, File(description="a photo: JPEG, PNG or WebP")] = None,
):
    """File a report; it is routed to the grid of the place and becomes a lead there."""
    if service_code not in SERVICES:
        raise GisError(f"service_code: unknown service {service_code!r} "
                       f"(one of {', '.join(SERVICES)})")
    key = client_key(client_ip(request))
    _rate_limit(session, key)
    photo, photo_type = None, None
    if media is not None and (media.filename or media.size):
        limit = max_photo_bytes()
        photo = await media.read(limit + 1)
        if len(photo) > limit:
            raise HTTPException(413, f"media: larger than {limit // 1024} KiB")
        if photo:
            photo_type = _check_photo(photo)
        else:
            photo = None
    place = jurisdiction.assign_point(session, float(long), float(lat))
    if place.grid is None:
        raise GisError("lat: the place lies outside every grid of the territory served here")
    name = SERVICES[service_code]["service_name"]
    reporter = f"open311:{user.username}" if user is not None else "open311:anonymous"
    contact = {k: v for k, v in (("email", email), ("phone", phone),
                                 ("first_name", first_name), ("last_name", last_name)) if v}
    try:
        lead = hazards.report_unregistered(
            session, actor=reporter, channel="public",
            location={"type": "Point", "coordinates": [float(long), float(lat)]},
            description=f"[{name}] {description or ''}".strip(), source="open311")
        req = ServiceRequest(
            service_code=service_code, description=description,
            location=f"SRID=4326;POINT({float(long)} {float(lat)})",
            address_string=address_string, district_code=lead.district_code,
            street_code=lead.street_code, community_code=lead.community_code,
            grid_code=lead.grid_code, lead_id=lead.id, photo=photo, photo_type=photo_type,
            contact=contact or None, account=user.username if user is not None else None,
            client_key=key, requested_at=datetime.now(UTC))
        session.add(req)
        session.flush()
        if photo is not None:
            lead.photos = [f"/open311/v2/requests/{req.id}/media"]
        audit.record(session, actor=reporter, entity="service_request", entity_id=req.id,
                     action="file", to_state="open", district_code=lead.district_code,
                     data={"service_code": service_code, "lead_id": lead.id,
                           "grid_code": lead.grid_code, "photo": photo is not None})
        session.commit()
    except Exception:
        session.rollback()
        raise
    return [{"service_request_id": str(req.id), "service_notice": SERVICE_NOTICE,
             "account_id": None}]


def _public(row: Any) -> dict[str, Any]:
    status, notes = _status(row.state)
    return {
        "service_request_id": str(row.id),
        "status": status,
        "status_notes": notes,
        "service_code": row.service_code,
        "service_name": SERVICES.get(row.service_code, {}).get("service_name"),
        "description": None,
        "agency_responsible": row.street_name,
        "service_notice": SERVICE_NOTICE,
        "requested_datetime": row.requested_at.isoformat(),
        "updated_datetime": (row.updated_at or row.requested_at).isoformat(),
        "expected_datetime": None,
        "address": None,
        "address_id": row.grid_code,
        "zipcode": None,
        "lat": round(row.lat, PUBLIC_DECIMALS),
        "long": round(row.lon, PUBLIC_DECIMALS),
        "media_url": None,
    }


_LIST_SQL = """
SELECT r.id, r.service_code, r.requested_at, r.grid_code, w.state,
       ST_Y(r.location) AS lat, ST_X(r.location) AS lon, s.name AS street_name,
       (SELECT max(a.at) FROM audit_log a WHERE a.entity = 'unregistered_work'
          AND a.entity_id = CAST(r.lead_id AS text)) AS updated_at
FROM service_requests r
LEFT JOIN unregistered_works w ON w.id = r.lead_id
LEFT JOIN streets s ON s.code = r.street_code AND s.valid_to IS NULL
WHERE {where}
ORDER BY r.requested_at DESC, r.id DESC
LIMIT :lim
"""


@router.get("/requests.json")
def list_requests(
    session: SessionDep,
    service_request_id: Annotated[str | None, Query(description="comma-separated ids")] = None,
    service_code: Annotated[str | None, Query(max_length=200)] = None,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
    status: Annotated[str | None, Query(pattern="^(open|closed)(,(open|closed))?$")] = None,
):
    """Requests, newest first (public fields; the last 90 days unless dates are given)."""
    conds, params = ["true"], {"lim": 1000}
    if service_request_id:
        ids = [i.strip() for i in service_request_id.split(",") if i.strip()]
        if not all(i.isascii() and i.isdigit() and len(i) < 16 for i in ids) or len(ids) > 1000:
            raise GisError("service_request_id: a comma-separated list of request ids")
        conds.append("r.id = ANY(CAST(:ids AS bigint[]))")
        params["ids"] = [int(i) for i in ids]
    else:
        end = end_date or datetime.now(UTC)
        start = start_date or end - timedelta(days=90)
        if start > end:
            raise GisError("end_date: must not be before start_date")
        conds.append("r.requested_at BETWEEN :start AND :end")
        params.update(start=start, end=end)
    if service_code:
        conds.append("r.service_code = ANY(CAST(:codes AS text[]))")
        params["codes"] = [c.strip() for c in service_code.split(",")]
    rows = session.execute(text(_LIST_SQL.format(where=" AND ".join(conds))), params).all()
    out = [_public(r) for r in rows]
    if status:
        wanted = set(status.split(","))
        out = [r for r in out if r["status"] in wanted]
    return out


@router.get("/requests/{request_id}.json")
def get_request(request_id: str, session: SessionDep):
    """One request (public fields), as a one-element list per the standard."""
    if not (request_id.isascii() and request_id.isdigit()) or len(request_id) > 15:
        raise HTTPException(404, f"service_request_id: no request {request_id}")
    rows = session.execute(text(_LIST_SQL.format(where="r.id = :i")),
                           {"i": int(request_id), "lim": 1}).all()
    if not rows:
        raise HTTPException(404, f"service_request_id: no request {request_id}")
    return [_public(rows[0])]


@router.get("/requests/{request_id}/media")
def get_media(request_id: int, session: SessionDep, access: ReadAccess):
    """The photo of a request, for the staff whose area it lies in."""
    visible = access.visible(session, "service_requests", request_id)
    row = session.execute(select(ServiceRequest.photo, ServiceRequest.photo_type).where(
        ServiceRequest.id == request_id)).first() if visible else None
    if row is None or row.photo is None:
        raise HTTPException(404, f"service_request_id: no photo for request {request_id}")
    return Response(row.photo, media_type=row.photo_type or "application/octet-stream",
                    headers={"X-Content-Type-Options": "nosniff",
                             "Content-Disposition": f'inline; filename="request-{request_id}"',
                             "Cache-Control": "private, no-store"})

