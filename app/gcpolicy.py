"""The garbage collector of a long-running server: what lives for the process is frozen.

CPython's full (oldest-generation) collection walks every tracked object. A server holds a
quarter of a million of them from its imports alone (FastAPI, SQLAlchemy, shapely, geopandas,
PyVRP…), plus what it keeps (grid outlines, road networks): a full collection costs 140–200 ms
on this project's machines, and it falls on whichever request happened to allocate the
object that crossed the threshold. Those objects never die: :func:`settle` collects once
and moves everything alive into the permanent generation (:func:`gc.freeze`), so later
collections walk only what requests allocate. It is called
when the warm-up has filled its caches (the imports' objects with them) and after a road
network is read. Reference cycles made later are still collected as before; an object frozen
alive and dropped later in a cycle is not (the process's long-lived objects, by design).
``XIAOSAN_GC_FREEZE=0`` turns it off (the test process does: its objects are not a server's).
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time

log = logging.getLogger(__name__)
_LOCK = threading.Lock()
# Per generation: collections since the process started, their total and longest pause (ms).
_PAUSES = {g: {"n": 0, "total_ms": 0.0, "max_ms": 0.0} for g in range(3)}
_STARTED: list[float] = []


def enabled() -> bool:
    return os.environ.get("XIAOSAN_GC_FREEZE", "1") != "0"


def settle(why: str) -> dict[str, float | int] | None:
    """Collect once, then freeze every object alive; returns what it did (None: off)."""
    if not enabled():
        return None
    with _LOCK:
        started = time.perf_counter()
        gc.collect()
        gc.freeze()
        ms = (time.perf_counter() - started) * 1000
    out = {"frozen": gc.get_freeze_count(), "ms": round(ms, 1)}
    log.info("gc settled (%s): %d objects frozen in %.0f ms", why, out["frozen"], ms)
    return out


def _timer(phase: str, info: dict) -> None:
    if phase == "start":
        _STARTED.append(time.perf_counter())
    elif _STARTED:
        ms = (time.perf_counter() - _STARTED.pop()) * 1000
        p = _PAUSES[info["generation"]]
        p["n"] += 1
        p["total_ms"] += ms
        p["max_ms"] = max(p["max_ms"], ms)


def watch() -> None:
    """Time every collection from now on (once per process; see :func:`stats`)."""
    if _timer not in gc.callbacks:
        gc.callbacks.append(_timer)


def stats() -> dict[str, object]:
    """Whether the long-lived objects are frozen, how many, and the collections' pauses per
    generation since :func:`watch` (``/health`` reports it)."""
    return {"freeze": enabled(), "frozen": gc.get_freeze_count(),
            "pauses": {f"gen{g}": {"n": p["n"], "total_ms": round(p["total_ms"], 1),
                                   "max_ms": round(p["max_ms"], 1)}
                       for g, p in _PAUSES.items()}}


def full_collection_ms() -> float:
    """How long a full collection takes now (the tests and the benchmarks time it)."""
    started = time.perf_counter()
    gc.collect()
    return (time.perf_counter() - started) * 1000
