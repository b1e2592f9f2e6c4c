"""TSPLIB: a one-inspector plan over every city, against the proven optimum.

Each symmetric TSPLIB instance under 100 cities with a known optimum becomes one inspector
starting and ending at city 1 and a mandatory site at every other city (no service time, no
window). Distances follow TSPLIB's rules (``nint`` Euclidean, ATT pseudo-Euclidean, GEO with
PI = 3.141592 and RRR = 6378.388, or the explicit matrix), rounded per edge before summing.
The ``check`` column recomputes the optimal tour (where ``.opt.tour`` exists) with these rules:
it must equal the optimum, or the distance code is wrong.

Peer in the same run: VROOM at its maximum exploration level (5), 4 threads.

Targets: mean gap ≤ 1 %, max ≤ 3 %, ≤ 5 s per instance.

Usage::

    python bench/bench_tsplib.py                 # all, 4 s deadline each
    python bench/bench_tsplib.py --instances eil51,st70 --seconds 2
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gis.routing import Inspector, Site, plan_day  # noqa: E402

DATA = ROOT.parent / "shared" / "realdata" / "tsplib95" / "tsp"


def read_optima() -> dict[str, int]:
    out = {}
    for line in (DATA / "bestSolutions.txt").read_text().splitlines():
        if ":" in line:
            name, value = line.split(":")
            out[name.strip()] = int(value.split()[0])
    return out


def _geo_rad(x: np.ndarray) -> np.ndarray:
    deg = np.trunc(x)
    return 3.141592 * (deg + 5.0 * (x - deg) / 3.0) / 180.0


def read_tsp(path: Path) -> np.ndarray:
    """The integer distance matrix of a TSPLIB instance."""
    spec: dict[str, str] = {}
    tokens: list[str] = []
    coords: list[tuple[float, float]] = []
    section = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line == "EOF":
            continue
        if ":" in line and section is None:
            key, value = line.split(":", 1)
            spec[key.strip()] = value.strip()
            continue
        if line.endswith("SECTION"):
            section = line
            continue
        if section == "NODE_COORD_SECTION":
            parts = line.split()
            coords.append((float(parts[1]), float(parts[2])))
        elif section == "EDGE_WEIGHT_SECTION":
            tokens += line.split()
    n = int(spec["DIMENSION"])
    kind = spec["EDGE_WEIGHT_TYPE"]
    if kind == "EXPLICIT":
        return _explicit(np.array(tokens, dtype=float), n, spec["EDGE_WEIGHT_FORMAT"])
    xy = np.array(coords)
    x, y = xy[:, 0], xy[:, 1]
    dx = x[:, None] - x[None, :]
    dy = y[:, None] - y[None, :]
    if kind == "EUC_2D":
        return np.floor(np.sqrt(dx**2 + dy**2) + 0.5).astype(np.int64)
    if kind == "ATT":
        r = np.sqrt((dx**2 + dy**2) / 10.0)
        t = np.floor(r + 0.5)
        return np.where(t < r, t + 1, t).astype(np.int64)
    if kind == "GEO":
        lat, lon = _geo_rad(x), _geo_rad(y)
        q1 = np.cos(lon[:, None] - lon[None, :])
        q2 = np.cos(lat[:, None] - lat[None, :])
        q3 = np.cos(lat[:, None] + lat[None, :])
        arg = np.clip(0.5 * ((1.0 + q1) * q2 - (1.0 - q1) * q3), -1.0, 1.0)
        d = np.trunc(6378.388 * np.arccos(arg) + 1.0).astype(np.int64)
        np.fill_diagonal(d, 0)
        return d
    raise ValueError(f"{path.name}: edge weight type {kind} not handled")


def _explicit(values: np.ndarray, n: int, fmt: str) -> np.ndarray:
    m = np.zeros((n, n))
    if fmt == "FULL_MATRIX":
        m = values[: n * n].reshape(n, n)
    else:
        it = iter(values)
        for i in range(n):
            if fmt == "UPPER_ROW":
                cols = range(i + 1, n)
            elif fmt == "LOWER_ROW":
                cols = range(0, i)
            elif fmt == "UPPER_DIAG_ROW":
                cols = range(i, n)
            elif fmt == "LOWER_DIAG_ROW":
                cols = range(0, i + 1)
            else:
                raise ValueError(f"edge weight format {fmt} not handled")
            for j in cols:
                m[i, j] = next(it)
        m = np.maximum(m, m.T)
    return m.astype(np.int64)


def read_opt_tour(path: Path) -> list[int] | None:
    if not path.exists():
        return None
    tour, on = [], False
    for line in path.read_text().split("\n"):
        line = line.strip()
        if line == "TOUR_SECTION":
            on = True
            continue
        if on:
            for tok in line.split():
                if tok in ("-1", "EOF"):
                    return tour
                tour.append(int(tok) - 1)
    return tour


def tour_length(d: np.ndarray, tour: list[int]) -> int:
    return int(sum(d[a, b] for a, b in zip(tour, tour[1:] + tour[:1], strict=True)))


def run_ours(d: np.ndarray, seconds: float) -> list[int]:
    n = d.shape[0]
    horizon = float(d.max() * n + 1)
    inspector = Inspector("tsp", 0, 0.0, horizon)
    sites = [Site(str(i), i, 0.0, mandatory=True) for i in range(1, n)]
    plan = plan_day([inspector], sites, d.astype(float), deadline_s=seconds)
    return [0] + [int(s) for s in plan.routes[0].site_ids]


def run_vroom(d: np.ndarray, seconds: float) -> list[int]:
    import vroom

    n = d.shape[0]
    problem = vroom.Input()
    problem.set_durations_matrix("car", d)
    problem.add_vehicle(vroom.Vehicle(1, start=0, end=0))
    for i in range(1, n):
        problem.add_job(vroom.Job(i, location=i))
    sol = problem.solve(exploration_level=5, nb_threads=4)
    jobs = sol.routes[sol.routes["type"] == "job"]
    return [0] + [int(x) for x in jobs["id"]]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", default="", help="comma-separated names (default: all)")
    parser.add_argument("--seconds", type=float, default=4.0, help="our deadline per instance")
    args = parser.parse_args()
    optima = read_optima()
    names = [x.strip() for x in args.instances.split(",") if x.strip()]
    if not names:
        names = sorted(
            p.stem for p in DATA.glob("*.tsp") if p.stem in optima and read_tsp(p).shape[0] < 100
        )
    print(f"TSPLIB < 100 cities, one inspector, deadline {args.seconds:g} s")
    header = (
        f"{'instance':10s} {'n':>3s} {'type':>8s} {'optimum':>8s} {'check':>6s} "
        f"{'ours':>8s} {'gap%':>6s} {'s':>5s} {'vroom':>8s} {'gap%':>6s} {'s':>5s}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for name in names:
        path = DATA / f"{name}.tsp"
        d = read_tsp(path)
        opt = optima[name]
        opt_tour = read_opt_tour(DATA / f"{name}.opt.tour")
        check = "-" if opt_tour is None else ("ok" if tour_length(d, opt_tour) == opt else "BAD")
        kind = next(
            ln.split(":")[1].strip()
            for ln in path.read_text().splitlines()
            if ln.startswith("EDGE_WEIGHT_TYPE")
        )
        t = time.perf_counter()
        ours = tour_length(d, run_ours(d, args.seconds))
        t_ours = time.perf_counter() - t
        t = time.perf_counter()
        peer = tour_length(d, run_vroom(d, args.seconds))
        t_peer = time.perf_counter() - t
        gap, gap_peer = 100.0 * (ours / opt - 1), 100.0 * (peer / opt - 1)
        rows.append((gap, t_ours, gap_peer, t_peer))
        print(
            f"{name:10s} {d.shape[0]:3d} {kind:>8s} {opt:8d} {check:>6s} "
            f"{ours:8d} {gap:6.2f} {t_ours:5.1f} {peer:8d} {gap_peer:6.2f} {t_peer:5.1f}",
            flush=True,
        )
    a = np.array(rows)
    print("-" * len(header))
    print(
        f"{'mean':10s} {'':3s} {'':>8s} {'':>8s} {'':>6s} {'':>8s} {a[:, 0].mean():6.2f} "
        f"{a[:, 1].mean():5.1f} {'':>8s} {a[:, 2].mean():6.2f} {a[:, 3].mean():5.1f}"
    )
    print(
        f"{'max':10s} {'':3s} {'':>8s} {'':>8s} {'':>6s} {'':>8s} {a[:, 0].max():6.2f} "
        f"{a[:, 1].max():5.1f} {'':>8s} {a[:, 2].max():6.2f} {a[:, 3].max():5.1f}"
    )
    ok = a[:, 0].mean() <= 1.0 and a[:, 0].max() <= 3.0 and a[:, 1].max() <= 5.0
    print(f"targets (mean <= 1 %, max <= 3 %, <= 5 s): {'met' if ok else 'NOT met'}")
    if math.isnan(a[:, 0].mean()):
        sys.exit(1)


if __name__ == "__main__":
    main()
