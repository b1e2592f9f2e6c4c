"""Bad geometry sent to every endpoint that accepts geometry: a clear 4xx, and nothing stored.

Hypothesis draws broken geometries of every kind — malformed GeoJSON, self-intersecting and
degenerate polygons, empty geometries, NaN and infinite coordinates, too many vertices,
projected or legacy-CRS coordinates read as degrees, places outside China — and sends them
where a client can: jurisdiction look-ups, project registration (``site``), hazard, incident
and lead reports (``location``), patrol uploads (``location``, ``track``) and boundary files.
Each must be answered 413 or 422 with a ``detail`` naming the field, and the tables must hold
exactly the rows they held before. A control request with a good geometry is stored each time,
so the tests can fail. Altitudes and clockwise rings are accepted (RFC 7946): stored 2D and
counter-clockwise, which is checked against the database too.
"""

from __future__ import annotations

import json
import math
import uuid

import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from app.geoinput import in_china

TABLES = ("projects", "hazards", "incidents", "unregistered_works", "patrols", "grids",
          "boundary_imports", "audit_log")
SETTINGS = settings(max_examples=40, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
VERTEX_LIMIT = 300  # lowered for the tests (XIAOSAN_MAX_VERTICES), so big inputs stay cheap


@pytest.fixture
def spot(session) -> tuple[float, float]:
    """A point inside a grid of the demo district, away from any school or estate."""
    row = session.execute(text(
        """SELECT ST_X(p) AS lon, ST_Y(p) AS lat FROM (
               SELECT ST_PointOnSurface(g.geom) AS p FROM grids g WHERE g.valid_to IS NULL
               ORDER BY g.code OFFSET 40 LIMIT 1) s""")).one()
    return float(row.lon), float(row.lat)


@pytest.fixture
def small_vertex_limit(monkeypatch):
    monkeypatch.setenv("XIAOSAN_MAX_VERTICES", str(VERTEX_LIMIT))


def counts(session) -> dict[str, int]:
    return {t: session.scalar(text(f"SELECT count(*) FROM {t}")) for t in TABLES}


# --- broken geometries ---------------------------------------------------------------------

def _square(lon: float, lat: float, d: float) -> list[list[float]]:
    return [[lon, lat], [lon + d, lat], [lon + d, lat + d], [lon, lat + d], [lon, lat]]


def _circle(lon: float, lat: float, n: int, r: float = 0.001) -> list[list[float]]:
    ring = [[lon + r * math.cos(2 * math.pi * k / n), lat + r * math.sin(2 * math.pi * k / n)]
            for k in range(n)]
    return ring + [ring[0]]


def _a_position(value) -> bool:
    return isinstance(value, list) and 2 <= len(value) <= 3 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value)


# Any JSON at all, except by chance a well-formed position.
_junk = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=3),
    max_leaves=12).filter(lambda v: not _a_position(v))


