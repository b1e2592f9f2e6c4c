"""Benchmark: "which active sites has nobody patrolled?" — the visit summary vs a naive anti-join.

Builds a city-scale synthetic load in a scratch database (migrated with the project's Alembic
migrations): 50,000 active projects spread over 10 districts of a Shenzhen-sized box and N patrol
points (default 5,000,000; the issue's full 40,000,000 with ``--patrols 40000000`` on a bigger
machine), 85 % of them within 40 m of a site over the last 365 days. Visits are matched the way
the upload path matches them (a patrol point within 50 m of an active site), then the
per-project summary is rebuilt with :func:`app.services.patrols.recompute_visit_summary`.
Building is timed apart and not part of the figures.

Measured in the same run, medians of ``--repeats`` runs, for one district and the whole city:

* **ours**: :func:`app.services.coverage.unpatrolled_sites` (active projects joined to
  ``project_visit_summary`` by primary key);
* **naive**: ``NOT EXISTS (SELECT 1 FROM patrols WHERE ST_DWithin(...) AND patrol_on >= ...)``
  per active project, with the GiST index on the patrol points (a degree-box prefilter, then the
  exact 50 m test on the geography: the fair form of the naive query; without the prefilter
  the geography test cannot use the index at all).

Both answers are compared (same set of sites). Targets: one district ≤ 200 ms, city ≤ 2 s.

Usage::

    .venv/bin/python bench/bench_coverage.py [--patrols N] [--projects M] [--repeats R] [--keep]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.db import get_engine, session_factory  # noqa: E402
from app.dbsetup import drop_database, init_database  # noqa: E402
from app.patrol_rules import get_patrol_rules  # noqa: E402
from app.services.coverage import unpatrolled_sites  # noqa: E402
from app.services.patrols import _deg_margin, recompute_visit_summary  # noqa: E402
from app.services.registration import today_cn  # noqa: E402

BASE = "postgresql+psycopg://xiaosan:xiaosan@127.0.0.1:5432/"
BOX = (113.80, 22.48, 114.40, 22.80)  # lon/lat box of Shenzhen's built-up area
DISTRICTS = [f"4403{k:02d}000000" for k in range(3, 13)]


def _build(session, n_projects: int, n_patrols: int, seed: float) -> dict[str, float]:
    timings = {}
    t = time.perf_counter()
    session.execute(text("SELECT setseed(:s)"), {"s": seed})
    session.execute(
        text(
            f"""INSERT INTO projects (reg_no, public_id, district_code, street_code, street_name,
                community_code, community_name, grid_code, grid_name, kind, category, title,
                address, site, site_input_crs, builder, contractor, investment_cny,
                floor_area_m2, planned_start, planned_end, risk_factors, public_area, channel,
                above_limit_reference, above_limit, high_risk, special_area, reviewer_kind,
                reviewer_code, reviewer_name, departments, decision, state, submitted_on,
                review_due, accepted_on, started_on, source, created_by)
            SELECT 'B' || g, 'b' || g, d.code, left(d.code, 6) || '001000', 's',
                   left(d.code, 6) || '001001', 'c', left(d.code, 6) || '001001001', 'g',
                   'small_project', 'residential_fitout', 'bench', 'bench',
                   ST_SetSRID(ST_MakePoint({BOX[0]} + (d.k + random()) * {(BOX[2] - BOX[0]) / 10},
                                           {BOX[1]} + random() * {BOX[3] - BOX[1]}), 4326),
                   'wgs84', '{{}}', '{{}}', 1000, 10, CURRENT_DATE - 60, CURRENT_DATE + 60,
                   '[]', false, 'online', false, false, random() < 0.3, false,
                   'community_workstation', 'x', 'x', '[]', '{{}}', 'in_progress',
                   CURRENT_DATE - 70, CURRENT_DATE - 67, CURRENT_DATE - 67,
                   CURRENT_DATE - (10 + floor(random() * 50))::int, 'bench', 'bench'
            FROM generate_series(1, :n) g
            JOIN (SELECT code, ord - 1 AS k FROM unnest(CAST(:districts AS text[]))
                  WITH ORDINALITY AS u(code, ord)) d ON d.k = g % 10"""
        ),
        {"n": n_projects, "districts": DISTRICTS},
    )
    session.execute(text("ANALYZE projects"))
    timings["projects"] = time.perf_counter() - t
    t = time.perf_counter()
    session.execute(
        text(
            """CREATE TEMP TABLE site_pick AS
           SELECT row_number() OVER (ORDER BY id) AS rn, id, district_code,
                  ST_X(site) AS x, ST_Y(site) AS y FROM projects"""
        )
    )
    session.execute(text("CREATE INDEX ON site_pick (rn)"))
    session.execute(
        text(
            """INSERT INTO patrols (district_code, client_id, inspector_id, force, started_at,
                                patrol_on, location, payload_hash, source)
           SELECT s.district_code, 'b' || g, 'bench', 'supervisor', ts,
                  (ts AT TIME ZONE 'Asia/Shanghai')::date,
                  ST_SetSRID(ST_MakePoint(
                      CASE WHEN near THEN s.x + (random() - 0.5) * 0.0007
                           ELSE :x0 + random() * (:x1 - :x0) END,
                      CASE WHEN near THEN s.y + (random() - 0.5) * 0.0007
                           ELSE :y0 + random() * (:y1 - :y0) END), 4326), 'x', 'bench'
           FROM (SELECT g, random() < 0.85 AS near,
                        now() - random() * interval '365 days' AS ts,
                        1 + (g * 2654435761) % :np AS rn
                 FROM generate_series(1, :n) g) r
           JOIN site_pick s ON s.rn = r.rn"""
        ),
        {"n": n_patrols, "np": n_projects, "x0": BOX[0], "x1": BOX[2], "y0": BOX[1], "y1": BOX[3]},
    )
    timings["patrols"] = time.perf_counter() - t
    t = time.perf_counter()
    session.execute(text("ANALYZE patrols"))
    rules = get_patrol_rules()
    session.execute(
        text(
            """INSERT INTO patrol_visits (district_code, patrol_id, project_id, force, visited_on,
                                      arrived_at, how, distance_m)
           SELECT p.district_code, pa.id, p.id, pa.force, pa.patrol_on, pa.started_at, 'nearby',
                  ST_Distance(pa.location::geography, p.site::geography)
           FROM patrols pa JOIN projects p ON ST_DWithin(p.site, pa.location, :deg)
            AND ST_DWithin(p.site::geography, pa.location::geography, :d)"""
        ),
        {"deg": _deg_margin(rules.visit_distance_m, BOX[3]), "d": rules.visit_distance_m},
    )
    recompute_visit_summary(session)
    session.execute(text("ANALYZE patrol_visits; ANALYZE project_visit_summary"))
    timings["visits+summary"] = time.perf_counter() - t
    return timings


NAIVE = """
SELECT p.id FROM projects p
WHERE p.state = ANY(:active) AND ({where})
  AND coalesce(p.started_on, p.briefed_on, p.accepted_on, p.submitted_on)
      < CAST(:day AS date) - CASE WHEN p.high_risk THEN :hd ELSE :od END
  AND NOT EXISTS (
      SELECT 1 FROM patrols pa
      WHERE ST_DWithin(pa.location, p.site, :deg)
        AND ST_DWithin(pa.location::geography, p.site::geography, :d)
        AND pa.patrol_on >= CAST(:day AS date) - CASE WHEN p.high_risk THEN :hd ELSE :od END)
