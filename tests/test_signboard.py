"""The responsibility signboard: PNG and PDF whose QR code opens the project's public page."""

from __future__ import annotations

import subprocess
from datetime import date

from app.config import get_settings
from app.services import lifecycle, signboard
from tests.test_lifecycle import submit


def decode_qr(path) -> str:
    out = subprocess.run(["zbarimg", "--raw", "-q", str(path)], capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


def accepted(session):
    project = submit(session, 7)
    lifecycle.transition(session, project=project, action="accept", actor="r",
                         on=date(2024, 10, 8))
    session.commit()
    return project


def test_signboard_png_qr_decodes_to_the_public_page(session, tmp_path):
    project = accepted(session)
    png = tmp_path / "board.png"
    png.write_bytes(signboard.render_png(project))
    url = decode_qr(png)
    assert url == f"{get_settings().public_url}/p/{project.public_id}"


def test_signboard_pdf_opens_and_its_qr_decodes(client, session, tmp_path):
    project = accepted(session)
    r = client.get(f"/api/projects/{project.reg_no}/signboard.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    pdf = tmp_path / "board.pdf"
    pdf.write_bytes(r.content)
    assert r.content.startswith(b"%PDF")
    subprocess.run(["pdftoppm", "-r", "120", "-png", "-singlefile", str(pdf),
                    str(tmp_path / "page")], check=True)
    assert decode_qr(tmp_path / "page.png").endswith(f"/p/{project.public_id}")
    png = client.get(f"/api/projects/{project.reg_no}/signboard.png")
    assert png.headers["content-type"] == "image/png"


def test_public_page_shows_the_project_without_private_phones(client, session):
    project = accepted(session)
    r = client.get(f"/p/{project.public_id}")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert project.title in r.text and project.reg_no in r.text
    assert project.builder["phone"] not in r.text
    assert client.get("/p/nope").status_code == 404


def test_no_signboard_before_acceptance(client, session):
    project = submit(session, 8)
    assert client.get(f"/api/projects/{project.reg_no}/signboard.png").status_code == 409
    assert client.get(f"/api/projects/{project.reg_no}/receipt").status_code == 409