def broken(lon: float, lat: float) -> st.SearchStrategy[tuple[str, object]]:
    """(kind, geometry) pairs, every one of which must be refused."""
    d = st.floats(1e-4, 5e-3)
    point = lambda c: {"type": "Point", "coordinates": c}  # noqa: E731
    poly = lambda rings: {"type": "Polygon", "coordinates": rings}  # noqa: E731
    outside = st.tuples(st.floats(-180, 180), st.floats(-90, 90)).filter(
        lambda p: not in_china(*p))
    return st.one_of(
        st.tuples(st.just("malformed"), st.sampled_from([
            point([[lon, lat]]), point([lon]), point(f"{lon},{lat}"), point([lon, lat, 1, 2]),
            point([True, False]), point({"x": lon, "y": lat}), point(None),
            {"type": "Polygon", "coordinates": [[lon, lat], [lon, lat]]},
            {"type": "Circle", "coordinates": [lon, lat], "radius": 10},
            {"coordinates": [lon, lat]}, [lon, lat], f"POINT({lon} {lat})",
            {"type": "MultiPolygon", "coordinates": [[[[lon, lat, "z"]]]]},
            {"type": "Polygon", "coordinates": [[[[[[lon, lat]]]]]]},
        ])),
        st.tuples(st.just("junk"), _junk.map(lambda c: point(c))),
        st.tuples(st.just("self_intersecting"), d.map(lambda k: poly(
            [[[lon, lat], [lon + k, lat + k], [lon + k, lat], [lon, lat + k], [lon, lat]]]))),
        st.tuples(st.just("empty"), st.sampled_from([
            poly([]), poly([[]]), point([]), {"type": "MultiPolygon", "coordinates": []},
            {"type": "Point", "coordinates": [[]]}])),
        st.tuples(st.just("degenerate"), d.flatmap(lambda k: st.sampled_from([
            poly([[[lon, lat], [lon + k, lat], [lon, lat]]]),                   # 3 positions
            poly([_square(lon, lat, k)[:-1]]),                                  # not closed
            poly([[[lon, lat], [lon + k, lat], [lon + 2 * k, lat], [lon, lat]]]),  # no area
        ]))),
        st.tuples(st.just("non_finite"), st.sampled_from(
            [math.nan, math.inf, -math.inf]).flatmap(lambda bad: st.sampled_from([
                point([bad, lat]), point([lon, bad]),
                poly([[[lon, lat], [bad, lat], [lon, lat + 0.001], [lon, lat]]])]))),
        st.tuples(st.just("too_many_vertices"), st.integers(VERTEX_LIMIT + 1, VERTEX_LIMIT * 4)
                  .map(lambda n: poly([_circle(lon, lat, n)]))),
        st.tuples(st.just("projected_crs"), st.tuples(st.floats(2e5, 9e5), st.floats(2.4e6, 2.6e6))
                  .map(lambda xy: point(list(xy)))),  # CGCS2000 / 3-degree zone metres
        st.tuples(st.just("web_mercator"), st.just(point([12_696_000.0, 2_575_000.0]))),
        st.tuples(st.just("legacy_crs_member"), st.sampled_from(["EPSG:3857", "EPSG:4547"]).map(
            lambda name: {**point([lon, lat]),
                          "crs": {"type": "name", "properties": {"name": name}}})),
        st.tuples(st.just("outside_china"), outside.map(lambda p: point(list(p)))),
        st.tuples(st.just("swapped_lat_lon"), st.just(point([lat, lon]))),
    )


def assert_refused(response, fields: tuple[str, ...], kind: str, geometry) -> None:
    shown = json.dumps(geometry, allow_nan=True, default=str)[:200]
    assert response.status_code in (413, 422), (kind, shown, response.status_code, response.text)
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail, (kind, response.text)
    named = {str(part) for entry in detail for part in entry["loc"][1:]} | {
        entry["msg"].split(":")[0] for entry in detail}
    assert named & set(fields), (kind, shown, fields, response.text)
    assert "Traceback" not in response.text


def post_json(client, url: str, body) -> object:
    """JSON with NaN and Infinity written as JavaScript does (what a careless client sends)."""
    return client.post(url, content=json.dumps(body, allow_nan=True),
                       headers={"Content-Type": "application/json"})


# --- the endpoints ------------------------------------------------------------------------

def declaration(site) -> dict:
    return {"kind": "small_project", "category": "residential_fitout", "title": "住宅室内装修",
            "address": "福田区测试路1号", "site": site,
            "builder": {"name": "王先生", "phone": "13800138000"},
            "contractor": {"name": "深圳市测试装饰工程有限公司", "phone": "0755-12345678"},
            "investment_cny": 80000, "floor_area_m2": 120, "planned_start": "2024-09-30",
            "planned_end": "2024-11-15", "submitted_on": "2024-09-27"}


def patrol(location=None, **extra) -> dict:
    record = {"client_id": uuid.uuid4().hex, "inspector_id": "geo-input", "force": "supervisor",
              "started_at": "2025-03-03T10:00:00+08:00", **extra}
    if location is not None:
        record["location"] = location
    return record


ENDPOINTS = {
    # name: (method/url, body builder, fields that may be named, status of a good request)
    "jurisdiction": ("/api/jurisdiction", lambda g: g, ("geometry", "type", "coordinates")),
    "registration": ("/api/projects", declaration, ("site",)),
    "hazard": ("/api/hazards", lambda g: {"hazard_type": "fire", "severity": "general",
                                          "location": g, "actor": "tests"}, ("location",)),
    "incident": ("/api/incidents", lambda g: {"incident_type": "fire",
                                              "occurred_on": "2025-01-10", "location": g,
                                              "actor": "tests"}, ("location",)),
    "lead": ("/api/unregistered", lambda g: {"location": g, "channel": "patrol",
                                             "actor": "tests"}, ("location",)),
    "patrol": ("/api/patrols", patrol, ("location",)),
}


@pytest.mark.parametrize("name", list(ENDPOINTS))
def test_a_good_geometry_is_accepted_and_stored(client, session, spot, name):
    """The control: the same request with a good point is stored (so the refusals below are
    about the geometry alone)."""
    url, build, _ = ENDPOINTS[name]
    before = counts(session)
    r = post_json(client, url, build({"type": "Point", "coordinates": list(spot)}))
    assert r.status_code in (200, 201), r.text
    after = counts(session)
    if name != "jurisdiction":
        assert sum(after.values()) > sum(before.values())


