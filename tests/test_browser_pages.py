"""The officials' page and the grid desk in a real browser (headless Chromium), offline.

A throwaway database of its own holds the demo district WITH a year of synthetic activity and
patrols (the shared ``db_url`` one has none, and other tests count its rows), and a stored
route plan for today; a uvicorn serves it. Every expected number is counted here
independently, by SQL or through the JSON API. No request may leave the page: anything not
addressed to the live server is caught, answered locally and reported.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
from pyproj import Geod
from sqlalchemy import create_engine, text

from layers import i18n
from tests.conftest import ARTIFACTS, ROOT, TEST_ADMIN, _add_test_user, _free_port, _test_url

pytestmark = pytest.mark.browser

DISTRICT = "440304000000"
ACTIVE = ("accepted", "briefed", "in_progress", "completion_declared")
# A transparent 1×1 PNG: the answer to any request that tries to leave the page.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082")
GEOD = Geod(ellps="WGS84")


@contextlib.contextmanager
def _uvicorn(db_url: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """Start the app on loopback (it connects to the database on the first request)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "XIAOSAN_TIANDITU_KEY"}
    env.update(DATABASE_URL=db_url, XIAOSAN_BASEMAP="none", XIAOSAN_WARMUP="1",
               XIAOSAN_GC_FREEZE="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port",
         str(port), "--log-level", "warning"], cwd=ROOT, env=env)
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_for(proc: subprocess.Popen, base: str) -> None:
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{base}/health", timeout=1)
            return
        except OSError:
            if proc.poll() is not None:
                pytest.fail("the app server exited at start")
            time.sleep(0.2)
    pytest.fail("the app server did not answer within 60 s")


def _load(url: str) -> None:
    """The demo district, a year of activity and patrols, an administrator, a plan today."""
    from app.db import session_factory
    from app.services.demo import load_demo
    from app.services.registration import today_cn
    from tests.test_map_pages import _store_plan

    with session_factory(url)() as session:
        load_demo(session, activity=True, patrols=True)
        _add_test_user(session, TEST_ADMIN, "admin")
        grid = _busiest_grid(session)
        sites = session.execute(text(
            "SELECT id, ST_X(ST_PointOnSurface(site)) AS x, ST_Y(ST_PointOnSurface(site)) AS y "
            "FROM projects WHERE grid_code = :g AND state = ANY(:a) ORDER BY id LIMIT 4"),
            {"g": grid, "a": list(ACTIVE)}).all()
        _store_plan(session, today_cn(), sites)
        session.commit()
        session.execute(text("ANALYZE"))  # fresh statistics after the bulk load
        session.commit()


@pytest.fixture(scope="module")
def alive() -> Iterator[tuple[str, str]]:
    """(database URL, server URL): a throwaway database full of activity, and the app on it.

    The server starts while the data are generated: both take seconds, on different cores.
    """
    from app.db import get_engine
    from app.dbsetup import drop_database, init_database

    url = _test_url()
    init_database(url)
    try:
        with _uvicorn(url) as (proc, base):
            _load(url)
            _wait_for(proc, base)
            yield url, base
    finally:
        get_engine(url).dispose()
        drop_database(url)


@pytest.fixture(scope="module")
def alive_server(alive) -> str:
    return alive[1]


@pytest.fixture(scope="module")
def alive_db(alive):
    engine = create_engine(alive[0])
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def _busiest_grid(conn) -> str:
    return conn.execute(text(
        "SELECT grid_code FROM projects WHERE state = ANY(:a) GROUP BY 1 "
        "ORDER BY count(*) DESC, 1 LIMIT 1"), {"a": list(ACTIVE)}).scalar_one()


def _open(page, base: str, path: str) -> list[str]:
    """Go to a page and wait until its first load is drawn; returns the list of requests
    that tried to leave (caught and answered locally, never sent)."""
    outside: list[str] = []

    def handle(route):
        url = route.request.url
        if url.startswith(base + "/"):
            route.continue_()
        else:
            outside.append(url)
            route.fulfill(status=200, content_type="image/png", body=PNG)

    page.route("**/*", handle)
    page.goto(base + path)
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    return outside


def _counts(page) -> dict[str, int]:
    return page.evaluate(
        "() => Object.fromEntries(Object.entries(XS.layers)"
        ".map(([k, v]) => [k, v.layer.getLayers().length]))")


