"""Request limits: body size (per route), vertex counts, photos by content, page sizes."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image
from sqlalchemy import text

from app import limits
from app.limits import MAX_LIST_LIMIT

# --- body size ------------------------------------------------------------------------------


def _declaration(padding: int) -> bytes:
    return json.dumps({"kind": "small_project", "title": "x" * padding}).encode()


def test_a_body_over_the_limit_is_413_before_it_is_parsed(client, session):
    before = session.scalar(text("SELECT count(*) FROM projects"))
    body = _declaration(1_200_000)
    r = client.post("/api/projects", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text[:200]
    detail = r.json()["detail"][0]
    assert detail["loc"] == ["body", "body"] and "1 MiB" in detail["msg"]
    # Streamed without a Content-Length (chunked): counted as it arrives, refused the same.
    chunks = (body[i:i + 65536] for i in range(0, len(body), 65536))
    r = client.post("/api/projects", content=chunks, headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text[:200]
    assert "Content-Length" not in r.request.headers
    assert session.scalar(text("SELECT count(*) FROM projects")) == before


def test_the_limit_is_configurable_and_upload_routes_take_more(client, monkeypatch):
    monkeypatch.setenv("XIAOSAN_MAX_BODY_BYTES", "2000")
    small = client.post("/api/projects", content=_declaration(1500),
                        headers={"Content-Type": "application/json"})
    assert small.status_code == 422  # under the limit: checked (and refused for its fields)
    big = client.post("/api/projects", content=_declaration(3000),
                      headers={"Content-Type": "application/json"})
    assert big.status_code == 413 and "2,000 bytes" in big.text
    # An offline batch is an upload route: far above the ordinary limit, still read.
    records = [{"client_id": f"c{i}", "inspector_id": "i", "findings": "y" * 900}
               for i in range(40)]
    batch = client.post("/api/patrols/batch", json={"records": records})
    assert batch.status_code == 200, batch.text[:300]
    assert batch.json()["counts"] == {"error": 40}  # no force, no place: refused one by one
    monkeypatch.setenv("XIAOSAN_MAX_UPLOAD_BYTES", "20000")
    batch = client.post("/api/patrols/batch", json={"records": records})
    assert batch.status_code == 413 and "20,000 bytes" in batch.text


def test_nul_characters_in_the_url_are_422_naming_the_parameter(client):
    r = client.get("/api/estates", params={"district": "4403\x00"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", "district"]
    r = client.get("/api/projects/abc%00def")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "path"]


def test_nul_characters_in_a_json_body_are_a_clear_422(client, session):
    before = session.scalar(text("SELECT count(*) FROM calendar_days"))
    r = client.put("/api/calendar/days", json={
        "days": [{"day": "2031-01-02", "is_workday": False, "name": "节\x00日"}],
        "actor": "tests"})
    assert r.status_code == 422, r.text
    assert "NUL" in r.json()["detail"][0]["msg"]
    assert session.scalar(text("SELECT count(*) FROM calendar_days")) == before


# --- vertices -------------------------------------------------------------------------------


def test_vertex_limit_is_configurable(client, monkeypatch):
    ring = [[114.05 + 0.001 * k / 60, 22.54 + 0.0001 * (k % 2)] for k in range(60)]
    ring = [[114.05, 22.53]] + ring + [[114.05, 22.53]]
    polygon = {"type": "Polygon", "coordinates": [ring]}
    monkeypatch.setenv("XIAOSAN_MAX_VERTICES", "50")
    r = client.post("/api/jurisdiction", json=polygon)
    assert r.status_code == 422 and "more than 50 vertices" in r.text
    monkeypatch.setenv("XIAOSAN_MAX_VERTICES", "100")
    r = client.post("/api/jurisdiction", json=polygon)
    assert r.status_code != 422 or "vertices" not in r.text


def test_count_positions_stops_at_the_limit():
    deep = [[[[[[1.0, 2.0]]]]]]
    with pytest.raises(ValueError, match="nested too deeply"):
        limits.count_positions(deep, "g", limit=10)
    assert limits.count_positions([[[1, 2], [3, 4], [5, 6], [1, 2]]], "g", limit=4) == 4
    with pytest.raises(ValueError, match="more than 3 vertices"):
        limits.count_positions([[[1, 2], [3, 4], [5, 6], [1, 2]]], "g", limit=3)


# --- photos ---------------------------------------------------------------------------------


@pytest.fixture
def photo_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XIAOSAN_PHOTO_DIR", str(tmp_path))
    return tmp_path


def _image(fmt: str, size=(64, 48), colour=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format=fmt)
    return out.getvalue()


def _upload(client, data: bytes, name: str, content_type: str):
    return client.post("/api/photos", files={"file": (name, data, content_type)})


@pytest.mark.parametrize("fmt,media", [("JPEG", "image/jpeg"), ("PNG", "image/png"),
                                       ("WEBP", "image/webp")])
def test_photos_are_accepted_by_content_and_stored_once(client, photo_dir, fmt, media):
    data = _image(fmt)
    # Name and Content-Type lie: the content decides.
    r = _upload(client, data, "evidence.txt", "application/octet-stream")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["media_type"] == media and (body["width"], body["height"]) == (64, 48)
    stored = list(photo_dir.iterdir())
    assert len(stored) == 1 and stored[0].read_bytes() == data
    again = _upload(client, data, "same.jpg", "image/jpeg")
    assert again.status_code == 200 and again.json()["ref"] == body["ref"]
    assert len(list(photo_dir.iterdir())) == 1
    got = client.get(f"/api/photos/{body['ref']}")
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-type"] == media


def test_what_is_not_a_photo_is_refused_and_not_stored(client, photo_dir, monkeypatch):
    jpeg = _image("JPEG", size=(320, 240))
    cases = {
        "a text file named .jpg": (b"#!/bin/sh\necho not a photo\n", "photo.jpg", "image/jpeg",
                                   "not an image"),
        "a GIF": (_image("GIF"), "photo.gif", "image/gif", "a GIF image"),
        "a truncated JPEG": (jpeg[: len(jpeg) // 2], "photo.jpg", "image/jpeg", "damaged"),
        "an empty file": (b"", "photo.jpg", "image/jpeg", "empty file"),
        "an HTML page": (b"<html><script>alert(1)</script></html>", "photo.png", "image/png",
                         "not an image"),
    }
    for what, (data, name, ctype, message) in cases.items():
        r = _upload(client, data, name, ctype)
        assert r.status_code == 422, (what, r.text)
        detail = r.json()["detail"][0]
        assert detail["loc"] == ["body", "file"] and message in detail["msg"], (what, r.text)
    monkeypatch.setenv("XIAOSAN_MAX_PHOTO_BYTES", "2000")
    r = _upload(client, _image("PNG", size=(400, 400), colour=(1, 2, 3)) + b"\0" * 3000,
                "big.png", "image/png")
    assert r.status_code == 422 and "allowed for a photo" in r.text
    monkeypatch.setenv("XIAOSAN_MAX_PHOTO_BYTES", str(10 * 1024 * 1024))
    monkeypatch.setenv("XIAOSAN_MAX_PHOTO_PIXELS", "10000")
    r = _upload(client, _image("PNG", size=(200, 200)), "wide.png", "image/png")
    assert r.status_code == 422 and "pixels" in r.text
    assert list(photo_dir.iterdir()) == []


def test_a_decompression_bomb_is_refused_from_its_header(client, photo_dir):
    """A 20000×20000 PNG of one colour is small on the wire and 1.2 GB decoded."""
    out = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(out, format="PNG")
    assert len(out.getvalue()) < 2 * 1024 * 1024
    r = _upload(client, out.getvalue(), "bomb.png", "image/png")
    assert r.status_code == 422 and "pixels" in r.text
    assert list(photo_dir.iterdir()) == []


def test_photo_names_cannot_leave_the_photo_folder(client, photo_dir):
    (photo_dir.parent / "secret.jpg").write_bytes(b"secret")
    for name in ("../secret.jpg", "..%2Fsecret.jpg", "x" * 64 + ".jpg", "photo:abc.exe"):
        assert client.get(f"/api/photos/{name}").status_code == 404


# --- pages ----------------------------------------------------------------------------------


def test_every_list_limit_is_capped_with_a_clear_422(client):
    """Every GET with a ``limit`` declares a maximum; one more is a 422 naming ``limit``."""
    from app.main import app

    checked = []
    for path, ops in app.openapi()["paths"].items():
        op = ops.get("get")
        params = {p["name"]: p for p in (op or {}).get("parameters", [])}
        if "limit" not in params:
            continue
        maximum = params["limit"]["schema"].get("maximum")
        assert maximum is not None, f"{path}: limit has no maximum"
        required = [n for n, p in params.items() if p.get("required")]
        if required:  # needs more than a limit to be called: the declaration is checked
            continue
        over = client.get(path, params={"limit": int(maximum) + 1})
        assert over.status_code == 422, (path, over.text[:200])
        assert over.json()["detail"][0]["loc"] == ["query", "limit"], (path, over.text[:200])
        at = client.get(path, params={"limit": int(maximum)})
        assert at.status_code == 200, (path, at.text[:200])
        checked.append(path)
    assert {"/api/hazards", "/api/unregistered", "/api/incidents", "/api/patrols",
            "/api/projects"} <= set(checked)
    print(f"\nlist limits checked: {len(checked)} endpoints")


def test_layers_take_a_limit(client, session):
    for path in ("/api/unregistered", "/api/incidents"):
        assert client.get(path, params={"limit": MAX_LIST_LIMIT + 1}).status_code == 422
        assert client.get(path, params={"limit": 0}).status_code == 422
