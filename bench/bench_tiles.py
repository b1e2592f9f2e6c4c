"""Benchmark: vector tiles and GeoJSON layers at city scale, through the real app.

Builds a scratch database (migrated with the project's Alembic migrations, the demo territory of
Futian loaded) and fills it with generate_series: 50,000 projects spread over the district's
grids (every state; 30 % high risk) and 2,000,000 patrol points (``--patrols`` for more) within
~30 m of a site over the last 365 days, appended in time order as uploads arrive, 1 % of them
with a GPS track; hazards at 0.6 % of patrols and a few dozen incidents. Building is timed
apart and not part of the figures.

Then it serves the app with uvicorn on loopback and requests, with httpx, tiles at zooms 10–18
over the district: every tile of the district up to z12, and above that ``--samples`` tiles per
zoom around randomly drawn sites (so most hold data). Per zoom and series it prints the median
and 95th percentile time of a request and the largest tile:

* **patrols, 7 days**: the patrols layer as a map asks for it (its default period);
* **patrols, 12 months**: one district's current month and the 11 whole months before it, as
  the officials' page asks for them with its 12-month period (aggregated below z17 for a
  period this long; z9–z12 from the rollup's day/旬/month cells, z13–z16 from its month cells);
* **patrols, 365 days**: the last 365 days as an API client may ask: not whole months, so at
  z13–z16 the tile takes its whole months from the month cells and counts the days at its edges
  from the points (read from the (district, day) index that carries their coordinates);
* **patrols, all history**: every patrol point (``since=2000-01-01``);
* **365 days, in-process** beside **peer: months, no quarters** (z13–z16): the same tiles cut
  in-process from the cells as served (quarters, months and the edge days' points) and with
  each quarter read as its three months (the cells before migration 0012), taking turns;
* **projects**, **projects, active**: every project, and the active ones as the officials'
  page asks (aggregated below z15; z9–z14 from the rollup's cells);
* **peer: 12 months, points**: the same 12-month tiles cut by the same code from the points
  instead of the rollup (``tile(..., use_rollup=False)``), in-process SQL, no HTTP;
* **naive**: measured in the same run on the same database, ``ST_AsMVT`` of every patrol point
  of the tile (``ST_AsMVTGeom(ST_Transform(location, 3857), ST_TileEnvelope(z, x, y))``, no
  aggregation, no period), run directly in PostgreSQL — so it pays no HTTP at all.

The build's patrol time includes the rollup's trigger (one statement of 2,000,000 rows).
And the GeoJSON endpoints of the bounded layers with the district's bbox (patrols with one
grid's bbox), timed the same way. Target: p95 ≤ 50 ms a tile at every zoom.

With ``--gc-peer`` a second server, started with ``XIAOSAN_GC_FREEZE=0`` (its long-lived objects
left to the garbage collector's full walks, see ``app/gcpolicy.py``), answers every tile and
GeoJSON request too, taking turns with the served one (rows "peer: gc not frozen"); at the end
each server's collections and their longest pause are printed from its ``/health``.

Usage::

    .venv/bin/python bench/bench_tiles.py [--patrols N] [--projects M] [--samples K]
        [--naive-max-zoom Z] [--peer-max-zoom Z] [--gc-peer] [--keep] [--reuse DBNAME]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import secrets
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.db import get_engine, session_factory  # noqa: E402
from app.dbsetup import drop_database, init_database  # noqa: E402
from app.services.demo import load_demo  # noqa: E402
from app.services.patrols import recompute_visit_summary  # noqa: E402
from bench._serve import admin_token, serve  # noqa: E402

BASE = "postgresql+psycopg://xiaosan:xiaosan@127.0.0.1:5432/"
DISTRICT = "440304000000"
ZOOMS = range(10, 19)
STATES = ("submitted", "accepted", "briefed", "in_progress", "in_progress", "in_progress",
          "completion_declared", "closed", "closed", "closed", "expired", "revoked")
FORCES = ("supervisor", "supervisor", "grid_worker", "property", "public")
HAZARD_STATES = ("found", "ordered", "rectified", "verified", "verified", "escalated")


def _build(session, n_projects: int, n_patrols: int) -> dict[str, float]:
    timings: dict[str, float] = {}
    t = time.perf_counter()
    session.execute(text("SELECT setseed(0.42)"))
    # Sites: random points in every grid, as many as its share of the district's area.
    session.execute(text(
        """CREATE TEMP TABLE sites AS
           SELECT row_number() OVER () AS rn, s.* FROM (
             SELECT g.code, g.name, c.code AS community_code, c.name AS community_name,
                    st.code AS street_code, st.name AS street_name,
                    (ST_Dump(ST_GeneratePoints(g.geom, greatest(1, round(
                        :n * ST_Area(g.geom) / (SELECT sum(ST_Area(geom)) FROM grids
                                                WHERE valid_to IS NULL)))::int, 7))).geom AS pt
             FROM grids g
             JOIN communities c ON c.code = g.parent_code AND c.valid_to IS NULL
             JOIN streets st ON st.code = c.parent_code AND st.valid_to IS NULL
             WHERE g.valid_to IS NULL AND g.district_code = :d) s
           LIMIT :n"""), {"n": n_projects, "d": DISTRICT})
    session.execute(text(
        """INSERT INTO projects (reg_no, public_id, district_code, street_code, street_name,
                community_code, community_name, grid_code, grid_name, kind, category, title,
                address, site, site_input_crs, builder, contractor, investment_cny,
                floor_area_m2, planned_start, planned_end, risk_factors, public_area, channel,
                above_limit_reference, above_limit, high_risk, special_area, reviewer_kind,
                reviewer_code, reviewer_name, departments, decision, state, submitted_on,
                review_due, accepted_on, started_on, source, created_by)
           SELECT 'BT' || rn, 'bt' || rn, :d, street_code, street_name, community_code,
                  community_name, code, name,
                  CASE WHEN random() < 0.58 THEN 'small_project' ELSE 'sporadic_work' END,
                  'residential_fitout', 'bench', 'bench', pt, 'wgs84', '{}', '{}', 1000, 10,
                  day + 5, day + 60, '[]', false, 'online', false, false, random() < 0.3,
                  false, 'community_workstation', 'x', 'x', '[]', '{}',
                  (CAST(:states AS text[]))[1 + floor(random() * :ns)::int], day, day + 3,
                  day + 3, day + 8, 'bench', 'bench'
           FROM (SELECT *, CURRENT_DATE - floor(random() * 365)::int AS day FROM sites) s"""),
        {"d": DISTRICT, "states": list(STATES), "ns": len(STATES)})
    session.execute(text("ANALYZE projects"))
    timings["projects"] = time.perf_counter() - t
    t = time.perf_counter()
    n_sites = session.scalar(text("SELECT count(*) FROM sites"))
    session.execute(text("CREATE INDEX ON sites (rn)"))
    # Patrols are appended as they are uploaded: in time order (ORDER BY ts).
    session.execute(text(
        """INSERT INTO patrols (district_code, client_id, inspector_id, force, started_at,
                                patrol_on, location, track, street_code, community_code,
                                grid_code, payload_hash, source)
           SELECT :d, 'bt' || r.g, 'insp-' || (r.g % 300), (CAST(:forces AS text[]))[r.f],
                  r.ts, (r.ts AT TIME ZONE 'Asia/Shanghai')::date,
                  ST_SetSRID(ST_MakePoint(x, y), 4326),
                  CASE WHEN r.g % 100 = 0 THEN ST_SetSRID(ST_Multi(ST_MakeLine(ARRAY[
                      ST_MakePointM(x - 0.002, y - 0.001, extract(epoch FROM r.ts)),
                      ST_MakePointM(x - 0.001, y + 0.0005, extract(epoch FROM r.ts) + 300),
                      ST_MakePointM(x, y, extract(epoch FROM r.ts) + 600),
                      ST_MakePointM(x + 0.0015, y + 0.001, extract(epoch FROM r.ts) + 900)])),
                      4326) END,
                  s.street_code, s.community_code, s.code, 'x', 'bench'
           FROM (SELECT g, 1 + floor(random() * :nf)::int AS f,
                        now() - random() * interval '365 days' AS ts,
                        1 + (g * 2654435761) % :ns AS rn
                 FROM generate_series(1, :n) g) r
           JOIN sites s ON s.rn = r.rn
           CROSS JOIN LATERAL (SELECT ST_X(s.pt) + (random() - 0.5) * 0.0006 AS x,
                                      ST_Y(s.pt) + (random() - 0.5) * 0.0006 AS y) p
           ORDER BY r.ts"""),
        {"d": DISTRICT, "n": n_patrols, "ns": n_sites, "forces": list(FORCES),
         "nf": len(FORCES)})
    timings["patrols"] = time.perf_counter() - t
    t = time.perf_counter()
    _visits(session)
    timings["visits+summary"] = time.perf_counter() - t
    t = time.perf_counter()
    session.execute(text(
        """INSERT INTO hazards (district_code, project_id, patrol_id, location, street_code,
                                community_code, grid_code, hazard_type, severity, found_on,
                                found_by, responsible, due_on, state, source)
           SELECT p.district_code, NULL, p.id, p.location, p.street_code, p.community_code,
                  p.grid_code, 'fall_from_height',
                  (ARRAY['immediate', 'general', 'major'])[1 + floor(random() * 3)::int],
                  p.patrol_on, 'bench', '{}', p.patrol_on + 7,
                  (CAST(:states AS text[]))[1 + floor(random() * :nh)::int], 'bench'
           FROM patrols p WHERE random() < 0.006"""),
        {"states": list(HAZARD_STATES), "nh": len(HAZARD_STATES)})
    session.execute(text(
        """INSERT INTO incidents (district_code, incident_type, occurred_on, location,
                                  street_code, community_code, grid_code, deaths, injuries,
                                  source)
           SELECT :d, 'fall_from_height', CURRENT_DATE - floor(random() * 365)::int, pt,
                  street_code, community_code, code, (random() < 0.2)::int,
                  floor(random() * 3)::int, 'bench'
           FROM sites ORDER BY random() LIMIT 60"""), {"d": DISTRICT})
    timings["hazards+incidents"] = time.perf_counter() - t
    t = time.perf_counter()
    session.commit()
    conn = session.connection().connection.driver_connection
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    timings["vacuum"] = time.perf_counter() - t
    return timings


def _visits(session) -> None:
    """Every patrol is a visit to the site it was drawn at (its ``client_id`` names it), as the
    upload's matching would record it; then the per-project summary, rebuilt."""
    session.execute(text(
        """INSERT INTO patrol_visits (district_code, patrol_id, project_id, force, visited_on,
                                      arrived_at, how, distance_m)
           SELECT pa.district_code, pa.id, p.id, pa.force, pa.patrol_on, pa.started_at,
                  'nearby', 15
           FROM patrols pa
           JOIN projects p ON p.reg_no = 'BT' || (1 + (substr(pa.client_id, 3)::bigint
                                                       * 2654435761) % :ns)
           WHERE pa.source = 'bench'
           ORDER BY pa.id"""), {"ns": session.scalar(text(
               "SELECT count(*) FROM projects WHERE source = 'bench'"))})
    recompute_visit_summary(session)


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 1 << z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