def _overdue_sql(conn, grids: list[str] | None = None) -> int:
    """Sites overdue for a visit, from the visits themselves (not the summary table)."""
    from app.services.registration import today_cn

    return conn.execute(text(
        """WITH last AS (SELECT project_id, max(visited_on) AS last_on FROM patrol_visits
                         GROUP BY 1)
           SELECT count(*) FROM projects p LEFT JOIN last ON last.project_id = p.id
           WHERE p.district_code = :d AND p.state = ANY(:a)
             AND (CAST(:g AS text[]) IS NULL OR p.grid_code = ANY(:g))
             AND coalesce(last.last_on, p.started_on, p.briefed_on, p.accepted_on,
                          p.submitted_on) < CAST(:today AS date)
                 - CASE WHEN p.high_risk THEN 3 ELSE 7 END"""),
        {"d": DISTRICT, "a": list(ACTIVE), "g": grids, "today": today_cn()}).scalar_one()


def _click_feature(page, layer: str, index: int = 0) -> dict:
    """Centre the map on a point feature, click it with the mouse; returns its properties."""
    info = page.evaluate(
        """([name, i]) => {
             const lyr = XS.layers[name].layer.getLayers()[i];
             XS.map.setView(lyr.getLatLng(), 18, {animate: false});
             const p = XS.map.latLngToContainerPoint(lyr.getLatLng());
             return {x: p.x, y: p.y, props: lyr.feature.properties};
           }""", [layer, index])
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + info["x"], box["y"] + info["y"])
    return info["props"]


def _toggle(page, layer: str) -> list[bool]:
    """Untick and tick an overlay in the layer control; whether it is on the map each time."""
    box = page.locator(
        f'.leaflet-control-layers-overlays label:has([data-xs-layer="{layer}"]) input')
    seen = []
    for _ in range(2):
        box.click()
        seen.append(page.evaluate(f"() => XS.map.hasLayer(XS.layers['{layer}'].layer)"))
    return seen


def _hotspot_request(requests: list[str]) -> str:
    return [u for u in requests if "/api/hotspots?" in u][-1]


def _significant(page, url: str) -> set[str]:
    """The hot and cold units of the hotspot map at ``url``, through the JSON API."""
    fc = page.request.get(url).json()
    return {f["properties"]["unit_id"] for f in fc["features"]
            if f["properties"]["class"].startswith(("hot", "cold"))}


def _drawn_hotspots(page) -> set[str]:
    return set(page.evaluate(
        "() => XS.layers.hotspots.layer.getLayers().map((l) => l.feature.properties.unit_id)"))


# --- the officials' page --------------------------------------------------------------------


def test_official_page(alive_server, alive_db, page):
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    outside = _open(page, alive_server, "/map/official")
    page.screenshot(path=str(ARTIFACTS / "official.png"))
    assert page.problems == [] and outside == []
    counts = _counts(page)
    n = {t: alive_db.execute(text(f"SELECT count(*) FROM {t} WHERE district_code = :d AND "
                                  "valid_to IS NULL"), {"d": DISTRICT}).scalar_one()
         for t in ("grids", "streets")}
    assert counts["blind_spots"] == n["grids"] == 1072
    assert counts["boundaries"] == n["streets"]
    assert counts["unpatrolled"] == _overdue_sql(alive_db) > 50
    year = _drawn_hotspots(page)
    assert year == _significant(page, _hotspot_request(requests)) and len(year) > 0
    assert counts["hotspots"] == len(year)
    assert page.locator("#ranking-table tbody tr").count() == n["streets"]
    blind = page.request.get(f"{alive_server}/api/coverage/blind-spots").json()
    n_blind = sum(1 for f in blind["features"] if f["properties"]["blind_spot"])
    assert page.locator("#stat-blind").inner_text() == f"{n_blind:,}"
    assert page.locator("#blind-table tbody tr").count() == min(40, n_blind)
    # The trend charts: twelve months, the registrations as the API counts them.
    trends = page.request.get(f"{alive_server}/api/stats/trends?months=12").json()
    charted = page.evaluate("() => [XS.charts.counts.data.labels.length, "
                            "XS.charts.counts.data.datasets[0].data]")
    assert charted == [12, [m["registrations"] for m in trends["months"]]]

    # A click on a site opens its popup.
    props = _click_feature(page, "unpatrolled", 3)
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for()
    assert props["reg_no"] in popup.inner_text()
    # The layer control takes a layer off the map and back.
    assert _toggle(page, "unpatrolled") == [False, True]
    # The period selector reloads the Gi* layer for that period.
    before = _hotspot_request(requests)
    page.select_option("#hot-period", "3")
    page.wait_for_selector("#hot-summary[data-loaded='3||']")
    after = _hotspot_request(requests)
    assert after != before and "start=" in after
    quarter = _drawn_hotspots(page)
    assert quarter == _significant(page, after) and quarter != year
    page.select_option("#hot-kind", "sporadic_work")
    page.wait_for_selector("#hot-summary[data-loaded='3|sporadic_work|']")
    assert "kind=sporadic_work" in _hotspot_request(requests)
    assert _drawn_hotspots(page) == _significant(page, _hotspot_request(requests)) != quarter
    assert page.problems == [] and outside == []


