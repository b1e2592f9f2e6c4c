"""Benchmark: bulk re-assignment of points to grids after boundaries are redrawn.

Builds irregular grids (Voronoi cells of random seeds clipped to the real Futian district
outline), random points over the bounds (some outside), and measures in the same run:

* ``PolygonLocator`` (gis.jurisdiction): build time apart, then ``locate`` (indices) and
  ``assign`` (codes);
* ``geopandas.sjoin(points, grids, predicate="within")`` on pre-built GeoDataFrames;
* ``shapely.STRtree.query(points, predicate="covered_by")``, which is also the ground truth;
* PostGIS in a scratch database: the plain join ``ST_Contains`` with a GiST index on the grids,
  and the project's exact rule (``ST_Covers``, smallest code, outside kept); only the query
  (``CREATE TABLE ... AS SELECT``) is timed, loading with COPY is not.

Every method's answer is compared with the ground truth (covers; smallest code wins on shared
boundaries; -1 outside). sjoin and ST_Contains drop outside points (counted as -1 here) and
ST_Contains drops boundary points; random points practically never hit a boundary.

Usage::

    .venv/bin/python bench/bench_jurisdiction.py [--points N] [--grids M] [--repeats R]
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gis.jurisdiction import PolygonLocator  # noqa: E402

FUTIAN = ROOT.parent / "shared/realdata/shenzhen_transbigdata/shenzhen_districts_10_wgs84.geojson"
DSN = "postgresql://xiaosan:xiaosan@127.0.0.1:5432/postgres"


def futian_grids(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, shapely.Geometry]:
    """n Voronoi cells of random seeds in Futian, clipped to its outline; shuffled codes."""
    districts = gpd.read_file(FUTIAN)
    outline = districts.loc[districts["qh"] == "福田", "geometry"].iloc[0]
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = outline.bounds
    seeds = np.empty((0, 2))
    while len(seeds) < n:
        xy = rng.uniform([minx, miny], [maxx, maxy], size=(2 * n, 2))
        seeds = np.vstack([seeds, xy[shapely.contains_xy(outline, xy[:, 0], xy[:, 1])]])
    frame = shapely.box(minx - 0.01, miny - 0.01, maxx + 0.01, maxy + 0.01)
    cells = shapely.voronoi_polygons(shapely.multipoints(seeds[:n]), extend_to=frame, ordered=True)
    grids = shapely.intersection(shapely.get_parts(cells), outline)
    codes = np.array([f"440304{k:06d}" for k in rng.permutation(n)], dtype=object)
    return grids, codes, outline


def random_points(bounds: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform points over the bounds widened by 5 % on each side."""
    minx, miny, maxx, maxy = bounds
    dx, dy = 0.05 * (maxx - minx), 0.05 * (maxy - miny)
    rng = np.random.default_rng(seed + 1)
    return rng.uniform(minx - dx, maxx + dx, n), rng.uniform(miny - dy, maxy + dy, n)


def smallest_code_answer(point, poly, codes, n_points) -> np.ndarray:
    """Per point, the index of the matched polygon with the smallest code (-1 if none)."""
    order = np.argsort(codes.astype(str), kind="stable")
    rank = np.empty(len(codes), dtype=np.int64)
    rank[order] = np.arange(len(codes))
    best = np.full(n_points, len(codes), dtype=np.int64)
    np.minimum.at(best, np.asarray(point, dtype=np.int64), rank[np.asarray(poly, dtype=np.int64)])
    answer = np.full(n_points, -1, dtype=np.int64)
    found = best < len(codes)
    answer[found] = order[best[found]]
    return answer


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median wall time over repeats, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