@pytest.mark.parametrize("name", list(ENDPOINTS))
def test_broken_geometry_is_refused_and_nothing_stored(client, session, spot, name,
                                                       small_vertex_limit):
    url, build, fields = ENDPOINTS[name]
    before = counts(session)
    seen: set[str] = set()

    @SETTINGS
    @given(data=broken(*spot))
    def check(data):
        kind, geometry = data
        seen.add(kind)
        assert_refused(post_json(client, url, build(geometry)), fields, kind, geometry)

    check()
    assert counts(session) == before
    print(f"\n{name}: refused every broken geometry; kinds seen: {sorted(seen)}")
    assert len(seen) >= 8


def test_broken_patrol_tracks_are_refused(client, session, spot, monkeypatch):
    monkeypatch.setenv("XIAOSAN_MAX_TRACK_FIXES", "500")
    lon, lat = spot
    before = counts(session)

    def track(coords, times=None):
        n = len(coords) if isinstance(coords, list) else 2
        return {"coordinates": coords,
                "times": times if times is not None else list(range(0, 30 * n, 30))}

    @SETTINGS
    @given(coords=st.one_of(
        st.just([[lon, lat]]),                                                   # one fix
        st.lists(st.tuples(st.just(lon), st.sampled_from([math.nan, math.inf, 95.0])),
                 min_size=2, max_size=5).map(lambda c: [list(p) for p in c]),    # non-finite
        st.integers(501, 1500).map(lambda n: [[lon + 1e-6 * k, lat] for k in range(n)]),
        _junk.filter(lambda v: not isinstance(v, list) or len(v) < 2),
    ))
    def check(coords):
        r = post_json(client, "/api/patrols", patrol(track=track(coords)))
        assert_refused(r, ("track", "track.times", "location"), "track", coords)

    check()
    outside = [[2.35 + 1e-5 * k, 48.85] for k in range(10)]  # Paris
    r = post_json(client, "/api/patrols", patrol(track=track(outside)))
    assert_refused(r, ("location", "track"), "track outside China", outside)
    assert counts(session) == before


def test_a_batch_answers_each_broken_record_and_stores_the_good_ones(client, session, spot):
    lon, lat = spot
    bad = [None, {"type": "Point", "coordinates": [lat, lon]},
           {"type": "Point", "coordinates": [0.0, 0.0]},
           {"type": "Polygon", "coordinates": [_square(lon, lat, 0.001)]}]
    records = [patrol(g) for g in bad] + [patrol({"type": "Point", "coordinates": [lon, lat]})]
    before = counts(session)["patrols"]
    r = client.post("/api/patrols/batch", json={"records": records})
    assert r.status_code == 200, r.text
    statuses = [x["status"] for x in r.json()["results"]]
    assert statuses == ["error"] * 4 + ["created"]
    assert all(x["errors"][0]["field"] == "location" for x in r.json()["results"][:4])
    assert counts(session)["patrols"] == before + 1


def test_point_lookups_outside_china_or_not_finite_are_422(client, spot):
    lon, lat = spot
    for params in ({"lon": 0, "lat": 0}, {"lon": lat, "lat": lon}, {"lon": "nan", "lat": lat},
                   {"lon": lon, "lat": "inf"}, {"lon": 12_696_000, "lat": 2_575_000}):
        r = client.get("/api/jurisdiction", params=params)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["detail"][0]["loc"][0] == "query", r.text
    r = post_json(client, "/api/jurisdiction/bulk", {"lon": [lon, math.nan], "lat": [lat, lat]})
    assert r.status_code == 422 and "lon: value 1" in r.text
    r = post_json(client, "/api/jurisdiction/bulk", {"lon": [lon, 1e16], "lat": [lat, lat]})
    assert r.status_code == 422 and "lon" in r.json()["detail"][0]["loc"]
    # Inside China but outside the district: an answer, not an error (nothing is dropped).
    r = client.get("/api/jurisdiction", params={"lon": 116.40, "lat": 39.91})
    assert r.status_code == 200 and r.json()["outside"] is True