def _tiles(session, samples: int, seed: int) -> dict[int, list[tuple[int, int]]]:
    """Every tile over the district up to z12; ``samples`` tiles around random sites above."""
    x0, y0, x1, y1 = session.execute(text(
        """SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)
           FROM (SELECT ST_Extent(geom) AS e FROM districts
                 WHERE code = :d AND valid_to IS NULL) s"""), {"d": DISTRICT}).one()
    sites = session.execute(text(
        "SELECT ST_X(site), ST_Y(site) FROM projects WHERE source = 'bench' "
        "ORDER BY id LIMIT 20000")).all()
    rng = random.Random(seed)
    out: dict[int, list[tuple[int, int]]] = {}
    for z in ZOOMS:
        (ax, ay), (bx, by) = _tile_of(x0, y1, z), _tile_of(x1, y0, z)
        every = [(x, y) for x in range(ax, bx + 1) for y in range(ay, by + 1)]
        if len(every) <= samples or z <= 12:
            out[z] = every
        else:
            out[z] = [_tile_of(*rng.choice(sites), z) for _ in range(samples)]
    return out


def _stats(times: list[float], sizes: list[int]) -> tuple[float, float, int, int]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    return statistics.median(ordered), p95, max(sizes) if sizes else 0, len(times)


def _request(client: httpx.Client, url: str, params: dict | None = None) -> tuple[float, int,
                                                                                  int]:
    t = time.perf_counter()
    r = client.get(url, params=params)
    ms = (time.perf_counter() - t) * 1000
    if r.status_code not in (200, 204):
        raise SystemExit(f"{url} {params}: {r.status_code} {r.text[:300]}")
    return ms, len(r.content), r.status_code


