"""One shape for every error a user sees: which field, and why. Never a stack trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from gis._errors import GisError

log = logging.getLogger(__name__)


def _field_of(message: str) -> str | None:
    head, sep, _ = message.partition(":")
    return head.strip() if sep and " " not in head.strip() else None


def gis_error_body(exc: GisError) -> dict:
    message = str(exc)
    return {"detail": [{"loc": ["body", _field_of(message) or "input"], "msg": message,
                        "type": "value_error"}]}


def install(app: FastAPI) -> None:
    @app.exception_handler(GisError)
    async def _gis_error(request: Request, exc: GisError) -> JSONResponse:
        body = gis_error_body(exc)
        entry = body["detail"][0]
        if entry["loc"][1] in request.query_params:  # a query parameter, not a body field
            entry["loc"][0] = "query"
        report = getattr(exc, "report", None)
        if report is not None:
            body["report"] = {"counts": report.counts(), "problems": report.to_geojson()}
        return JSONResponse(status_code=422, content=body)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", [])), "msg": e.get("msg", "invalid"), "type": e.get("type")}
            for e in exc.errors()
        ]
        return JSONResponse(status_code=422, content={"detail": errors})

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        # A 422 raised by hand ("bbox: expected ...") gets the documented list shape too.
        if exc.status_code == 422 and isinstance(exc.detail, str):
            field = _field_of(exc.detail) or "input"
            where = "query" if field in request.query_params else "body"
            return JSONResponse(status_code=422, headers=exc.headers, content={"detail": [
                {"loc": [where, field], "msg": exc.detail, "type": "value_error"}]})
        return await http_exception_handler(request, exc)

    @app.exception_handler(PoolTimeout)
    async def _busy(request: Request, exc: PoolTimeout) -> JSONResponse:
        # Every database connection stayed busy for the pool's timeout: overloaded, not broken.
        log.warning("no database connection free for %s %s", request.method, request.url.path)
        return JSONResponse(
            status_code=503,
            content={"detail": "the service is busy; try again shortly"},
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(DBAPIError)
    async def _db_down(request: Request, exc: DBAPIError) -> JSONResponse:
        if isinstance(exc, DataError):
            # A value PostgreSQL refuses (a NUL in text, a number out of range): the input's
            # fault, and nothing was stored (the request's transaction is rolled back).
            why = str(exc.orig).strip().splitlines()[0] if exc.orig else "invalid value"
            log.warning("value refused by the database on %s %s: %s", request.method,
                        request.url.path, why)
            return JSONResponse(status_code=422, content={"detail": [
                {"loc": ["body", "input"], "msg": f"input: a value the database refuses ({why})",
                 "type": "value_error"}]})
        if not (isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated):
            return await _unexpected(request, exc)
        log.warning("database unavailable: %s", exc.orig)
        return JSONResponse(
            status_code=503,
            content={"detail": "the database is unavailable; try again shortly"},
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(status_code=500, content={"detail": "internal error; it was logged"})
