"""Benchmark: patrol upload through the real API, batched, with none lost and none doubled.

A scratch database gets the demo territory (for the grid of each patrol) and a few thousand
active sites in it (so uploads also match visits and update the summary); the real app is
served by uvicorn on 127.0.0.1 against it. Measured in the same run:

* **batches**: ``POST /api/patrols/batch`` with ``--batch`` records each, until ``--records``
  are sent or ``--seconds`` have passed; records/s over the wall time;
* **one by one** (the peer): ``POST /api/patrols`` per record for ``--single`` records;
* **retry**: every batch sent again, which must answer ``duplicate`` for every record;
* **the rollups' share**: batches take turns — as served (every trigger on), without the
  trigger that keeps the patrol tile cells (``patrol_cells``, 16 cell rows a patrol), without
  those keeping the sites' due bases (``grid_dues``'s on project_visit_summary), and without
  any rollup trigger (also ``grid_days``'s on patrols and patrol_visits: the peer) — measured
  batch for batch beside each other.

Afterwards the rows are counted: stored = created, duplicates stored nothing. Target ≥ 1,000
records/s with none lost.

Usage::

    .venv/bin/python bench/bench_patrol_upload.py [--records N] [--batch B] [--seconds S]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.db import get_engine, session_factory  # noqa: E402
from app.dbsetup import drop_database, init_database  # noqa: E402
from app.services.demo import load_demo  # noqa: E402
from bench._serve import admin_token, serve  # noqa: E402

BASE = "postgresql+psycopg://xiaosan:xiaosan@127.0.0.1:5432/"


def _sites(session, n: int) -> np.ndarray:
    """n active sites at random points of the demo grids; returns their lon/lat."""
    session.execute(text("SELECT setseed(0.7)"))
    session.execute(
        text(
            """INSERT INTO projects (reg_no, public_id, district_code, street_code, street_name,
                community_code, community_name, grid_code, grid_name, kind, category, title,
                address, site, site_input_crs, builder, contractor, investment_cny,
                floor_area_m2, planned_start, planned_end, risk_factors, public_area, channel,
                above_limit_reference, above_limit, high_risk, special_area, reviewer_kind,
                reviewer_code, reviewer_name, departments, decision, state, submitted_on,
                review_due, accepted_on, started_on, source, created_by)
           SELECT 'U' || g.n, 'u' || g.n, gr.district_code, c.parent_code, 's', gr.parent_code,
                  'c', gr.code, gr.name, 'small_project', 'residential_fitout', 'bench', 'bench',
                  ST_PointOnSurface(gr.geom), 'wgs84', '{}', '{}', 1000, 10, CURRENT_DATE,
                  CURRENT_DATE + 30, '[]', false, 'online', false, false, false, false,
                  'community_workstation', 'x', 'x', '[]', '{}', 'in_progress', CURRENT_DATE,
                  CURRENT_DATE, CURRENT_DATE, CURRENT_DATE, 'bench', 'bench'
           FROM generate_series(1, :n) g(n)
           JOIN LATERAL (SELECT * FROM grids WHERE valid_to IS NULL
                         ORDER BY code OFFSET (g.n * 7) % 1072 LIMIT 1) gr ON true
           JOIN communities c ON c.code = gr.parent_code AND c.valid_to IS NULL"""
        ),
        {"n": n},
    )
    rows = session.execute(text("SELECT ST_X(site), ST_Y(site) FROM projects")).all()
    return np.asarray(rows)


def _records(rng, sites: np.ndarray, n: int, tag: str) -> list[dict]:
    pick = sites[rng.integers(0, len(sites), n)]
    jitter = rng.normal(0, 0.0002, (n, 2))
    forces = ("supervisor", "grid_worker", "property", "public")
    return [
        {
            "client_id": f"{tag}-{i}",
            "inspector_id": f"insp-{i % 97}",
            "force": forces[i % 4],
            "started_at": f"2025-05-{1 + i % 28:02d}T10:{i % 60:02d}:00+08:00",
            "location": {"type": "Point", "coordinates": [float(x), float(y)]},
            "checklist": {"signboard": "ok", "site_order": "ok"},
            "photos": [f"p/{tag}/{i}.jpg"],
        }
        for i, (x, y) in enumerate(pick + jitter)
    ]


# The batches' trigger sets: the rollup triggers each leaves off.
_ROLLUPS = (("patrols", "patrol_cells_ins"),
            ("project_visit_summary", "grid_dues_project_visit_summary_ins"),
            ("project_visit_summary", "grid_dues_project_visit_summary_upd"),
            ("patrols", "grid_days_patrols_ins"),
            ("patrol_visits", "grid_days_patrol_visits_ins"))
MODES = {"as served": (), "no tile cells": _ROLLUPS[:1], "no site dues": _ROLLUPS[1:3],
         "no rollups (peer)": _ROLLUPS}


def _triggers(admin, *, off: tuple) -> None:
    for table, trigger in _ROLLUPS:
        state = "DISABLE" if (table, trigger) in off else "ENABLE"
        admin.execute(text(f"ALTER TABLE {table} {state} TRIGGER {trigger}"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=30_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--single", type=int, default=500)
    ap.add_argument("--sites", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=120.0)
    args = ap.parse_args()
    url = BASE + f"xiaosan_bench_up_{uuid.uuid4().hex[:6]}"
    init_database(url)
    proc = None
    try:
        with session_factory(url)() as session:
            load_demo(session)
            sites = _sites(session, args.sites)
            session.commit()
        token = admin_token(url)
        proc, base = serve(url)
        with httpx.Client(base_url=base, timeout=120,
                          headers={"Authorization": f"Bearer {token}"}) as http:
            rng = np.random.default_rng(1)
            records = _records(rng, sites, args.records, "b")
            batches = [records[i : i + args.batch] for i in range(0, len(records), args.batch)]
            # Batches take turns over the trigger sets, so that all see the same machine and
            # the same growing tables.
            sent, created, refused, t0 = 0, 0, 0, time.perf_counter()
            spent = dict.fromkeys(MODES, 0.0)
            done = dict.fromkeys(MODES, 0)
            with get_engine(url).connect().execution_options(
                    isolation_level="AUTOCOMMIT") as admin:
                for i, batch in enumerate(batches):
                    if time.perf_counter() - t0 > args.seconds:
                        break
                    mode = list(MODES)[i % len(MODES)]
                    _triggers(admin, off=MODES[mode])
                    tb = time.perf_counter()
                    r = http.post("/api/patrols/batch", json={"records": batch})
                    r.raise_for_status()
                    spent[mode] += time.perf_counter() - tb
                    done[mode] += len(batch)
                    created += r.json()["counts"].get("created", 0)
                    # A record the rules refuse (a point jittered off the territory) is
                    # answered as an error, not lost.
                    refused += r.json()["counts"].get("error", 0)
                    sent += len(batch)
                _triggers(admin, off=())
            batch_s = time.perf_counter() - t0
            t1, dup = time.perf_counter(), 0
            for batch in batches[: (sent + args.batch - 1) // args.batch]:
                r = http.post("/api/patrols/batch", json={"records": batch})
                dup += r.json()["counts"].get("duplicate", 0)
            retry_s = time.perf_counter() - t1
            singles = _records(rng, sites, args.single, "s")
            t2, single_ok = time.perf_counter(), 0
            for rec in singles:
                single_ok += http.post("/api/patrols", json=rec).status_code == 201
            single_s = time.perf_counter() - t2
        with session_factory(url)() as session:
            stored = session.scalar(text("SELECT count(*) FROM patrols WHERE client_id LIKE 'b-%'"))
            visits = session.scalar(text("SELECT count(*) FROM patrol_visits"))
        rate = sent / batch_s
        print(
            f"records sent in batches of {args.batch}: {sent:,} (limit {args.records:,} "
            f"records / {args.seconds:.0f} s); sites {args.sites:,}; visits matched {visits:,}"
        )
        print()
        print(f"{'method':<28}{'records':>9}{'seconds':>9}{'records/s':>11}{'vs one-by-one':>15}")
        single_rate = args.single / single_s
        print(
            f"{'batch upload':<28}{sent:>9,}{batch_s:>9.2f}{rate:>11,.0f}"
            f"{rate / single_rate:>14.1f}x"
        )
        for mode in MODES:
            r_ = done[mode] / spent[mode] if spent[mode] else 0.0
            print(f"{'  ' + mode:<28}{done[mode]:>9,}{spent[mode]:>9.2f}{r_:>11,.0f}"
                  f"{r_ / single_rate:>14.1f}x")
        print(
            f"{'batch retry (duplicates)':<28}{sent:>9,}{retry_s:>9.2f}"
            f"{sent / retry_s:>11,.0f}{(sent / retry_s) / single_rate:>14.1f}x"
        )
        print(
            f"{'one by one (peer)':<28}{args.single:>9,}{single_s:>9.2f}{single_rate:>11,.0f}"
            f"{1.0:>14.1f}x"
        )
        print()
        lost = sent - refused - stored
        print(
            f"stored {stored:,} = created {created:,}; refused {refused} (answered, with the "
            f"field and why); lost {lost}; retry answered duplicate "
            f"for {dup:,} of {sent:,}; single uploads stored {single_ok}/{args.single}"
        )
        print(
            f"target ≥ 1,000 records/s with none lost: "
            f"{'met' if rate >= 1000 and lost == 0 and dup == sent - refused else 'NOT met'}"
        )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        get_engine(url).dispose()
        drop_database(url)


if __name__ == "__main__":
    main()
