"""Patrol route plans: roster, candidates, a planned day through the API, re-plans, pins,
exports, stored inputs, week plans, workload balance, the CLI.

Sites are hand-made projects on streets of the demo road network in 香蜜湖街道 (one of the
streets the shipped graph covers), plus hazards due for re-inspection and one site far from any
road. Every promise of a plan is re-checked here from the database, the road network and plain
geometry, not from the planner's own numbers.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from datetime import date, time, timedelta

import numpy as np
import pytest
import shapely
from pyproj import Transformer
from sqlalchemy import text

from app.models import Inspector
from app.services import hazards
from app.services import route_plans as rp
from app.services.inspectors import DEMO_SOURCE, list_inspectors, load_demo_roster
from app.services.registration import today_cn
from gis.matrix import haversine_m
from gis.routing import REASONS, PeriodicSite, Site, plan_day, plan_week
from gis.routing import Inspector as PlanInspector
from gis.snapping import snap_to_edges
from tests.test_patrols import make_project
from tests.test_routing import check_plan, line_matrix

DISTRICT = "440304000000"
STREET = "440304006000"  # 香蜜湖街道: on the demo road graph
EBIKE, WALK = f"{STREET}-01", f"{STREET}-02"
GPX = "{http://www.topografix.com/GPX/1/1}"
H = 3600.0
TO_M = Transformer.from_crs("EPSG:4326", "EPSG:32650", always_xy=True)


@pytest.fixture(scope="module")
def nets():
    from app.services.road_networks import road_network

    return {m: road_network(m) for m in ("walk", "ebike")}


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def _road_points(session, nets, n: int) -> list[tuple[float, float, str]]:
    """``n`` points on streets both a walker and an e-bike use, inside grids of STREET,
    spread over the street: (lon, lat, grid code)."""
    grids = session.execute(text(
        """SELECT g.code, ST_AsBinary(g.geom) AS wkb FROM grids g
           JOIN communities c ON c.code = g.parent_code AND c.valid_to IS NULL
           WHERE g.valid_to IS NULL AND c.parent_code = :s ORDER BY g.code"""),
        {"s": STREET}).all()
    polys = shapely.from_wkb([g.wkb for g in grids])
    walk = nets["walk"]
    mids = [walk.edge_geometry[e].interpolate(0.5, normalized=True)
            for e in np.flatnonzero(walk.edge_is_canonical)]
    lon = np.array([p.x for p in mids])
    lat = np.array([p.y for p in mids])
    snap = snap_to_edges(nets["ebike"], lon, lat, max_distance_m=3.0)
    tree = shapely.STRtree(polys)
    pts, grid_of = shapely.points(lon, lat), {}
    for i, j in zip(*tree.query(pts, predicate="within"), strict=True):
        if snap.reachable[i]:
            grid_of[int(i)] = grids[int(j)].code
    keys = sorted(grid_of, key=lambda i: (grid_of[i], i))
    # One per grid first, for a spread over the street.
    seen, picked = set(), []
    for i in keys:
        if grid_of[i] not in seen:
            seen.add(grid_of[i])
            picked.append(i)
    step = max(1, len(picked) // n)
    return [(float(lon[i]), float(lat[i]), grid_of[i]) for i in picked[::step][:n]]


def _off_road_point(session, nets) -> tuple[float, float]:
    """A point of STREET more than 400 m from any road of the graph."""
    rows = session.execute(text(
        """SELECT ST_X(p) AS lon, ST_Y(p) AS lat FROM (
             SELECT ST_PointOnSurface(g.geom) AS p FROM grids g
             JOIN communities c ON c.code = g.parent_code AND c.valid_to IS NULL
             WHERE g.valid_to IS NULL AND c.parent_code = :s ORDER BY g.code) q"""),
        {"s": STREET}).all()
    lon = np.array([r.lon for r in rows])
    lat = np.array([r.lat for r in rows])
    far = ~snap_to_edges(nets["walk"], lon, lat, max_distance_m=400).reachable
    far &= ~snap_to_edges(nets["ebike"], lon, lat, max_distance_m=400).reachable
    assert far.any(), "the street should have a place far from the road graph"
    i = int(np.flatnonzero(far)[0])
    return float(lon[i]), float(lat[i])


def scenario(session, nets, *, n_sites: int = 10, off_road: bool = True) -> dict:
    """Overdue sites on the roads (every third high risk), a hazard due on one of them, a
    hazard without a project, and (optionally) an overdue site far from the roads."""
    start = today_cn() - timedelta(days=30)
    projects = []
    points = _road_points(session, nets, n_sites)
    for k, (lon, lat, _grid) in enumerate(points):
        projects.append(make_project(session, lon, lat, high_risk=k % 3 == 0, started_on=start))
    found = today_cn() - timedelta(days=1)
    merged = hazards.report_hazard(session, actor="t", hazard_type="fire",
                                   severity="immediate", project=projects[1].id, found_on=found)
    lon, lat, _ = _road_points(session, nets, n_sites + 3)[-1]
    alone = hazards.report_hazard(session, actor="t", hazard_type="collapse",
                                  severity="immediate", found_on=found,
                                  location={"type": "Point", "coordinates": [lon, lat]})
    off = None
    if off_road:
        off = make_project(session, *_off_road_point(session, nets), started_on=start)
    session.commit()  # in a test's session, a savepoint: a refused request cannot undo it
    return {"projects": projects, "merged": merged, "alone": alone, "off": off,
            "points": points}


def _plan(client, **body):
    body = {"street": STREET, "deadline_s": 2, **body}
    r = client.post("/api/plans", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _ids(prefix: str, keys) -> set[int]:
    return {int(k.split(":")[1]) for k in keys if k.startswith(prefix)}


# --- roster ---------------------------------------------------------------------------------


def test_demo_roster_two_per_street_starting_inside_their_community(session, nets):
    rows = session.execute(text(
        """SELECT i.code, i.street_code, i.mode, ST_X(i.start_point) AS lon,
                  ST_Y(i.start_point) AS lat,
                  ST_Covers(c.geom, i.start_point) AS inside, c.parent_code
           FROM inspectors i JOIN communities c ON c.code = i.community_code
             AND c.valid_to IS NULL
           WHERE i.source = :s ORDER BY i.code"""), {"s": DEMO_SOURCE}).all()
    streets = session.scalars(text(
        "SELECT code FROM streets WHERE valid_to IS NULL AND district_code = :d"),
        {"d": DISTRICT}).all()
    assert len(rows) == 2 * len(streets) == 22
    assert all(r.inside and r.parent_code == r.street_code for r in rows)
    assert {r.mode for r in rows} == {"walk", "ebike"}
    # Where the graph reaches the street, the workstation is on a junction of both networks.
    ours = [r for r in rows if r.street_code == STREET]
    for r in ours:
        for net in nets.values():
            d = haversine_m(r.lon, r.lat, net.node_lon, net.node_lat).min()
            assert d < 1.0
    assert load_demo_roster(session, district_code=DISTRICT) == 0  # idempotent


def test_inspectors_api_lists_the_roster(client):
    r = client.get("/api/inspectors", params={"street": STREET})
    assert r.status_code == 200
    items = r.json()["inspectors"]
    assert [i["code"] for i in items] == [EBIKE, WALK]
    walk = items[1]
    assert walk["mode"] == "walk" and walk["allowed_grids"] and walk["lunch"]["minutes"] == 60
    assert items[0]["allowed_grids"] is None and items[0]["shift_start"] == "08:30"


# --- candidates -------------------------------------------------------------------------------


def test_candidates_overdue_sites_and_reinspections(session, nets):
    sc = scenario(session, nets, n_sites=6)
    day = today_cn() + timedelta(days=1)
    roster = list_inspectors(session, street=STREET)
    items = {c["site"]: c for c in rp.candidates(session, day=day, street=STREET,
                                                 inspectors=roster)}
    for k, p in enumerate(sc["projects"]):
        c = items[f"project:{p.id}"]
        high = k % 3 == 0
        due = 3 if high else 7
        # Started 30 days before today: 31 days before the plan's day.
        assert c["overdue_days"] == 31 - due
        assert c["mandatory"] is (high or k == 1)
        assert c["value"] == pytest.approx((31 - due) * (7 / 3 if high else 1.0), abs=1e-3)
        service = 20 + (10 if high else 0) + (10 if k == 1 else 0)
        assert c["service_min"] == service
        # Residential fit-out: start between 08:00 and 18:00 minus the inspection.
        assert c["window"] == ["08:00", rp.hhmm(18 * 3600 - service * 60)]
        assert EBIKE in c["eligible"]
    merged = items[f"project:{sc['projects'][1].id}"]
    assert merged["hazard_ids"] == [sc["merged"].id] and merged["kind"] == "patrol+reinspection"
    alone = items[f"hazard:{sc['alone'].id}"]
    assert alone["mandatory"] and alone["kind"] == "reinspection" and alone["service_min"] == 15
    # A hazard whose deadline is still ahead is not a candidate; a verified one neither.
    later = hazards.report_hazard(session, actor="t", hazard_type="fire", severity="major",
                                  project=sc["projects"][2].id, found_on=today_cn())
    again = rp.candidates(session, day=day, street=STREET, inspectors=roster)
    assert later.id not in {h for c in again for h in c["hazard_ids"]}
    # Another street's sites are not candidates of this one.
    assert all(c["street_code"] == STREET for c in again)


# --- a planned day --------------------------------------------------------------------------


def _check_day(session, data, nets):
    """Every promise of a stored day plan, re-checked independently."""
    inputs = data["inputs"]
    cand = {c["site"]: c for c in inputs["sites"]}
    served = [s["site"] for r in data["routes"] for s in r["stops"]]
    left = [lo["site"] for lo in data["left_out"]]
    assert len(served) == len(set(served))
    assert sorted(served + left) == sorted(cand)  # each candidate served or explained, once
    for lo in data["left_out"]:
        assert lo["reason"] in REASONS and lo["reason_zh"] and lo["detail"]
        if cand[lo["site"]]["mandatory"]:
            assert lo["reason"] == "mandatory_infeasible"
    assert data["summary"]["mandatory_served"] + sum(
        1 for lo in data["left_out"] if lo["mandatory"]) == data["summary"]["mandatory_total"]
    roster = {row.code: row for row in session.query(Inspector).filter(
        Inspector.code.in_([r["inspector"] for r in data["routes"]]))}
    for r in data["routes"]:
        insp = roster[r["inspector"]]
        assert r["colour"].startswith("#") and len(r["colour"]) == 7
        if not r["stops"]:
            continue
        # Each stop lies in the inspector's area, by the project's own grid in the database.
        for s in r["stops"]:
            if s["site"].startswith("project:"):
                grid, street = session.execute(text(
                    "SELECT grid_code, street_code FROM projects WHERE id = :i"),
                    {"i": int(s["site"].split(":")[1])}).one()
            else:
                grid, street = session.execute(text(
                    "SELECT grid_code, street_code FROM hazards WHERE id = :i"),
                    {"i": int(s["site"].split(":")[1])}).one()
            if insp.allowed_grids is None:
                assert street == insp.street_code
            else:
                assert grid in insp.allowed_grids
        # Times: monotonic, within the shift, never faster than the crow flies.
        shift0, shift1 = _minutes(insp.shift_start.strftime("%H:%M")), _minutes(
            insp.shift_end.strftime("%H:%M"))
        t = _minutes(r["depart"])
        assert t >= shift0
        speed = {"walk": 4.5, "ebike": 15.0, "car": 25.0}[r["mode"]] / 3.6
        prev = r["start"]
        for s in r["stops"]:
            eta, start, leave = _minutes(s["eta"]), _minutes(s["start"]), _minutes(s["depart"])
            assert t - 1 <= eta <= start <= leave <= shift1
            assert leave - start >= cand[s["site"]]["service_min"] - 1
            crow = float(haversine_m(prev[0], prev[1], s["lon"], s["lat"]))
            assert s["travel_min"] * 60 >= crow / speed - 30
            t, prev = leave, (s["lon"], s["lat"])
        assert _minutes(r["return"]) <= shift1
        if r["break"]:
            b0, b1 = _minutes(r["break"]["start"]), _minutes(r["break"]["end"])
            assert b1 - b0 == 60 and 12 * 60 <= b0 <= 13 * 60 + 30
            assert all(b1 <= _minutes(s["start"]) + 1 or b0 >= _minutes(s["depart"]) - 1
                       for s in r["stops"])
        # The line starts at the inspector's start and passes through every stop.
        line = shapely.LineString(r["geometry"]["coordinates"])
        first = line.coords[0]
        assert float(haversine_m(first[0], first[1], *r["start"])) < 1.0
        metric = shapely.transform(line, lambda c: np.column_stack(TO_M.transform(
            c[:, 0], c[:, 1])))
        for s in r["stops"]:
            p = shapely.Point(*TO_M.transform(s["lon"], s["lat"]))
            assert metric.distance(p) < 3.0
        # Along the roads: at least as long as the straight lines between its points.
        pts = [r["start"], *[(s["lon"], s["lat"]) for s in r["stops"]], r["end"]]
        crow = sum(float(haversine_m(*a, *b)) for a, b in zip(pts[:-1], pts[1:], strict=True))
        assert metric.length >= crow - 1.0
    assert inputs["solver"]["deadline_s"] <= 3


def test_plan_a_day_through_the_api(client, session, nets):
    sc = scenario(session, nets)
    data = _plan(client, deadline_s=3)
    data = client.get(f"/api/plans/{data['id']}", params={"include_inputs": True}).json()
    assert data["version"] == 1 and data["status"] == "draft" and data["kind"] == "day"
    assert data["date"] == (today_cn() + timedelta(days=1)).isoformat()
    assert data["matrix_source"] == "roads+straight_line"  # one site is far from the roads
    assert "straight-line" in data["matrix_note"]
    _check_day(session, data, nets)
    served = {s["site"] for r in data["routes"] for s in r["stops"]}
    mandatory = {f"project:{p.id}" for k, p in enumerate(sc["projects"]) if k % 3 == 0 or k == 1}
    assert mandatory | {f"hazard:{sc['alone'].id}"} <= served
    # The far site is served on an estimated leg, and says so.
    off = f"project:{sc['off'].id}"
    if off in served:
        stop = next(s for r in data["routes"] for s in r["stops"] if s["site"] == off)
        assert stop["estimated"]
    assert data["summary"]["timings"]["planner_s"] <= 3.1  # the deadline holds
    # Navigation links: AMap marker URIs in WGS84.
    stop = data["routes"][0]["stops"][0]
    assert stop["nav_url"].startswith("https://uri.amap.com/marker?position=")
    assert "coordinate=wgs84" in stop["nav_url"]
    assert f"{stop['lon']:.6f},{stop['lat']:.6f}" in stop["nav_url"]
    listed = client.get("/api/plans", params={"street": STREET}).json()["plans"]
    assert listed[0]["id"] == data["id"]
    audit = session.execute(text(
        "SELECT action FROM audit_log WHERE entity = 'route_plan' AND entity_id = :i"),
        {"i": str(data["id"])}).scalars().all()
    assert audit == ["plan_day"]


def test_strict_roads_leave_the_far_site_out_with_a_reason(client, session, nets):
    sc = scenario(session, nets, n_sites=4)
    data = _plan(client, matrix="roads", deadline_s=1)
    off = f"project:{sc['off'].id}"
    lo = next(x for x in data["left_out"] if x["site"] == off)
    assert lo["reason"] == "unreachable" and lo["constraint"] == "reachability"
    assert "250 m" in lo["detail"] and lo["reason_zh"]
    assert data["matrix_source"] == "roads"


def test_replan_makes_a_new_version_and_honours_a_pin(client, session, nets):
    scenario(session, nets, n_sites=8, off_road=False)
    first = _plan(client, deadline_s=1.5)
    walk_grids = set(session.scalar(text(
        "SELECT allowed_grids FROM inspectors WHERE code = :c"), {"c": WALK}))
    cand_grid = {}
    for r in first["routes"]:
        for s in r["stops"]:
            if s["site"].startswith("project:"):
                cand_grid[s["site"]] = (r["inspector"], session.scalar(text(
                    "SELECT grid_code FROM projects WHERE id = :i"),
                    {"i": int(s["site"].split(":")[1])}))
    # Move a stop to the other inspector, who may visit it.
    site, (owner, _grid) = next(
        (k, v) for k, v in cand_grid.items() if v[0] == WALK or v[1] in walk_grids)
    target = EBIKE if owner == WALK else WALK
    r = client.post(f"/api/plans/{first['id']}/replan",
                    json={"pins": {site: target}, "deadline_s": 1.5})
    assert r.status_code == 201, r.text
    second = r.json()
    assert second["version"] == 2 and second["parent_id"] == first["id"]
    assert second["root_id"] == first["id"] and second["pins"] == {site: target}
    route = next(x for x in second["routes"] if x["inspector"] == target)
    assert site in [s["site"] for s in route["stops"]]
    # Version 1 is unchanged; a re-plan of version 2 is version 3 of the same lineage.
    again = client.get(f"/api/plans/{first['id']}").json()
    assert [[s["site"] for s in x["stops"]] for x in again["routes"]] == [
        [s["site"] for s in x["stops"]] for x in first["routes"]]
    third = client.post(f"/api/plans/{second['id']}/replan", json={"deadline_s": 1}).json()
    assert third["version"] == 3 and third["root_id"] == first["id"]
    assert third["pins"] == {site: target}  # kept from the parent
    issued = client.post(f"/api/plans/{third['id']}/issue", json={})
    assert issued.status_code == 200 and issued.json()["status"] == "issued"
    assert client.post(f"/api/plans/{third['id']}/issue", json={}).status_code == 422


def test_contradictory_pins_and_bad_input_are_clear_422s(client, session, nets):
    sc = scenario(session, nets, n_sites=6, off_road=False)
    plan = _plan(client, deadline_s=1)
    walk_grids = set(session.scalar(text(
        "SELECT allowed_grids FROM inspectors WHERE code = :c"), {"c": WALK}))
    sites = [f"project:{p.id}" for p in sc["projects"]]
    outside = next(
        (f"project:{p.id}" for p in sc["projects"] if p.grid_code not in walk_grids), None)

    def replan(**body):
        r = client.post(f"/api/plans/{plan['id']}/replan", json={"deadline_s": 1, **body})
        assert r.status_code == 422, r.text
        (err,) = r.json()["detail"]
        return err["loc"][-1], err["msg"]

    assert replan(pins={sites[0]: "NOBODY"}) == (
        "pins", f"pins: site {sites[0]} is pinned to unknown inspector NOBODY")
    field, msg = replan(pins={"project:999999999": EBIKE})
    assert field == "pins" and "not a candidate" in msg
    if outside is not None:
        field, msg = replan(pins={outside: WALK})
        assert field == "pins" and "area excludes it" in msg
    field, msg = replan(fixed_orders={EBIKE: [sites[0]], WALK: [sites[0]]})
    assert field == "fixed_orders" and "both" in msg
    field, msg = replan(pins={sites[0]: WALK}, fixed_orders={EBIKE: [sites[0]]})
    assert field in ("fixed_orders", "pins")
    # A fixed order longer than the shift: an inspector on a 30-minute shift.
    lon, lat, _ = sc["points"][0]
    session.add(Inspector(
        code="T-SHORT", name="短班", district_code=DISTRICT, street_code=STREET,
        community_code=sc["projects"][0].community_code,
        start_point=f"SRID=4326;POINT({lon} {lat})", mode="walk",
        shift_start=time(8, 30), shift_end=time(8, 40), source="test"))
    session.commit()
    r = client.post("/api/plans", json={
        "street": STREET, "deadline_s": 1, "inspectors": ["T-SHORT", EBIKE],
        "fixed_orders": {"T-SHORT": sites[:4]}})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][-1] == "fixed_orders"
    assert "cannot be kept" in r.json()["detail"][0]["msg"]
    # Unknown inspectors, an unknown street: 422 naming the field.
    r = client.post("/api/plans", json={"street": STREET, "inspectors": ["NOBODY"]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "inspectors"
    r = client.post("/api/plans", json={"street": "440304999000"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "street"
    # A shift that reaches nothing is not a crash: an empty route that says why, and every
    # site left out with a reason.
    r = client.post("/api/plans", json={"street": STREET, "deadline_s": 1,
                                        "inspectors": ["T-SHORT"]})
    assert r.status_code == 201, r.text
    data = r.json()
    (route,) = data["routes"]
    assert route["stops"] == [] and "cannot reach any" in route["note"]
    assert data["left_out"] and all(lo["reason"] in REASONS for lo in data["left_out"])
    assert client.get("/api/plans/999999999").status_code == 404


def test_exports_geojson_and_gpx(client, session, nets, tmp_path):
    scenario(session, nets, n_sites=6)
    plan = _plan(client, deadline_s=1)
    gj = client.get(f"/api/plans/{plan['id']}.geojson")
    assert gj.status_code == 200 and gj.headers["content-type"].startswith(
        "application/geo+json")
    fc = gj.json()
    assert fc["type"] == "FeatureCollection" and fc["plan"]["matrix_source"]
    kinds = {}
    for f in fc["features"]:
        kinds.setdefault(f["properties"]["kind"], []).append(f)
    routes = [r for r in plan["routes"] if r["stops"]]
    assert len(kinds["route"]) == len(routes)
    assert all(f["geometry"]["type"] == "LineString" and f["properties"]["colour"]
               for f in kinds["route"])
    assert len(kinds["stop"]) == sum(len(r["stops"]) for r in routes)
    for f in kinds["stop"]:
        assert f["geometry"]["type"] == "Point" and f["properties"]["seq"] >= 1
        assert len(f["properties"]["eta"]) == 5
    for f in kinds.get("left_out", []):
        assert f["properties"]["reason_zh"] and f["properties"]["reason"] in REASONS
    gpx = client.get(f"/api/plans/{plan['id']}.gpx")
    assert gpx.status_code == 200 and "gpx" in gpx.headers["content-type"]
    root = ET.fromstring(gpx.content)
    assert root.tag == f"{GPX}gpx" and root.get("version") == "1.1" and root.get("creator")
    order = [child.tag.removeprefix(GPX) for child in root]
    assert order == sorted(order, key=["metadata", "wpt", "rte", "trk", "extensions"].index)
    rtes = root.findall(f"{GPX}rte")
    assert len(rtes) == len(routes)
    for rte, r in zip(rtes, routes, strict=True):
        pts = rte.findall(f"{GPX}rtept")
        assert len(pts) == len(r["stops"])
        for pt, s in zip(pts, r["stops"], strict=True):
            assert float(pt.get("lon")) == pytest.approx(s["lon"], abs=1e-6)
            assert float(pt.get("lat")) == pytest.approx(s["lat"], abs=1e-6)
            assert pt.find(f"{GPX}name").text.startswith(f"{s['seq']}.")
            # Child order of a GPX 1.1 waypoint: name, desc, link, type.
            assert [c.tag.removeprefix(GPX) for c in pt] == ["name", "desc", "link", "type"]
    assert len(root.findall(f"{GPX}trk/{GPX}trkseg")) == len(routes)
    # GDAL's GPX driver (an independent reader) finds the same routes and points.
    import pyogrio

    path = tmp_path / "plan.gpx"
    path.write_bytes(gpx.content)
    pts = pyogrio.read_dataframe(path, layer="route_points")
    assert len(pts) == sum(len(r["stops"]) for r in routes)
    assert len(pyogrio.read_dataframe(path, layer="tracks")) == len(routes)


def test_stored_inputs_reproduce_the_candidate_set(client, session, nets):
    scenario(session, nets, n_sites=6)
    plan = _plan(client, deadline_s=1)
    data = client.get(f"/api/plans/{plan['id']}", params={"include_inputs": True}).json()
    inputs = data["inputs"]
    day = date.fromisoformat(inputs["date"])
    again = rp.candidates(session, day=day, district=inputs["district_code"],
                          street=inputs["street_code"], inspectors=inputs["inspectors"])
    assert {c["site"] for c in again} == {c["site"] for c in inputs["sites"]}
    assert [i["code"] for i in inputs["inspectors"]] == [EBIKE, WALK]
    # Solving the stored inputs again (no database) plans the same candidates.
    solved = rp.solve({**inputs, "inspectors": [dict(i) for i in inputs["inspectors"]]})
    day0 = solved.days[0]
    planned = {s["site"] for r in day0["routes"] for s in r["stops"]} | {
        lo["site"] for lo in day0["left_out"]}
    assert planned == {c["site"] for c in inputs["sites"]}


def test_week_plan_spreads_visits_over_days_and_inspectors(client, session, nets):
    sc = scenario(session, nets, n_sites=6, off_road=False)
    r = client.post("/api/plans/week", json={"street": STREET, "days": 3, "deadline_s": 0.5})
    assert r.status_code == 201, r.text
    data = r.json()
    assert data["kind"] == "week" and data["days"] == 3
    assert {x["day_index"] for x in data["routes"]} == {0, 1, 2}
    week = data["summary"]["week"]
    assert week["visits_made"] > 0
    if not week["missed"]:
        assert week["visits_made"] == week["visits_required"]
    assert set(week["inspector_load_min"]) == {EBIKE, WALK}
    visits: dict[str, list[int]] = {}
    for x in data["routes"]:
        for s in x["stops"]:
            visits.setdefault(s["site"], []).append(x["day_index"])
    for k, p in enumerate(sc["projects"]):
        days = visits.get(f"project:{p.id}")
        # Overdue now: due on day 0 (a high-risk visit is mandatory that day); once a week.
        if k % 3 == 0:
            assert days == [0]
        elif days is not None:
            assert len(days) == 1


# --- workload balance (gis.routing) ---------------------------------------------------------


def test_balance_evens_out_inspectors_without_losing_sites():
    T = line_matrix(13, minutes_apart=5)
    insp = [PlanInspector("a", 0, 8 * H, 17 * H), PlanInspector("b", 12, 8 * H, 17 * H)]
    sites = [Site(f"s{i}", i, 1800, value=1) for i in range(1, 8)]
    plain = plan_day(insp, sites, T, deadline_s=1)
    fair = plan_day(insp, sites, T, deadline_s=1, balance=1.0)
    for p in (plain, fair):
        check_plan(p, insp, sites, T)
        assert p.served_site_ids == {s.id for s in sites}

    def loads(p):
        return [r.travel_s + r.service_s for r in p.routes]

    assert max(loads(plain)) - min(loads(plain)) >= 3 * H  # travel-minimal: one does it all
    assert fair.balance is not None and fair.balance.moves > 0
    assert max(loads(fair)) - min(loads(fair)) <= 0.5 * H
    assert fair.balance.spread_after_s == pytest.approx(max(loads(fair)) - min(loads(fair)))
    # The extra travel stays within the trade asked for (1 s per second taken off).
    gain = max(loads(plain)) - max(loads(fair))
    assert 0 < fair.travel_s - plain.travel_s <= gain


def test_week_balance_across_inspectors():
    T = line_matrix(9, minutes_apart=4)
    insp = [PlanInspector("a", 0, 9 * H, 17 * H), PlanInspector("b", 8, 9 * H, 17 * H)]
    # Sites nearer a's office: a travel-minimal week gives a every visit, day after day.
    sites = [PeriodicSite(Site(f"s{i}", 1 + i % 5, 1800, value=1), days_since_visit=1 + i % 7)
             for i in range(20)]
    plain = plan_week(insp, sites, T, days=5, deadline_s=0.3, balance=None)
    fair = plan_week(insp, sites, T, days=5, deadline_s=0.3, balance=1.0)
    assert fair.visits_made == plain.visits_made == fair.visits_required

    def spread(w):
        return max(w.inspector_load_s.values()) - min(w.inspector_load_s.values())

    assert spread(plain) > 8 * H
    assert spread(fair) < 0.2 * spread(plain)
    # Extra travel (over the week) at most the load taken off the busiest inspector.
    extra = sum(p.travel_s for p in fair.days) - sum(p.travel_s for p in plain.days)
    gain = max(plain.inspector_load_s.values()) - max(fair.inspector_load_s.values())
    assert 0 < extra <= gain
    for day_plan, ids in zip(fair.days, fair.assigned, strict=True):
        check_plan(day_plan, insp, [s.site for s in sites if s.site.id in ids], T)


def test_an_infeasible_search_result_is_repaired(caplog):
    # Valuable sites and a max_stops cap: the prizes outweigh PyVRP's capped penalty for one
    # stop too many, so the search ends infeasible; its routes are trimmed, not thrown away.
    T = line_matrix(12, minutes_apart=10)
    insp = [PlanInspector("a", 0, 8 * H, 17 * H, max_stops=3),
            PlanInspector("b", 11, 8 * H, 10 * H)]
    sites = [Site(f"s{i}", i, 900, value=30 + i) for i in range(1, 11)]
    with caplog.at_level(logging.INFO, logger="gis.routing"):
        plan = plan_day(insp, sites, T, deadline_s=1.5)
    assert any("repaired" in m for m in caplog.messages)
    check_plan(plan, insp, sites, T)
    assert len(plan.route_of("a").stops) == 3
    # b's two hours reach three sites; a takes the three most valuable of the rest.
    assert plan.served_site_ids == {f"s{i}" for i in range(5, 11)}


# --- access ---------------------------------------------------------------------------------


def test_a_street_account_plans_its_own_street_only(client, client_as, session, nets):
    scenario(session, nets, n_sites=4, off_road=False)
    mine = _plan(client, deadline_s=1)
    other = client_as("dispatcher", "440304001000")
    assert other.get(f"/api/plans/{mine['id']}").status_code == 404
    assert other.get(f"/api/plans/{mine['id']}.gpx").status_code == 404
    assert other.post("/api/plans", json={"street": STREET}).status_code == 403
    assert mine["id"] not in {p["id"] for p in other.get("/api/plans").json()["plans"]}
    local = client_as("dispatcher", STREET)
    assert local.get(f"/api/plans/{mine['id']}").status_code == 200
    assert client_as("grid_worker", sc_grid(session)).post(
        "/api/plans", json={"street": STREET}).status_code == 403


def sc_grid(session) -> str:
    return session.scalar(text(
        """SELECT g.code FROM grids g JOIN communities c ON c.code = g.parent_code
           WHERE g.valid_to IS NULL AND c.parent_code = :s ORDER BY g.code LIMIT 1"""),
        {"s": STREET})


# --- CLI ------------------------------------------------------------------------------------


def test_cli_candidates_make_show_export(cli, engine, nets, tmp_path):
    from sqlalchemy.orm import Session

    with Session(engine) as s:
        before = s.scalar(text("SELECT coalesce(max(id), 0) FROM route_plans"))
        sc = scenario(s, nets, n_sites=5, off_road=False)
        ids = [p.id for p in sc["projects"]]
        hazard_ids = [sc["merged"].id, sc["alone"].id]
    try:
        r = cli("plans", "candidates", "--date", "tomorrow", "--street", STREET)
        assert r.exit_code == 0, r.output
        assert f"project:{ids[0]}" in r.output
        r = cli("plans", "make", "--date", "tomorrow", "--street", STREET, "--deadline", "1")
        assert r.exit_code == 0, r.output
        assert EBIKE in r.output and "ETA" in r.output and "solving" in r.output
        with Session(engine) as s:
            plan_id = s.scalar(text("SELECT max(id) FROM route_plans"))
        assert plan_id > before
        r = cli("plans", "show", plan_id)
        assert r.exit_code == 0 and f"plan {plan_id} v1" in r.output
        out = tmp_path / "p.gpx"
        r = cli("plans", "export", plan_id, "--format", "gpx", "-o", out)
        assert r.exit_code == 0, r.output
        assert ET.parse(out).getroot().tag == f"{GPX}gpx"
        out = tmp_path / "p.geojson"
        assert cli("plans", "export", plan_id, "-o", out).exit_code == 0
        assert '"FeatureCollection"' in out.read_text(encoding="utf-8")
        r = cli("plans", "make", "--street", STREET, "--pin", "project:1=NOBODY")
        assert r.exit_code == 2 and "pins:" in r.output
        r = cli("inspectors", "list", "--street", STREET)
        assert r.exit_code == 0 and WALK in r.output
        assert cli("plans", "show", 999999999).exit_code == 1
    finally:
        with Session(engine) as s:
            plans = s.scalars(text("SELECT id FROM route_plans WHERE id > :b"),
                              {"b": before}).all()
            for table in ("route_plan_stops", "route_plan_left_out", "route_plan_routes"):
                s.execute(text(f"DELETE FROM {table} WHERE plan_id = ANY(:p)"), {"p": plans})
            s.execute(text("UPDATE route_plans SET root_id = NULL, parent_id = NULL "
                           "WHERE id = ANY(:p)"), {"p": plans})
            s.execute(text("DELETE FROM route_plans WHERE id = ANY(:p)"), {"p": plans})
            s.execute(text("DELETE FROM hazards WHERE id = ANY(:h)"), {"h": hazard_ids})
            # Projects are never deleted: close them, so that no later test plans them.
            s.execute(text("UPDATE projects SET state = 'closed', closed_on = current_date "
                           "WHERE id = ANY(:i)"), {"i": ids})
            s.commit()
