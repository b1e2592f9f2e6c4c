"""End-to-end patrol plans on the demo district, and what workload balancing buys.

Builds a scratch database (migrated, demo district, a year of synthetic registrations and
patrols, the demo roster of 22 inspectors; building is timed apart), then, in one run:

* **day plan, end to end** (what ``POST /api/plans`` does): candidates from the coverage query
  and hazards, snapping and travel matrices on the demo road graph (roads where places lie on
  it, straight-line estimates elsewhere), ``plan_day`` under its deadline, storing the plan —
  for the whole district (22 inspectors) and for one street on the road graph (2 inspectors);
* **balance, day**: the district day's stored inputs solved again without and with workload
  balancing (same deadline and seed): per-inspector load (travel + inspection) spread and
  standard deviation, travel, sites served;
* **balance, week**: 7-day plans (``plan_week``) without and with balancing across
  inspectors, for a street whose two inspectors can make every visit (华富, straight-line
  estimates) and for one where they cannot (香蜜湖, on the road graph: both are at their
  ``max_stops`` most days, so there is little to move): per-inspector weekly load spread,
  visits made, travel.

Usage::

    .venv/bin/python bench/bench_plan_api.py [--deadline 10] [--week-deadline 2] [--keep]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.db import get_engine, session_factory  # noqa: E402
from app.dbsetup import drop_database, init_database  # noqa: E402
from app.services import route_plans as rp  # noqa: E402
from app.services.demo import load_demo  # noqa: E402
from app.services.registration import today_cn  # noqa: E402

BASE = "postgresql+psycopg://xiaosan:xiaosan@127.0.0.1:5432/"
STREET = "440304006000"  # 香蜜湖街道, on the demo road graph
WEEK_STREETS = ("440304009000", STREET)  # 华富街道 (light), 香蜜湖街道 (saturated)


def _loads(day: dict) -> dict[str, float]:
    return {r["inspector"]: (r["travel_s"] + r["service_s"]) / 60 for r in day["routes"]}


def _describe(loads: dict[str, float]) -> str:
    v = list(loads.values())
    return (f"load spread {max(v) - min(v):6.1f} min, stdev {statistics.pstdev(v):6.1f} min, "
            f"busiest {max(v):6.1f} min")


def _end_to_end(session, label: str, **kwargs) -> dict:
    t = time.perf_counter()
    plan = rp.make_plan(session, actor="bench", **kwargs)
    session.commit()
    wall = time.perf_counter() - t
    s = plan.summary
    tm = s["timings"]
    print(f"{label:28s} candidates {s['candidates']:4d} (mandatory {s['mandatory_total']:3d}) | "
          f"matrix {tm['matrix_s']:5.2f} s, solve {tm['solve_s']:5.2f} s, "
          f"store {wall - tm['total_s']:4.2f} s, total {wall:5.2f} s | served {s['served']:4d}, "
          f"mandatory {s['mandatory_served']}/{s['mandatory_total']}, "
          f"matrix {plan.matrix_source}")
    return rp.plan_json(session, plan.id, include_inputs=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deadline", type=float, default=10.0, help="day plan deadline (s)")
    parser.add_argument("--week-deadline", type=float, default=2.0, help="per day of a week")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    url = f"{BASE}xiaosan_bench_plans_{uuid.uuid4().hex[:6]}"
    t = time.perf_counter()
    init_database(url)
    try:
        with session_factory(url)() as session:
            load_demo(session, activity=True, patrols=True)
            print(f"build (migrate, demo, activity, patrols, roster): "
                  f"{time.perf_counter() - t:.1f} s")
            day = today_cn() + timedelta(days=1)
            district = _end_to_end(session, "district day (22 insp.)", day=day,
                                   deadline_s=args.deadline)
            _end_to_end(session, "street day (2 insp.)", day=day, street=STREET,
                        deadline_s=args.deadline)

            print()
            inputs = district["inputs"]
            for balance in (None, 1.0):
                solved = rp.solve({**inputs, "inspectors": [dict(i) for i in inputs["inspectors"]],
                                   "solver": {**inputs["solver"], "balance": balance}})
                d0 = solved.days[0]
                travel = sum(r["travel_s"] for r in d0["routes"]) / 60
                served = sum(len(r["stops"]) for r in d0["routes"])
                print(f"district day, balance={balance!s:4s}: {_describe(_loads(d0))} | "
                      f"travel {travel:6.1f} min, served {served}")

            for street in WEEK_STREETS:
                print()
                for balance in (None, 1.0):
                    t = time.perf_counter()
                    plan = rp.make_week_plan(session, start=day, actor="bench", days=7,
                                             street=street, deadline_s=args.week_deadline,
                                             balance=balance)
                    wall = time.perf_counter() - t
                    week = plan.summary["week"]
                    loads = week["inspector_load_min"]
                    print(f"week {street}, balance={balance!s:4s}: {_describe(loads)} | visits "
                          f"{week['visits_made']}/{week['visits_required']}, travel "
                          f"{plan.summary['travel_min']:6.1f} min, {wall:5.1f} s")
            session.rollback()
    finally:
        get_engine(url).dispose()
        if not args.keep:
            drop_database(url)


if __name__ == "__main__":
    main()
