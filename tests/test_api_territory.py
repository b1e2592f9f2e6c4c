"""The territory and jurisdiction API: GeoJSON out, clear errors in, nothing half-written."""

from __future__ import annotations

import json

import shapely
from shapely.geometry import shape

from app.services import territory


def test_level_is_served_as_geojson(client):
    r = client.get("/api/territory/street")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    fc = r.json()
    assert fc["type"] == "FeatureCollection"
    assert 8 <= len(fc["features"]) <= 15
    props = fc["features"][0]["properties"]
    assert props["level"] == "street" and len(props["code"]) == 12
    # RFC 7946: lon/lat order, at most 6 decimals.
    x, y = fc["features"][0]["geometry"]["coordinates"][0][0][0]
    assert 113.7 < x < 114.3 and 22.4 < y < 22.7
    assert len(str(x).split(".")[1]) <= 6


def test_bbox_filters_and_bad_bbox_says_why(client):
    all_grids = client.get("/api/territory/grid").json()["features"]
    some = client.get("/api/territory/grid", params={"bbox": "114.02,22.52,114.04,22.54"}).json()
    assert 0 < len(some["features"]) < len(all_grids)
    r = client.get("/api/territory/grid", params={"bbox": "114.04,22.52,114.02"})
    assert r.status_code == 422
    assert "bbox" in r.text


def test_unit_and_history(client, session):
    code = territory.current_units(session, "community")["code"].iloc[0]
    r = client.get(f"/api/territory/community/{code}")
    assert r.status_code == 200 and r.json()["id"] == code
    h = client.get(f"/api/territory/community/{code}/history").json()
    assert h["versions"][0]["valid_to"] is None
    assert client.get("/api/territory/community/440304999999").status_code == 404


def test_jurisdiction_of_a_point_and_of_a_gcj02_point(client, session):
    grid = territory.current_units(session, "grid").iloc[5]
    p = grid.geometry.representative_point()
    r = client.get("/api/jurisdiction", params={"lon": p.x, "lat": p.y})
    assert r.status_code == 200
    body = r.json()
    assert body["grid"]["code"] == grid["code"] and body["outside"] is False
    from gis.gcj02 import wgs84_to_gcj02

    gx, gy = wgs84_to_gcj02(p.x, p.y)
    r2 = client.get(
        "/api/jurisdiction", params={"lon": float(gx), "lat": float(gy), "crs": "gcj02"}
    )
    assert r2.json()["grid"]["code"] == grid["code"]


def test_jurisdiction_bad_input(client):
    r = client.get("/api/jurisdiction", params={"lon": "east", "lat": 22.5})
    assert r.status_code == 422 and "lon" in json.dumps(r.json())
    r = client.get("/api/jurisdiction", params={"lon": 400, "lat": 22.5})
    assert r.status_code == 422
    bowtie = {
        "type": "Polygon",
        "coordinates": [[[114, 22.5], [114.01, 22.51], [114.01, 22.5], [114, 22.51], [114, 22.5]]],
    }
    r = client.post("/api/jurisdiction", json=bowtie)
    assert r.status_code == 422 and "geometry" in r.text
    r = client.post("/api/jurisdiction/bulk", json={"lon": [114.0, 114.1], "lat": [22.5]})
    assert r.status_code == 422 and "lat" in r.text


def test_bulk_jurisdiction(client, session):
    grids = territory.current_units(session, "grid").head(20)
    pts = [g.representative_point() for g in grids.geometry]
    r = client.post(
        "/api/jurisdiction/bulk",
        json={"lon": [p.x for p in pts] + [113.5], "lat": [p.y for p in pts] + [22.0]},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["grid_codes"][:-1] == list(grids["code"])
    assert body["grid_codes"][-1] is None and body["outside"] == 1


def test_import_refused_over_the_api_returns_the_report_and_writes_nothing(client, session):
    streets = territory.current_units(session, "street")
    moved = streets.copy()
    # Shift one street by ~300 m: it now overlaps its neighbour and leaves a gap.
    moved.loc[0, "geometry"] = shapely.affinity.translate(moved.geometry.iloc[0], xoff=0.003)
    before = territory.level_counts(session)
    r = client.post(
        "/api/boundaries/import",
        files={"file": ("streets.geojson", moved.to_json(), "application/geo+json")},
        data={"level": "street"},
    )
    assert r.status_code == 422
    body = r.json()
    assert body["report"]["counts"].get("overlap", 0) + body["report"]["counts"].get("gap", 0) >= 1
    problems = body["report"]["problems"]["features"]
    assert problems and shape(problems[0]["geometry"]).is_valid
    assert territory.level_counts(session) == before


def test_validate_endpoint_and_clear_file_errors(client, session):
    streets = territory.current_units(session, "street")
    r = client.post(
        "/api/boundaries/validate",
        files={"file": ("streets.geojson", streets.to_json(), "application/geo+json")},
        data={"level": "street"},
    )
    assert r.status_code == 200 and r.json()["ok"] is True
    r = client.post(
        "/api/boundaries/validate",
        files={"file": ("streets.geojson", b"{not json", "application/geo+json")},
        data={"level": "street"},
    )
    assert r.status_code == 422
    assert "could not be read" in r.json()["detail"][0]["msg"]


def test_health(client):
    r = client.get("/health")
    assert r.status_code == 200 and r.json()["territory"]["grid"] > 0


def test_zipped_shapefile_upload_is_read(client, session, tmp_path):
    import zipfile

    streets = territory.current_units(session, "street").rename(columns={"parent_code": "parent"})
    shp = tmp_path / "streets.shp"  # Shapefile field names have at most 10 characters
    streets.to_file(shp, driver="ESRI Shapefile", encoding="utf-8")
    archive = tmp_path / "streets.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for part in tmp_path.glob("streets.*"):
            if part.suffix != ".zip":
                z.write(part, part.name)
    r = client.post(
        "/api/boundaries/validate",
        files={"file": ("streets.zip", archive.read_bytes(), "application/zip")},
        data={"level": "street", "parent_field": "parent"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["features"] == len(streets)