def test_official_page_switches_to_english(alive_server, page):
    outside = _open(page, alive_server, "/map/official")
    zh_month = page.evaluate("() => XS.charts.counts.data.labels[0]")
    # The switch reloads the page: tiles still on their way would be aborted by the test's own
    # navigation, not failed by the app.
    page.wait_for_load_state("networkidle")
    page.click("#xs-lang")
    page.wait_for_url(re.compile(r"lang=en"))
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    en = i18n.texts("en")
    assert page.locator("html").get_attribute("lang") == "en-GB"
    assert page.locator("h1").inner_text() == en["page.official"]
    assert page.locator(".xs-nav a.current").inner_text() == en["page.official"]
    assert page.locator("#trends-section h2").inner_text() == en["official.trends"]
    label = page.locator('[data-xs-layer="blind_spots"]').inner_text()
    assert label == en["layer.blind_spots"]
    en_month = page.evaluate("() => XS.charts.counts.data.labels[0]")
    assert re.fullmatch(r"\d{4}年\d{1,2}月", zh_month) and re.fullmatch(r"[A-Z][a-z]{2} \d{4}",
                                                                       en_month)
    assert page.locator("#xs-lang").inner_text() == "中文"
    page.screenshot(path=str(ARTIFACTS / "official-en.png"))
    assert page.problems == [] and outside == []


# --- the grid desk --------------------------------------------------------------------------


def test_grid_desk(alive_server, alive_db, page):
    grid = _busiest_grid(alive_db)
    outside = _open(page, alive_server, f"/map/grid?grid={grid}")
    page.screenshot(path=str(ARTIFACTS / "grid.png"))
    assert page.problems == [] and outside == []
    counts = _counts(page)
    active = alive_db.execute(text("SELECT count(*) FROM projects WHERE grid_code = :g AND "
                                   "state = ANY(:a)"), {"g": grid, "a": list(ACTIVE)}).scalar_one()
    hazards = alive_db.execute(text(
        "SELECT count(*) FROM hazards WHERE grid_code = :g AND state IN "
        "('found', 'ordered', 'rectified')"), {"g": grid}).scalar_one()
    stops = alive_db.execute(text(
        "SELECT count(*) FROM route_plan_stops s JOIN projects p ON p.id = s.project_id "
        "WHERE p.grid_code = :g"), {"g": grid}).scalar_one()
    assert counts["sites"] == active > 5
    assert counts["hazards"] == hazards
    assert counts["my_grids"] == 1
    assert counts["route"] == 1 + stops and stops == 4
    assert page.locator("#stat-overdue").inner_text() == str(_overdue_sql(alive_db, [grid]))
    assert page.locator("#route-body li").count() == stops

    # A click on a site opens its card: the timeline is its audit trail; the signboard opens.
    props = _click_feature(page, "sites", 0)
    page.wait_for_selector(f"#card-body[data-site='{props['id']}']")
    card = page.locator("#card-body")
    assert props["reg_no"] in card.inner_text()
    audit = alive_db.execute(text("SELECT count(*) FROM audit_log WHERE entity = 'project' "
                                  "AND entity_id = :r"), {"r": props["reg_no"]}).scalar_one()
    assert card.locator(".xs-timeline li").count() == audit > 1
    signboard = card.locator("a", has_text="PNG").get_attribute("href")
    response = page.request.get(alive_server + signboard)
    assert response.status == 200 and response.headers["content-type"] == "image/png"
    assert _toggle(page, "sites") == [False, True]

    # The picker adds a second grid: the address and the layers follow.
    other = alive_db.execute(text(
        "SELECT grid_code FROM projects WHERE state = ANY(:a) AND grid_code <> :g GROUP BY 1 "
        "ORDER BY count(*) DESC, 1 LIMIT 1"), {"a": list(ACTIVE), "g": grid}).scalar_one()
    street, community = alive_db.execute(text(
        "SELECT c.parent_code, g.parent_code FROM grids g JOIN communities c "
        "ON c.code = g.parent_code AND c.valid_to IS NULL WHERE g.code = :g AND g.valid_to "
        "IS NULL"), {"g": other}).one()
    page.select_option("#pick-street", street)
    page.select_option("#pick-community", community)
    page.select_option("#pick-grid", other)
    page.click("#pick-add")
    page.wait_for_url(re.compile(f"grid={grid}%2C{other}|grid={grid},{other}"))
    page.wait_for_function("(n) => XS.layers.my_grids.layer.getLayers().length === n", arg=2)
    both = alive_db.execute(text("SELECT count(*) FROM projects WHERE grid_code IN (:g, :o) "
                                 "AND state = ANY(:a)"),
                            {"g": grid, "o": other, "a": list(ACTIVE)}).scalar_one()
    page.wait_for_function("(n) => XS.layers.sites.layer.getLayers().length === n", arg=both)
    assert page.locator("#chosen li").count() == 2
    assert page.problems == [] and outside == []


