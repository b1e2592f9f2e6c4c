"""Map layers: the catalogue, GeoJSON per layer, and vector tiles, against independent SQL.

A year of synthetic projects, patrols, hazards and incidents up to today is generated once for
the module, in a transaction rolled back at its end (each test runs in a savepoint inside it),
plus a few hand-made GPS tracks and a route plan in two versions. Expected numbers come from
plain SQL written here (``ST_TileEnvelope``, ``ST_Intersects``), never from the layer code.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from datetime import timedelta

import mapbox_vector_tile
import pytest
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.services.registration import today_cn
from layers import catalog
from tests._activity import activity_world, savepoint_session

DISTRICT = "440304000000"
EVERY_LAYER = {"districts", "streets", "communities", "grids", "projects", "patrols", "tracks",
               "hazards", "incidents", "heat", "hotspots", "blind_spots", "uncovered", "routes"}
SINCE = "2000-01-01"
TILE_TYPE = "application/vnd.mapbox-vector-tile"


# --- the module's world ------------------------------------------------------------------------


def _tracks(s: Session) -> None:
    """Tracks: a short line through the last 30 patrol points of the week."""
    s.execute(text(
        """UPDATE patrols SET track = ST_SetSRID(ST_Multi(ST_MakeLine(ARRAY[
               ST_MakePointM(ST_X(location) - 0.001, ST_Y(location), 0),
               ST_MakePointM(ST_X(location), ST_Y(location) + 0.0005, 60),
               ST_MakePointM(ST_X(location) + 0.001, ST_Y(location), 120)])), 4326)
           WHERE id IN (SELECT id FROM patrols WHERE district_code = :d
                        ORDER BY patrol_on DESC, id LIMIT 30)"""), {"d": DISTRICT})


@pytest.fixture(scope="module")
def world(engine):
    """One connection whose transaction holds the module's data and is rolled back after it."""
    with activity_world(engine, 5, DISTRICT, then=_tracks) as conn:
        yield conn


@pytest.fixture
def session(world):
    """The conftest ``session``, inside the module's transaction (a savepoint per test)."""
    with savepoint_session(world) as s:
        yield s


def _scalar(session, sql: str, **params):
    return session.execute(text(sql), params).scalar_one()


def _district_bbox(session) -> list[float]:
    return list(session.execute(text(
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) "
        "AS e FROM districts WHERE code = :d AND valid_to IS NULL) s"), {"d": DISTRICT}).one())


def _bbox_param(b) -> str:
    return ",".join(f"{v:.7f}" for v in b)


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 1 << z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def _in_tile(session, table: str, z: int, x: int, y: int, where: str = "true",
             geom: str = "location", **params) -> int:
    """Rows of ``table`` whose point lies in tile z/x/y (PostGIS's own envelope)."""
    return _scalar(session, f"SELECT count(*) FROM {table} WHERE {where} AND ST_Intersects("
                            f"{geom}, ST_Transform(ST_TileEnvelope(:z, :x, :y), 4326))",
                   z=z, x=x, y=y, **params)


def _decimals(coordinates) -> int:
    """The most decimals of any number in a GeoJSON coordinates array (as the JSON wrote it:
    Python's float repr is the shortest that reads back the same)."""
    if isinstance(coordinates, (int, float)):
        mantissa = repr(float(coordinates)).split("e")[0]
        return len(mantissa.split(".")[1].rstrip("0")) if "." in mantissa else 0
    return max((_decimals(c) for c in coordinates), default=0)


def _decode(resp, name: str) -> list[dict]:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == TILE_TYPE
    layers = mapbox_vector_tile.decode(resp.content)
    assert set(layers) == {name}
    assert layers[name]["extent"] == 4096
    return layers[name]["features"]


# --- the catalogue -----------------------------------------------------------------------------


