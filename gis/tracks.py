"""GPS tracks of patrols: read (GPX, CSV), clean (jumps, gaps), and infer site visits (dwell).

A track is three parallel arrays: longitude, latitude (WGS84 degrees) and time (Unix seconds,
UTC). Cleaning works in a local UTM zone (:func:`gis.projection.local_metric_crs`):

1. fixes with impossible coordinates and repeated timestamps are dropped, the rest sorted;
2. a gap longer than ``max_gap_s`` splits the track (nobody knows where the phone went);
3. a step faster than ``max_speed_mps`` breaks the track into *runs*; a run shorter than
   ``min_run_fixes`` that sits next to such a break is a GPS jump and is dropped (the classic
   cold-start excursion: two fixes 1.8 km away, then back);
4. runs that remain are joined again where the step between them is plausible, otherwise the
   track is split there too.

Visits: a clean segment *visits* a site when its fixes stay within ``distance_m`` of it for at
least ``min_dwell_s`` (brief excursions of up to ``max_exit_s`` do not end the stay).
"""

from __future__ import annotations

import csv
import io
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer

from gis._errors import GisError
from gis.projection import local_metric_crs

__all__ = [
    "Track",
    "CleanTrack",
    "Stay",
    "read_gpx",
    "read_csv",
    "clean_track",
    "dwell_visits",
    "parse_time",
]

_LON = ("lon", "lng", "longitude", "x")
_LAT = ("lat", "latitude", "y")
_TIME = ("time", "timestamp", "datetime", "t")


@dataclass(frozen=True)
class Track:
    """Fixes as parallel arrays: lon, lat (degrees, WGS84), t (Unix seconds, UTC)."""

    lon: np.ndarray
    lat: np.ndarray
    t: np.ndarray

    def __post_init__(self) -> None:
        if not (len(self.lon) == len(self.lat) == len(self.t)):
            msg = "track: lon, lat and time must have the same length"
            raise GisError(msg)

    def __len__(self) -> int:
        return len(self.t)


