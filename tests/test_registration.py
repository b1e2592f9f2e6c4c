"""Registration: checks, decisions and routing, through the API and the service (real PostGIS)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sqlalchemy import func, select, text

from app.models import AuditEntry, Project, SpecialPlace
from app.services import places, registration
from gis.gcj02 import gcj02_to_wgs84, wgs84_to_gcj02

QUIET_SITE_SQL = """
SELECT g.code AS grid, c.code AS community, c.parent_code AS street, ST_X(g.p) AS lon,
       ST_Y(g.p) AS lat
FROM (SELECT code, parent_code, ST_PointOnSurface(geom) AS p FROM grids
      WHERE valid_to IS NULL ORDER BY code) g
JOIN communities c ON c.code = g.parent_code AND c.valid_to IS NULL
WHERE NOT EXISTS (SELECT 1 FROM estates e
                  WHERE ST_DWithin(e.geom::geography, g.p::geography, 150))
  AND NOT EXISTS (SELECT 1 FROM special_places s
                  WHERE ST_DWithin(s.geom::geography, g.p::geography, 300))
ORDER BY g.code OFFSET :k LIMIT 1
"""


def quiet_site(session, k: int = 0):
    """A point inside a grid, away from estates and special places, with its expected chain."""
    return session.execute(text(QUIET_SITE_SQL), {"k": k}).mappings().one()


def declaration(lon: float, lat: float, **over) -> dict:
    body = {
        "kind": "small_project",
        "category": "residential_fitout",
        "title": "住宅室内装修",
        "address": "福田区测试路1号",
        "site": {"type": "Point", "coordinates": [lon, lat]},
        "builder": {"name": "王先生", "contact": "王先生", "phone": "13800138000"},
        "contractor": {"name": "深圳市测试装饰工程有限公司", "phone": "0755-12345678"},
        "investment_cny": 80000,
        "floor_area_m2": 120,
        "planned_start": "2024-09-30",
        "planned_end": "2024-11-15",
        "risk_factors": [],
        "submitted_on": "2024-09-27",
    }
    body.update(over)
    return body


def count_projects(session) -> int:
    return session.scalar(select(func.count()).select_from(Project))


def test_registration_is_routed_to_street_community_grid_reviewer_and_department(
    client, session
):
    site = quiet_site(session)
    r = client.post("/api/projects", json=declaration(site["lon"], site["lat"]))
    assert r.status_code == 201, r.text
    assert r.headers["content-type"].startswith("application/geo+json")
    props = r.json()["properties"]
    assert props["state"] == "submitted"
    assert (props["street_code"], props["community_code"], props["grid_code"]) == (
        site["street"], site["community"], site["grid"])
    assert props["district_code"] == "440304000000"
    assert props["reviewer_kind"] == "community_workstation"
    assert props["reviewer_code"] == site["community"]
    assert props["reviewer_name"].endswith("社区工作站")
    assert props["departments"] == ["housing"]
    assert props["high_risk"] is False and props["special_area"] is False
    # Online on Friday 2024-09-27: Sunday 29 Sept is a working day (调休), 1–7 Oct are holidays.
    assert props["review_due"] == "2024-10-08"
    entries = session.scalars(
        select(AuditEntry).where(AuditEntry.entity_id == props["reg_no"])).all()
    assert [(e.action, e.from_state, e.to_state) for e in entries] == [
        ("submit", None, "submitted")]


def test_high_risk_registration_goes_to_the_street_construction_office(client, session):
    site = quiet_site(session, 1)
    body = declaration(site["lon"], site["lat"], risk_factors=["scaffolding", "hot_work"])
    props = client.post("/api/projects", json=body).json()["properties"]
    assert props["high_risk"] is True
    assert props["reviewer_kind"] == "street_construction_office"
    assert props["reviewer_code"] == site["street"]
    reasons = [r["factor"] for r in props["decision"]["reasons"] if r["rule"] == "high_risk"]
    assert reasons == ["scaffolding"]


def test_sporadic_work_gets_its_industry_departments(client, session):
    site = quiet_site(session, 2)
    body = declaration(site["lon"], site["lat"], kind="sporadic_work", category="ev_charger",
                       investment_cny=6000, floor_area_m2=0)
    props = client.post("/api/projects", json=body).json()["properties"]
    assert props["departments"] == ["development_finance", "power", "emergency"]


def test_above_the_limit_is_refused_with_the_permit_message(client, session):
    site = quiet_site(session, 3)
    at_limit = declaration(site["lon"], site["lat"], investment_cny=1_000_000, floor_area_m2=500)
    r = client.post("/api/projects", json=at_limit)
    assert r.status_code == 201
    props = r.json()["properties"]
    assert props["state"] == "refused" and props["above_limit"] is True
    assert "apply for a construction permit" in props["state_reason"]
    history = client.get(f"/api/projects/{props['reg_no']}/history").json()["history"]
    assert [h["action"] for h in history] == ["submit", "refuse"]
    # One condition alone is not above the limit.
    below = declaration(site["lon"], site["lat"], investment_cny=999_999.99, floor_area_m2=5000)
    assert client.post("/api/projects", json=below).json()["properties"]["state"] == "submitted"


def test_above_limit_reference_project_is_accepted_as_high_risk(client, session):
    site = quiet_site(session, 4)
    body = declaration(site["lon"], site["lat"], investment_cny=2_000_000, floor_area_m2=800,
                       above_limit_reference=True)
    props = client.post("/api/projects", json=body).json()["properties"]
    assert props["state"] == "submitted"
    assert props["high_risk"] is True and props["reviewer_kind"] == "street_construction_office"


def test_forbidden_work_is_refused_with_the_reason(client, session):
    site = quiet_site(session, 5)
    body = declaration(site["lon"], site["lat"], risk_factors=["structural_alteration"])
    props = client.post("/api/projects", json=body).json()["properties"]
    assert props["state"] == "refused"
    assert "load-bearing structure is forbidden" in props["state_reason"]


def test_incomplete_material_is_listed_in_one_answer_and_nothing_is_stored(client, session):
    before = count_projects(session)
    r = client.post("/api/projects", json={"kind": "small_project",
                                           "category": "residential_fitout",
                                           "builder": {"name": "王先生"}})
    assert r.status_code == 422
    fields = {".".join(d["loc"][1:]) for d in r.json()["detail"]}
    assert fields == {"title", "address", "site", "builder.phone", "contractor.name",
                      "contractor.phone", "investment_cny", "floor_area_m2", "planned_start",
                      "planned_end"}
    assert all(d["msg"].split(":")[0] == ".".join(d["loc"][1:]) for d in r.json()["detail"])
    assert count_projects(session) == before


def test_bad_input_is_a_clear_422_with_the_field(client, session):
    site = quiet_site(session)
    before = count_projects(session)
    bowtie = {"type": "Polygon", "coordinates": [[[114.05, 22.54], [114.06, 22.55],
                                                  [114.06, 22.54], [114.05, 22.55],
                                                  [114.05, 22.54]]]}
    cases = {
        "site": declaration(0, 0, site=bowtie),
        "planned_end": declaration(site["lon"], site["lat"], planned_end="2024-09-01"),
        "category": declaration(site["lon"], site["lat"], category="air_conditioner"),
        "risk_factors": declaration(site["lon"], site["lat"], risk_factors=["juggling"]),
    }
    for field, body in cases.items():
        r = client.post("/api/projects", json=body)
        assert r.status_code == 422, (field, r.text)
        assert field in [d["loc"][1] for d in r.json()["detail"]], (field, r.text)
    empty = declaration(0, 0, site={"type": "Polygon", "coordinates": []})
    assert client.post("/api/projects", json=empty).status_code == 422
    outside = client.post("/api/projects", json=declaration(116.40, 39.91))  # Beijing
    assert outside.status_code == 422
    assert outside.json()["detail"][0]["loc"] == ["body", "site"]
    assert "outside" in outside.json()["detail"][0]["msg"]
    wrong_type = client.post("/api/projects", json=declaration(
        site["lon"], site["lat"], investment_cny="lots"))
    assert wrong_type.status_code == 422
    assert wrong_type.json()["detail"][0]["loc"][-1] == "investment_cny"
    assert count_projects(session) == before


def test_gcj02_site_is_converted_to_wgs84(client, session):
    site = quiet_site(session, 6)
    glon, glat = (float(v) for v in wgs84_to_gcj02(site["lon"], site["lat"]))
    body = declaration(glon, glat, crs="gcj02")
    feature = client.post("/api/projects", json=body).json()
    lon, lat = feature["geometry"]["coordinates"]
    assert abs(lon - site["lon"]) < 1e-6 and abs(lat - site["lat"]) < 1e-6
    assert feature["properties"]["site_input_crs"] == "gcj02"
    assert feature["properties"]["grid_code"] == site["grid"]


def test_site_in_an_estate_is_reviewed_by_its_property_company(client, session):
    estate = session.execute(text(
        "SELECT id, property_company, ST_X(ST_PointOnSurface(geom)) AS lon, "
        "ST_Y(ST_PointOnSurface(geom)) AS lat FROM estates ORDER BY id LIMIT 1")).one()
    props = client.post("/api/projects", json=declaration(estate.lon, estate.lat)).json()[
        "properties"]
    assert props["reviewer_kind"] == "property_company"
    assert props["reviewer_name"] == estate.property_company
    assert props["decision"]["estate"]["synthetic"] is True


def test_site_near_a_school_is_a_special_closed_area(client, session):
    school = session.execute(text(
        "SELECT name, ST_X(ST_Centroid(geom)) AS lon, ST_Y(ST_Centroid(geom)) AS lat "
        "FROM special_places WHERE kind = 'school' ORDER BY id LIMIT 1")).one()
    # 60 m east of the centre: outside the 80 m square, within 50 m of its edge.
    lon = school.lon + 60 / (111_320 * np.cos(np.radians(school.lat)))
    props = client.post("/api/projects", json=declaration(lon, school.lat)).json()["properties"]
    assert props["special_area"] is True
    assert props["decision"]["special_places"][0]["name"] == school.name
    assert "education_health" in props["departments"]


def test_dry_run_decides_without_storing(client, session):
    site = quiet_site(session)
    before = count_projects(session)
    r = client.post("/api/projects?dry_run=true", json=declaration(site["lon"], site["lat"]))
    assert r.status_code == 200 and r.json()["outcome"] == "submitted"
    assert r.json()["jurisdiction"]["grid"]["code"] == site["grid"]
    assert count_projects(session) == before


def test_real_dongcheng_schools_import_from_gcj02(session, realdata: Path):
    path = realdata / "beijing_dongcheng_caupd" / "dongcheng_poi_education_gcj02.geojson"
    n = places.import_places(session, path=path, district_code="110101000000", crs="gcj02",
                             actor="test")
    assert n == 192
    raw = json.loads(path.read_text(encoding="utf-8"))["features"][0]["geometry"]["coordinates"]
    wlon, wlat = (float(v) for v in gcj02_to_wgs84(*raw))
    found = session.execute(text(
        "SELECT kind, ST_Distance(geom::geography, ST_MakePoint(:x, :y)::geography) AS d "
        "FROM special_places WHERE district_code = '110101000000' "
        "ORDER BY geom <-> ST_SetSRID(ST_MakePoint(:x, :y), 4326) LIMIT 1"),
        {"x": wlon, "y": wlat}).one()
    assert found.kind == "school" and found.d < 0.5
    # The GCJ-02 offset in Beijing is hundreds of metres: unconverted it would be far off.
    shift = session.scalar(text(
        "SELECT ST_Distance(ST_MakePoint(:a, :b)::geography, ST_MakePoint(:x, :y)::geography)"),
        {"a": raw[0], "b": raw[1], "x": wlon, "y": wlat})
    assert shift > 100
    kinds = session.scalars(select(SpecialPlace.kind).where(
        SpecialPlace.district_code == "110101000000").distinct()).all()
    assert kinds == ["school"]


def test_parse_registration_reads_csv_style_rows():
    row = {"kind": "sporadic_work", "category": "air_conditioner", "title": "空调安装",
           "address": "x", "lon": "114.05", "lat": "22.54", "builder_name": "李女士",
           "builder_phone": "13900000000", "contractor_name": "某制冷公司",
           "contractor_phone": "0755-88888888", "investment_cny": "3,000",
           "floor_area_m2": "0", "planned_start": "2024-03-01", "planned_end": "2024-03-01",
           "risk_factors": "work_at_height;hot_work", "public_area": "是"}
    reg = registration.parse_registration(row)
    assert reg.site == {"type": "Point", "coordinates": (114.05, 22.54)}
    assert reg.risk_factors == ["work_at_height", "hot_work"]
    assert reg.public_area is True and str(reg.investment_cny) == "3000"