def test_catalogue_lists_every_layer(client):
    r = client.get("/api/layers")
    assert r.status_code == 200
    body = r.json()
    layers = {layer["name"]: layer for layer in body["layers"]}
    assert set(layers) == EVERY_LAYER
    assert body["tile_url"] == "/tiles/{name}/{z}/{x}/{y}.pbf"
    for name, layer in layers.items():
        assert layer["title"]["zh"] and layer["title"]["en"], name
        assert layer["served_as"] in ("geojson", "tiles")
        assert layer["geometry"] in ("point", "line", "polygon")
        assert 0 <= layer["min_zoom"] <= layer["max_zoom"] <= 22
        assert layer["urls"]["geojson"] == f"/api/layers/{name}"
        assert layer["legend"], name
        for entry in layer["legend"]:
            assert entry["label_zh"] and entry["label_en"], (name, entry)
            assert re.fullmatch(r"#[0-9a-f]{6}", entry["colour"]), (name, entry)
        assert layer["popup"], name
        for field in layer["popup"]:
            assert field["field"] and field["label_zh"] and field["label_en"]
        for f in layer["filters"]:
            assert f["label"]["zh"] and f["label"]["en"]
    # The big layers go as tiles, and every served-as-tiles layer has a tile URL.
    assert {n for n, v in layers.items() if v["served_as"] == "tiles"} == {
        "projects", "patrols", "tracks"}
    assert all(v["urls"]["tiles"] for v in layers.values() if v["served_as"] == "tiles")
    assert layers["hotspots"]["urls"]["tiles"] is None
    assert layers["projects"]["link"] == "/api/projects/{id}"
    assert layers["projects"]["public_link"] == "/p/{public_id}"
    assert layers["patrols"]["time"]["default_days"] == 7


def test_catalogue_vocabularies_are_the_domain_ones():
    from app.patrol_rules import FORCES, HAZARD_TYPES, SEVERITIES, get_patrol_rules
    from app.services.hazards import HAZARD_MOVES, OPEN_STATES
    from app.services.lifecycle import STATES

    assert catalog.STATES == STATES
    assert set(catalog.ACTIVE_PROJECT_STATES) == set(get_patrol_rules().active_states)
    assert set(catalog.HAZARD_STATES) == {"found", *(m.target for m in HAZARD_MOVES.values())}
    assert set(catalog.OPEN_STATES) == set(OPEN_STATES)
    assert set(catalog.PROJECTS.filter("state").allowed()) == set(STATES)
    assert set(catalog.PATROLS.filter("force").allowed()) == set(FORCES)
    assert set(catalog.HAZARDS.filter("severity").allowed()) == set(SEVERITIES)
    assert set(catalog.HAZARDS.filter("hazard_type").allowed()) == set(HAZARD_TYPES)
    # Every value a styled property can take has a legend entry.
    assert {e.value for e in catalog.PROJECTS.style.legend} == set(STATES)
    assert {e.value for e in catalog.PATROLS.style.legend} == set(FORCES)
    assert {e.value for e in catalog.HAZARDS.style.legend} == set(
        catalog.HAZARDS.filter("state").allowed())


# --- GeoJSON -----------------------------------------------------------------------------------


def test_every_layer_is_valid_geojson_with_six_decimals(client, session):
    bbox = _bbox_param(_district_bbox(session))
    kinds = {"point": {"Point"}, "line": {"LineString", "MultiLineString"},
             "polygon": {"Polygon", "MultiPolygon"}}
    seen = {}
    for name, layer in catalog.LAYERS.items():
        params = {"bbox": bbox} if name not in ("patrols", "projects") else {
            "bbox": bbox, "grid": _scalar(session, "SELECT grid_code FROM patrols WHERE "
                                                   "patrol_on >= CURRENT_DATE - 6 LIMIT 1")}
        r = client.get(f"/api/layers/{name}", params=params)
        assert r.status_code == 200, (name, r.text)
        assert r.headers["content-type"] == "application/geo+json"
        fc = r.json()
        assert fc["type"] == "FeatureCollection" and fc["layer"] == name
        assert fc["count"] == len(fc["features"])
        for feature in fc["features"]:
            assert feature["type"] == "Feature"
            assert feature["geometry"]["type"] in kinds[layer.geometry], name
            assert not shapely.geometry.shape(feature["geometry"]).is_empty
            assert _decimals(feature["geometry"]["coordinates"]) <= 6, name
            assert isinstance(feature["properties"], dict)
        seen[name] = fc["count"]
    # The generated year fills every layer but the routes (no plan) and the land without grid
    # (the demo grids tile the district).
    empty = {n for n, c in seen.items() if c == 0}
    assert empty <= {"routes", "uncovered"}, seen