def test_altitude_is_dropped_and_clockwise_rings_are_rewound(client, session, spot):
    lon, lat = spot
    d = 0.0004
    clockwise = [[lon, lat], [lon, lat + d], [lon + d, lat + d], [lon + d, lat], [lon, lat]]
    assert not shapely.Polygon(clockwise).exterior.is_ccw
    r = client.post("/api/projects", json=declaration(
        {"type": "Polygon", "coordinates": [[[x, y, 12.5] for x, y in clockwise]]}))
    assert r.status_code == 201, r.text
    row = session.execute(text(
        """SELECT ST_NDims(site) AS dims, ST_IsPolygonCCW(site) AS ccw,
                  ST_Area(site) AS area FROM projects WHERE id = :i"""),
        {"i": r.json()["id"]}).one()
    assert row.dims == 2 and row.ccw is True
    assert row.area == pytest.approx(d * d, rel=1e-9)
    r = client.post("/api/hazards", json={"hazard_type": "fire", "severity": "general",
                                          "location": {"type": "Point",
                                                       "coordinates": [lon, lat, 30.0]},
                                          "actor": "tests"})
    assert r.status_code == 201, r.text
    dims = session.scalar(text("SELECT ST_NDims(location) FROM hazards WHERE id = :i"),
                          {"i": r.json()["id"]})
    assert dims == 2


def test_vertex_limit_default_and_body_limit(client, session, spot):
    """At the default limits: 10,001 vertices are refused by count (422), a body over 1 MiB
    on an ordinary route by size (413), before any of it is parsed."""
    lon, lat = spot
    before = counts(session)
    r = client.post("/api/jurisdiction", json={"type": "Polygon",
                                               "coordinates": [_circle(lon, lat, 10_001)]})
    assert r.status_code == 422 and "10,000 vertices" in r.text, r.text[:300]
    assert r.json()["detail"][0]["loc"] == ["body", "geometry"]
    big = declaration({"type": "Polygon", "coordinates": [_circle(lon, lat, 40_000)]})
    r = client.post("/api/projects", json=big)
    assert r.status_code == 413, r.text[:300]
    assert r.json()["detail"][0]["loc"] == ["body", "body"] and "1 MiB" in r.text
    assert counts(session) == before


# --- boundary files ----------------------------------------------------------------------

def _boundary_file(session, geometry) -> bytes:
    """A grid-level GeoJSON file: every current grid of one community, one of them replaced by
    ``geometry`` (None: the file as it is)."""
    rows = session.execute(text(
        """SELECT code, name, parent_code, ST_AsGeoJSON(geom, 7) AS gj FROM grids
           WHERE valid_to IS NULL AND parent_code = (SELECT parent_code FROM grids
                 WHERE valid_to IS NULL ORDER BY code LIMIT 1)
           ORDER BY code""")).all()
    features = [{"type": "Feature", "properties": {"code": r.code, "name": r.name,
                                                   "parent_code": r.parent_code},
                 "geometry": geometry if k == 0 and geometry is not None else json.loads(r.gj)}
                for k, r in enumerate(rows)]
    fc = {"type": "FeatureCollection", "features": features}
    return json.dumps(fc, allow_nan=True).encode()


def test_broken_boundary_files_are_refused_and_nothing_stored(client, session, spot,
                                                              monkeypatch):
    monkeypatch.setenv("XIAOSAN_MAX_FEATURE_VERTICES", "2000")
    lon, lat = spot
    good = _boundary_file(session, None)
    before = counts(session)
    cases = {
        "outside_china": {"type": "Polygon", "coordinates": [_square(2.35, 48.85, 0.01)]},
        "projected_crs": {"type": "Polygon", "coordinates": [
            [[x * 1e5, y * 1e5] for x, y in _square(lon, lat, 0.01)]]},
        "non_finite": {"type": "Polygon", "coordinates": [
            [[lon, lat], [math.nan, lat], [lon, lat + 0.01], [lon, lat]]]},
        "too_many_vertices": {"type": "Polygon", "coordinates": [_circle(lon, lat, 2500)]},
        "not_geojson": "garbage",
    }
    for kind, geometry in cases.items():
        data = b"{not json" if kind == "not_geojson" else _boundary_file(session, geometry)
        for url in ("/api/boundaries/validate", "/api/boundaries/import"):
            r = client.post(url, files={"file": ("grids.geojson", data, "application/geo+json")},
                            data={"level": "grid"})
            assert_refused(r, ("file", "crs", "geometry"), kind, geometry)
    assert counts(session) == before
    # The control: the untouched file validates (same route, same form).
    r = client.post("/api/boundaries/validate",
                    files={"file": ("grids.geojson", good, "application/geo+json")},
                    data={"level": "grid"})
    assert r.status_code == 200, r.text[:500]