# -------------------------------------------------------------------------------- PostGIS
def postgis_runs(grids, codes, x, y, repeats, dsn):
    """Median query times and answers of the plain ST_Contains join and the exact-rule query."""
    import psycopg

    dbname = f"bench_jurisdiction_{os.getpid()}"
    admin = psycopg.connect(dsn, autocommit=True)
    admin.execute(f"CREATE DATABASE {dbname}")
    try:
        with psycopg.connect(dsn.rsplit("/", 1)[0] + "/" + dbname, autocommit=True) as conn:
            load_started = time.perf_counter()
            _postgis_load(conn, grids, codes, x, y)
            load_s = time.perf_counter() - load_started
            code_index = {c: i for i, c in enumerate(codes)}
            results = {}
            queries = {
                "contains": "SELECT p.id, g.code FROM pts p JOIN grids g "
                "ON ST_Contains(g.geom, p.geom)",
                "rule": "SELECT DISTINCT ON (p.id) p.id, g.code FROM pts p LEFT JOIN grids g "
                'ON ST_Covers(g.geom, p.geom) ORDER BY p.id, g.code COLLATE "C"',
            }
            for name, select in queries.items():

                def run(select=select):
                    conn.execute("DROP TABLE IF EXISTS result")
                    conn.execute(f"CREATE UNLOGGED TABLE result AS {select}")

                seconds, _ = timed(run, repeats)
                rows = conn.execute("SELECT id, code FROM result WHERE code IS NOT NULL").fetchall()
                point = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                poly = np.fromiter(
                    (code_index[r[1]] for r in rows), dtype=np.int64, count=len(rows)
                )
                results[name] = (seconds, smallest_code_answer(point, poly, codes, len(x)))
            workers = conn.execute("SHOW max_parallel_workers_per_gather").fetchone()[0]
            version = conn.execute("SELECT postgis_lib_version()").fetchone()[0]
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
        admin.close()
    return results, load_s, f"PostGIS {version}, max_parallel_workers_per_gather={workers}"


def _postgis_load(conn, grids, codes, x, y) -> None:
    conn.execute("CREATE EXTENSION postgis")
    conn.execute("CREATE TABLE grids (code text PRIMARY KEY, geom geometry(MultiPolygon, 4326))")
    ewkb = shapely.to_wkb(shapely.set_srid(_as_multi(grids), 4326), hex=True, include_srid=True)
    with conn.cursor().copy("COPY grids (code, geom) FROM STDIN") as copy:
        for code, geom in zip(codes, ewkb, strict=True):
            copy.write_row((code, geom))
    conn.execute("CREATE INDEX grids_geom ON grids USING gist (geom)")
    conn.execute("CREATE UNLOGGED TABLE pts_raw (id integer, lon float8, lat float8)")
    text = io.StringIO()
    text.writelines(
        f"{i}\t{lon!r}\t{lat!r}\n"
        for i, (lon, lat) in enumerate(zip(x.tolist(), y.tolist(), strict=True))
    )
    with conn.cursor().copy("COPY pts_raw (id, lon, lat) FROM STDIN") as copy:
        copy.write(text.getvalue())
    conn.execute(
        "CREATE UNLOGGED TABLE pts AS SELECT id, "
        "ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geometry(Point, 4326) AS geom FROM pts_raw"
    )
    conn.execute("ALTER TABLE pts ADD PRIMARY KEY (id)")
    conn.execute("VACUUM ANALYZE grids")
    conn.execute("VACUUM ANALYZE pts")


def _as_multi(geoms: np.ndarray) -> np.ndarray:
    parts, index = shapely.get_parts(geoms, return_index=True)
    return shapely.multipolygons(parts, indices=index)


