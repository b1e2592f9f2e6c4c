"""gis.tracks: reading GPX/CSV, cleaning jumps and gaps (real GeoLife track), dwell visits."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from gis._errors import GisError
from gis.tracks import Track, clean_track, dwell_visits, read_csv, read_gpx

GEOLIFE = "beijing_geolife_sample/geolife_user000_20081023025304.csv"


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S")


def test_geolife_track_is_split_at_its_gap_and_its_jump_is_dropped(realdata):
    track = read_csv((realdata / GEOLIFE).read_bytes())
    assert len(track) == 908
    clean = clean_track(track)
    # The two cold-start fixes 1.7–1.8 km off the path (04:08:07, 04:08:12 GMT) are the jump.
    jumped = sorted(i for i, why in clean.dropped.items() if why == "speed_jump")
    assert [_utc(track.t[i]) for i in jumped] == ["04:08:07", "04:08:12"]
    assert len(clean.dropped) == 2
    # The 5.1 h silence (04:34:52 → 09:42:25) splits the track; so does the 1 h one before.
    gaps = [(s["reason"], _utc(s["after"]), _utc(s["before"])) for s in clean.splits]
    assert ("gap", "04:34:52", "09:42:25") in gaps
    assert all(reason == "gap" for reason, _, _ in gaps)
    ends = [(_utc(track.t[s[0]]), _utc(track.t[s[-1]])) for s in clean.segments]
    assert ends[-1] == ("09:42:25", "11:11:12")
    assert any(end == "04:34:52" for _, end in ends)
    # No kept step is faster than the limit.
    for s in clean.segments:
        lat = np.radians(track.lat[s])
        dy = np.diff(lat) * 6_371_000
        dx = np.diff(np.radians(track.lon[s])) * 6_371_000 * np.cos(lat[:-1])
        assert (np.hypot(dx, dy) / np.diff(track.t[s])).max() < 30
    assert clean.report()["kept"] == 906


def test_a_jump_is_dropped_even_when_the_gap_before_it_is_tolerated(realdata):
    track = read_csv((realdata / GEOLIFE).read_bytes())
    clean = clean_track(track, max_gap_s=30_000)  # no gap splits at all
    assert len(clean.segments) == 1
    assert sorted(_utc(track.t[i]) for i in clean.dropped) == ["04:08:07", "04:08:12"]
    ewkt = clean.to_ewkt()
    assert ewkt.startswith("SRID=4326;MULTILINESTRINGM((")


def _walk(n=60, dt=10.0, speed=1.2, lon0=114.05, lat0=22.54):
    t = np.arange(n) * dt
    lon = lon0 + np.arange(n) * dt * speed / (111_320 * np.cos(np.radians(lat0)))
    return Track(lon, np.full(n, lat0), 1_700_000_000 + t)


def test_single_spike_in_the_middle_is_dropped_and_the_track_stays_whole():
    tr = _walk()
    lat = tr.lat.copy()
    lat[30] += 0.02  # ~2.2 km off for one fix
    clean = clean_track(Track(tr.lon, lat, tr.t))
    assert clean.dropped == {30: "speed_jump"}
    assert len(clean.segments) == 1 and len(clean.segments[0]) == 59


def test_repeated_and_unsorted_fixes_are_handled():
    tr = _walk(n=10)
    order = np.array([3, 1, 2, 0, 4, 5, 6, 7, 8, 9, 9])
    clean = clean_track(Track(tr.lon[order], tr.lat[order], tr.t[order]))
    assert list(clean.dropped.values()) == ["duplicate_time"]
    seg = clean.segments[0]
    assert np.all(np.diff(clean.track.t[seg]) > 0)


def test_bad_parameters_name_the_field():
    with pytest.raises(GisError, match="^track:"):
        clean_track(_walk(), max_speed_mps=0)


def test_dwell_visit_needs_enough_time_near_the_site():
    # Walk to a site, stand 5 minutes, walk on.
    lat0, lon0 = 22.54, 114.05
    m = 1 / (111_320 * np.cos(np.radians(lat0)))
    lon = np.concatenate([lon0 + np.arange(0, 100, 10) * m, np.full(30, lon0 + 100 * m),
                          lon0 + np.arange(110, 300, 10) * m])
    t = 1_700_000_000 + np.arange(len(lon)) * 10.0
    clean = clean_track(Track(lon, np.full(len(lon), lat0), t))
    site_here, site_far = lon0 + 102 * m, lon0 + 2000 * m
    stays = dwell_visits(clean, np.array([site_here, site_far]), np.array([lat0, lat0]),
                         distance_m=30, min_dwell_s=180)
    assert [s.site for s in stays] == [0]
    assert stays[0].dwell_s >= 290 and stays[0].min_distance_m < 5
    assert dwell_visits(clean, np.array([site_here]), np.array([lat0]), distance_m=30,
                        min_dwell_s=600) == []


def test_gpx_reading_and_errors():
    gpx = """<?xml version="1.0"?><gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1">
    <trk><trkseg>
      <trkpt lat="22.54" lon="114.05"><time>2024-05-06T01:00:00Z</time></trkpt>
      <trkpt lat="22.5401" lon="114.0501"><time>2024-05-06T01:00:10Z</time></trkpt>
    </trkseg></trk></gpx>"""
    track = read_gpx(gpx)
    assert len(track) == 2 and track.t[1] - track.t[0] == 10
    assert track.lon[0] == 114.05
    with pytest.raises(GisError, match="^file:"):
        read_gpx("not xml")
    with pytest.raises(GisError, match="^columns:"):
        read_csv("a,b\n1,2\n")