"""


def _median_ms(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patrols", type=int, default=5_000_000)
    ap.add_argument("--projects", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--naive-repeats", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = ap.parse_args()
    url = BASE + f"xiaosan_bench_cov_{uuid.uuid4().hex[:6]}"
    print(
        f"load: {args.projects:,} active projects in {len(DISTRICTS)} districts, "
        f"{args.patrols:,} patrol points (scratch database {url.rsplit('/', 1)[1]})"
    )
    init_database(url)
    try:
        with session_factory(url)() as session:
            built = _build(session, args.projects, args.patrols, 0.42)
            session.commit()
            print("build: " + ", ".join(f"{k} {v:.1f} s" for k, v in built.items()))
            visits = session.scalar(text("SELECT count(*) FROM patrol_visits"))
            print(f"visits matched: {visits:,}")
            rules = get_patrol_rules()
            day = today_cn()
            params = {
                "active": list(rules.active_states),
                "day": day,
                "hd": rules.due_days_high_risk,
                "od": rules.due_days_other,
                "d": rules.visit_distance_m,
                "deg": _deg_margin(rules.visit_distance_m, BOX[3]),
            }
            rows = []
            for scope, district in (("one district", DISTRICTS[0]), ("whole city", None)):
                ours_ms, ours = _median_ms(
                    lambda d=district: unpatrolled_sites(session, district=d), args.repeats
                )
                where = "p.district_code = :dc" if district else "true"
                naive_ms, naive = _median_ms(
                    lambda w=where, d=district: (
                        session.execute(text(NAIVE.format(where=w)), {**params, "dc": d})
                        .scalars()
                        .all()
                    ),
                    args.naive_repeats,
                )
                same = {i["id"] for i in ours} == set(naive)
                target = 200 if district else 2000
                rows.append((scope, len(ours), ours_ms, naive_ms, same, target))
        print()
        print(
            f"{'query':<14}{'sites':>8}{'ours ms':>11}{'naive ms':>11}{'naive/ours':>12}"
            f"{'same set':>10}{'target ms':>11}{'ours ok':>9}"
        )
        for scope, n, ours_ms, naive_ms, same, target in rows:
            print(
                f"{scope:<14}{n:>8,}{ours_ms:>11.1f}{naive_ms:>11.1f}"
                f"{naive_ms / ours_ms:>11.1f}x{str(same):>10}{target:>11}"
                f"{str(ours_ms <= target):>9}"
            )
        print(
            f"\nmedians of {args.repeats} (ours) and {args.naive_repeats} (naive) runs; "
            f"patrol points used: {args.patrols:,}"
        )
    finally:
        get_engine(url).dispose()
        if args.keep:
            print(f"kept {url}")
        else:
            drop_database(url)


if __name__ == "__main__":
    main()