def test_pages_on_a_phone(alive_server, alive_db, page):
    page.set_viewport_size({"width": 390, "height": 844})
    for name, path in (("grid", f"/map/grid?grid={_busiest_grid(alive_db)}"),
                       ("official", "/map/official")):
        outside = _open(page, alive_server, path)
        map_box = page.locator("#map").bounding_box()
        panel_box = page.locator("#panel").bounding_box()
        assert map_box["width"] == pytest.approx(390, abs=1)
        assert map_box["height"] > 350
        assert panel_box["y"] >= map_box["y"] + map_box["height"] - 1  # the panel is below
        assert panel_box["width"] == pytest.approx(390, abs=1)
        assert page.evaluate("() => XS.map.getSize().y") > 350
        expanded = page.locator(".leaflet-control-layers-expanded").count()
        assert expanded == 0  # the layer control folds into its button
        page.screenshot(path=str(ARTIFACTS / f"{name}-phone.png"), full_page=True)
        assert page.problems == [] and outside == []


# --- GCJ-02 display copies ------------------------------------------------------------------


def test_gaode_base_draws_shifted_copies(alive_server, alive_db, page):
    from gis.gcj02 import wgs84_to_gcj02

    outside = _open(page, alive_server, f"/map/grid?grid={_busiest_grid(alive_db)}")
    # The JavaScript port agrees with gis/gcj02.py to well under a centimetre.
    points = [(114.0579, 22.5431), (114.0123, 22.5012), (113.2644, 23.1291), (116.3912, 39.9073),
              (121.4737, 31.2304), (87.6168, 43.8256), (126.5349, 45.8038), (2.35, 48.85)]
    js = page.evaluate("(pts) => pts.map(([x, y]) => XS.gcj02.wgs84ToGcj02(x, y))", points)
    for (lon, lat), (jlon, jlat) in zip(points, js, strict=True):
        plon, plat = wgs84_to_gcj02(lon, lat)
        assert GEOD.inv(float(plon), float(plat), jlon, jlat)[2] < 0.01
    back = page.evaluate("(pts) => pts.map(([x, y]) => XS.gcj02.gcj02ToWgs84(x, y))",
                         [[float(c) for c in wgs84_to_gcj02(*p)] for p in points])
    for (lon, lat), (wlon, wlat) in zip(points, back, strict=True):
        assert GEOD.inv(lon, lat, wlon, wlat)[2] < 0.01
    raw_before = page.evaluate("() => JSON.stringify(XS.layers.sites.data)")

    def shown_and_raw():
        return page.evaluate(
            """() => XS.layers.sites.layer.getLayers().slice(0, 5).map((l) => {
                 const ll = l.getLatLng();
                 const f = XS.layers.sites.data.features.find((g) => g.id === l.feature.id);
                 return [ll.lng, ll.lat, f.geometry.coordinates[0], f.geometry.coordinates[1]];
               })""")

    centre = page.evaluate("() => [XS.map.getCenter().lng, XS.map.getCenter().lat]")
    page.locator('.leaflet-control-layers-base label:has([data-xs-base="gaode"]) input').click()
    page.wait_for_function("() => XS.datum === 'gcj02'")
    # The view moves with the drawing: the same place stays in the middle of the map.
    moved = page.evaluate("() => [XS.map.getCenter().lng, XS.map.getCenter().lat]")
    glon, glat = wgs84_to_gcj02(*centre)
    assert GEOD.inv(float(glon), float(glat), *moved)[2] < 2  # a pixel at zoom 17
    for x, y, lon, lat in shown_and_raw():
        glon, glat = wgs84_to_gcj02(lon, lat)
        assert GEOD.inv(float(glon), float(glat), x, y)[2] < 0.01
        assert GEOD.inv(lon, lat, x, y)[2] > 100  # the shift in Shenzhen is ~300-500 m
    assert page.evaluate("() => JSON.stringify(XS.layers.sites.data)") == raw_before
    page.wait_for_timeout(300)
    hosts = {urlparse(u).hostname for u in outside}
    assert outside and all(re.fullmatch(r"webrd0[1-4]\.is\.autonavi\.com", h) for h in hosts)
    page.screenshot(path=str(ARTIFACTS / "grid-gaode.png"))
    # Back on our own roads: drawn where they are stored.
    page.locator('.leaflet-control-layers-base label:has([data-xs-base="none"]) input').click()
    page.wait_for_function("() => XS.datum === 'wgs84'")
    for x, y, lon, lat in shown_and_raw():
        assert (x, y) == pytest.approx((lon, lat), abs=1e-12)
    assert page.problems == []