def _in_turn(i: int, peer: httpx.Client | None, url: str, params: dict | None,
             peer_times: list[float], served):
    """``served()``, with the peer's same request timed into ``peer_times`` (when there is a
    peer) before it on odd turns and after it on even ones; returns what ``served()`` did."""
    if peer is not None and i % 2:
        peer_times.append(_request(peer, url, params)[0])
    out = served()
    if peer is not None and not i % 2:
        peer_times.append(_request(peer, url, params)[0])
    return out


NAIVE = """SELECT ST_AsMVT(q, 'patrols', 4096, 'geom') FROM (
    SELECT id, force, ST_AsMVTGeom(ST_Transform(location, 3857), ST_TileEnvelope(:z, :x, :y),
                                   4096, 64, true) AS geom
    FROM patrols WHERE location && ST_Transform(ST_TileEnvelope(:z, :x, :y), 4326)) q"""


def _naive(session, z: int, x: int, y: int) -> tuple[float, int]:
    t = time.perf_counter()
    data = session.scalar(text(NAIVE), {"z": z, "x": x, "y": y})
    return (time.perf_counter() - t) * 1000, len(data or b"")


def _points(session, name: str, z: int, x: int, y: int, params: dict) -> tuple[float, int]:
    from app.services import layers as svc
    from layers.catalog import get

    layer = get(name)
    q = svc.parse_query(session, layer, params, tiles=True)
    t = time.perf_counter()
    data = svc.tile(session, layer, z, x, y, q, use_rollup=False)
    ms = (time.perf_counter() - t) * 1000
    session.rollback()
    return ms, len(data)


