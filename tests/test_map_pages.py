"""The map page shell without a browser: texts, basemaps, the offline roads, the worklist API.

(The pages in a real browser: ``tests/test_browser_pages.py``.)
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from datetime import date

import numpy as np
import pytest
import shapely
from pyproj import Geod, Transformer
from sqlalchemy import text

from layers import i18n
from layers.basemaps import active_basemap, basemaps, build_roads_geojson
from layers.offline import STATIC_DIR
from layers.pages import PAGES, TEMPLATES_DIR, nav_html, render_page

DISTRICT = "440304000000"
ROADS = "grid_data/demo/futian_roads.graphml.gz"
KEY_TEXT = re.compile(r"""['"]([a-z_0-9]+\.[a-z_0-9]+)['"]""")


# --- texts ----------------------------------------------------------------------------------


def test_every_text_has_both_languages_with_the_same_placeholders():
    zh, en = i18n.texts("zh"), i18n.texts("en")
    assert zh.keys() == en.keys() == i18n.keys()
    for key in i18n.keys():
        assert zh[key].strip() and en[key].strip(), key
        assert set(re.findall(r"\{(\w+)\}", zh[key])) == set(re.findall(r"\{(\w+)\}", en[key]))
    assert i18n.lang_of("en") == "en" and i18n.lang_of("fr") == "zh" and i18n.lang_of(None) == "zh"
    assert i18n.t("field.days", "en", n=3) == "3 days"


def test_pages_use_only_texts_that_exist():
    groups = {k.split(".")[0] for k in i18n.keys()}
    sources = [*TEMPLATES_DIR.glob("*.html"), *(STATIC_DIR / "js").glob("*.js")]
    used = set()
    for path in sources:
        for key in KEY_TEXT.findall(path.read_text(encoding="utf-8")):
            if key.split(".")[0] in groups:
                used.add(key)
    assert len(used) > 100
    assert sorted(used - i18n.keys()) == []


def test_every_data_code_has_a_label():
    from app.patrol_rules import HAZARD_TYPES, SEVERITIES
    from app.rules import KINDS, get_rules
    from app.services.lifecycle import STATES
    from gis.hotspots import GI_CLASSES

    keys = i18n.keys()
    expected = (
        [f"category.{c}" for c in get_rules().categories] + [f"kind.{k}" for k in KINDS]
        + [f"hazard_type.{h}" for h in HAZARD_TYPES] + [f"severity.{s}" for s in SEVERITIES]
        + [f"state.{s}" for s in STATES] + [f"gi.{c}" for c in GI_CLASSES]
        + [f"clock.{c}" for c in ("review", "briefing", "completion_declaration", "validity")]
    )
    assert sorted(set(expected) - keys) == []


# --- basemaps -------------------------------------------------------------------------------


def test_basemaps_offer_tianditu_only_with_a_key():
    names = [b.name for b in basemaps({})]
    assert names == ["none", "osm", "gaode"]
    keyed = {b.name: b for b in basemaps({"XIAOSAN_TIANDITU_KEY": "abc123"})}
    assert list(keyed) == ["none", "osm", "tianditu", "gaode"]
    assert "tk=abc123" in keyed["tianditu"].url and "tk=abc123" in keyed["tianditu"].labels_url
    assert "{z}" in keyed["tianditu"].url and "{s}" in keyed["tianditu"].url
    assert keyed["gaode"].datum == "gcj02"
    assert {b.datum for n, b in keyed.items() if n != "gaode"} == {"wgs84"}


def test_active_basemap_falls_back_to_the_offline_roads():
    assert active_basemap({}) == "none"
    assert active_basemap({"XIAOSAN_BASEMAP": "gaode"}) == "gaode"
    assert active_basemap({"XIAOSAN_BASEMAP": "OSM"}) == "osm"
    assert active_basemap({"XIAOSAN_BASEMAP": "tianditu"}) == "none"  # no key
    assert active_basemap({"XIAOSAN_BASEMAP": "tianditu", "XIAOSAN_TIANDITU_KEY": "k"}) == (
        "tianditu")
    assert active_basemap({"XIAOSAN_BASEMAP": "bing"}) == "none"