def test_styled_values_all_have_a_legend_entry(client, session):
    bbox = _bbox_param(_district_bbox(session))
    for name in ("projects", "hazards", "incidents", "blind_spots", "hotspots", "heat"):
        layer = catalog.LAYERS[name]
        legend = {e.value for e in layer.style.legend}
        fc = client.get(f"/api/layers/{name}", params={"bbox": bbox}).json()
        values = {f["properties"][layer.style.property] for f in fc["features"]}
        assert values and values <= legend, (name, values - legend)


def test_bbox_selects_exactly_the_features_inside(client, session):
    box = _district_bbox(session)
    expected = _scalar(session, "SELECT count(*) FROM projects WHERE ST_Intersects("
                                "ST_PointOnSurface(site), ST_MakeEnvelope(:a, :b, :c, :d, 4326))",
                       a=box[0], b=box[1], c=box[2], d=box[3])
    assert expected > 1000
    r = client.get("/api/layers/projects", params={"bbox": _bbox_param(box), "state": "active"})
    active = _scalar(session, "SELECT count(*) FROM projects WHERE state IN ('accepted', "
                              "'briefed', 'in_progress', 'completion_declared') AND ST_Intersects("
                              "ST_PointOnSurface(site), ST_MakeEnvelope(:a, :b, :c, :d, 4326))",
                     a=box[0], b=box[1], c=box[2], d=box[3])
    assert r.json()["count"] == active > 0
    # A quarter of the district: the features are those inside, every one of them.
    mid = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    quarter = [box[0], box[1], mid[0], mid[1]]
    fc = client.get("/api/layers/hazards", params={"bbox": _bbox_param(quarter)}).json()
    inside = _scalar(session, "SELECT count(*) FROM hazards WHERE ST_Intersects(location, "
                              "ST_MakeEnvelope(:a, :b, :c, :d, 4326))",
                     a=quarter[0], b=quarter[1], c=quarter[2], d=quarter[3])
    assert fc["count"] == inside > 0
    qbox = shapely.box(*quarter)
    assert all(qbox.intersects(shapely.geometry.shape(f["geometry"])) for f in fc["features"])
    # Elsewhere (the Gulf of Guinea): nothing.
    for name in catalog.LAYERS:
        r = client.get(f"/api/layers/{name}", params={"bbox": "0,0,1,1"})
        assert r.status_code == 200 and r.json()["features"] == [], name


def test_grids_in_the_district_bbox_are_all_the_grids(client, session):
    fc = client.get("/api/layers/grids", params={"bbox": _bbox_param(_district_bbox(session))})
    grids = _scalar(session, "SELECT count(*) FROM grids WHERE valid_to IS NULL AND "
                             "district_code = :d", d=DISTRICT)
    assert fc.json()["count"] == grids == 1072