def _months_only(chosen: list) -> list:
    """The buckets with each quarter given as its three months (the rollup before quarters)."""
    from app.services import rollups

    out = []
    for span, start in chosen:
        if span != rollups.SPAN_QUARTER:
            out.append((span, start))
            continue
        for i in range(3):
            out.append((rollups.SPAN_MONTH, start.replace(month=start.month + i)))
    return out


def _quarters_share(session, tiles: dict, params: dict, zooms) -> list[tuple]:
    """The 365-day tiles in-process, from the cells with quarters (as served) and, the peer,
    with the quarters read as their months; tile by tile, taking turns (3 each, median)."""
    from app.services import layers as svc
    from app.services import rollups
    from layers.catalog import get

    layer = get("patrols")
    q = svc.parse_query(session, layer, params, tiles=True)
    served = rollups.buckets
    rows = []
    for z in zooms:
        times: dict[str, list[float]] = {"q": [], "m": []}
        sizes: dict[str, list[int]] = {"q": [], "m": []}
        for x, y in tiles[z]:
            runs: dict[str, list[float]] = {"q": [], "m": []}
            for i in range(6):
                mode = "q" if i % 2 == 0 else "m"
                rollups.buckets = served if mode == "q" else (  # type: ignore[assignment]
                    lambda *a, **k: _months_only(served(*a, **k)))
                try:
                    t = time.perf_counter()
                    data = svc.tile(session, layer, z, x, y, q)
                    runs[mode].append((time.perf_counter() - t) * 1000)
                finally:
                    rollups.buckets = served  # type: ignore[assignment]
                    session.rollback()
                sizes[mode].append(len(data))
            for mode in runs:
                times[mode].append(statistics.median(runs[mode]))
        if sizes["q"] != sizes["m"]:
            differ = sum(a != b for a, b in zip(sizes["q"], sizes["m"], strict=True))
            print(f"  z{z}: {differ} tiles differ in size with and without quarters")
        rows.append((z, "365 days, in-process", *_stats(times["q"], sizes["q"]), 0))
        rows.append((z, "  peer: months, no quarters", *_stats(times["m"], sizes["m"]), 0))
    return rows