def test_offline_roads_keep_every_street_once_and_within_the_tolerance():
    import osmnx as ox

    from gis.roads import read_osm_graph

    fc = build_roads_geojson(ROADS)
    graph = read_osm_graph(ROADS)
    lines = [shapely.geometry.shape(f["geometry"]) for f in fc["features"]]
    assert all(f["geometry"]["type"] == "LineString" for f in fc["features"])
    coords = np.concatenate([np.asarray(line.coords) for line in lines])
    assert np.allclose(coords, np.round(coords, 6))
    geod = Geod(ellps="WGS84")
    total_m = sum(geod.geometry_length(line) for line in lines)
    undirected_m = sum(d["length"] for *_, d in ox.convert.to_undirected(graph).edges(data=True))
    directed_m = sum(d["length"] for *_, d in graph.edges(data=True))
    # Each street once (not once per direction); simplification shortens lines a little.
    assert 0.985 * undirected_m < total_m <= undirected_m * 1.001 < directed_m
    # Every directed edge of the graph is drawn: its midpoint lies on a drawn line (±2.5 m).
    utm = Transformer.from_crs("EPSG:4326", "EPSG:32650", always_xy=True)

    def metric(g):
        return shapely.transform(g, lambda xy: np.column_stack(utm.transform(xy[:, 0], xy[:, 1])))

    tree = shapely.STRtree(metric(np.asarray(lines, dtype=object)))
    mids = []
    for u, v, d in graph.edges(data=True):
        a, b = graph.nodes[u], graph.nodes[v]
        geom = d.get("geometry") or shapely.LineString([(a["x"], a["y"]), (b["x"], b["y"])])
        mids.append(geom.interpolate(0.5, normalized=True))
    _, distances = tree.query_nearest(metric(np.asarray(mids, dtype=object)), return_distance=True,
                                      all_matches=False)
    assert len(mids) == graph.number_of_edges() and distances.max() < 2.5