# --- layers served as vector tiles ----------------------------------------------------------


def _tile_box(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """The WGS84 box of XYZ tile z/x/y (the slippy-map formulas)."""

    def lat(row: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / (1 << z)))))

    return x / (1 << z) * 360 - 180, lat(y + 1), (x + 1) / (1 << z) * 360 - 180, lat(y)


# Every drawn feature of the patrols' tiles at the map's zoom: its tile's key, its SVG path (in
# the tile's own pixels, so the same whatever the tile's place), and the centre of its box on
# the screen (map container pixels) and in world pixels (Web Mercator at the map's zoom).
_TILE_FEATURES_JS = """() => {
  window.xsTileFeatures = () => {
    const map = XS.map, layer = XS.tiles.patrols.layer;
    const m = map.getContainer().getBoundingClientRect();
    const out = [];
    for (const [key, tile] of Object.entries(layer._tiles)) {
      if (tile.coords.z !== map.getZoom()) continue;
      for (const p of tile.el.querySelectorAll('path')) {
        const b = p.getBoundingClientRect();
        const screen = L.point(b.x + b.width / 2 - m.x, b.y + b.height / 2 - m.y);
        const world = map.containerPointToLayerPoint(screen).add(map.getPixelOrigin());
        out.push({key: key, d: p.getAttribute('d'), screen: {x: screen.x, y: screen.y},
                  world: {x: world.x, y: world.y}});
      }
    }
    return out;
  };
}"""