def test_time_and_attribute_filters(client, session):
    today = today_cn()
    week = _scalar(session, "SELECT count(*) FROM patrols WHERE district_code = :d AND "
                            "patrol_on BETWEEN :a AND :b", d=DISTRICT,
                   a=today - timedelta(days=6), b=today)
    grid = _scalar(session, "SELECT grid_code FROM patrols GROUP BY 1 ORDER BY count(*) DESC "
                            "LIMIT 1")
    # Patrols: the last 7 days by default; any period by since/until; by force and grid.
    default = client.get("/api/layers/patrols", params={"grid": grid}).json()
    in_grid_week = _scalar(session, "SELECT count(*) FROM patrols WHERE grid_code = :g AND "
                                    "patrol_on BETWEEN :a AND :b", g=grid,
                           a=today - timedelta(days=6), b=today)
    assert default["count"] == in_grid_week
    assert default["filters"]["since"] == (today - timedelta(days=6)).isoformat()
    assert week > 0
    a, b = today - timedelta(days=120), today - timedelta(days=60)
    for force in ("supervisor", "grid_worker,property"):
        fc = client.get("/api/layers/patrols", params={
            "grid": grid, "since": a.isoformat(), "until": b.isoformat(), "force": force}).json()
        expected = _scalar(session, "SELECT count(*) FROM patrols WHERE grid_code = :g AND "
                                    "patrol_on BETWEEN :a AND :b AND force = ANY(:f)",
                           g=grid, a=a, b=b, f=force.split(","))
        assert fc["count"] == expected > 0, force
        assert all(a.isoformat() <= f["properties"]["patrol_on"] <= b.isoformat()
                   for f in fc["features"])
    # Hazards: by state (an alias too), severity and street; the link is the hazard's page.
    street = _scalar(session, "SELECT street_code FROM hazards GROUP BY 1 ORDER BY count(*) "
                              "DESC LIMIT 1")
    # The demo's hazards are mostly rectified within days: how many are open depends on the
    # day. Three of the street's are reopened in the test's transaction, whatever the date.
    session.execute(text(
        "UPDATE hazards SET state = 'ordered', rectified_on = NULL, verified_on = NULL, "
        "evidence = NULL WHERE id IN (SELECT id FROM hazards WHERE street_code = :s AND state "
        "IN ('rectified', 'verified') ORDER BY id LIMIT 3)"), {"s": street})
    fc = client.get("/api/layers/hazards", params={"state": "open", "street": street}).json()
    expected = _scalar(session, "SELECT count(*) FROM hazards WHERE street_code = :s AND "
                                "state IN ('found', 'ordered')", s=street)
    assert fc["count"] == expected > 0
    assert all(f["properties"]["link"] == f"/api/hazards/{f['id']}" for f in fc["features"])
    # Projects: high risk in one community, submitted in a period.
    community = _scalar(session, "SELECT community_code FROM projects GROUP BY 1 "
                                 "ORDER BY count(*) DESC LIMIT 1")
    a, b = today - timedelta(days=200), today - timedelta(days=30)
    fc = client.get("/api/layers/projects", params={
        "risk": "high", "community": community, "since": a.isoformat(),
        "until": b.isoformat()}).json()
    expected = _scalar(session, "SELECT count(*) FROM projects WHERE high_risk AND "
                                "community_code = :c AND submitted_on BETWEEN :a AND :b",
                       c=community, a=a, b=b)
    assert fc["count"] == expected > 0
    props = fc["features"][0]["properties"]
    assert props["risk"] == "high"
    assert props["link"] == f"/api/projects/{props['id']}"
    assert props["public_link"] == f"/p/{props['public_id']}"


def test_bad_parameters_are_named(client):
    cases = [
        ("/api/layers/projects", {"bbox": "1,2,3"}, "bbox"),
        ("/api/layers/projects", {"bbox": "114,22,113,23"}, "bbox"),
        ("/api/layers/projects", {"bbox": "a,b,c,d"}, "bbox"),
        ("/api/layers/projects", {"state": "building"}, "state"),
        ("/api/layers/projects", {"risk": "extreme"}, "risk"),
        ("/api/layers/projects", {"street": "440304999000"}, "street"),
        ("/api/layers/projects", {"grid": "abc"}, "grid"),
        ("/api/layers/projects", {"colour": "red"}, "colour"),
        ("/api/layers/patrols", {"force": "police"}, "force"),
        ("/api/layers/patrols", {"since": "2024-02-30"}, "since"),
        ("/api/layers/patrols", {"since": "2024-03-01", "until": "2024-02-01"}, "until"),
        ("/api/layers/grids", {"since": "2024-03-01"}, "since"),
        ("/api/layers/hotspots", {"events": "fires"}, "events"),
        ("/api/layers/hotspots", {"events": "hazards,incidents"}, "events"),
        ("/api/layers/heat", {"cell_m": "5"}, "cell_m"),
        ("/tiles/patrols/12/3345/1784.pbf", {"bbox": "1,2,3,4"}, "bbox"),
        ("/tiles/patrols/12/3345/1784.pbf", {"force": "police"}, "force"),
    ]
    for url, params, field in cases:
        r = client.get(url, params=params)
        assert r.status_code == 422, (url, params, r.text)
        detail = r.json()["detail"]
        assert detail[0]["loc"][-1] == field, (params, detail)
        assert "Traceback" not in r.text