def _geojson_series(client: httpx.Client, session, samples: int, peer: httpx.Client | None = None,
                    ) -> list[tuple[str, str, float, float, float, int, int]]:
    bbox = session.execute(text(
        """SELECT concat_ws(',', ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e))
           FROM (SELECT ST_Extent(geom) AS e FROM districts WHERE code = :d) s"""),
        {"d": DISTRICT}).scalar()
    grid_bbox = session.execute(text(
        """SELECT concat_ws(',', ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e))
           FROM (SELECT ST_Extent(geom) AS e FROM grids WHERE code = (
                   SELECT grid_code FROM projects WHERE source = 'bench' ORDER BY id LIMIT 1))
           s""")).scalar()
    cases = [
        ("districts", {"bbox": bbox}), ("streets", {"bbox": bbox}),
        ("communities", {"bbox": bbox}), ("grids", {"bbox": bbox}),
        ("hazards", {"bbox": bbox, "state": "open"}), ("incidents", {"bbox": bbox}),
        ("projects", {"bbox": grid_bbox}), ("patrols", {"bbox": grid_bbox}),
        ("blind_spots", {}), ("uncovered", {}), ("routes", {"bbox": bbox}),
    ]
    rows = []
    for name, params in cases:
        times, sizes, counts, peer_times = [], [], 0, []
        t = time.perf_counter()
        r = client.get(f"/api/layers/{name}", params=params)
        first = (time.perf_counter() - t) * 1000
        if r.status_code != 200:
            raise SystemExit(f"/api/layers/{name}: {r.status_code} {r.text[:300]}")
        peer_first = _request(peer, f"/api/layers/{name}", params)[0] if peer else 0.0

        def timed_get(name=name, params=params):
            t = time.perf_counter()
            r = client.get(f"/api/layers/{name}", params=params)
            return (time.perf_counter() - t) * 1000, r

        for i in range(samples):
            ms, r = _in_turn(i, peer, f"/api/layers/{name}", params, peer_times, timed_get)
            times.append(ms)
            sizes.append(len(r.content))
            counts = r.json()["count"]
        med, p95, size, _ = _stats(times, sizes)
        label = ",".join(k for k in params if k != "bbox") or "-"
        scope = "district bbox" if params.get("bbox") == bbox else (
            "one grid's bbox" if params.get("bbox") else "district")
        rows.append((name, f"{scope}; {label}", first, med, p95, size, counts))
        if peer is not None:
            rows.append(("  peer", "gc not frozen", peer_first,
                         *_stats(peer_times, sizes)[:3], counts))
        if name == "blind_spots":
            rows.extend(_blind_spots_counts(session, samples))
            rows.append(_blind_spots_peer(session, samples))
    return rows


