"""The dispatcher's page in a real browser (headless Chromium), offline.

It runs on the page tests' throwaway database (the demo district with a year of activity and
patrols, served by uvicorn: the fixtures of ``tests/test_browser_pages.py``), in 香蜜湖街道,
a street the demo road graph covers. Plans are made through the page with a short time limit;
every number the page shows is compared with the plan API's JSON and with what the plan must
satisfy on its own (every candidate either on a route or left out, a pin honoured in the next
version), not with the page's own arithmetic. No request may leave the page.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from sqlalchemy import text

from layers import i18n
from tests import test_browser_pages as browser_pages
from tests.conftest import ARTIFACTS, _add_test_user, _token

pytestmark = pytest.mark.browser

STREET = "440304006000"  # 香蜜湖街道: on the demo road graph
HHMM = re.compile(r"\b\d{2}:\d{2}\b")
REFUSED = "Failed to load resource: the server responded with a status of 422"

# The page tests' database and server (module-scoped: this module gets its own).
alive = browser_pages.alive
alive_db = browser_pages.alive_db
alive_server = browser_pages.alive_server
_open = browser_pages._open
_counts = browser_pages._counts
_toggle = browser_pages._toggle
_click_feature = browser_pages._click_feature


def _tomorrow() -> str:
    from app.services.registration import today_cn

    return (today_cn() + timedelta(days=1)).isoformat()


def _api(page, base: str, path: str) -> dict:
    response = page.request.get(base + path)
    assert response.ok, (path, response.status)
    return response.json()


def _plan_through_the_page(page, deadline_s: int = 2) -> dict:
    """Press Plan with a short time limit; the progress shows while the solver works."""
    page.fill("#dp-deadline", str(deadline_s))
    page.click("#dp-plan")
    progress = page.locator("#dp-progress")
    progress.wait_for(state="visible")
    assert re.search(r"\d", page.locator("#dp-progress-text").inner_text())
    page.wait_for_selector("#plan-section[data-version='1']", timeout=60_000)
    assert progress.is_hidden()
    return page.evaluate("() => Object.assign({}, document.getElementById('plan-section').dataset)")


def _movable_stop(plan: dict, candidates: list[dict], roster: list[dict]):
    """A stop of one inspector that another inspector may visit and will: a mandatory one
    (served whatever it displaces) or, failing that, one for an inspector with room left (a
    pin only restricts an optional site to its inspector, who may still leave it out)."""
    eligible = {c["site"]: c["eligible"] for c in candidates}
    load = {r["inspector"]: len(r["stops"]) for r in plan["routes"]}
    room = {i["code"]: (i["max_stops"] or 1000) - load.get(i["code"], 0) for i in roster}
    choices = [(s["mandatory"], room[other], s["seq"], s, r["inspector"], other)
               for r in plan["routes"] for s in r["stops"] for other in eligible[s["site"]]
               if other != r["inspector"] and (s["mandatory"] or room[other] > 0)]
    assert choices, "no stop another inspector could take"
    *_, stop, owner, other = max(choices, key=lambda c: c[:3])
    return stop, owner, other


def _index_of(page, layer: str, site: str) -> int:
    return page.evaluate(
        "([name, site]) => XS.layers[name].layer.getLayers()"
        ".findIndex((l) => l.feature.properties.site === site)", [layer, site])


def test_dispatcher_plans_pins_and_replans(alive_server, alive_db, page):
    zh = i18n.texts("zh")
    outside = _open(page, alive_server, f"/map/dispatch?street={STREET}")
    assert page.problems == [] and outside == []
    tomorrow = _tomorrow()
    assert page.input_value("#dp-date") == tomorrow
    assert page.input_value("#dp-street") == STREET

    # The candidates: on the map and in the list, as many as the API's, mandatory first.
    cands = _api(page, alive_server, f"/api/plans/candidates?street={STREET}&date={tomorrow}")
    assert cands["count"] > 10 and cands["mandatory"] > 0
    assert _counts(page)["candidates"] == cands["count"]
    listed = page.locator("#cand-list li").evaluate_all("(ls) => ls.map((l) => l.dataset.site)")
    assert listed == [c["site"] for c in cands["candidates"]]
    flags = [c["mandatory"] for c in cands["candidates"]]
    assert flags == sorted(flags, reverse=True)
    roster = _api(page, alive_server, f"/api/inspectors?street={STREET}")["inspectors"]
    assert page.locator("#dp-inspectors input[value]").count() == len(roster) >= 2

    # Plan with a 2 s time limit.
    shown = _plan_through_the_page(page, 2)
    plan = _api(page, alive_server, f"/api/plans/{shown['plan']}")
    assert plan["version"] == 1 and plan["date"] == tomorrow and plan["street_code"] == STREET
    busy = [r for r in plan["routes"] if r["stops"]]
    assert len(busy) >= 2
    # Every candidate is either visited or left out with a reason.
    visited = [s["site"] for r in plan["routes"] for s in r["stops"]]
    left = [lo["site"] for lo in plan["left_out"]]
    assert sorted(visited + left) == sorted(c["site"] for c in cands["candidates"])
    assert all(lo["reason_zh"] and lo["reason_en"] for lo in plan["left_out"])

    # One line per inspector with stops, drawn from the plan's road geometry unchanged.
    drawn = page.evaluate(
        """() => XS.layers.routes.layer.getLayers().map((l) => [l.feature.properties.inspector,
             l.getLatLngs().map((p) => [p.lng, p.lat])])""")
    assert sorted(code for code, _ in drawn) == sorted(r["inspector"] for r in busy)
    for code, coords in drawn:
        route = next(r for r in busy if r["inspector"] == code)
        stored = route["geometry"]["coordinates"]
        assert len(coords) == len(stored)
        assert max(abs(a - b) for p, q in zip(coords, stored, strict=True)
                   for a, b in zip(p, q, strict=True)) < 1e-9
        assert len(coords) > len(route["stops"]) + 1  # along the streets, not stop to stop
    # Numbered stops: as many markers as stops, numbered 1..n per inspector.
    numbers = page.evaluate(
        """() => XS.layers.stops.layer.getLayers().map((l) => [l.feature.properties.inspector,
             Number(l.getElement().textContent)])""")
    assert len(numbers) == len(visited)
    for r in busy:
        assert sorted(n for code, n in numbers if code == r["inspector"]) == list(
            range(1, len(r["stops"]) + 1))
    # The panel: totals per inspector, the left-out list, the fallback banner.
    rows = page.locator("#route-table tbody tr")
    assert rows.count() == len(plan["routes"])
    for i, r in enumerate(plan["routes"]):
        cells = rows.nth(i).locator("td")
        assert cells.nth(1).inner_text() == str(len(r["stops"]))
        if r["stops"]:
            assert cells.nth(3).inner_text() == f"{r['depart']}–{r['return']}"
    assert page.locator("#left-list li[data-left]").count() == len(plan["left_out"])
    assert _counts(page)["left_out"] == len(plan["left_out"])
    assert page.locator("#left-count").inner_text() == str(len(plan["left_out"]))
    first_left = page.locator("#left-list li[data-left]").first.inner_text()
    assert plan["left_out"][0]["reason_zh"] in first_left
    banner = page.locator("#dp-banner")
    assert banner.is_visible() == (plan["matrix_source"] != "roads")
    # Exports of the plan shown.
    gj = page.locator("#export-geojson").get_attribute("href")
    gpx = page.locator("#export-gpx").get_attribute("href")
    assert gj == f"/api/plans/{plan['id']}.geojson" and gpx == f"/api/plans/{plan['id']}.gpx"
    fc = _api(page, alive_server, gj)
    assert sum(f["properties"]["kind"] == "stop" for f in fc["features"]) == len(visited)
    response = page.request.get(alive_server + gpx)
    assert response.ok and response.headers["content-type"].startswith("application/gpx+xml")

    # A stop's popup: its ETA and a navigation link.
    stop = _click_feature(page, "stops", 0)
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for()
    assert HHMM.fullmatch(stop["eta"]) and stop["eta"] in popup.inner_text()
    assert popup.locator("a[data-nav=route]").get_attribute("href").startswith(
        "https://uri.amap.com/navigation?")
    page.wait_for_timeout(300)  # the popup's fade-in
    page.screenshot(path=str(ARTIFACTS / "dispatch-popup.png"))

    # Pin a stop to another inspector, re-plan: version 2 has it on that inspector's route.
    moved, owner, other = _movable_stop(plan, cands["candidates"], roster)
    _click_feature(page, "stops", _index_of(page, "stops", moved["site"]))
    select = page.locator(f'.leaflet-popup-content select[data-pin-site="{moved["site"]}"]')
    select.select_option(other)
    assert page.locator(f'#dp-pins li[data-pin="{moved["site"]}"]').is_visible()
    page.click("#dp-replan")
    page.wait_for_selector("#plan-section[data-version='2']", timeout=60_000)
    v2 = _api(page, alive_server,
              f"/api/plans/{page.locator('#plan-section').get_attribute('data-plan')}")
    assert v2["version"] == 2 and v2["parent_id"] == plan["id"] and v2["pins"] == {
        moved["site"]: other}
    on = {r["inspector"]: [s["site"] for s in r["stops"]] for r in v2["routes"]}
    assert moved["site"] in on[other] and moved["site"] not in on[owner]
    marker = page.evaluate(
        "(site) => XS.layers.stops.layer.getLayers().filter((l) => l.feature.properties.site "
        "=== site).map((l) => l.feature.properties.inspector)", moved["site"])
    assert marker == [other]
    assert zh["dispatch.plan_title"].format(id=v2["id"], version=2) in page.locator(
        "#plan-title").inner_text()
    # Both versions are listed among the day's stored plans.
    stored = page.locator("#stored-list li[data-plan]").evaluate_all(
        "(ls) => ls.map((l) => Number(l.dataset.plan))")
    assert {plan["id"], v2["id"]} <= set(stored)
    assert page.problems == []

    # A pin the API refuses (outside that inspector's area): a readable message naming the
    # input, the plan shown stays version 2.
    only = next(c for c in cands["candidates"] if len(c["eligible"]) == 1)
    stranger = next(i["code"] for i in roster if i["code"] not in only["eligible"])
    page.click(f'#cand-list li[data-site="{only["site"]}"]')
    page.locator(f'.leaflet-popup-content select[data-pin-site="{only["site"]}"]').select_option(
        stranger)
    page.click("#dp-replan")
    page.wait_for_function("() => document.getElementById('dp-replan-error').textContent")
    message = page.locator("#dp-replan-error").inner_text()
    assert zh["input.pins"] in message and only["site"] in message and "422" in message
    assert page.locator("#plan-section").get_attribute("data-version") == "2"
    assert all(REFUSED in p for p in page.problems)  # the browser logs the 422 itself
    page.screenshot(path=str(ARTIFACTS / "dispatch-refused.png"))
    # Taking the pin back: the popup follows, the pins are the plan's again.
    page.click(f'#dp-pins button[data-unpin="{only["site"]}"]')
    assert page.locator(f'.leaflet-popup-content select[data-pin-site="{only["site"]}"]'
                        ).input_value() == ""
    assert page.locator("#dp-pins-note").inner_text() == ""

    # The layer control takes the routes off the map and back.
    assert _toggle(page, "routes") == [False, True]
    page.evaluate("""() => {
        XS.map.closePopup();
        document.getElementById('panel').scrollTop = 0;
        XS.map.fitBounds(XS.layers.routes.layer.getBounds(),
                         {paddingBottomRight: [240, 20], animate: false});
    }""")
    page.wait_for_timeout(300)  # the popup's fade-out
    page.screenshot(path=str(ARTIFACTS / "dispatch.png"))
    assert outside == []


def test_dispatcher_opens_a_stored_plan_in_english(alive_server, page):
    en, zh = i18n.texts("en"), i18n.texts("zh")
    made = page.request.post(alive_server + "/api/plans", data={
        "street": STREET, "date": _tomorrow(), "deadline_s": 1})
    assert made.status == 201
    plan = made.json()
    outside = _open(page, alive_server, f"/map/dispatch?lang=en&street={STREET}")
    # The day's stored plans are listed; one opens.
    page.locator(f'#stored-list li[data-plan="{plan["id"]}"]').click()
    page.wait_for_selector(f"#plan-section[data-plan='{plan['id']}']")
    assert page.locator("html").get_attribute("lang") == "en-GB"
    assert page.locator("h1").inner_text() == en["page.dispatch"]
    assert page.locator('[data-xs-layer="routes"]').inner_text() == en["layer.plan_routes"]
    assert page.locator("#plan-title").inner_text().startswith(
        en["dispatch.plan_title"].format(id=plan["id"], version=1))
    assert page.locator("#left-list li[data-left]").count() == len(plan["left_out"])
    if plan["left_out"]:
        assert plan["left_out"][0]["reason_en"] in page.locator("#left-list li").first.inner_text()
    page.screenshot(path=str(ARTIFACTS / "dispatch-en.png"))
    # Back to Chinese: the address keeps the street, the day and the plan.
    page.click("#xs-lang")
    page.wait_for_url(re.compile(rf"plan={plan['id']}"))
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    page.wait_for_selector(f"#plan-section[data-plan='{plan['id']}']")
    assert page.locator("h1").inner_text() == zh["page.dispatch"]
    if plan["left_out"]:
        assert plan["left_out"][0]["reason_zh"] in page.locator("#left-list li").first.inner_text()
    assert page.problems == [] and outside == []


def test_dispatcher_page_on_a_phone(alive_server, page):
    page.set_viewport_size({"width": 390, "height": 844})
    outside = _open(page, alive_server, f"/map/dispatch?street={STREET}")
    map_box = page.locator("#map").bounding_box()
    panel_box = page.locator("#panel").bounding_box()
    assert map_box["width"] == pytest.approx(390, abs=1) and map_box["height"] > 350
    assert panel_box["y"] >= map_box["y"] + map_box["height"] - 1  # the panel is below
    assert page.locator("#dp-plan").is_enabled()
    assert page.locator(".leaflet-control-layers-expanded").count() == 0
    page.screenshot(path=str(ARTIFACTS / "dispatch-phone.png"), full_page=True)
    assert page.problems == [] and outside == []


def _get(base: str, path: str, token: str) -> tuple[int, str]:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _boot(html: str) -> dict:
    return json.loads(re.search(r"window\.XS_BOOT = (\{.*?\});</script>", html, re.S).group(1))


def test_a_street_dispatcher_plans_only_their_street(alive, alive_server):
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    engine = create_engine(alive[0])
    try:
        with Session(engine) as session:
            for name, role in (("dispatch-street", "dispatcher"), ("dispatch-grid", "grid_worker")):
                scope = STREET if role == "dispatcher" else session.execute(text(
                    "SELECT code FROM grids WHERE code LIKE :s AND valid_to IS NULL LIMIT 1"),
                    {"s": STREET[:9] + "%"}).scalar_one()
                _add_test_user(session, name, role, scope)
            session.commit()
            other = session.execute(text(
                "SELECT code FROM streets WHERE code <> :s AND valid_to IS NULL ORDER BY code "
                "LIMIT 1"), {"s": STREET}).scalar_one()
    finally:
        engine.dispose()
    status, html = _get(alive_server, "/map/dispatch", _token("dispatch-street", "dispatcher"))
    assert status == 200
    boot = _boot(html)
    assert [s["code"] for s in boot["streets"]] == [STREET] and boot["street"] == STREET
    assert boot["date"] == _tomorrow()
    status, html = _get(alive_server, f"/map/dispatch?street={other}",
                        _token("dispatch-street", "dispatcher"))
    boot = _boot(html)
    assert status == 200 and boot["street"] == STREET and boot["unknown_street"] == other
    # A role that may not plan is refused.
    status, _ = _get(alive_server, "/map/dispatch", _token("dispatch-grid", "grid_worker"))
    assert status == 403
