"""Benchmark: Gi* with FDR and map classes over ~100,000 fishnet cells, against esda.

Builds a 316 × 317 fishnet (100,172 cells) with queen contiguity by index arithmetic and a
synthetic clustered rate (a gamma background plus Gaussian bumps), then times, in one run:

- ours: ``GetisOrdGi(y, w, star=True)`` alone, and with ``.classes(fdr=True)`` (Gi* + FDR
  at three levels + classes), first call and median of the repeats;
- esda: the plain ``esda.G_Local(y, w, transform="B", star=True, permutations=0)`` on a
  libpysal ``W`` built from the same sparse matrix (building the ``W`` is not timed).

and checks that the z-scores agree to 1e-6. Target: ours ≤ 1 s. Run::

    .venv/bin/python bench/bench_hotspots.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

import numpy as np

N_ROWS, N_COLS = 316, 317
TARGET_S = 1.0
Z_TOLERANCE = 1e-6


def clustered_rate(n_rows: int, n_cols: int, *, seed: int = 20240601) -> np.ndarray:
    """Hazards per active project: a skewed background with a few hot areas."""
    rng = np.random.default_rng(seed)
    rows, cols = np.divmod(np.arange(n_rows * n_cols), n_cols)
    rate = rng.gamma(shape=1.5, scale=0.2, size=rows.size)
    for _ in range(12):
        r0, c0 = rng.uniform(0, n_rows), rng.uniform(0, n_cols)
        spread = rng.uniform(3, 15)
        rate += rng.uniform(0.5, 2.0) * np.exp(-((rows - r0) ** 2 + (cols - c0) ** 2) / spread**2)
    return rate


def timed(function, repeats: int) -> tuple[float, float, object]:  # noqa: ANN001
    """(first call, median of the following ``repeats`` calls) in seconds, last result."""
    start = time.perf_counter()
    result = function()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--esda-repeats", type=int, default=3)
    args = parser.parse_args()

    start = time.perf_counter()
    from gis.hotspots import GetisOrdGi
    from gis.weights import fishnet_weights

    import_ours = time.perf_counter() - start

    rows, cols = np.divmod(np.arange(N_ROWS * N_COLS), N_COLS)
    start = time.perf_counter()
    w = fishnet_weights(rows, cols, rule="queen")
    build_w = time.perf_counter() - start
    y = clustered_rate(N_ROWS, N_COLS)
    n = w.n

    def ours_gi() -> GetisOrdGi:
        return GetisOrdGi(y, w, star=True, transform="B")

    def ours_full() -> tuple[GetisOrdGi, np.ndarray]:
        gi = GetisOrdGi(y, w, star=True, transform="B")
        return gi, gi.classes(fdr=True)

    # First call of the process first: no compilation or warm-up is allowed to hide here.
    full_first, full_median, (gi, classes) = timed(ours_full, args.repeats)
    _, gi_median, _ = timed(ours_gi, args.repeats)

    start = time.perf_counter()
    import esda
    import libpysal

    import_esda = time.perf_counter() - start
    start = time.perf_counter()
    w_pysal = libpysal.weights.W.from_sparse(w.sparse)
    build_w_pysal = time.perf_counter() - start

    def plain_esda() -> object:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return esda.G_Local(y, w_pysal, transform="B", star=True, permutations=0)

    esda_first, esda_median, reference = timed(plain_esda, args.esda_repeats)

    z_diff = float(np.max(np.abs(gi.Zs - reference.Zs)))
    p_diff = float(np.max(np.abs(gi.p_norm - reference.p_norm)))
    counts = {str(c): int((classes == c).sum()) for c in np.unique(classes)}

    print(f"Gi* over a {N_ROWS} x {N_COLS} fishnet: {n:,} cells, queen contiguity,")
    print(f"{w.sparse.nnz:,} links, {len(w.islands)} islands, {w.n_components} component(s)")
    print(f"numpy {np.__version__}, esda {esda.__version__}, libpysal {libpysal.__version__}")
    print()
    header = f"{'what':<48} {'first (s)':>10} {'median (s)':>11} {'esda / this':>12}"
    print(header)
    print("-" * len(header))
    rows_out = [
        ("ours: GetisOrdGi (Gi* only)", None, gi_median),
        ("ours: GetisOrdGi + classes (FDR, 3 levels)", full_first, full_median),
        ("esda.G_Local(star=True, permutations=0)", esda_first, esda_median),
    ]
    for label, first, median in rows_out:
        first_text = f"{first:10.4f}" if first is not None else f"{'':>10}"
        print(f"{label:<48} {first_text} {median:11.4f} {esda_median / median:11.1f}x")
    print()
    print(f"one-off: import gis.hotspots {import_ours:.3f} s, fishnet weights {build_w:.3f} s;")
    print(f"         import esda+libpysal {import_esda:.3f} s, W.from_sparse {build_w_pysal:.3f} s")
    print(f"max |Zs ours - esda| = {z_diff:.3e}, max |p_norm ours - esda| = {p_diff:.3e}")
    print(f"classes: {counts}")

    failures = []
    if not z_diff <= Z_TOLERANCE:
        failures.append(f"z-scores differ from esda by {z_diff:.3e} > {Z_TOLERANCE}")
    if not max(full_first, full_median) <= TARGET_S:
        failures.append(f"Gi* + FDR + classes took {max(full_first, full_median):.3f} s")
    for failure in failures:
        print(f"FAIL: {failure}")
    if not failures:
        print(f"OK: z-scores agree to {Z_TOLERANCE:g}; first and median calls under {TARGET_S} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
