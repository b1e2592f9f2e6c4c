"""Shared request dependencies and response types."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from app import jsonio
from app.db import get_session

SessionDep = Annotated[Session, Depends(get_session)]


class GeoJSONResponse(JSONResponse):
    """RFC 7946 GeoJSON (``application/geo+json``), written by :func:`app.jsonio.dumps`
    (geometries PostGIS wrote are copied, not parsed and written again)."""

    media_type = "application/geo+json"

    def render(self, content: Any) -> bytes:
        return jsonio.dumps(content)