def test_official_page_draws_patrols_from_vector_tiles(alive_server, alive_db, page):
    """The patrols (served as tiles by the catalogue) come from /tiles/patrols/..., aggregated,
    with the chosen period; the overlay toggles, and follows the GCJ-02 base, shifted."""
    import mapbox_vector_tile

    requests: list[str] = []
    tiles: list = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("response", lambda r: tiles.append(r) if "/tiles/patrols/" in r.url else None)
    outside = _open(page, alive_server, "/map/official")
    catalogue = page.request.get(f"{alive_server}/api/layers").json()
    assert {c["name"]: c["served_as"] for c in catalogue["layers"]}["patrols"] == "tiles"
    # The library is ours, served locally.
    vendored = f"{alive_server}/static/vendor/leaflet.vectorgrid/Leaflet.VectorGrid.bundled.min.js"
    assert vendored in requests
    assert page.evaluate("() => typeof L.vectorGrid.protobuf") == "function"
    for _ in range(150):
        if any(r.status == 200 for r in tiles):
            break
        page.wait_for_timeout(100)
    assert all(re.search(r"/tiles/patrols/\d+/\d+/\d+\.pbf\?", r.url) for r in tiles)
    ok = [r for r in tiles if r.status == 200]
    assert ok and {r.status for r in tiles} <= {200, 204}
    assert {r.headers["content-type"] for r in ok} == {"application/vnd.mapbox-vector-tile"}
    # A tile holds the patrols of the year under it, in cells with their count (SQL counts).
    query = dict(p.split("=") for p in urlparse(ok[0].url).query.split("&"))
    z, x, y = (int(v) for v in re.search(r"/(\d+)/(\d+)/(\d+)\.pbf", ok[0].url).groups())
    assert z < 16  # below the patrols' aggregate_below
    # (Playwright does not keep the body of a fetch() read as a blob: ask again, same cookie.)
    again = page.request.get(ok[0].url)
    assert again.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    features = mapbox_vector_tile.decode(again.body())["patrols"]["features"]
    x0, y0, x1, y1 = _tile_box(z, x, y)
    n = alive_db.execute(text(
        "SELECT count(*) FROM patrols WHERE district_code = :d AND patrol_on BETWEEN :s AND :u "
        "AND ST_X(location) >= :x0 AND ST_X(location) < :x1 AND ST_Y(location) > :y0 "
        "AND ST_Y(location) <= :y1"),
        {"d": DISTRICT, "s": query["since"], "u": query["until"], "x0": x0, "x1": x1,
         "y0": y0, "y1": y1}).scalar_one()
    assert sum(f["properties"]["count"] for f in features) == n > 0
    # Drawn as circles; a cell's tooltip tells its count.
    page.wait_for_function(
        "() => document.querySelectorAll('.leaflet-xsTiles-pane path').length > 0")
    spot = page.evaluate(
        """() => {
             const m = document.getElementById('map').getBoundingClientRect();
             const cx = m.x + m.width / 2, cy = m.y + m.height / 2;
             let best = null;
             for (const p of document.querySelectorAll('.leaflet-xsTiles-pane path')) {
               const b = p.getBoundingClientRect();
               const d = Math.hypot(b.x + b.width / 2 - cx, b.y + b.height / 2 - cy);
               if (!best || d < best.d) best = {x: b.x + b.width / 2, y: b.y + b.height / 2, d};
             }
             return best;
           }""")
    page.mouse.move(spot["x"], spot["y"])
    tooltip = page.locator(".leaflet-tooltip")
    tooltip.wait_for(timeout=3000)
    assert re.fullmatch(r"此处 [\d,]+ 条", tooltip.inner_text())
    page.screenshot(path=str(ARTIFACTS / "official-tiles.png"))
    assert page.problems == [] and outside == []

    # The layer control takes it off the map and back.
    box = page.locator('.leaflet-control-layers-overlays label:has([data-xs-layer="patrols"]) '
                       "input")
    seen = []
    for _ in range(2):
        box.click()
        seen.append(page.evaluate("() => XS.map.hasLayer(XS.tiles.patrols.layer)"))
    assert seen == [False, True]
    # Another period: the tiles are fetched again for it.
    page.select_option("#hot-period", "3")
    page.wait_for_function("() => XS.tiles.patrols.layer._url.includes('since=')")
    since = page.evaluate("() => XS.tiles.patrols.params.since")
    assert since > query["since"] and since.endswith("-01")  # whole months
    page.wait_for_timeout(500)
    assert any(f"since={since}" in r.url for r in tiles)
    assert page.problems == [] and outside == []

    # On the Gaode base the tiles (WGS84) stay on and are drawn moved by the GCJ-02 offset.
    # The same feature: the same path (in its tile's own pixels) in the tile with the same key.
    # Its place is measured in world pixels (Web Mercator at the map's zoom), which do not
    # depend on where the view is (switching the base moves the view with the drawing).
    page.wait_for_function(
        "() => !XS.tiles.patrols.layer.isLoading()"
        " && document.querySelectorAll('.leaflet-xsTiles-pane path').length > 0")
    page.evaluate(_TILE_FEATURES_JS)
    before = page.evaluate(
        """() => {
             const c = XS.map.getSize().divideBy(2);
             let best = null;
             for (const f of window.xsTileFeatures()) {
               const d = Math.hypot(f.screen.x - c.x, f.screen.y - c.y);
               if (!best || d < best.dist) best = Object.assign({dist: d}, f);
             }
             return Object.assign(best, {zoom: XS.map.getZoom()});
           }""")
    assert before is not None
    page.locator('.leaflet-control-layers-base label:has([data-xs-base="gaode"]) input').click()
    page.wait_for_function("() => XS.datum === 'gcj02'")
    assert page.evaluate("() => XS.map.hasLayer(XS.tiles.patrols.layer)")
    assert not box.is_disabled()
    label = page.locator('.leaflet-control-layers-overlays label:has([data-xs-layer="patrols"])')
    assert label.inner_text().strip() == i18n.texts("zh")["tiles.patrols_title"]
    after = page.wait_for_function(
        """([key, d]) => !XS.tiles.patrols.layer.isLoading()
             && window.xsTileFeatures().find((f) => f.key === key && f.d === d)""",
        arg=[before["key"], before["d"]], timeout=15_000).json_value()
    assert page.evaluate("() => XS.map.getZoom()") == before["zoom"]
    expected = page.evaluate(
        """([x, y, z]) => {
             const w = XS.map.unproject([x, y], z);
             const g = XS.gcj02.wgs84ToGcj02(w.lng, w.lat);
             const off = XS.map.project([g[1], g[0]], z).subtract(XS.map.project(w, z));
             return [off.x, off.y];
           }""", [before["world"]["x"], before["world"]["y"], before["zoom"]])
    shift = (after["world"]["x"] - before["world"]["x"], after["world"]["y"] - before["world"]["y"])
    assert math.hypot(*expected) > 10  # ~300-500 m: unshifted tiles would be far off
    assert math.hypot(shift[0] - expected[0], shift[1] - expected[1]) < 2, (shift, expected)
    # Hovering the shifted feature shows a tooltip at the pointer.
    box_xy = page.locator("#map").bounding_box()
    px, py = box_xy["x"] + after["screen"]["x"], box_xy["y"] + after["screen"]["y"]
    page.mouse.move(px, py)
    tooltip = page.locator(".leaflet-tooltip")
    tooltip.wait_for(timeout=3000)
    assert re.fullmatch(r"此处 [\d,]+ 条", tooltip.inner_text())
    tb = tooltip.bounding_box()
    assert abs(tb["x"] + tb["width"] / 2 - px) < 2 and 0 < py - (tb["y"] + tb["height"]) < 20
    page.screenshot(path=str(ARTIFACTS / "official-tiles-gaode.png"))
    page.mouse.move(box_xy["x"] + 5, box_xy["y"] + box_xy["height"] - 5)
    # At a street zoom (the offset is hundreds of pixels) the tiles loaded still cover the view
    # (neighbouring tiles, each moved by the offset at its own centre, may part by under a
    # pixel: a tile counts 1 px beyond its edges).
    page.evaluate("() => { XS.map.setZoom(17, {animate: false}); }")
    page.wait_for_function(
        "() => XS.tiles.patrols.layer._tileZoom === 17 && !XS.tiles.patrols.layer.isLoading()")
    uncovered = page.evaluate(
        """() => {
             const layer = XS.tiles.patrols.layer;
             const m = XS.map.getContainer().getBoundingClientRect();
             const rects = Object.values(layer._tiles).filter((t) => t.coords.z === 17)
               .map((t) => t.el.getBoundingClientRect());
             const corners = [[m.left + 2, m.top + 2], [m.right - 2, m.top + 2],
                              [m.left + 2, m.bottom - 2], [m.right - 2, m.bottom - 2]];
             return corners.filter(([x, y]) => !rects.some(
               (r) => r.left - 1 <= x && x <= r.right + 1 && r.top - 1 <= y && y <= r.bottom + 1));
           }""")
    assert uncovered == []
    # The user's choice is kept across a change of base.
    box.click()
    assert not page.evaluate("() => XS.map.hasLayer(XS.tiles.patrols.layer)")
    page.locator('.leaflet-control-layers-base label:has([data-xs-base="none"]) input').click()
    page.wait_for_function("() => XS.datum === 'wgs84'")
    assert not page.evaluate("() => XS.map.hasLayer(XS.tiles.patrols.layer)")
    assert not box.is_disabled()
    box.click()
    assert page.evaluate("() => XS.map.hasLayer(XS.tiles.patrols.layer)")
    assert {urlparse(u).hostname for u in outside} <= {f"webrd0{i}.is.autonavi.com"
                                                        for i in range(1, 5)}
    assert page.problems == []