def _blind_spots_counts(session, samples: int) -> list[tuple]:
    """The blind spots in-process (no HTTP), counting each grid's active and overdue sites from
    ``grid_dues`` (as served) and, the peer, from the active sites joined to their visit
    summaries; taking turns, in one run."""
    from app.services import coverage

    times: dict[str, list[float]] = {"kept": [], "sites": []}
    n = 0
    for i in range(2 * samples + 2):
        counts = "kept" if i % 2 == 0 else "sites"
        t = time.perf_counter()
        n = len(coverage.blind_spots(session, district=DISTRICT, counts=counts))
        times[counts].append((time.perf_counter() - t) * 1000)
    out = []
    for counts, label in (("kept", "in-process, sites counted from grid_dues"),
                          ("sites", "in-process, from the sites and summaries")):
        med, p95, _, _ = _stats(times[counts][1:], [0])
        out.append(("  service" if counts == "kept" else "  peer", label, times[counts][0],
                    med, p95, 0, n))
    return out


# The peer of the blind spots' effort per grid: the visits of the window counted, and the last
# patrol probed, straight from patrol_visits and patrols (as before grid_days kept them), with
# the same per-grid site counts; the SQL alone, no HTTP.
BLIND_PEER = """
    WITH per_grid AS (
        SELECT p.grid_code, count(*) AS active_sites,
               count(*) FILTER (WHERE coalesce(s.last_visit_on, p.started_on, p.briefed_on,
                   p.accepted_on, p.submitted_on) < CAST(:day AS date)
                   - CASE WHEN p.high_risk THEN 3 ELSE 7 END) AS overdue_sites
        FROM projects p LEFT JOIN project_visit_summary s ON s.project_id = p.id
        WHERE p.state = ANY(:active) AND p.district_code = :d GROUP BY p.grid_code),
    visits AS (
        SELECT p.grid_code, count(*) AS visits,
               count(DISTINCT (v.project_id, v.visited_on)) AS site_days
        FROM patrol_visits v JOIN projects p ON p.id = v.project_id
        WHERE v.district_code = :d AND v.visited_on BETWEEN :since AND :day
        GROUP BY p.grid_code)
    SELECT g.code, pg.active_sites, pg.overdue_sites, vi.visits, vi.site_days, lp.last_patrol_on,
           ST_AsGeoJSON(g.geom, 6)
    FROM grids g
    LEFT JOIN per_grid pg ON pg.grid_code = g.code
    LEFT JOIN visits vi ON vi.grid_code = g.code
    LEFT JOIN LATERAL (
        SELECT patrol_on AS last_patrol_on FROM patrols
        WHERE grid_code = g.code AND patrol_on <= :day
        ORDER BY patrol_on DESC LIMIT 1) lp ON true
    WHERE g.valid_to IS NULL AND g.district_code = :d"""


