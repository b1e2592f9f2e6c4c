"""The ASGI application: ``app.main:app``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from app import gcpolicy, warmup
from app.api import auth as auth_api
from app.api import calendar as calendar_api
from app.api import coverage as coverage_api
from app.api import errors, hotspots, jurisdiction, pages, projects, public, territory
from app.api import hazards as hazards_api
from app.api import layers as layers_api
from app.api import map_pages as map_pages_api
from app.api import open311 as open311_api
from app.api import patrols as patrols_api
from app.api import photos as photos_api
from app.api import plans as plans_api
from app.api import rankings as rankings_api
from app.api import stats as stats_api
from app.api import worklist as worklist_api
from app.api.deps import SessionDep
from app.db import get_engine
from app.limits import RequestLimits
from app.services.territory import level_counts
from layers.offline import STATIC_DIR

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")



@asynccontextmanager
async def _lifespan(_: FastAPI) -> AsyncIterator[None]:
    gcpolicy.watch()  # the collector's pauses, reported by /health (app/gcpolicy.py)
    job = warmup.start(get_engine())  # connections and caches, in the background (app/warmup.py)
    try:
        yield
    finally:
        if job is not None:  # its connections go back to the pool before anyone disposes it
            job.stop()


app = FastAPI(
    lifespan=_lifespan,
    title="小散工程和零星作业安全生产纳管 · Small works safety supervision",
    version="0.1.0",
    description="Territory, jurisdiction and supervision of small construction and sporadic works.",
)
errors.install(app)
# Oversized bodies and NUL characters are refused before any route runs.
app.add_middleware(RequestLimits)
auth_api.install(app)  # the 401 page, CORS (closed unless XIAOSAN_CORS_ORIGINS), the key
app.include_router(auth_api.router)
app.include_router(open311_api.router)
app.include_router(territory.router)
app.include_router(jurisdiction.router)
app.include_router(pages.router)
app.include_router(projects.router)
app.include_router(calendar_api.router)
app.include_router(public.router)
app.include_router(patrols_api.router)
app.include_router(plans_api.router)
app.include_router(coverage_api.router)
app.include_router(hotspots.router)
app.include_router(hazards_api.router)
app.include_router(layers_api.router)
app.include_router(rankings_api.router)
app.include_router(photos_api.router)
app.include_router(map_pages_api.router)
app.include_router(stats_api.router)
app.include_router(worklist_api.router)
app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


@app.get("/favicon.ico", include_in_schema=False)
def favicon():
    return FileResponse(STATIC_DIR / "favicon.png", media_type="image/png")


@app.get("/health", tags=["meta"])
def health(session: SessionDep):
    """Liveness and what the database holds."""
    session.execute(text("SELECT 1"))
    return {"status": "ok", "territory": level_counts(session), "warm": warmup.state(),
            "gc": gcpolicy.stats()}