def test_unknown_layers_and_tiles(client):
    assert client.get("/api/layers/nothing").status_code == 404
    assert client.get("/tiles/nothing/12/3345/1784.pbf").status_code == 404
    assert client.get("/tiles/hotspots/12/3345/1784.pbf").status_code == 404  # GeoJSON only
    assert client.get("/tiles/patrols/12/4096/1784.pbf").status_code == 404  # x ≥ 2^z
    assert client.get("/tiles/patrols/3/1/8.pbf").status_code == 404
    for bad in ("25/1/1", "-1/0/0", "12/x/1784", "12/3345/1.5"):
        assert client.get(f"/tiles/patrols/{bad}.pbf").status_code == 422, bad


def test_the_geojson_cap_points_to_the_tiles(client, monkeypatch):
    small = replace(catalog.LAYERS["patrols"], geojson_cap=5)
    monkeypatch.setitem(catalog.LAYERS, "patrols", small)
    r = client.get("/api/layers/patrols", params={"since": SINCE})
    assert r.status_code == 422
    msg = r.json()["detail"][0]["msg"]
    assert "more than 5 features" in msg and "/tiles/patrols/{z}/{x}/{y}.pbf" in msg


def test_answers_carry_an_etag_and_revalidate(client, session):
    x, y = _tile_of(*session.execute(text(
        "SELECT ST_X(location), ST_Y(location) FROM patrols LIMIT 1")).one(), 14)
    for url in (f"/tiles/patrols/14/{x}/{y}.pbf?since={SINCE}", "/api/layers/streets"):
        r = client.get(url)
        assert r.status_code == 200
        etag = r.headers["etag"]
        assert "max-age" in r.headers["cache-control"]
        again = client.get(url, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""


# --- tiles -------------------------------------------------------------------------------------


def _busy_tile(session, z: int) -> tuple[int, int]:
    """The tile at zoom z holding the most patrol points (found without the layer code)."""
    lon, lat = session.execute(text(
        """SELECT ST_X(location), ST_Y(location) FROM patrols
           WHERE grid_code = (SELECT grid_code FROM patrols GROUP BY 1 ORDER BY count(*) DESC
                              LIMIT 1) LIMIT 1""")).one()
    return _tile_of(lon, lat, z)


def test_high_zoom_tiles_hold_every_point_of_the_tile(client, session):
    # z16 holds points for a period of up to a month, cells for a longer one.
    last = _scalar(session, "SELECT max(patrol_on) FROM patrols")
    month = {"since": (last - timedelta(days=catalog.LONG_PERIOD_DAYS - 1)).isoformat(),
             "until": last.isoformat()}
    x, y = _busy_tile(session, 16)
    features = _decode(client.get(f"/tiles/patrols/16/{x}/{y}.pbf", params=month), "patrols")
    expected = _in_tile(session, "patrols", 16, x, y, "patrol_on BETWEEN :a AND :b",
                        a=month["since"], b=last)
    assert len(features) == expected > 0
    assert all("id" in f["properties"] and "count" not in f["properties"] for f in features)
    cells = _decode(client.get(f"/tiles/patrols/16/{x}/{y}.pbf", params={"since": SINCE}),
                    "patrols")
    assert sum(f["properties"]["count"] for f in cells) == _in_tile(session, "patrols", 16, x, y)
    for z in (17, 18):
        x, y = _busy_tile(session, z)
        features = _decode(client.get(f"/tiles/patrols/{z}/{x}/{y}.pbf",
                                      params={"since": SINCE}), "patrols")
        expected = _in_tile(session, "patrols", z, x, y)
        assert len(features) == expected > 0, z
        ids = {f["properties"]["id"] for f in features}
        assert ids == set(session.scalars(text(
            "SELECT id FROM patrols WHERE ST_Intersects(location, "
            "ST_Transform(ST_TileEnvelope(:z, :x, :y), 4326))"), {"z": z, "x": x, "y": y}))
        assert all(f["id"] == f["properties"]["id"] for f in features)
        assert all(0 <= c <= 4096 for f in features for c in f["geometry"]["coordinates"])
        assert {"force", "patrol_on", "inspector_id"} <= set(features[0]["properties"])


def test_low_zoom_tiles_aggregate_and_add_up(client, session):
    box = _district_bbox(session)
    for z in (10, 12, 14):
        x, y = _busy_tile(session, z)
        features = _decode(client.get(f"/tiles/patrols/{z}/{x}/{y}.pbf",
                                      params={"since": SINCE}), "patrols")
        expected = _in_tile(session, "patrols", z, x, y)
        assert sum(f["properties"]["count"] for f in features) == expected > 0, z
        assert len(features) < expected  # aggregated, not one feature a point
        assert len(features) <= catalog.CELLS_PER_TILE ** 2
        assert all(f["properties"]["count"] >= 1 for f in features)
    # Every tile over the district at z12: the counts add up to every patrol point there.
    (x0, y0), (x1, y1) = _tile_of(box[0], box[3], 12), _tile_of(box[2], box[1], 12)
    total = _scalar(session, """
        SELECT count(*) FROM patrols, (SELECT ST_TileEnvelope(12, :x0, :y0) AS a,
                                              ST_TileEnvelope(12, :x1, :y1) AS b) t
        WHERE ST_Intersects(location, ST_Transform(ST_MakeEnvelope(
            ST_XMin(t.a), ST_YMin(t.b), ST_XMax(t.b), ST_YMax(t.a), 3857), 4326))""",
                    x0=x0, y0=y0, x1=x1, y1=y1)
    summed = 0
    for x in range(x0, x1 + 1):
        for y in range(y0, y1 + 1):
            r = client.get(f"/tiles/patrols/12/{x}/{y}.pbf", params={"since": SINCE})
            if r.status_code == 204:
                continue
            summed += sum(f["properties"]["count"] for f in _decode(r, "patrols"))
    assert summed == total > 1000


def test_aggregated_cells_carry_the_layer_sums(client, session):
    x, y = _tile_of(*session.execute(text(
        "SELECT ST_X(site), ST_Y(site) FROM projects LIMIT 1")).one(), 11)
    features = _decode(client.get(f"/tiles/projects/11/{x}/{y}.pbf"), "projects")
    counts = {k: sum(f["properties"][k] for f in features)
              for k in ("count", "high_risk", "active")}
    where = "ST_Intersects(ST_PointOnSurface(site), ST_Transform(ST_TileEnvelope(11, :x, :y), " \
            "4326))"
    assert counts["count"] == _scalar(session, f"SELECT count(*) FROM projects WHERE {where}",
                                      x=x, y=y)
    assert counts["high_risk"] == _scalar(
        session, f"SELECT count(*) FROM projects WHERE high_risk AND {where}", x=x, y=y) > 0
    assert counts["active"] == _scalar(
        session, f"SELECT count(*) FROM projects WHERE state IN ('accepted', 'briefed', "
                 f"'in_progress', 'completion_declared') AND {where}", x=x, y=y) > 0


def test_tiles_honour_the_period_and_filters(client, session):
    today = today_cn()
    x, y = _busy_tile(session, 13)
    week = _decode(client.get(f"/tiles/patrols/13/{x}/{y}.pbf"), "patrols")
    expected = _in_tile(session, "patrols", 13, x, y, "patrol_on BETWEEN :a AND :b",
                        a=today - timedelta(days=6), b=today)
    assert sum(f["properties"]["count"] for f in week) == expected > 0
    r = client.get(f"/tiles/patrols/13/{x}/{y}.pbf",
                   params={"since": SINCE, "force": "property"})
    expected = _in_tile(session, "patrols", 13, x, y, "force = 'property'")
    assert sum(f["properties"]["count"] for f in _decode(r, "patrols")) == expected > 0
    lon, lat = session.execute(text(
        "SELECT ST_X(site), ST_Y(site) FROM projects WHERE state = 'closed' LIMIT 1")).one()
    x, y = _tile_of(lon, lat, 16)
    closed = _decode(client.get(f"/tiles/projects/16/{x}/{y}.pbf", params={"state": "closed"}),
                     "projects")
    assert {f["properties"]["state"] for f in closed} == {"closed"}
    assert len(closed) == _in_tile(session, "projects", 16, x, y, "state = 'closed'",
                                   geom="ST_PointOnSurface(site)")


def _tile_sets(session, table: str, key: str, geom: str, z: int, x: int, y: int,
               where: str) -> tuple[set, set]:
    """The keys of the shapes meeting the tile and its 64-unit buffer (an upper bound), and of
    those covering more than a sliver of the tile itself (a lower bound: a shape that only
    grazes the tile may collapse below one tile unit)."""
    outer = set(session.scalars(text(
        f"SELECT {key} FROM {table} WHERE {where} AND ST_Intersects({geom}, ST_Transform("
        f"ST_TileEnvelope(:z, :x, :y, margin => 64.0 / 4096), 4326))"), {"z": z, "x": x, "y": y}))
    inner = set(session.scalars(text(
        f"""SELECT {key} FROM {table}, (SELECT ST_TileEnvelope(:z, :x, :y) AS e) t
            WHERE {where} AND ST_Intersects({geom}, ST_Transform(t.e, 4326))
              AND CASE WHEN ST_Dimension({geom}) = 2
                       THEN ST_Area(ST_Intersection(ST_Transform({geom}, 3857), t.e))
                            > 1e-3 * ST_Area(t.e)
                       ELSE ST_Length(ST_Intersection(ST_Transform({geom}, 3857), t.e))
                            > 0.01 * (ST_XMax(t.e) - ST_XMin(t.e)) END"""),
        {"z": z, "x": x, "y": y}))
    return inner, outer


def test_lines_and_polygons_tile(client, session):
    lon, lat = session.execute(text(
        "SELECT ST_X(location), ST_Y(location) FROM patrols WHERE track IS NOT NULL "
        "LIMIT 1")).one()
    x, y = _tile_of(lon, lat, 15)
    tracks = _decode(client.get(f"/tiles/tracks/15/{x}/{y}.pbf"), "tracks")
    inner, outer = _tile_sets(session, "patrols", "id", "ST_Force2D(track)", 15, x, y,
                              "track IS NOT NULL")
    assert inner and inner <= {f["properties"]["id"] for f in tracks} <= outer
    assert tracks[0]["geometry"]["type"] in ("LineString", "MultiLineString")
    assert client.get(f"/tiles/tracks/11/{x >> 4}/{y >> 4}.pbf").status_code == 204  # < min zoom
    grids = _decode(client.get(f"/tiles/grids/14/{x >> 1}/{y >> 1}.pbf"), "grids")
    inner, outer = _tile_sets(session, "grids", "code", "geom", 14, x >> 1, y >> 1,
                              "valid_to IS NULL")
    assert len(inner) > 3 and inner <= {f["properties"]["code"] for f in grids} <= outer
    assert grids[0]["geometry"]["type"] in ("Polygon", "MultiPolygon")


def test_empty_tiles_are_204(client):
    r = client.get("/tiles/patrols/12/2048/2048.pbf", params={"since": SINCE})  # the Atlantic
    assert r.status_code == 204 and r.content == b""
    assert client.get("/tiles/projects/5/26/14.pbf").status_code == 204  # below min zoom


# --- scope -------------------------------------------------------------------------------------


def test_a_street_account_sees_its_street_only(client_as, session):
    street = _scalar(session, "SELECT street_code FROM patrols GROUP BY 1 ORDER BY count(*) DESC "
                              "LIMIT 1")
    c = client_as("street_official", street)
    fc = c.get("/api/layers/projects", params={"bbox": _bbox_param(_district_bbox(session))})
    assert fc.status_code == 200
    assert {f["properties"]["id"] for f in fc.json()["features"]} == set(session.scalars(text(
        "SELECT id FROM projects WHERE street_code = :s"), {"s": street}))
    r = c.get("/tiles/patrols/10/836/446.pbf", params={"since": SINCE})
    assert sum(f["properties"]["count"] for f in _decode(r, "patrols")) == _in_tile(
        session, "patrols", 10, 836, 446, "street_code = :s", s=street)
    # Analyses need the analyse permission; a grid worker lists but does not analyse.
    grid = _scalar(session, "SELECT code FROM grids WHERE valid_to IS NULL LIMIT 1")
    worker = client_as("grid_worker", grid)
    assert worker.get("/api/layers/hotspots").status_code == 403
    assert worker.get("/api/layers/grids").status_code == 200
    assert client_as(None).get("/tiles/patrols/10/836/446.pbf").status_code == 401


# --- analyses and plans ------------------------------------------------------------------------


def test_analysis_layers(client, session):
    hot = client.get("/api/layers/hotspots", params={"measure": "count"}).json()
    assert hot["count"] == 1072
    assert hot["meta"]["statistic"] == "gi_star"
    blind = client.get("/api/layers/blind_spots").json()
    expected = _scalar(session, """
        SELECT count(DISTINCT p.grid_code) FROM projects p
        LEFT JOIN project_visit_summary s ON s.project_id = p.id
        WHERE p.district_code = :d AND p.state IN ('accepted', 'briefed', 'in_progress',
              'completion_declared')
          AND coalesce(s.last_visit_on, p.started_on, p.briefed_on, p.accepted_on,
                       p.submitted_on) < CURRENT_DATE - CASE WHEN p.high_risk THEN 3 ELSE 7 END""",
                       d=DISTRICT)
    overdue = [f for f in blind["features"] if f["properties"]["overdue_sites"] > 0]
    assert len(overdue) == expected > 0
    assert blind["window_days"] == 30
    heat = client.get("/api/layers/heat").json()
    assert heat["count"] > 0
    assert {f["properties"]["band"] for f in heat["features"]} <= {"low", "medium", "high"}


def _plan(session, version: int, root: int | None, colour: str) -> int:
    plan_id = session.execute(text(
        """INSERT INTO route_plans (district_code, street_code, kind, plan_date, status, version,
                                    root_id, created_by, matrix_source, inputs, summary)
           VALUES (:d, '440304001000', 'day', CURRENT_DATE, 'draft', :v, :r, 'test', 'roads',
                   '{}', '{}') RETURNING id"""), {"d": DISTRICT, "v": version, "r": root}
    ).scalar_one()
    session.execute(text("UPDATE route_plans SET root_id = id WHERE id = :i AND root_id IS NULL"),
                    {"i": plan_id})
    session.execute(text(
        """INSERT INTO route_plan_routes (plan_id, day_index, route_date, inspector_code, colour,
                                          geometry, distance_m, travel_s)
           VALUES (:p, 0, CURRENT_DATE, 'insp-1', :c,
                   ST_GeomFromText('LINESTRING(114.05 22.54, 114.06 22.545)', 4326), 1200, 900)"""),
        {"p": plan_id, "c": colour})
    return plan_id


def test_routes_show_the_newest_version_of_each_plan(client, session):
    first = _plan(session, 1, None, "#111111")
    second = _plan(session, 2, first, "#222222")
    fc = client.get("/api/layers/routes").json()
    assert [f["properties"]["plan_id"] for f in fc["features"]] == [second]
    props = fc["features"][0]["properties"]
    assert props["colour"] == "#222222" and props["link"] == f"/api/plans/{second}"
    x, y = _tile_of(114.055, 22.5425, 14)
    features = _decode(client.get(f"/tiles/routes/14/{x}/{y}.pbf"), "routes")
    assert [f["properties"]["plan_id"] for f in features] == [second]


def test_routes_are_empty_while_their_tables_are_missing(session):
    from app.services import layers as service

    assert service.tables_present(session, ("route_plans", "route_plan_routes"))
    ghost = replace(catalog.ROUTES, source=replace(catalog.ROUTES.source,
                                                   requires=("route_plans_not_yet",)))
    q = service.parse_query(session, ghost, {})
    assert service.feature_collection(session, ghost, q)["features"] == []
    assert service.tile(session, ghost, 14, *_tile_of(114.055, 22.5425, 14), q) == b""