def _blind_spots_peer(session, samples: int) -> tuple:
    from app.patrol_rules import get_patrol_rules
    from app.services.registration import today_cn

    day = today_cn()
    params = {"d": DISTRICT, "day": day, "since": day - timedelta(days=29),
              "active": list(get_patrol_rules().active_states)}
    times, n = [], 0
    for _ in range(samples + 1):
        t = time.perf_counter()
        n = len(session.execute(text(BLIND_PEER), params).all())
        times.append((time.perf_counter() - t) * 1000)
    med, p95, _, _ = _stats(times[1:], [0])
    return ("  peer", "from the visits (SQL only)", times[0], med, p95, 0, n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patrols", type=int, default=2_000_000)
    ap.add_argument("--projects", type=int, default=50_000)
    ap.add_argument("--samples", type=int, default=60, help="tiles per zoom above z12")
    ap.add_argument("--naive-max-zoom", type=int, default=12)
    ap.add_argument("--peer-max-zoom", type=int, default=16,
                    help="cut the 12-month patrol tiles from the points too, up to this zoom")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--geojson-samples", type=int, default=20,
                    help="requests per GeoJSON layer, each after one warm-up")
    ap.add_argument("--skip-tiles", action="store_true", help="the GeoJSON layers only")
    ap.add_argument("--gc-peer", action="store_true",
                    help="a second server with the collector's freeze off (XIAOSAN_GC_FREEZE=0) "
                         "answers every request too, taking turns")
    ap.add_argument("--keep", action="store_true", help="keep the scratch database")
    ap.add_argument("--reuse", help="an existing scratch database name (skip the build)")
    args = ap.parse_args()
    os.environ.setdefault("XIAOSAN_SECRET_KEY", secrets.token_hex(32))
    name = args.reuse or f"xiaosan_bench_tiles_{uuid.uuid4().hex[:6]}"
    url = BASE + name
    proc = peer_proc = None
    peer_base = None
    try:
        if not args.reuse:
            print(f"load: {args.projects:,} projects, {args.patrols:,} patrol points in "
                  f"district {DISTRICT} (scratch database {name})")
            t = time.perf_counter()
            init_database(url)
            with session_factory(url)() as session:
                load_demo(session)
                session.commit()
                built = _build(session, args.projects, args.patrols)
            print(f"build: territory {time.perf_counter() - t - sum(built.values()):.1f} s, "
                  + ", ".join(f"{k} {v:.1f} s" for k, v in built.items()))
        load = os.getloadavg()
        token = admin_token(url)
        proc, base = serve(url, XIAOSAN_GC_FREEZE="1")
        if args.gc_peer:
            peer_proc, peer_base = serve(url, XIAOSAN_GC_FREEZE="0")
        rows: list[tuple] = []
        headers = {"Authorization": f"Bearer {token}"}
        with session_factory(url)() as session, httpx.Client(
                base_url=base, headers=headers, timeout=120) as client, httpx.Client(
                base_url=peer_base or base, headers=headers, timeout=120) as peer_client:
            peer = peer_client if args.gc_peer else None
            counts = session.execute(text(
                "SELECT (SELECT count(*) FROM projects), (SELECT count(*) FROM patrols), "
                "(SELECT count(*) FROM patrols WHERE patrol_on >= CURRENT_DATE - 6)")).one()
            print(f"rows: {counts[0]:,} projects, {counts[1]:,} patrol points "
                  f"({counts[2]:,} in the last 7 days)")
            for table in ("patrol_cells", "project_cells"):
                n, size = session.execute(text(
                    f"SELECT count(*), pg_size_pretty(pg_total_relation_size('{table}')) "
                    f"FROM {table}")).one()
                print(f"rollup {table}: {n:,} cells, {size}")
            tiles = _tiles(session, args.samples, args.seed)
            today = session.scalar(text("SELECT (now() AT TIME ZONE 'Asia/Shanghai')::date"))
            # The officials' page's "12 months": this month and the 11 before it, whole.
            start = today.replace(day=1)
            for _ in range(11):
                start = (start - timedelta(days=1)).replace(day=1)
            months12 = {"since": start.isoformat(), "until": today.isoformat(),
                        "district": DISTRICT}
            days365 = {"since": (today - timedelta(days=364)).isoformat(), "district": DISTRICT}
            series = (("patrols, 7 days", "patrols", {}),
                      ("patrols, 12 months", "patrols", months12),
                      ("patrols, 365 days", "patrols", days365),
                      ("patrols, all history", "patrols", {"since": "2000-01-01"}),
                      ("projects", "projects", {}),
                      ("projects, active", "projects", {"state": "active"}))
            for c in (client, peer) if peer is not None else (client,):
                c.get("/tiles/patrols/14/13381/7138.pbf")  # warm the server's imports
            for z in ZOOMS if not args.skip_tiles else ():
                for label, layer, params in series:
                    times, sizes, empty, peer_times = [], [], 0, []
                    for i, (x, y) in enumerate(tiles[z]):
                        url_ = f"/tiles/{layer}/{z}/{x}/{y}.pbf"
                        ms, size, status = _in_turn(
                            i, peer, url_, params, peer_times,
                            lambda url_=url_, params=params: _request(client, url_, params))
                        times.append(ms)
                        sizes.append(size)
                        empty += status == 204
                    rows.append((z, label, *_stats(times, sizes), empty))
                    if peer is not None:
                        rows.append((z, "  peer: gc not frozen", *_stats(peer_times, sizes),
                                     empty))
                if z <= args.peer_max_zoom:
                    # The peer: the same tiles cut from the points (no rollup), in-process SQL.
                    times, sizes = [], []
                    for x, y in tiles[z]:
                        ms, size = _points(session, "patrols", z, x, y, months12)
                        times.append(ms)
                        sizes.append(size)
                    rows.append((z, "peer: 12 months, points", *_stats(times, sizes), 0))
                if z <= args.naive_max_zoom:
                    times, sizes = [], []
                    for x, y in tiles[z]:
                        ms, size = _naive(session, z, x, y)
                        times.append(ms)
                        sizes.append(size)
                    rows.append((z, "naive (all points, SQL)", *_stats(times, sizes), 0))
                print(f"  z{z} done", flush=True)
            if not args.skip_tiles:
                rows += _quarters_share(session, tiles, days365, range(13, 17))
            geo = _geojson_series(client, session, args.geojson_samples, peer)
            servers = [("served", client)] + ([("peer: gc not frozen", peer)] if peer else [])
            gc_seen = [(label, client_.get("/health").json()["gc"]) for label, client_ in servers]
        print()
        print(f"{'zoom':>4}  {'series':<26}{'tiles':>6}{'empty':>6}{'median ms':>11}"
              f"{'p95 ms':>9}{'max KB':>9}{'p95 ok':>8}")
        for z, label, med, p95, size, n, empty in rows:
            ok = "" if label.startswith("naive") else str(p95 <= 50.0)
            print(f"{z:>4}  {label:<26}{n:>6}{empty:>6}{med:>11.1f}{p95:>9.1f}"
                  f"{size / 1024:>9.1f}{ok:>8}")
        print()
        print(f"{'GeoJSON layer':<14}{'request':<26}{'first ms':>9}{'median ms':>10}{'p95 ms':>9}"
              f"{'KB':>9}{'features':>10}")
        for name_, what, first, med, p95, size, n in geo:
            print(f"{name_:<14}{what:<26}{first:>9.1f}{med:>10.1f}{p95:>9.1f}{size / 1024:>9.1f}"
                  f"{n:>10,}")
        print("\ntimes are wall-clock per request through uvicorn + httpx on loopback (the naive "
              f"peer: the SQL alone); GeoJSON: the first request, then {args.geojson_samples} more "
              "(uncovered land is kept per territory version: the first computes it)")
        for label, seen in gc_seen:
            print(f"server {label}: {seen['frozen']:,} objects frozen; collections "
                  + ", ".join(f"{g} {p['n']:,} (max {p['max_ms']:.1f} ms, total "
                              f"{p['total_ms']:.0f} ms)" for g, p in seen["pauses"].items()))
        print(f"machine: {os.cpu_count()} cores, load average at the start {load[0]:.1f}, at the "
              f"end {os.getloadavg()[0]:.1f} (other work running here slows every figure alike)")
    finally:
        for p in (proc, peer_proc):
            if p is not None:
                p.terminate()
                p.wait(timeout=10)
        get_engine(url).dispose()
        if args.keep or args.reuse:
            print(f"kept {name}")
        else:
            drop_database(url)


if __name__ == "__main__":
    main()
