"""Open311 GeoReport v2: anyone reports, the report is routed to its grid as a lead for that
grid's workers, the public sees public fields only, photos are checked by content, and filing
is rate-limited per address."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import text

from tests.test_patrols import grid_points

BASE = "/open311/v2"


def _image(fmt: str = "PNG", size=(16, 12)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buf, format=fmt)
    return buf.getvalue()


def _grid_of(session, lon, lat) -> str:
    """The grid covering the point (smallest code on a shared edge), asked of PostGIS here."""
    return session.scalar(text(
        """SELECT code FROM grids WHERE valid_to IS NULL
           AND ST_Covers(geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326))
           ORDER BY code COLLATE "C" LIMIT 1"""), {"x": lon, "y": lat})


def _post(c, lon, lat, *, code="unregistered_works", files=None, **extra):
    data = {"service_code": code, "lat": str(lat), "long": str(lon), **extra}
    return c.post(f"{BASE}/requests.json", data=data, files=files)


@pytest.fixture
def place(session):
    (a, b) = grid_points(session, 2, offset=40)
    return {"a": a, "b": b, "grid_a": _grid_of(session, *a), "grid_b": _grid_of(session, *b)}


def test_services_list(client_as):
    r = client_as(None).get(f"{BASE}/services.json")
    assert r.status_code == 200
    services = r.json()
    codes = {s["service_code"] for s in services}
    assert {"unregistered_works", "unsafe_work_at_height", "construction_debris",
            "other"} <= codes
    for s in services:
        assert set(s) >= {"service_code", "service_name", "description", "metadata", "type",
                          "keywords", "group"}
        assert s["metadata"] is False and s["type"] == "realtime"


def test_an_anonymous_report_becomes_a_lead_for_the_grid_workers_of_its_grid(
        client_as, session, place):
    anon = client_as(None)
    photo = _image()
    r = _post(anon, *place["a"], description="楼上在拆墙，没有公示牌 13912345678",
              email="someone@example.org",
              files={"media": ("p.png", photo, "image/png")})
    assert r.status_code == 201, r.text
    (answer,) = r.json()
    rid = int(answer["service_request_id"])
    assert answer["service_notice"]
    row = session.execute(text(
        """SELECT r.grid_code, r.lead_id, r.contact, w.channel, w.grid_code AS lead_grid,
                  w.state, w.photos FROM service_requests r
           JOIN unregistered_works w ON w.id = r.lead_id WHERE r.id = :i"""),
        {"i": rid}).one()
    assert row.grid_code == row.lead_grid == place["grid_a"]
    assert row.channel == "public" and row.state in ("lead", "matched")
    assert row.contact == {"email": "someone@example.org"}
    assert row.photos == [f"{BASE}/requests/{rid}/media"]
    # The grid's worker sees the lead and the photo; a worker of another grid sees neither.
    mine = client_as("grid_worker", place["grid_a"])
    other = client_as("grid_worker", place["grid_b"])
    assert row.lead_id in {f["id"] for f in mine.get("/api/unregistered").json()["features"]}
    assert row.lead_id not in {f["id"] for f in other.get("/api/unregistered").json()["features"]}
    media = mine.get(f"{BASE}/requests/{rid}/media")
    assert media.status_code == 200 and media.content == photo
    assert media.headers["content-type"] == "image/png"
    assert media.headers["x-content-type-options"] == "nosniff"
    assert other.get(f"{BASE}/requests/{rid}/media").status_code == 404
    assert anon.get(f"{BASE}/requests/{rid}/media").status_code == 401
    # The public sees public fields only.
    (public,) = anon.get(f"{BASE}/requests/{rid}.json").json()
    assert public["service_request_id"] == str(rid) and public["status"] == "open"
    assert public["description"] is None and public["media_url"] is None
    assert public["address_id"] == place["grid_a"]
    assert public["lat"] == round(place["a"][1], 3) and public["long"] == round(place["a"][0], 3)
    listing = anon.get(f"{BASE}/requests.json").json()
    assert str(rid) in {x["service_request_id"] for x in listing}
    text_of_listing = str(listing)
    assert "13912345678" not in text_of_listing and "someone@example.org" not in text_of_listing
    assert anon.get(f"{BASE}/requests/999999999.json").status_code == 404


def test_closing_the_lead_closes_the_request(client_as, session, place):
    anon = client_as(None)
    r = _post(anon, *place["a"], code="construction_debris")
    rid = r.json()[0]["service_request_id"]
    lead = session.scalar(text("SELECT lead_id FROM service_requests WHERE id = :i"),
                          {"i": int(rid)})
    worker = client_as("grid_worker", place["grid_a"])
    m = worker.post(f"/api/unregistered/{lead}/transitions",
                    json={"action": "dismiss", "reason": "已清运", "actor": "x"})
    assert m.status_code == 200, m.text
    (public,) = anon.get(f"{BASE}/requests/{rid}.json").json()
    assert public["status"] == "closed" and public["status_notes"]
    closed = anon.get(f"{BASE}/requests.json", params={"status": "closed"}).json()
    assert rid in {x["service_request_id"] for x in closed}
    assert rid not in {x["service_request_id"] for x in anon.get(
        f"{BASE}/requests.json", params={"status": "open"}).json()}


def test_photos_are_checked_by_content_and_size(client_as, place, monkeypatch):
    anon = client_as(None)
    fake = _post(anon, *place["a"], files={"media": ("p.png", b"<?php echo 1; ?>", "image/png")})
    assert fake.status_code == 422 and fake.json()["detail"][0]["loc"][-1] == "media"
    gif = io.BytesIO()
    from PIL import Image

    Image.new("P", (4, 4)).save(gif, format="GIF")
    r = _post(anon, *place["a"], files={"media": ("p.gif", gif.getvalue(), "image/gif")})
    assert r.status_code == 422 and "GIF" in r.text
    # A real JPEG under a misleading name and type is judged by what it is.
    ok = _post(anon, *place["a"], files={"media": ("notes.txt", _image("JPEG"), "text/plain")})
    assert ok.status_code == 201, ok.text
    monkeypatch.setenv("XIAOSAN_OPEN311_MAX_PHOTO_BYTES", "1000")
    big = _post(anon, *place["a"], files={"media": ("big.png", _image("PNG", (400, 400)) +
                                                    b"\0" * 2000, "image/png")})
    assert big.status_code == 413


def test_bad_requests_name_the_field(client_as, place):
    anon = client_as(None)
    r = _post(anon, 113.93, 22.53)  # Nanshan: outside every grid here
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "lat"
    r = _post(anon, *place["a"], code="potholes")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "service_code"
    r = anon.post(f"{BASE}/requests.json", data={"service_code": "other", "lat": "95",
                                                  "long": "114"})
    assert r.status_code == 422


def test_filing_is_rate_limited_per_address(client_as, place, monkeypatch):
    monkeypatch.setenv("XIAOSAN_OPEN311_PER_HOUR", "3")
    anon = client_as(None)
    for _ in range(3):
        assert _post(anon, *place["a"], code="other").status_code == 201
    r = _post(anon, *place["a"], code="other")
    assert r.status_code == 429
    assert 0 < int(r.headers["retry-after"]) <= 3600


def test_a_public_reporter_reports_but_sees_no_staff_data(client_as, session, place):
    reporter = client_as("public_reporter")
    r = _post(reporter, *place["b"], code="unsafe_work_at_height")
    assert r.status_code == 201
    rid = int(r.json()[0]["service_request_id"])
    account = session.scalar(text("SELECT account FROM service_requests WHERE id = :i"),
                             {"i": rid})
    assert account == reporter.user.username
    for url in ("/api/unregistered", "/api/projects", "/api/territory/street",
                f"{BASE}/requests/{rid}/media"):
        assert reporter.get(url).status_code == 403, url
    assert reporter.get(f"{BASE}/requests/{rid}.json").status_code == 200
