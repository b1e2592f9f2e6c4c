"""Limits on what one request may carry: body size, geometry size, photos, page sizes.

A service open to phones and browsers must refuse oversized input before it costs memory or
database time, and say which field was too big. The limits are read from the environment on
each use (cheap, and tests can change them):

* ``XIAOSAN_MAX_BODY_BYTES`` (1 MiB): any request body, except on the upload routes
  (:data:`UPLOAD_ROUTES`), which may carry up to ``XIAOSAN_MAX_UPLOAD_BYTES`` (50 MiB);
* ``XIAOSAN_MAX_VERTICES`` (10,000): vertices of one geometry sent in a request (a site
  polygon, a lookup geometry);
* ``XIAOSAN_MAX_FEATURE_VERTICES`` (200,000): vertices of one feature of a boundary file;
* ``XIAOSAN_MAX_TRACK_FIXES`` (86,400, a day at one fix a second): fixes of one GPS track;
* ``XIAOSAN_MAX_PHOTO_BYTES`` (10 MiB) and ``XIAOSAN_MAX_PHOTO_PIXELS`` (40 million): one
  photo, which must be a JPEG, PNG or WebP image *by its content* (Pillow decodes it);
* :data:`MAX_LIST_LIMIT`: the largest page a list endpoint returns (``limit`` beyond → 422).

:class:`RequestLimits` is the ASGI middleware for the body size. It also refuses NUL
characters in the query string and path, which PostgreSQL cannot store in text and which no
real client sends, and admits at most ``XIAOSAN_MAX_IN_FLIGHT`` (15) requests at once: the
others wait their turn (up to ``XIAOSAN_QUEUE_TIMEOUT_S``, 30 s, then 503 with Retry-After).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import warnings
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import HTTPException, Query
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gis._errors import GeometryError, GisError

MIB = 1024 * 1024
# Routes that receive files or offline batches: they may carry the upload limit.
UPLOAD_ROUTES = frozenset({
    ("POST", "/api/boundaries/validate"),
    ("POST", "/api/boundaries/import"),
    ("POST", "/api/patrols/batch"),
    ("POST", "/api/patrols/track"),
    ("POST", "/api/jurisdiction/bulk"),
    ("POST", "/api/photos"),
})
MAX_LIST_LIMIT = 20_000
# A list endpoint's ``limit`` parameter: 1..MAX_LIST_LIMIT, a 422 naming ``limit`` beyond.
PageLimit = Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT,
                                 description=f"at most {MAX_LIST_LIMIT} items")]
# Pillow's format names; phones write some JPEGs as MPO (several frames, the first the photo).
PHOTO_TYPES = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png",
               "WEBP": "image/webp"}


def _int_env(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


@dataclass(frozen=True)
class Limits:
    body_bytes: int
    upload_bytes: int
    vertices: int
    feature_vertices: int
    track_fixes: int
    photo_bytes: int
    photo_pixels: int


def current() -> Limits:
    """The limits in force (read from the environment now)."""
    return Limits(
        body_bytes=_int_env("XIAOSAN_MAX_BODY_BYTES", 1 * MIB),
        upload_bytes=_int_env("XIAOSAN_MAX_UPLOAD_BYTES", 50 * MIB),
        vertices=_int_env("XIAOSAN_MAX_VERTICES", 10_000),
        feature_vertices=_int_env("XIAOSAN_MAX_FEATURE_VERTICES", 200_000),
        track_fixes=_int_env("XIAOSAN_MAX_TRACK_FIXES", 86_400),
        photo_bytes=_int_env("XIAOSAN_MAX_PHOTO_BYTES", 10 * MIB),
        photo_pixels=_int_env("XIAOSAN_MAX_PHOTO_PIXELS", 40_000_000),
    )


def body_limit(method: str, path: str) -> int:
    """How many body bytes a request to ``method path`` may carry."""
    lim = current()
    if (method.upper(), path.rstrip("/") or "/") in UPLOAD_ROUTES:
        return max(lim.upload_bytes, lim.body_bytes)
    return lim.body_bytes


def _size(n: int) -> str:
    return f"{n / MIB:g} MiB" if n >= MIB else f"{n:,} bytes"


def field_error(field: str, msg: str, *, where: str = "body", kind: str = "value_error") -> dict:
    """One entry of a ``detail`` list: where, which field, why (the message names the field)."""
    return {"loc": [where, field] if field else [where], "msg": msg, "type": kind}


class BodyTooLarge(HTTPException):
    """413: the body is larger than the route allows (declared, or counted as it arrived)."""

    def __init__(self, limit: int):
        super().__init__(413, [field_error(
            "body", f"body: more than the {_size(limit)} allowed on this route", kind="too_large")])


def _json_response(status: int, detail: list[dict]) -> tuple[Message, Message]:
    body = json.dumps({"detail": detail}, ensure_ascii=False).encode()
    return (
        {"type": "http.response.start", "status": status,
         "headers": [(b"content-type", b"application/json"),
                     (b"content-length", str(len(body)).encode())]},
        {"type": "http.response.body", "body": body},
    )


def nul_problem(scope: Scope) -> dict | None:
    """A query parameter or path with a NUL character, as a detail entry (else None)."""
    if "\x00" in scope.get("path", ""):
        return field_error("path", "path: must not contain NUL characters", where="path")
    raw = scope.get("query_string", b"")
    if b"%00" not in raw and b"\x00" not in raw:
        return None
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            shown = name.replace("\x00", "") or "query"
            return field_error(shown, f"{shown}: must not contain NUL characters", where="query")
    return None


class RequestLimits:
    """ASGI middleware: refuse oversized bodies (413) and NUL characters in the URL (422), and
    admit at most ``XIAOSAN_MAX_IN_FLIGHT`` requests at once (503 with Retry-After when one
    waits longer than ``XIAOSAN_QUEUE_TIMEOUT_S``).

    A declared ``Content-Length`` over the limit is refused before the body is read; a body
    streamed without one is counted as it arrives and refused when it passes the limit.

    Why admission: routes and their dependencies are synchronous, so each step of a request
    takes a thread of the server's pool (40) and a request holds one database connection
    (pool: 5 + 10 overflow) from its first query to its end. With more requests in flight
    than connections, threads block waiting for a connection while the requests holding
    connections wait for a thread: nothing moves until the pool times out. Waiting *before*
    the request starts (asynchronously, holding neither) keeps the two pools from starving
    each other; the default of 15 matches the connection pool.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._gates: weakref.WeakKeyDictionary[Any, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary())

    def _gate(self) -> asyncio.Semaphore:
        """One semaphore per event loop (a test client runs its own loop)."""
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Semaphore(_int_env("XIAOSAN_MAX_IN_FLIGHT", 15))
        return gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = nul_problem(scope)
        if problem is not None:
            for message in _json_response(422, [problem]):
                await send(message)
            return
        limit = body_limit(scope["method"], scope["path"])
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            for message in _json_response(413, BodyTooLarge(limit).detail):
                await send(message)
            return
        if scope["path"].startswith("/static/"):  # files: no database, no queue
            await self._run(scope, receive, send, limit)
            return
        gate = self._gate()
        wait_s = _int_env("XIAOSAN_QUEUE_TIMEOUT_S", 30)
        try:
            await asyncio.wait_for(gate.acquire(), timeout=wait_s)
        except TimeoutError:
            start, body = _json_response(503, [field_error(
                "request", "request: the service is busy; try again shortly", where="server",
                kind="busy")])
            start["headers"].append((b"retry-after", b"2"))
            await send(start)
            await send(body)
            return
        try:
            await self._run(scope, receive, send, limit)
        finally:
            gate.release()

    async def _run(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge as exc:  # raised where no handler turned it into a response
            if started:
                raise
            for message in _json_response(413, exc.detail):
                await send(message)


# --- geometry -------------------------------------------------------------------------------


def count_positions(coordinates: Any, field: str, *, limit: int) -> int:
    """Positions in GeoJSON ``coordinates`` (any nesting), refusing more than ``limit``.

    Walks the nested lists without recursion and stops as soon as the limit is passed, so an
    enormous or deeply nested input costs no more than the limit.
    """
    count, stack = 0, [(coordinates, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > 4:
            raise GeometryError(f"{field}: coordinates nested too deeply for GeoJSON")
        if not isinstance(value, list | tuple) or not value:
            raise GeometryError(f"{field}: coordinates must be non-empty lists of positions")
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            count += 1
            if count > limit:
                raise GeometryError(
                    f"{field}: more than {limit:,} vertices; simplify the geometry first")
            continue
        stack.extend((v, depth + 1) for v in value)
    return count


def check_geometry_size(geometry: Any, field: str, *, limit: int | None = None) -> int:
    """The vertex count of a GeoJSON geometry (or Feature), refused above the limit."""
    limit = limit or current().vertices
    if isinstance(geometry, dict) and geometry.get("type") == "Feature":
        geometry = geometry.get("geometry")
    if not isinstance(geometry, dict):
        return 0  # the caller's own checks say what is wrong with it
    if geometry.get("type") == "GeometryCollection":
        parts = geometry.get("geometries")
        if not isinstance(parts, list):
            return 0
        total = 0
        for part in parts:
            total += check_geometry_size(part, field, limit=limit - total)
        return total
    coords = geometry.get("coordinates")
    if coords is None:
        return 0
    return count_positions(coords, field, limit=limit)


def check_frame_vertices(geometries: Iterable[Any], codes: Iterable[Any], field: str = "file",
                         *, limit: int | None = None) -> None:
    """Refuse a boundary file with a feature of more vertices than the limit."""
    import shapely

    limit = limit or current().feature_vertices
    for code, geom in zip(codes, geometries, strict=True):
        n = int(shapely.get_num_coordinates(geom)) if geom is not None else 0
        if n > limit:
            raise GisError(f"{field}: feature {code} has {n:,} vertices, more than the "
                           f"{limit:,} allowed; simplify it first")


# --- photos ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Photo:
    format: str
    media_type: str
    width: int
    height: int
    size: int


def check_photo(data: bytes, field: str = "file") -> Photo:
    """A JPEG, PNG or WebP image, decoded by Pillow to prove it; refused otherwise.

    The file's name and declared Content-Type are not trusted: a renamed executable or a
    truncated image is refused by its content. Pixel counts are checked from the header
    before decoding, so a small file that would decode into gigabytes (a decompression bomb)
    is refused without decoding it.
    """
    from PIL import Image, UnidentifiedImageError

    lim = current()
    if not data:
        raise GisError(f"{field}: empty file")
    if len(data) > lim.photo_bytes:
        raise GisError(f"{field}: {_size(len(data))} is more than the {_size(lim.photo_bytes)} "
                       "allowed for a photo")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                kind = img.format or ""
                width, height = img.size
                if kind not in PHOTO_TYPES:
                    raise GisError(f"{field}: a {kind or 'unknown'} image; photos must be "
                                   "JPEG, PNG or WebP")
                if width * height > lim.photo_pixels:
                    raise GisError(f"{field}: {width}×{height} pixels is more than the "
                                   f"{lim.photo_pixels:,} allowed")
                img.load()  # decode it all: a truncated or corrupt file fails here
    except GisError:
        raise
    except UnidentifiedImageError as exc:
        raise GisError(f"{field}: not an image (JPEG, PNG or WebP expected)") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise GisError(f"{field}: more than the {lim.photo_pixels:,} pixels allowed") from exc
    except (OSError, ValueError, SyntaxError) as exc:  # truncated, corrupt
        raise GisError(f"{field}: the image is damaged or truncated ({exc})") from exc
    return Photo(kind, PHOTO_TYPES[kind], width, height, len(data))
