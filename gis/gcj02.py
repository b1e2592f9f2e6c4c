"""WGS84 ⇄ GCJ-02 conversion, vectorised.

GCJ-02 ("Mars coordinates") is the obfuscated datum that Chinese web and phone maps (Gaode/AMap,
Tencent, Google China) use. It is not a projection PROJ knows: it is a published closed-form
forward transform (WGS84 → GCJ-02) with no closed-form inverse. The inverse here iterates
the forward transform (fixed point ``w ← w − (f(w) − g)``), which converges to well under a
millimetre in a handful of steps because the offset field is smooth (its gradient is ~1e-5).

Outside mainland China's bounding box the forward transform is the identity, as in every
common implementation.
"""

from __future__ import annotations

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "wgs84_to_gcj02",
    "gcj02_to_wgs84",
    "geometry_wgs84_to_gcj02",
    "geometry_gcj02_to_wgs84",
    "in_china",
]

# Krasovsky 1940 ellipsoid, as used by the GCJ-02 algorithm.
_A = 6378245.0
_EE = 0.00669342162296594323


def in_china(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.bool_]:
    """True where (lon, lat) lies in the rough box in which GCJ-02 applies an offset."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    return (lon >= 72.004) & (lon <= 137.8347) & (lat >= 0.8293) & (lat <= 55.8271)


def _offset(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> tuple[NDArray, NDArray]:
    """GCJ-02 minus WGS84, in degrees, at WGS84 (lon, lat)."""
    x = lon - 105.0
    y = lat - 35.0
    sqrt_abs_x = np.sqrt(np.abs(x))
    common = (
        20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)
    ) * 2.0 / 3.0
    dlat = (
        -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x
        + common
        + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
        + (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    )
    dlon = (
        300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x
        + common
        + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
        + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    )
    radlat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(radlat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(radlat) * np.pi)
    inside = in_china(lon, lat)
    return np.where(inside, dlon, 0.0), np.where(inside, dlat, 0.0)


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[NDArray, NDArray]:
    """Convert WGS84 longitude/latitude (degrees) to GCJ-02. Scalars or arrays."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    dlon, dlat = _offset(lon, lat)
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(
    lon: ArrayLike, lat: ArrayLike, *, tol_deg: float = 1e-10, max_iter: int = 30
) -> tuple[NDArray, NDArray]:
    """Convert GCJ-02 longitude/latitude to WGS84 by iterating the forward transform.

    Parameters
    ----------
    lon, lat
        GCJ-02 coordinates in degrees, scalars or arrays of one shape.
    tol_deg
        Stop when the forward image of the estimate is within this many degrees of the input
        (1e-10° is about 0.01 mm).
    max_iter
        Upper bound on iterations; convergence normally takes 3–6.
    """
    g_lon = np.asarray(lon, dtype=float)
    g_lat = np.asarray(lat, dtype=float)
    w_lon = g_lon.copy()
    w_lat = g_lat.copy()
    for _ in range(max_iter):
        f_lon, f_lat = wgs84_to_gcj02(w_lon, w_lat)
        e_lon = f_lon - g_lon
        e_lat = f_lat - g_lat
        w_lon = w_lon - e_lon
        w_lat = w_lat - e_lat
        if np.all(np.abs(e_lon) < tol_deg) and np.all(np.abs(e_lat) < tol_deg):
            break
    return w_lon, w_lat


def _transform_geometry(geoms, func):
    def _xy(coords: NDArray) -> NDArray:
        x, y = func(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, _xy)


def geometry_wgs84_to_gcj02(geoms):
    """Shift shapely geometries (or an array of them) from WGS84 to GCJ-02."""
    return _transform_geometry(geoms, wgs84_to_gcj02)


def geometry_gcj02_to_wgs84(geoms):
    """Shift shapely geometries (or an array of them) from GCJ-02 to WGS84."""
    return _transform_geometry(geoms, gcj02_to_wgs84)
