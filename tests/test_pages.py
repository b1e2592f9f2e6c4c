"""The territory map page: served with local assets only, holding all four levels."""

from __future__ import annotations

import json
import re

from layers.offline import ExternalAssetError, localise, vendored_files


def test_every_vendored_asset_exists():
    missing = [p for p in vendored_files() if not p.is_file()]
    assert missing == []


def test_localise_refuses_external_assets():
    page = '<script src="https://cdn.example.com/x.js"></script>'
    try:
        localise(page)
    except ExternalAssetError as exc:
        assert "cdn.example.com" in str(exc)
    else:
        raise AssertionError("an external script was let through")


def test_territory_page_has_the_four_levels_and_no_external_asset(client):
    r = client.get("/")
    assert r.status_code == 200
    html = r.text
    assert not re.search(r"""<(script|link)[^>]+(src|href)=["']https?://""", html)
    for label in ("区 (1)", "街道 (", "社区 (", "网格 ("):
        assert json.dumps(label)[1:-1] in html  # layer names are written as JSON strings
    static = re.findall(r"""(?:src|href)=["'](/static/[^"']+)""", html)
    assert static
    for url in set(static):
        assert client.get(url).status_code == 200, url