# ----------------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--grids", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20240501)
    parser.add_argument("--dsn", default=DSN, help="PostgreSQL server (a scratch database is made)")
    parser.add_argument("--no-postgis", action="store_true")
    args = parser.parse_args()

    grids, codes, _ = futian_grids(args.grids, args.seed)
    x, y = random_points(shapely.total_bounds(grids), args.points, args.seed)
    n = args.points
    # On a shared machine a few-millisecond run is easily hit by a neighbour's time slice; more
    # repeats cost nothing here and steady the median.
    fast_repeats = max(args.repeats, 11)
    print(
        f"{args.grids} grids ({shapely.get_num_coordinates(grids).sum()} vertices), {n} points, "
        f"median of {args.repeats} repeats ({fast_repeats} for PolygonLocator queries, "
        f"which take milliseconds), {os.cpu_count()} CPUs"
    )

    rows = []  # (method, seconds, answer)
    points = shapely.points(x, y)
    truth_tree = shapely.STRtree(shapely.from_wkb(shapely.to_wkb(grids)))

    def strtree_covers():
        point, poly = truth_tree.query(points, predicate="covered_by")
        return smallest_code_answer(point, poly, codes, n)

    seconds, truth = timed(strtree_covers, args.repeats)
    rows.append(("shapely STRtree covered_by (truth)", seconds, truth))

    build_s, locator = timed(lambda: PolygonLocator(grids, codes), args.repeats)
    seconds, located = timed(lambda: locator.locate(x, y), fast_repeats)
    rows.append(("PolygonLocator.locate", seconds, located))
    seconds, assigned = timed(lambda: locator.assign(x, y), fast_repeats)
    code_index = {c: i for i, c in enumerate(codes)}
    assigned_idx = np.array([-1 if c is None else code_index[c] for c in assigned])
    rows.append(("PolygonLocator.assign (codes)", seconds, assigned_idx))

    tracemalloc.start()  # numpy allocations only (GEOS memory is not traced)
    PolygonLocator(grids, codes)
    build_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    locator.locate(x, y)
    locate_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    frame = gpd.GeoDataFrame({"code": codes}, geometry=grids, crs=4326)
    point_frame = gpd.GeoDataFrame(geometry=points, crs=4326)

    def sjoin():
        joined = gpd.sjoin(point_frame, frame, predicate="within")
        return smallest_code_answer(
            joined.index.to_numpy(), joined["index_right"].to_numpy(), codes, n
        )

    sjoin_s, sjoin_answer = timed(sjoin, args.repeats)
    rows.append(("geopandas.sjoin within", sjoin_s, sjoin_answer))

    postgis_s, note = None, "PostGIS skipped"
    if not args.no_postgis:
        results, load_s, note = postgis_runs(grids, codes, x, y, args.repeats, args.dsn)
        postgis_s = results["contains"][0]
        rows.append(("PostGIS ST_Contains join (GiST)", *results["contains"]))
        rows.append(("PostGIS ST_Covers + smallest code", *results["rule"]))
        note += f"; COPY + index load {load_s:.1f} s (not timed)"

    print(
        f"PolygonLocator build: {build_s:.2f} s (median), raster {locator.shape}, "
        f"cell {locator.cell_size * 1e5:.2f}e-5 deg, {locator.n_boundary_cells} boundary cells "
        f"({locator.n_single_edge_cells} single-edge), lookup structures "
        f"{locator.nbytes / 2**20:.0f} MiB"
    )
    print(
        f"numpy peak memory: build {build_peak / 2**20:.0f} MiB, "
        f"locate of {n} points {locate_peak / 2**20:.0f} MiB"
    )
    print(note)
    header = f"{'method':36s} {'seconds':>9s} {'points/s':>12s} {'x sjoin':>9s} {'x PostGIS':>10s} "
    print(header + f"{'mismatches':>11s}")
    print("-" * len(header + " " * 11))
    for method, seconds, answer in rows:
        vs_postgis = f"{postgis_s / seconds:10.1f}" if postgis_s else f"{'-':>10s}"
        mismatches = int((np.asarray(answer) != truth).sum())
        print(
            f"{method:36s} {seconds:9.4f} {n / seconds:12,.0f} {sjoin_s / seconds:9.1f} "
            f"{vs_postgis} {mismatches:11d}"
        )
    print(
        f"points outside every grid: {(truth == -1).sum()}; "
        f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB"
    )
    ours_exact = (located == truth).all() and (assigned_idx == truth).all()
    return 0 if ours_exact else 1


if __name__ == "__main__":
    sys.exit(main())
