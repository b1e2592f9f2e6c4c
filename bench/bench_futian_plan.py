"""A district day on the real Futian road graph: 10 e-bike inspectors, 300 candidate sites.

Scenario (seeded): three street offices; five patrol areas (sites split by position), two
inspectors each; shift 08:30–17:30 with a one-hour lunch starting 12:00–13:30; sites within
30 m of a road (jittered off it), 15 % mandatory (high-risk), 20 % with a two-hour window,
inspections of 15, 20 or 30 minutes, values 1–5 for the optional ones.

Reported separately: reading the graph (cold and from the cache), snapping plus the
303 × 303 travel-time matrix, and the plan. The plan is scored as (mandatory served, value
collected, travel minutes) and set beside VROOM at its maximum exploration level (5), given
the same matrix, areas (as skills), windows and breaks; VROOM has no mandatory jobs, so
they get priority 100 and optional ones 10 × value (its priorities are lexicographic first).

Usage::

    python bench/bench_futian_plan.py [--seconds 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gis.matrix import travel_matrix  # noqa: E402
from gis.roads import load_road_network  # noqa: E402
from gis.routing import Break, Inspector, Plan, Site, plan_day  # noqa: E402

GRAPH = (
    ROOT.parent
    / "shared"
    / "realdata"
    / "shenzhen_transbigdata"
    / "futian_osm_network_osmnx.graphml"
)
N_SITES, N_INSPECTORS, N_OFFICES, N_AREAS = 300, 10, 3, 5
SHIFT = (8.5 * 3600, 17.5 * 3600)
LUNCH = Break(12.0 * 3600, 13.5 * 3600, 3600.0)


def scenario(network, rng: np.random.Generator):
    """Offices + sites as (lon, lat), and the inspectors and sites of the day."""
    canonical = np.flatnonzero(network.edge_is_canonical)
    weights = network.edge_length_m[canonical] / network.edge_length_m[canonical].sum()
    edges = rng.choice(canonical, N_OFFICES + N_SITES, replace=True, p=weights)
    pts = [
        network.edge_geometry[e].interpolate(rng.uniform(0.05, 0.95), normalized=True)
        for e in edges
    ]
    lon = np.array([p.x for p in pts])
    lat = np.array([p.y for p in pts])
    # Jitter sites up to ~30 m off the road (1e-5 deg ~ 1.1 m).
    lon[N_OFFICES:] += rng.uniform(-2.5e-4, 2.5e-4, N_SITES)
    lat[N_OFFICES:] += rng.uniform(-2.5e-4, 2.5e-4, N_SITES)
    # Areas: split sites into N_AREAS bands of longitude.
    site_lon = lon[N_OFFICES:]
    cuts = np.quantile(site_lon, np.linspace(0, 1, N_AREAS + 1)[1:-1])
    area_of = np.searchsorted(cuts, site_lon)
    sites = []
    for i in range(N_SITES):
        mandatory = rng.random() < 0.15
        window = None
        if rng.random() < 0.20:
            open_at = rng.uniform(9.0, 15.0) * 3600
            window = (open_at, open_at + 2 * 3600)
        sites.append(
            Site(
                f"S{i:03d}",
                N_OFFICES + i,
                float(rng.choice([900, 1200, 1800])),
                time_window=window,
                mandatory=mandatory,
                value=float(rng.integers(1, 6)),
            )
        )
    inspectors = []
    for k in range(N_INSPECTORS):
        area = k % N_AREAS
        allowed = frozenset(s.id for s, a in zip(sites, area_of, strict=True) if a == area)
        inspectors.append(
            Inspector(
                f"I{k:02d}",
                k % N_OFFICES,
                SHIFT[0],
                SHIFT[1],
                mode="ebike",
                rest=LUNCH,
                allowed_sites=allowed,
            )
        )
    return lon, lat, inspectors, sites, area_of


def _route_ok(insp, seq, by_id, durations, rest_at: int) -> bool:
    """Schedule with the break before leg i (2i) or on arrival at stop i (2i + 1)."""
    loc, t = insp.start_index, insp.shift_start_s
    rest = insp.rest

    def take(t: float) -> float | None:
        begin = max(t, rest.earliest_start_s)
        return None if begin > rest.latest_start_s + 1 else begin + rest.duration_s

    for i in range(len(seq) + 1):
        if rest_at == 2 * i and (t := take(t)) is None:
            return False
        nxt = by_id[seq[i]].location_index if i < len(seq) else insp.start_index
        t += durations[loc, nxt]
        if i == len(seq):
            return t <= insp.shift_end_s + 1
        if rest_at == 2 * i + 1 and (t := take(t)) is None:
            return False
        s = by_id[seq[i]]
        if s.time_window is not None:
            if t > s.time_window[1] + 1:
                return False
            t = max(t, s.time_window[0])
        t += s.service_s
        loc = nxt
    return False


def evaluate(inspectors, sites, durations, routes: dict[str, list[str]]):
    """Check a plan independently; return (feasible, mandatory served, value, travel min)."""
    by_id = {s.id: s for s in sites}
    feasible, mandatory, value, travel = True, 0, 0.0, 0.0
    seen = []
    for insp in inspectors:
        seq = routes.get(insp.id, [])
        seen += seq
        if any(sid not in insp.allowed_sites for sid in seq):
            feasible = False
        if not any(_route_ok(insp, seq, by_id, durations, p) for p in range(2 * len(seq) + 1)):
            feasible = False
        locs = [insp.start_index] + [by_id[x].location_index for x in seq] + [insp.start_index]
        travel += sum(durations[a, b] for a, b in zip(locs[:-1], locs[1:], strict=True))
        mandatory += sum(by_id[x].mandatory for x in seq)
        value += sum(by_id[x].value for x in seq if not by_id[x].mandatory)
    if len(seen) != len(set(seen)):
        feasible = False
    return feasible, mandatory, value, travel / 60.0


def run_vroom(inspectors, sites, durations, area_of):
    import vroom

    big = int(10 * SHIFT[1])
    matrix = np.where(np.isfinite(durations), np.ceil(durations), big).astype(np.int64)
    problem = vroom.Input()
    problem.set_durations_matrix("car", matrix)
    for k, insp in enumerate(inspectors):
        area = k % N_AREAS
        problem.add_vehicle(
            vroom.Vehicle(
                k + 1,
                start=insp.start_index,
                end=insp.start_index,
                skills={area},
                time_window=vroom.TimeWindow(int(insp.shift_start_s), int(insp.shift_end_s)),
                breaks=[
                    vroom.Break(
                        1,
                        time_windows=[
                            vroom.TimeWindow(int(LUNCH.earliest_start_s), int(LUNCH.latest_start_s))
                        ],
                        service=int(LUNCH.duration_s),
                    )
                ],
            )
        )
    for i, s in enumerate(sites):
        if not np.isfinite(durations[0, s.location_index]):
            continue
        windows = []
        if s.time_window is not None:
            windows = [vroom.TimeWindow(int(math.ceil(s.time_window[0])), int(s.time_window[1]))]
        problem.add_job(
            vroom.Job(
                i + 1,
                location=s.location_index,
                default_service=int(s.service_s),
                skills={int(area_of[i])},
                priority=100 if s.mandatory else int(10 * s.value),
                time_windows=windows,
            )
        )
    sol = problem.solve(exploration_level=5, nb_threads=4)
    df = sol.routes
    jobs = df[df["type"] == "job"]
    routes: dict[str, list[str]] = {}
    for vid, group in jobs.groupby("vehicle_id", sort=False):
        routes[inspectors[int(vid) - 1].id] = [sites[int(j) - 1].id for j in group["id"]]
    return routes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="our deadline")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as cache:
        t = time.perf_counter()
        network = load_road_network(GRAPH, mode="ebike", cache_dir=cache)
        t_cold = time.perf_counter() - t
        t = time.perf_counter()
        network = load_road_network(GRAPH, mode="ebike", cache_dir=cache)
        t_cached = time.perf_counter() - t
    lon, lat, inspectors, sites, area_of = scenario(network, rng)
    t = time.perf_counter()
    matrix = travel_matrix(network, lon, lat)
    t_matrix = time.perf_counter() - t
    durations = matrix.durations_s

    t = time.perf_counter()
    plan: Plan = plan_day(inspectors, sites, matrix, deadline_s=args.seconds, seed=args.seed)
    t_ours = time.perf_counter() - t
    ours_routes = {r.inspector_id: list(r.site_ids) for r in plan.routes}
    t = time.perf_counter()
    vroom_routes = run_vroom(inspectors, sites, durations, area_of)
    t_vroom = time.perf_counter() - t

    rep = network.report
    print(
        f"Futian ebike network: {rep.nodes} nodes, {rep.edges} edges, {rep.km:.1f} km kept; "
        f"{rep.cut_nodes} nodes / {rep.cut_km:.1f} km cut (not strongly connected)"
    )
    print(f"graph read + filter: {t_cold:.2f} s cold, {t_cached:.3f} s from cache")
    print(
        f"snap + matrix {len(lon)}x{len(lon)}: {t_matrix:.3f} s "
        f"({int((~matrix.reachable).sum())} points off the network)"
    )
    n_mand = sum(s.mandatory for s in sites)
    print()
    header = (
        f"{'solver':10s} {'feasible':>8s} {'mandatory':>10s} {'value':>7s} {'served':>7s} "
        f"{'travel min':>10s} {'seconds':>8s}"
    )
    print(header)
    print("-" * len(header))
    for name, routes, secs in (("ours", ours_routes, t_ours), ("vroom-x5", vroom_routes, t_vroom)):
        feasible, mand, value, travel = evaluate(inspectors, sites, durations, routes)
        served = sum(len(r) for r in routes.values())
        print(
            f"{name:10s} {str(feasible):>8s} {mand:>4d}/{n_mand:<5d} {value:7.0f} {served:7d} "
            f"{travel:10.1f} {secs:8.2f}"
        )
    print()
    reasons: dict[str, int] = {}
    for lo in plan.left_out:
        key = f"{lo.reason}/{lo.constraint}"
        reasons[key] = reasons.get(key, 0) + 1
    print(
        f"ours: solver {plan.solver}; left out: "
        + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
    )


if __name__ == "__main__":
    main()
