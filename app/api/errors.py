"""One shape for every error a user sees: which field, and why. Never a stack trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError

from gis._errors import GisError

log = logging.getLogger(__name__)


def _field_of(message: str) -> str | None:
    head, sep, _ = message.partition(":")
    return head.strip() if sep and " " not in head.strip() else None


def gis_error_body(exc: GisError) -> dict:
    message = str(exc)
    return {"detail": [{"loc": ["body", _field_of(message) or "input"], "msg": message}]}


def install(app: FastAPI) -> None:
    @app.exception_handler(GisError)
    async def _gis_error(request: Request, exc: GisError) -> JSONResponse:
        body = gis_error_body(exc)
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

    @app.exception_handler(OperationalError)
    async def _db_down(request: Request, exc: OperationalError) -> JSONResponse:
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
