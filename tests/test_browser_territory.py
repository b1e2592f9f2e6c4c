"""The territory map in a real browser (headless Chromium): loads offline, shows four levels."""

from __future__ import annotations

import pytest

from tests.conftest import ARTIFACTS

pytestmark = pytest.mark.browser

COUNT_LAYERS = """
() => {
  const out = {};
  for (const key of Object.keys(window)) {
    if (key.startsWith('geo_json_') && window[key] && window[key].getLayers) {
      const layer = window[key];
      const first = layer.getLayers()[0];
      const level = first && first.feature ? first.feature.properties.level : 'unknown';
      out[level] = layer.getLayers().length;
    }
  }
  return out;
}
"""


def test_territory_map_in_chromium(live_server, page, session):
    from app.services.territory import level_counts

    expected = level_counts(session)
    page.goto(f"{live_server}/", wait_until="networkidle")
    page.wait_for_function("() => Object.keys(window).some(k => k.startsWith('geo_json_'))")
    counts = page.evaluate(COUNT_LAYERS)
    assert counts == expected
    page.screenshot(path=str(ARTIFACTS / "territory.png"))
    # The layer control lists the four levels; unticking the grid layer removes it from the map.
    labels = page.locator(".leaflet-control-layers-overlays label")
    assert labels.count() == 4
    grid_box = page.locator(".leaflet-control-layers-overlays label", has_text="网格").locator(
        "input"
    )
    was_checked = grid_box.is_checked()
    grid_box.click()
    assert grid_box.is_checked() != was_checked
    assert page.problems == []