def test_roads_endpoint_is_gzip_geojson_with_an_etag(client):
    r = client.get("/api/basemap/roads")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    assert r.headers["content-encoding"] == "gzip"
    fc = r.json()
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) > 1000
    again = client.get("/api/basemap/roads", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    plain = client.get("/api/basemap/roads", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and json.loads(plain.content) == fc
    assert gzip.compress(plain.content)  # the plain body is the JSON itself


# --- the pages ------------------------------------------------------------------------------


def _boot(html: str) -> dict:
    match = re.search(r"window\.XS_BOOT = (\{.*?\});</script>", html, re.S)
    assert match
    return json.loads(match.group(1))


@pytest.mark.parametrize("url", ["/map/official", "/map/grid?grid=440304001018001",
                                 "/map/official?lang=en", "/map/grid"])
def test_pages_are_local_only_and_carry_their_texts(client, url):
    r = client.get(url)
    assert r.status_code == 200
    html = r.text
    assert not re.search(r"""<(script|link)[^>]+(src|href)=["']https?://""", html)
    static = set(re.findall(r"""(?:src|href)=["'](/static/[^"']+)""", html))
    assert any(s.endswith("xs-shell.js") for s in static)
    for address in static:
        assert client.get(address).status_code == 200, address
    boot = _boot(html)
    lang = "en" if "lang=en" in url else "zh"
    assert boot["lang"] == lang and boot["texts"] == i18n.texts(lang)
    assert f'<html lang="{i18n.LOCALES[lang]}">' in html
    assert [b["name"] for b in boot["basemaps"]][:2] == ["none", "osm"]
    assert boot["district"] == DISTRICT and len(boot["bounds"]) == 4
    # The language switch keeps the page's own parameters.
    switch = re.search(r'id="xs-lang" href="([^"]+)"', html).group(1)
    assert ("lang=en" in switch) == (lang == "zh")
    if "grid=" in url:
        assert "grid=440304001018001" in switch
        assert boot["chosen"] == ["440304001018001"] and boot["unknown"] == []


def test_grid_page_lists_the_territory_and_names_unknown_grids(client, session):
    boot = _boot(client.get("/map/grid", params={"grid": "440304001018001,999"}).text)
    assert boot["chosen"] == ["440304001018001"] and boot["unknown"] == ["999"]
    counts = {level: session.execute(text(
        f"SELECT count(*) FROM {table} WHERE district_code = :d AND valid_to IS NULL"),
        {"d": DISTRICT}).scalar_one()
        for level, table in (("streets", "streets"), ("communities", "communities"),
                             ("grids", "grids"))}
    assert {k: len(boot[k]) for k in counts} == counts


def test_every_shell_page_is_in_the_navigation_and_renders():
    for name, spec in PAGES.items():
        if spec.template is None:
            continue
        html = render_page(name, lang="en", boot={"district": DISTRICT, "bounds": None})
        for other in PAGES.values():
            assert f'data-page="{other.name}"' in html
        assert 'aria-current="page"' in html
    assert 'href="/map/grid?lang=en"' in nav_html("territory", "en")


def test_home_page_has_the_navigation(client):
    html = client.get("/").text
    assert 'href="/map/official"' in html and 'href="/map/grid"' in html


def test_unknown_district_is_a_404_page(client):
    assert client.get("/map/official", params={"district": "110101000000"}).status_code == 404
    assert client.get("/map/official", params={"district": "abc"}).status_code == 422


# --- the worklist API -----------------------------------------------------------------------


@pytest.fixture
def busy(session):
    """A year of synthetic projects and patrols up to today, in the test's transaction."""
    from app.services.activity import generate_activity
    from app.services.patrol_activity import generate_patrols

    generate_activity(session, seed=7, district_code=DISTRICT, rate=2500)
    generate_patrols(session, district_code=DISTRICT, seed=7)
    return session


def _busiest_grid(session) -> str:
    return session.execute(text(
        "SELECT grid_code FROM projects WHERE state IN ('accepted', 'briefed', 'in_progress', "
        "'completion_declared') GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1")).scalar_one()


def test_worklist_matches_sql_and_the_coverage_api(client, client_as, busy):
    """Sites, hazards, clocks, outlines, a site's card and the day's route in one grid."""
    from app.services import coverage, worklist
    from app.services.registration import today_cn

    grid = _busiest_grid(busy)
    sites = client.get("/api/worklist/sites", params={"grid": grid}).json()
    active = busy.execute(text(
        "SELECT count(*) FROM projects WHERE grid_code = :g AND state IN ('accepted', 'briefed', "
        "'in_progress', 'completion_declared')"), {"g": grid}).scalar_one()
    assert len(sites["features"]) == active > 0
    overdue = client.get("/api/coverage/unpatrolled", params={"grid": grid}).json()
    assert sorted(f["id"] for f in sites["features"] if f["properties"]["overdue"]) == sorted(
        f["id"] for f in overdue["features"])
    # The same over 50 grids (the most the desk takes at once): the 25 with the most overdue
    # sites and the 25 busiest of the others (how many sites are overdue depends on the day).
    unpatrolled = coverage.unpatrolled_sites(busy, district=DISTRICT)
    by_grid = Counter(s["grid_code"] for s in unpatrolled)
    many = [g for g, _ in sorted(by_grid.items(), key=lambda kv: (-kv[1], kv[0]))[:25]]
    many += [r[0] for r in busy.execute(text(
        "SELECT grid_code FROM projects WHERE state IN ('accepted', 'briefed', 'in_progress', "
        "'completion_declared') AND grid_code <> ALL(:seen) GROUP BY 1 "
        "ORDER BY count(*) DESC, 1 LIMIT :n"), {"seen": many, "n": 50 - len(many)})]
    wide = client.get("/api/worklist/sites", params={"grid": ",".join(many)}).json()
    expected = [s["id"] for s in unpatrolled if s["grid_code"] in many]
    assert len(expected) > 20
    assert sorted(f["id"] for f in wide["features"] if f["properties"]["overdue"]) == sorted(
        expected)
    # And over the whole district, through the service (no cap on the number of grids).
    every = [r[0] for r in busy.execute(text("SELECT code FROM grids WHERE valid_to IS NULL"))]
    everywhere = worklist.active_sites(busy, every)
    assert len(everywhere) > 300
    assert sorted(s["id"] for s in everywhere if s["overdue"]) == sorted(
        s["id"] for s in coverage.unpatrolled_sites(busy, district=DISTRICT))
    last = dict(busy.execute(text(
        "SELECT project_id, max(visited_on) FROM patrol_visits v JOIN projects p "
        "ON p.id = v.project_id WHERE p.grid_code = :g GROUP BY 1"), {"g": grid}).all())
    for f in sites["features"]:
        p = f["properties"]
        seen = last.get(f["id"])
        assert p["days_since_visit"] == ((today_cn() - seen).days if seen else None)
    hazards = client.get("/api/worklist/hazards", params={"grid": grid}).json()
    assert len(hazards["features"]) == busy.execute(text(
        "SELECT count(*) FROM hazards WHERE grid_code = :g AND state IN ('found', 'ordered', "
        "'rectified')"), {"g": grid}).scalar_one()
    clocks = client.get("/api/worklist/overdue", params={"grid": grid}).json()
    assert clocks["count"] == len(client.get("/api/projects/overdue",
                                             params={"grid": grid}).json()["items"])
    outlines = client.get("/api/worklist/grids", params={"grid": grid}).json()
    assert [f["properties"]["code"] for f in outlines["features"]] == [grid]
    assert outlines["features"][0]["properties"]["street_name"]
    elsewhere = busy.execute(text("SELECT code FROM grids WHERE valid_to IS NULL AND "
                                  "left(code, 9) <> left(:g, 9) LIMIT 1"), {"g": grid}).scalar()
    _check_card(client, busy, grid, client_as("grid_worker", elsewhere))
    _check_route(client, busy, grid)  # last: it hides the plan tables


def _check_card(client, busy, grid, outsider):
    site = client.get("/api/worklist/sites", params={"grid": grid}).json()["features"][0]
    # Outside the account's area a site's card does not exist.
    assert outsider.get(f"/api/worklist/sites/{site['id']}/card").status_code == 404
    card = client.get(f"/api/worklist/sites/{site['id']}/card").json()
    reg_no = card["reg_no"]
    audit = busy.execute(text("SELECT count(*) FROM audit_log WHERE entity = 'project' "
                              "AND entity_id = :r"), {"r": reg_no}).scalar_one()
    assert len(card["timeline"]) == audit > 0
    assert card["timeline"][0]["action"] == "submit"
    visits = busy.execute(text("SELECT count(*) FROM patrol_visits WHERE project_id = :p"),
                          {"p": site["id"]}).scalar_one()
    assert card["visit_count"] == visits and len(card["visits"]) == min(visits, 10)
    assert card["links"]["public_page"] == f"/p/{card['public_id']}"
    assert client.get(card["links"]["public_page"]).status_code == 200
    assert client.get(card["links"]["signboard_png"]).headers["content-type"] == "image/png"


def test_worklist_refuses_unknown_grids_and_projects(client):
    r = client.get("/api/worklist/sites", params={"grid": "440304001018001,440304999999999"})
    assert r.status_code == 422
    assert "440304999999999" in r.text and "grid" in r.text
    assert client.get("/api/worklist/sites").status_code == 422
    assert client.get("/api/worklist/sites/999999/card").status_code == 404
    assert client.get("/api/worklist/sites/99999999999/card").status_code == 422


def _check_route(client, busy, grid):
    from app.services.registration import today_cn

    assert client.get("/api/worklist/route", params={"grid": grid}).json()["plan"] is None
    sites = busy.execute(text(
        "SELECT id, ST_X(ST_PointOnSurface(site)) AS x, ST_Y(ST_PointOnSurface(site)) AS y "
        "FROM projects WHERE grid_code = :g ORDER BY id LIMIT 3"), {"g": grid}).all()
    plan_id = _store_plan(busy, today_cn(), sites)
    route = client.get("/api/worklist/route", params={"grid": grid}).json()
    assert route["plan"]["id"] == plan_id
    stops = [f["properties"] for f in route["features"] if f["properties"]["feature"] == "stop"]
    assert [s["sequence"] for s in stops] == [1, 2, 3]
    assert [s["project_id"] for s in stops] == [s.id for s in sites]
    assert stops[0]["eta"] == "09:10" and all(s["in_my_grids"] for s in stops)
    lines = [f for f in route["features"] if f["properties"]["feature"] == "route"]
    assert len(lines) == 1 and lines[0]["geometry"]["type"] == "LineString"
    # Another day, or another grid: no route.
    other = client.get("/api/worklist/route", params={"grid": "440304001018001",
                                                      "on": "2001-01-01"}).json()
    assert other["plan"] is None and other["features"] == []
    # Before the plan tables exist (an older database) the desk simply has no route.
    busy.execute(text("ALTER TABLE route_plan_stops RENAME TO route_plan_stops_hidden"))
    r = client.get("/api/worklist/route", params={"grid": grid})
    assert r.status_code == 200 and r.json()["plan"] is None


def _store_plan(session, day: date, sites) -> int:
    """A day plan as the planner stores it: one route through ``sites`` from 09:00."""
    plan_id = session.execute(text(
        """INSERT INTO route_plans (district_code, kind, plan_date, status, version,
               created_by, matrix_source, inputs, summary)
           VALUES (:d, 'day', :day, 'issued', 1, 'tests', 'roads', '{}', '{}') RETURNING id"""),
        {"d": DISTRICT, "day": day}).scalar_one()
    line = "LINESTRING(" + ",".join(f"{s.x} {s.y}" for s in sites) + ")"
    route_id = session.execute(text(
        """INSERT INTO route_plan_routes (plan_id, day_index, route_date, inspector_code, colour,
               geometry, distance_m, travel_s, depart_at, return_at)
           VALUES (:p, 0, :day, 'FT-T1', '#e6194b', ST_GeomFromText(:line, 4326), 1234.5, 900,
                   (CAST(:day AS timestamp) + time '09:00') AT TIME ZONE 'Asia/Shanghai',
                   (CAST(:day AS timestamp) + time '12:00') AT TIME ZONE 'Asia/Shanghai')
           RETURNING id"""), {"p": plan_id, "day": day, "line": line}).scalar_one()
    for i, s in enumerate(sites, start=1):
        session.execute(text(
            """INSERT INTO route_plan_stops (plan_id, route_id, sequence, site_key, project_id,
                   kind, mandatory, location, arrive_at, start_at, depart_at, wait_s, travel_s)
               VALUES (:p, :r, :i, :k, :pid, 'project', true,
                   ST_SetSRID(ST_MakePoint(:x, :y), 4326),
                   (CAST(:day AS timestamp) + time '09:00' + :i * interval '10 minutes')
                       AT TIME ZONE 'Asia/Shanghai',
                   (CAST(:day AS timestamp) + time '09:00' + :i * interval '10 minutes')
                       AT TIME ZONE 'Asia/Shanghai',
                   (CAST(:day AS timestamp) + time '09:05' + :i * interval '10 minutes')
                       AT TIME ZONE 'Asia/Shanghai', 0, 300)"""),
            {"p": plan_id, "r": route_id, "i": i, "k": f"p{s.id}", "pid": s.id, "x": s.x,
             "y": s.y, "day": day})
    return plan_id


def test_a_desk_opened_with_no_grid_shows_the_most_overdue_one(client, client_as, busy):
    """An account with no grid of its own, at /map/grid with none named, is shown the grid of
    its area with the most overdue sites (the service's count), and told so."""
    from app.access import Scope
    from app.services import coverage

    def most_overdue(scope=None) -> str:
        items = [i for i in coverage.blind_spots(busy, district=DISTRICT, scope=scope)
                 if i["active_sites"]]
        top = max(items, key=lambda i: (i["overdue_sites"], i["active_sites"],
                                        [-ord(ch) for ch in i["grid_code"]]))
        return top["grid_code"]

    boot = _boot(client.get("/map/grid").text)
    assert boot["suggested"] == most_overdue() and boot["chosen"] == [boot["suggested"]]
    assert "grid.suggested" in boot["texts"] and "{name}" in boot["texts"]["grid.suggested"]
    street = client_as("street_official", "440304001000")
    boot = _boot(street.get("/map/grid").text)
    assert boot["suggested"].startswith("440304001")
    assert boot["suggested"] == most_overdue(Scope.of_account(
        role="street_official", scope_code="440304001000", estate_ids=None, inspector_code=None,
        username="s"))
    # A grid named in the address, or a grid worker's own, is not replaced.
    boot = _boot(client.get("/map/grid", params={"grid": "440304001018001"}).text)
    assert boot["suggested"] is None and boot["chosen"] == ["440304001018001"]


def test_grid_desk_follows_the_account_scope(client_as, session):
    mine, theirs = "440304001018001", "440304006020020"  # grids of two different streets
    worker = client_as("grid_worker", mine)
    boot = _boot(worker.get("/map/grid").text)
    assert boot["chosen"] == [mine] and [g["code"] for g in boot["grids"]] == [mine]
    assert len(boot["communities"]) == 1 and len(boot["streets"]) == 1
    # Another area's grid is not offered, not even named as existing.
    boot = _boot(worker.get("/map/grid", params={"grid": theirs}).text)
    assert boot["chosen"] == [] and boot["unknown"] == [theirs]
    assert worker.get("/api/worklist/sites", params={"grid": mine}).status_code == 200
    for path in ("sites", "hazards", "overdue", "route", "grids"):
        r = worker.get(f"/api/worklist/{path}", params={"grid": f"{mine},{theirs}"})
        assert r.status_code == 403 and theirs in r.text
    street = client_as("street_official", "440304001000")
    assert street.get("/api/worklist/sites", params={"grid": mine}).status_code == 200
    assert street.get("/api/worklist/sites", params={"grid": theirs}).status_code == 403
    assert client_as("public_reporter").get("/api/worklist/sites",
                                            params={"grid": mine}).status_code == 403
    assert client_as(None).get("/api/worklist/sites", params={"grid": mine}).status_code == 401
    assert client_as(None).get("/api/basemap/roads").status_code == 401