@dataclass
class CleanTrack:
    """The cleaned track: ``segments`` hold indices into the input (time order, ≥ 2 fixes)."""

    track: Track
    segments: list[np.ndarray]
    dropped: dict[int, str] = field(default_factory=dict)
    splits: list[dict[str, Any]] = field(default_factory=list)
    metric_crs: str = ""

    def segment_arrays(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        tr = self.track
        return [(tr.lon[s], tr.lat[s], tr.t[s]) for s in self.segments]

    def report(self) -> dict[str, Any]:
        reasons: dict[str, int] = {}
        for why in self.dropped.values():
            reasons[why] = reasons.get(why, 0) + 1
        return {
            "fixes": len(self.track),
            "kept": int(sum(len(s) for s in self.segments)),
            "segments": len(self.segments),
            "dropped": reasons,
            "splits": self.splits,
        }

    def to_ewkt(self) -> str | None:
        """``MULTILINESTRINGM`` (M = Unix seconds), SRID 4326; None when nothing is left."""
        if not self.segments:
            return None
        parts = []
        for lon, lat, t in self.segment_arrays():
            parts.append("(" + ",".join(f"{x:.7f} {y:.7f} {m:.0f}"
                                        for x, y, m in zip(lon, lat, t, strict=True)) + ")")
        return "SRID=4326;MULTILINESTRINGM(" + ",".join(parts) + ")"


@dataclass(frozen=True)
class Stay:
    """A stay of one segment near one site: indices of the site and the segment, times."""

    site: int
    segment: int
    arrived: float
    left: float
    min_distance_m: float

    @property
    def dwell_s(self) -> float:
        return self.left - self.arrived


def parse_time(value: str | float | int | datetime) -> float:
    """Unix seconds from ISO 8601 (naive means UTC), a datetime, or a number of seconds."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, int | float):
        return float(value)
    else:
        text = str(value).strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            msg = f"time: {text!r} is not an ISO 8601 time or Unix seconds"
            raise GisError(msg) from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def read_gpx(data: bytes | str) -> Track:
    """Every ``trkpt`` (then ``rtept``/``wpt`` if there are none) with a time, in file order."""
    try:
        root = ET.fromstring(data.encode() if isinstance(data, str) else data)
    except ET.ParseError as exc:
        msg = f"file: not a GPX (XML) document ({exc})"
        raise GisError(msg) from exc
    points = [el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "trkpt"]
    if not points:
        points = [el for el in root.iter() if el.tag.rsplit("}", 1)[-1] in ("rtept", "wpt")]
    lon, lat, t = [], [], []
    for i, el in enumerate(points):
        when = next((c.text for c in el if c.tag.rsplit("}", 1)[-1] == "time"), None)
        if when is None:
            msg = f"time: GPX point {i + 1} has no <time>"
            raise GisError(msg)
        try:
            lon.append(float(el.get("lon", "nan")))
            lat.append(float(el.get("lat", "nan")))
        except ValueError as exc:
            msg = f"coordinates: GPX point {i + 1} has a bad lon/lat"
            raise GisError(msg) from exc
        t.append(parse_time(when))
    if not t:
        msg = "file: the GPX holds no track points"
        raise GisError(msg)
    return Track(np.asarray(lon, float), np.asarray(lat, float), np.asarray(t, float))


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    lowered = [h.strip().lower() for h in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    return None


def read_csv(data: bytes | str) -> Track:
    """A CSV with lon/lat columns and a time column (or ``date`` + ``time``, as GeoLife)."""
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    rows = list(csv.reader(io.StringIO(text)))
    if len(rows) < 2:
        msg = "file: the CSV has no fixes"
        raise GisError(msg)
    header, body = rows[0], rows[1:]
    ix, iy = _column(header, _LON), _column(header, _LAT)
    it, idate = _column(header, _TIME), _column(header, ("date",))
    if ix is None or iy is None or it is None:
        msg = f"columns: need lon, lat and time columns (found {', '.join(header)})"
        raise GisError(msg)
    lon, lat, t = [], [], []
    for n, row in enumerate(body, start=2):
        if not row:
            continue
        try:
            lon.append(float(row[ix]))
            lat.append(float(row[iy]))
        except (ValueError, IndexError) as exc:
            msg = f"coordinates: line {n} has no numeric lon/lat"
            raise GisError(msg) from exc
        when = row[it]
        if idate is not None and ":" in when and "-" not in when:
            when = f"{row[idate]}T{when}"
        try:
            t.append(parse_time(when))
        except GisError as exc:
            msg = f"time: line {n}: {exc}"
            raise GisError(msg) from exc
    return Track(np.asarray(lon, float), np.asarray(lat, float), np.asarray(t, float))


def _to_metric(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    bounds = (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))
    crs = local_metric_crs(bounds)
    x, y = Transformer.from_crs(4326, crs, always_xy=True).transform(lon, lat)
    return np.asarray(x), np.asarray(y), crs.to_string()


def clean_track(
    track: Track,
    *,
    max_speed_mps: float = 30.0,
    max_gap_s: float = 1800.0,
    min_run_fixes: int = 3,
) -> CleanTrack:
    """Drop impossible fixes and jumps, split at long gaps. See the module docstring.

    Parameters
    ----------
    track
        The raw fixes, in any order.
    max_speed_mps
        A step faster than this is impossible for a patrol (30 m/s = 108 km/h).
    max_gap_s
        A longer silence splits the track.
    min_run_fixes
        A run of fewer fixes between impossible steps is a jump, and is dropped.
    """
    if max_speed_mps <= 0 or max_gap_s <= 0 or min_run_fixes < 1:
        msg = "track: max_speed_mps and max_gap_s must be positive, min_run_fixes at least 1"
        raise GisError(msg)
    n = len(track)
    dropped: dict[int, str] = {}
    ok = (np.isfinite(track.lon) & np.isfinite(track.lat) & np.isfinite(track.t)
          & (np.abs(track.lon) <= 180) & (np.abs(track.lat) <= 90))
    dropped.update({int(i): "invalid" for i in np.flatnonzero(~ok)})
    idx = np.flatnonzero(ok)
    idx = idx[np.argsort(track.t[idx], kind="stable")]
    if len(idx) > 1:
        same = np.concatenate([[False], np.diff(track.t[idx]) == 0])
        dropped.update({int(i): "duplicate_time" for i in idx[same]})
        idx = idx[~same]
    result = CleanTrack(track=track, segments=[], dropped=dropped)
    if len(idx) < 2:
        dropped.update({int(i): "too_few_fixes" for i in idx})
        return result
    x, y, result.metric_crs = _to_metric(track.lon[idx], track.lat[idx])
    t = track.t[idx]
    step = np.hypot(np.diff(x), np.diff(y))
    dt = np.diff(t)
    gap = dt > max_gap_s
    fast = (step / dt > max_speed_mps) & ~gap
    # Runs: maximal stretches with neither a gap nor an impossible step inside.
    cut = np.flatnonzero(gap | fast) + 1
    bounds = np.concatenate([[0], cut, [len(idx)]])
    runs = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def fast_before(a: int) -> bool:
        return a > 0 and bool(fast[a - 1])

    def fast_after(b: int) -> bool:
        return b < len(idx) and bool(fast[b - 1])

    kept: list[tuple[int, int]] = []
    for a, b in runs:
        if b - a < min_run_fixes and (fast_before(a) or fast_after(b)):
            dropped.update({int(i): "speed_jump" for i in idx[a:b]})
        else:
            kept.append((a, b))
    # Join consecutive kept runs when the step across the dropped fixes is plausible.
    def plausible(i: int, j: int) -> bool:
        span = t[j] - t[i]
        return span <= max_gap_s and math.hypot(x[j] - x[i], y[j] - y[i]) / span <= max_speed_mps

    segments: list[list[int]] = []
    for a, b in kept:
        if segments:
            prev = segments[-1]
            if plausible(prev[-1], a):
                prev.extend(range(a, b))
                continue
            # A jump at the edge of a long run (a bad fix just before or after the break):
            # trim up to min_run_fixes - 1 fixes on either side if that makes the join plausible.
            trim = next(((p, q) for p in range(min_run_fixes) for q in range(min_run_fixes)
                         if (p or q) and p < len(prev) and a + q < b
                         and plausible(prev[-1 - p], a + q)), None)
            if trim is not None and fast[a - 1]:
                p, q = trim
                bad = prev[len(prev) - p:] + list(range(a, a + q))
                dropped.update({int(i): "speed_jump" for i in idx[bad]})
                del prev[len(prev) - p:]
                prev.extend(range(a + q, b))
                continue
            last = prev[-1]
            span = t[a] - t[last]
            dist = math.hypot(x[a] - x[last], y[a] - y[last])
            result.splits.append({
                "after": float(t[last]), "before": float(t[a]), "gap_s": float(span),
                "distance_m": round(dist, 1),
                "reason": "gap" if span > max_gap_s else "jump"})
        segments.append(list(range(a, b)))
    for seg in segments:
        if len(seg) < 2:
            dropped.update({int(i): "too_few_fixes" for i in idx[seg]})
        else:
            result.segments.append(idx[np.asarray(seg)])
    assert sum(len(s) for s in result.segments) + len(dropped) == n
    return result


def dwell_visits(
    clean: CleanTrack,
    site_lon: np.ndarray,
    site_lat: np.ndarray,
    *,
    distance_m: float = 50.0,
    min_dwell_s: float = 180.0,
    max_exit_s: float = 120.0,
) -> list[Stay]:
    """Stays of at least ``min_dwell_s`` within ``distance_m`` of each site, per segment."""
    if distance_m <= 0 or min_dwell_s < 0:
        msg = "distance_m: must be positive (and min_dwell_s not negative)"
        raise GisError(msg)
    site_lon, site_lat = np.asarray(site_lon, float), np.asarray(site_lat, float)
    if not clean.segments or not len(site_lon):
        return []
    tr = clean.track
    all_lon = np.concatenate([tr.lon[s] for s in clean.segments] + [site_lon])
    all_lat = np.concatenate([tr.lat[s] for s in clean.segments] + [site_lat])
    crs = local_metric_crs((all_lon.min(), all_lat.min(), all_lon.max(), all_lat.max()))
    to_m = Transformer.from_crs(4326, crs, always_xy=True)
    sx, sy = to_m.transform(site_lon, site_lat)
    tree = shapely.STRtree(shapely.points(sx, sy))
    stays: list[Stay] = []
    for k, seg in enumerate(clean.segments):
        fx, fy = to_m.transform(tr.lon[seg], tr.lat[seg])
        ft = tr.t[seg]
        fix_i, site_i = tree.query(shapely.points(fx, fy), predicate="dwithin",
                                   distance=distance_m)
        for site in np.unique(site_i):
            near = np.sort(fix_i[site_i == site])
            d = np.hypot(fx[near] - sx[site], fy[near] - sy[site])
            # Episodes: consecutive near fixes, tolerating short times away.
            breaks = np.flatnonzero(np.diff(ft[near]) > max_exit_s) + 1
            for part, dist in zip(np.split(near, breaks), np.split(d, breaks), strict=True):
                arrived, left = float(ft[part[0]]), float(ft[part[-1]])
                if left - arrived >= min_dwell_s:
                    stays.append(Stay(int(site), k, arrived, left, float(dist.min())))
    return sorted(stays, key=lambda s: (s.arrived, s.site))
