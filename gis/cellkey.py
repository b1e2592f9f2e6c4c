"""Cell keys: the Z-order (Morton) code of the Web Mercator cell a point falls in.

A cell of zoom L is the XYZ tile of zoom L holding the point (the slippy-map formulas,
floored). Its key interleaves the bits of its column and row (column bits at even places), so
every cell of zoom ≥ z inside a tile of zoom z lies in one contiguous key range: a B-tree on
the key reads a tile's points, or its cells, as one range (:func:`tile_key_range`). The
rollups key their cells so (``app/services/rollups.py``), and the patrols store the key of
their zoom-24 cell (about 2 m), so that the (district, day, key) index finds the points of a
tile on each day of a period without the spatial index (migration 0013).

The SQL formulas are the tiles' own (``app/services/layers.py``): ``floor(v · 2^L)`` for the
same ``v`` at every zoom, and multiplying by a power of two is exact, so the zoom-24 key of a
point is inside a tile's range exactly when the tile's formulas put the point in that tile.
"""

from __future__ import annotations

KEY_LEVEL = 24  # columns and rows of up to 24 bits: three bytes, each spread apart by a table
MAX_MERCATOR_LAT = 85.0511287798066  # the latitude of the edge of the Web Mercator square


def spread(v: int) -> int:
    """The bits of ``v`` (up to 32) moved to the even places."""
    v &= 0xFFFFFFFF
    v = (v | (v << 16)) & 0x0000FFFF0000FFFF
    v = (v | (v << 8)) & 0x00FF00FF00FF00FF
    v = (v | (v << 4)) & 0x0F0F0F0F0F0F0F0F
    v = (v | (v << 2)) & 0x3333333333333333
    return (v | (v << 1)) & 0x5555555555555555


def morton(x: int, y: int) -> int:
    """The Z-order key of cell column ``x``, row ``y`` (bits of x at even places)."""
    return spread(x) | (spread(y) << 1)


def morton_sql(x: str, y: str) -> str:
    """SQL of :func:`morton` for two bigint expressions of up to KEY_LEVEL bits (each spread a
    byte at a time through a 256-entry table)."""
    table = "ARRAY[" + ", ".join(str(spread(b)) for b in range(256)) + "]::bigint[]"

    def spread_sql(v: str) -> str:
        return " | ".join(f"(({table})[(({v}) >> {8 * i} & 255) + 1] << {16 * i})"
                          for i in range(KEY_LEVEL // 8))
    return f"({spread_sql(x)}) | (({spread_sql(y)}) << 1)"


def tile_key_range(z: int, x: int, y: int, level: int = KEY_LEVEL) -> tuple[int, int]:
    """The first and last key, at zoom ``level`` (≥ z), of the cells inside tile z/x/y."""
    if not 0 <= z <= level <= KEY_LEVEL:
        raise ValueError(f"zoom: a tile of zoom {z} has no cells of zoom {level}")
    shift = level - z
    return (morton(x << shift, y << shift),
            morton(((x + 1) << shift) - 1, ((y + 1) << shift) - 1))


def cell_key_function_sql(name: str = "xiaosan_cell_key") -> str:
    """DDL of an immutable SQL function ``name(lon, lat)``: the key of the zoom-24 cell of a
    WGS84 point (latitudes beyond the Mercator square are taken at its edge, longitudes at
    ±180 in the edge columns, so that every point has a key)."""
    cells = float(1 << KEY_LEVEL)
    top = (1 << KEY_LEVEL) - 1
    lat = f"greatest(least(lat, {MAX_MERCATOR_LAT!r}), -{MAX_MERCATOR_LAT!r})"
    cx = f"least(greatest(floor((lon + 180.0) / 360.0 * {cells!r}), 0), {top})::bigint"
    cy = (f"least(greatest(floor((1.0 - ln(tan(pi() / 4 + radians({lat}) / 2)) / pi()) / 2.0 "
          f"* {cells!r}), 0), {top})::bigint")
    return (f"CREATE OR REPLACE FUNCTION {name}(lon double precision, lat double precision) "
            "RETURNS bigint LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ "
            f"SELECT {morton_sql('c.cx', 'c.cy')} FROM (SELECT {cx} AS cx, {cy} AS cy) c $$")
