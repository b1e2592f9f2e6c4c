"""Solomon VRPTW (C1, C2, R1, RC1; 100 customers): our planner beside three plain solvers.

The fleet is fixed at the best-known vehicle count; every customer is mandatory. For each
instance and solver the table shows whether the solution is feasible (checked here in double
precision: time windows with waiting, capacity, depot due date, each customer at most once),
whether every customer is served, the distance and its gap to the best-known solution (BKS),
and the wall time.

Solvers, all on the same integer matrix (Euclidean distance × 1000, rounded up, so that a
solution feasible in integers is feasible in doubles):

- ``ours``: :func:`gis.routing.plan_day` (sites = customers, inspectors = vehicles,
  ``max_workload`` = capacity), deadline ``--seconds``.
- ``vroom``: pyvroom defaults (exploration level 5, 4 threads), no time limit.
- ``pyvrp``: PyVRP defaults (``solve`` with ``MaxRuntime(--seconds)``).
- ``ortools``: OR-Tools routing defaults (automatic first solution and local search),
  time limit ``--seconds``.
- ``ortools-gls`` (on request): OR-Tools with droppable visits (penalty 1e9) and guided
  local search, as one would tune it for this problem.

Usage::

    python bench/bench_solomon.py                      # all 37 instances, 10 s each
    python bench/bench_solomon.py --instances C101,R101 --seconds 5 --solvers ours,vroom
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gis.routing import Inspector, Site, plan_day  # noqa: E402

DATA = ROOT.parent / "shared" / "realdata" / "solomon_vrptw"
SCALE = 1000


@dataclass
class Instance:
    name: str
    xy: np.ndarray
    demand: np.ndarray
    ready: np.ndarray
    due: np.ndarray
    service: np.ndarray
    capacity: int
    bks_vehicles: int
    bks_distance: float

    @property
    def dist(self) -> np.ndarray:
        d = self.xy[:, None, :] - self.xy[None, :, :]
        return np.sqrt((d**2).sum(axis=2))


def read_instance(name: str, bks: dict[str, tuple[int, float]]) -> Instance:
    lines = (DATA / "instances" / f"{name}.txt").read_text().splitlines()
    capacity = int(lines[4].split()[1])
    rows = [list(map(float, ln.split())) for ln in lines[9:] if ln.strip()]
    a = np.array(rows)
    v, d = bks[name]
    return Instance(name, a[:, 1:3], a[:, 3], a[:, 4], a[:, 5], a[:, 6], capacity, v, d)


def read_bks() -> dict[str, tuple[int, float]]:
    with (DATA / "bks_solomon_100.csv").open() as fh:
        return {
            r["instance"]: (int(r["vehicles"]), float(r["distance"])) for r in csv.DictReader(fh)
        }


def int_matrix(inst: Instance) -> np.ndarray:
    return np.ceil(inst.dist * SCALE - 1e-9).astype(np.int64)


def evaluate(inst: Instance, routes: list[list[int]]) -> tuple[bool, bool, float, int]:
    """(feasible, all served, distance, vehicles used) in double precision."""
    d = inst.dist
    seen: list[int] = []
    feasible = True
    total = 0.0
    used = 0
    for route in routes:
        if not route:
            continue
        used += 1
        t, load, prev = 0.0, 0.0, 0
        for c in route:
            t += d[prev, c]
            total += d[prev, c]
            if t > inst.due[c] + 1e-6:
                feasible = False
            t = max(t, inst.ready[c]) + inst.service[c]
            load += inst.demand[c]
            prev = c
        t += d[prev, 0]
        total += d[prev, 0]
        if t > inst.due[0] + 1e-6 or load > inst.capacity + 1e-9:
            feasible = False
        seen += route
    if len(seen) != len(set(seen)) or used > inst.bks_vehicles:
        feasible = False
    all_served = feasible and set(seen) == set(range(1, len(inst.demand)))
    return feasible, all_served, total, used


def run_ours(inst: Instance, seconds: float) -> list[list[int]]:
    n = len(inst.demand)
    inspectors = [
        Inspector(
            f"v{k}",
            0,
            0.0,
            float(inst.due[0] * SCALE),
            max_workload=inst.capacity,
        )
        for k in range(inst.bks_vehicles)
    ]
    sites = [
        Site(
            str(i),
            i,
            float(inst.service[i] * SCALE),
            time_window=(float(inst.ready[i] * SCALE), float(inst.due[i] * SCALE)),
            mandatory=True,
            workload=int(inst.demand[i]),
        )
        for i in range(1, n)
    ]
    plan = plan_day(inspectors, sites, int_matrix(inst).astype(float), deadline_s=seconds)
    return [[int(s) for s in r.site_ids] for r in plan.routes]


def run_pyvrp(inst: Instance, seconds: float) -> list[list[int]]:
    from pyvrp import Client, Depot, Location, ProblemData, VehicleType, solve
    from pyvrp.stop import MaxRuntime

    n = len(inst.demand)
    m = int_matrix(inst)
    locs = [Location(x=float(x), y=float(y)) for x, y in inst.xy]
    clients = [
        Client(
            location=i,
            delivery=[int(inst.demand[i])],
            service_duration=int(inst.service[i] * SCALE),
            tw_early=int(inst.ready[i] * SCALE),
            tw_late=int(inst.due[i] * SCALE),
        )
        for i in range(1, n)
    ]
    depot = Depot(location=0, tw_early=0, tw_late=int(inst.due[0] * SCALE))
    vt = VehicleType(
        num_available=inst.bks_vehicles,
        capacity=[inst.capacity],
        tw_early=0,
        tw_late=int(inst.due[0] * SCALE),
    )
    data = ProblemData(locs, clients, [depot], [vt], [m], [m])
    res = solve(data, MaxRuntime(seconds), seed=0, collect_stats=False)
    if not res.best.is_feasible():
        return []
    return [[act.idx + 1 for act in r.schedule() if act.is_client()] for r in res.best.routes()]


def run_vroom(inst: Instance, seconds: float) -> list[list[int]]:
    import vroom

    n = len(inst.demand)
    problem = vroom.Input()
    problem.set_durations_matrix("car", int_matrix(inst))
    for k in range(inst.bks_vehicles):
        problem.add_vehicle(
            vroom.Vehicle(
                k + 1,
                start=0,
                end=0,
                capacity=[inst.capacity],
                time_window=vroom.TimeWindow(0, int(inst.due[0] * SCALE)),
            )
        )
    for i in range(1, n):
        problem.add_job(
            vroom.Job(
                i,
                location=i,
                default_service=int(inst.service[i] * SCALE),
                delivery=vroom.Amount([int(inst.demand[i])]),
                time_windows=[
                    vroom.TimeWindow(int(inst.ready[i] * SCALE), int(inst.due[i] * SCALE))
                ],
            )
        )
    sol = problem.solve(exploration_level=5, nb_threads=4)
    df = sol.routes
    jobs = df[df["type"] == "job"]
    return [list(map(int, g["id"])) for _, g in jobs.groupby("vehicle_id", sort=False)]


def run_ortools(inst: Instance, seconds: float, *, tuned: bool = False) -> list[list[int]]:
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    n = len(inst.demand)
    m = int_matrix(inst)
    service = (inst.service * SCALE).astype(np.int64)
    manager = pywrapcp.RoutingIndexManager(n, inst.bks_vehicles, 0)
    routing = pywrapcp.RoutingModel(manager)
    dist_cb = routing.RegisterTransitMatrix(m.tolist())
    routing.SetArcCostEvaluatorOfAllVehicles(dist_cb)
    time_matrix = (m + service[:, None]).tolist()
    time_cb = routing.RegisterTransitMatrix(time_matrix)
    horizon = int(inst.due[0] * SCALE)
    routing.AddDimension(time_cb, horizon, horizon, False, "time")
    tdim = routing.GetDimensionOrDie("time")
    for i in range(1, n):
        tdim.CumulVar(manager.NodeToIndex(i)).SetRange(
            int(inst.ready[i] * SCALE), int(inst.due[i] * SCALE)
        )
    for v in range(inst.bks_vehicles):
        tdim.CumulVar(routing.Start(v)).SetRange(0, horizon)
        tdim.CumulVar(routing.End(v)).SetRange(0, horizon)
    demand_cb = routing.RegisterUnaryTransitVector([int(x) for x in inst.demand])
    routing.AddDimensionWithVehicleCapacity(
        demand_cb, 0, [inst.capacity] * inst.bks_vehicles, True, "load"
    )
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.time_limit.FromMilliseconds(int(seconds * 1000))
    if tuned:  # what one would configure for this problem: droppable visits, GLS
        for i in range(1, n):
            routing.AddDisjunction([manager.NodeToIndex(i)], 10**9)
        params.local_search_metaheuristic = (
            routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
        )
    sol = routing.SolveWithParameters(params)
    if sol is None:
        return []
    routes = []
    for v in range(inst.bks_vehicles):
        idx = routing.Start(v)
        route = []
        idx = sol.Value(routing.NextVar(idx))
        while not routing.IsEnd(idx):
            route.append(manager.IndexToNode(idx))
            idx = sol.Value(routing.NextVar(idx))
        routes.append(route)
    return routes


def run_ortools_gls(inst: Instance, seconds: float) -> list[list[int]]:
    return run_ortools(inst, seconds, tuned=True)


SOLVERS = {
    "ours": run_ours,
    "vroom": run_vroom,
    "pyvrp": run_pyvrp,
    "ortools": run_ortools,
    "ortools-gls": run_ortools_gls,  # not a default: OR-Tools as one would tune it
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--instances", default="", help="comma-separated, e.g. C101,R101 (default: all)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="time limit per solver run")
    parser.add_argument("--solvers", default="ours,vroom,pyvrp,ortools")
    args = parser.parse_args()
    bks = read_bks()
    available = sorted(p.stem for p in (DATA / "instances").glob("*.txt"))
    names = [x.strip().upper() for x in args.instances.split(",") if x.strip()] or available
    solvers = [s.strip() for s in args.solvers.split(",") if s.strip()]
    results: dict[str, list[tuple[bool, bool, float, float]]] = {s: [] for s in solvers}
    header = f"{'instance':9s} {'BKS':>12s} " + " ".join(f"{s:>26s}" for s in solvers)
    print(f"Solomon VRPTW, fleet = BKS vehicles, {args.seconds:g} s limit")
    print("cell: feasible/all-served  distance  gap%  seconds")
    print(header)
    print("-" * len(header))
    for name in names:
        inst = read_instance(name, bks)
        cells = []
        for s in solvers:
            t = time.perf_counter()
            routes = SOLVERS[s](inst, args.seconds)
            elapsed = time.perf_counter() - t
            feasible, all_served, dist, _ = (
                evaluate(inst, routes) if routes else (False, False, math.nan, 0)
            )
            gap = 100.0 * (dist / inst.bks_distance - 1.0) if all_served else math.nan
            results[s].append((feasible, all_served, gap, elapsed))
            flag = ("F" if feasible else "-") + ("A" if all_served else "-")
            cells.append(f"{flag:>3s} {dist:9.2f} {gap:6.2f} {elapsed:5.1f}")
        print(
            f"{name:9s} {inst.bks_vehicles:3d}/{inst.bks_distance:8.2f} "
            + " ".join(f"{c:>26s}" for c in cells),
            flush=True,
        )
    print("-" * len(header))
    print(f"{'summary':22s} " + " ".join(f"{s:>26s}" for s in solvers))
    for label, fn in (
        ("feasible", lambda r: f"{sum(x[0] for x in r)}/{len(r)}"),
        ("all served", lambda r: f"{100.0 * sum(x[1] for x in r) / len(r):.0f}%"),
        (
            "mean gap (all served)",
            lambda r: f"{np.nanmean([x[2] for x in r]) if any(x[1] for x in r) else math.nan:.2f}%",
        ),
        (
            "max gap (all served)",
            lambda r: f"{np.nanmax([x[2] for x in r]) if any(x[1] for x in r) else math.nan:.2f}%",
        ),
        ("mean seconds", lambda r: f"{np.mean([x[3] for x in r]):.2f}"),
        ("max seconds", lambda r: f"{np.max([x[3] for x in r]):.2f}"),
    ):
        print(f"{label:22s} " + " ".join(f"{fn(results[s]):>26s}" for s in solvers))


if __name__ == "__main__":
    main()
