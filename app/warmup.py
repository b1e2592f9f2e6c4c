"""What the first requests after a start would otherwise pay, done once in the background.

A fresh server has no database connections: the first requests each open one, and the first
PostGIS function a backend runs loads the PostGIS library into it (tens of milliseconds); the
union of a district's grids (uncovered land) and the grid outlines of the blind-spot map are
computed on first use and then kept per territory version. :func:`warm` opens the pool's
connections at once, has each load PostGIS and cut an empty tile, and fills those caches for
every current district. It runs in a daemon thread started with the app (``XIAOSAN_WARMUP=0``
leaves it out) and never fails the server: a database not there yet is logged and left to the
requests, as before. The app's shutdown stops it between steps and waits for it
(:meth:`Warmup.stop`), so no connection it holds outlives the engine's pool.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app import gcpolicy

log = logging.getLogger(__name__)

_STATE: dict[str, Any] = {"done": False, "ms": None}

# An empty tile and a GeoJSON geometry: loads PostGIS and the MVT code into the backend.
_PRIME = """SELECT ST_AsMVT(q, 'w', 4096, 'geom'), ST_AsGeoJSON(ST_MakePoint(0, 0), 6)
            FROM (SELECT ST_AsMVTGeom(ST_MakePoint(0, 0), ST_MakeEnvelope(0, 0, 1, 1), 4096, 0,
                                      false) AS geom) q"""


def state() -> dict[str, Any]:
    """Whether the warm-up has finished and how long it took (None: it failed, see the log)."""
    return dict(_STATE)


class Stopped(Exception):
    """The server is shutting down: the warm-up gives its connections back and ends."""


def warm(engine: Engine, stopping: threading.Event | None = None) -> dict[str, Any]:
    """Open ``pool_size`` connections together and prime each; fill the per-territory caches.

    ``stopping``, once set, ends the work at the next step (:class:`Stopped`)."""
    from app.services import coverage

    def check() -> None:
        if stopping is not None and stopping.is_set():
            raise Stopped

    started = time.perf_counter()
    size = getattr(engine.pool, "size", lambda: 5)()
    conns = []
    try:
        for _ in range(size):
            check()
            conn = engine.connect()
            conns.append(conn)
            conn.execute(text(_PRIME))
            conn.rollback()
    finally:
        for conn in conns:
            conn.close()
    districts = 0
    with Session(engine) as session:
        codes = session.scalars(text(
            "SELECT code FROM districts WHERE valid_to IS NULL ORDER BY code")).all()
        for code in codes:
            check()
            coverage.grid_outlines(session, code)
            coverage.uncovered_areas(session, district=code)
            districts += 1
        session.rollback()
    ms = (time.perf_counter() - started) * 1000
    gcpolicy.settle("warm-up")  # the caches just filled live as long as the process
    _STATE.update(done=True, ms=round(ms, 1))
    log.info("warm: %d connections primed, %d districts' outlines kept, %.0f ms", size,
             districts, ms)
    return state()


class Warmup:
    """A warm-up running in its daemon thread; :meth:`stop` ends it and waits."""

    def __init__(self, engine: Engine) -> None:
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(engine,), name="warmup",
                                       daemon=True)

    def _run(self, engine: Engine) -> None:
        try:
            warm(engine, self.stopping)
        except Stopped:
            log.info("warm-up stopped: the server is shutting down")
        except Exception as exc:  # noqa: BLE001 - a warm-up never stops the server
            _STATE.update(done=True)
            log.warning("warm-up skipped: %s", f"{type(exc).__name__}: {exc}".splitlines()[0])

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the warm-up to end at its next step and wait for it (a statement under way ends
        first: each is a few milliseconds to a district's union of grids)."""
        self.stopping.set()
        self.thread.join(timeout)


def start(engine: Engine) -> Warmup | None:
    """Run :func:`warm` in a daemon thread (unless ``XIAOSAN_WARMUP=0``)."""
    if os.environ.get("XIAOSAN_WARMUP", "1") == "0":
        return None
    job = Warmup(engine)
    job.thread.start()
    return job
