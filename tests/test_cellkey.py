"""Cell keys (gis/cellkey.py): a tile of any zoom is one range of zoom-24 keys, in Python and
in PostGIS (the function behind patrols.cell_key, migration 0013)."""

from __future__ import annotations

import math
import random

import pytest
from sqlalchemy import text

from gis import cellkey


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The slippy-map formulas as the tiles compute them (app/services/layers.py)."""
    x = math.floor((lon + 180.0) / 360.0 * 2.0 ** z)
    y = math.floor((1.0 - math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) / math.pi)
                   / 2.0 * 2.0 ** z)
    return x, y


def _points(n: int, seed: int) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    pts = [(rng.uniform(73.5, 135.1), rng.uniform(18.1, 53.6)) for _ in range(n)]
    # Points on tile edges at several zooms (where a float slip would show) and the Futian ones.
    for z in (10, 13, 16, 19, 22):
        n_, x0 = 2 ** z, int(0.8168 * 2 ** z)
        pts += [(x / n_ * 360.0 - 180.0, 22.54) for x in range(x0, x0 + 3)]
    pts += [(114.0553, 22.5431), (114.0, 22.5), (113.9999999999, 22.5000000001)]
    return pts


def test_tile_ranges_hold_exactly_the_cells_of_the_tile():
    for lon, lat in _points(400, 1):
        x24, y24 = _tile_of(lon, lat, 24)
        key = cellkey.morton(x24, y24)
        for z in (0, 5, 10, 13, 14, 15, 16, 17, 18, 24):
            x, y = _tile_of(lon, lat, z)
            k0, k1 = cellkey.tile_key_range(z, x, y)
            assert k0 <= key <= k1, (lon, lat, z)
            for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):  # and in no neighbour's range
                if 0 <= x + dx < 2 ** z and 0 <= y + dy < 2 ** z:
                    n0, n1 = cellkey.tile_key_range(z, x + dx, y + dy)
                    assert not n0 <= key <= n1, (lon, lat, z, dx, dy)
    k0, k1 = cellkey.tile_key_range(14, 13382, 7140)
    assert k1 - k0 + 1 == 4 ** 10  # a zoom-14 tile holds 4^10 zoom-24 cells, all in its range
    with pytest.raises(ValueError, match="zoom"):
        cellkey.tile_key_range(14, 1, 1, level=13)


def test_the_sql_function_gives_the_python_key(engine):
    pts = _points(300, 2)
    with engine.connect() as conn:
        got = conn.execute(text(
            "SELECT xiaosan_cell_key(lon, lat) FROM unnest(CAST(:lon AS float8[]), "
            "CAST(:lat AS float8[])) AS p(lon, lat)"),
            {"lon": [p[0] for p in pts], "lat": [p[1] for p in pts]}).scalars().all()
        # The tiles' own SQL formulas put each point in the tile whose range holds its key.
        for (lon, lat), key in zip(pts, got, strict=True):
            assert key == cellkey.morton(*_tile_of(lon, lat, 24)), (lon, lat)
        rows = conn.execute(text(
            """SELECT xiaosan_cell_key(lon, lat) AS key,
                      floor((lon + 180.0) / 360.0 * 16384.0)::bigint AS x,
                      floor((1.0 - ln(tan(pi() / 4 + radians(lat) / 2)) / pi()) / 2.0
                            * 16384.0)::bigint AS y
               FROM unnest(CAST(:lon AS float8[]), CAST(:lat AS float8[])) AS p(lon, lat)"""),
            {"lon": [p[0] for p in pts], "lat": [p[1] for p in pts]}).all()
        for r in rows:
            k0, k1 = cellkey.tile_key_range(14, r.x, r.y)
            assert k0 <= r.key <= k1
        # Beyond the Mercator square and at ±180 a point still has a key (no error).
        edge = conn.execute(text(
            "SELECT xiaosan_cell_key(180, 90), xiaosan_cell_key(-180, -90)")).one()
        assert edge == (cellkey.morton(2 ** 24 - 1, 0), cellkey.morton(0, 2 ** 24 - 1))
