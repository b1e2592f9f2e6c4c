"""Serve the map pages with no internet: every JavaScript and CSS file comes from our own server.

folium writes CDN addresses into its pages. A government intranet reaches none of them, so
each page is rendered with those addresses swapped for the vendored copies under
``layers/static/vendor`` (licences beside each file). A page that still points outside is
an error, not a silent blank map.
"""

from __future__ import annotations

import re
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_URL = "/static"

# CDN address (as folium and its plugins write them) → file under STATIC_DIR.
_VENDORED: dict[str, str] = {
    "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js": "vendor/leaflet/leaflet.js",
    "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.css": "vendor/leaflet/leaflet.css",
    "https://code.jquery.com/jquery-3.7.1.min.js": "vendor/jquery/jquery.min.js",
    "https://cdn.jsdelivr.net/npm/bootstrap@5.2.2/dist/js/bootstrap.bundle.min.js": "vendor/bootstrap/bootstrap.bundle.min.js",
    "https://cdn.jsdelivr.net/npm/bootstrap@5.2.2/dist/css/bootstrap.min.css": "vendor/bootstrap/bootstrap.min.css",
    "https://netdna.bootstrapcdn.com/bootstrap/3.0.0/css/bootstrap-glyphicons.css": "css/awesome-rotate.css",
    "https://cdn.jsdelivr.net/npm/@fortawesome/fontawesome-free@6.2.0/css/all.min.css": "vendor/fontawesome/css/all.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/Leaflet.awesome-markers/2.0.2/leaflet.awesome-markers.js": "vendor/awesome-markers/leaflet.awesome-markers.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/Leaflet.awesome-markers/2.0.2/leaflet.awesome-markers.css": "vendor/awesome-markers/leaflet.awesome-markers.css",
    "https://cdn.jsdelivr.net/gh/python-visualization/folium/folium/templates/leaflet.awesome.rotate.min.css": "css/awesome-rotate.css",
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/leaflet.markercluster.js": "vendor/markercluster/leaflet.markercluster.js",
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/MarkerCluster.css": "vendor/markercluster/MarkerCluster.css",
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/MarkerCluster.Default.css": "vendor/markercluster/MarkerCluster.Default.css",
}

_EXTERNAL_ASSET = re.compile(r"""<(?:script|link)[^>]+(?:src|href)=["'](https?://[^"']+)["']""")


class ExternalAssetError(RuntimeError):
    """A page refers to a script or stylesheet on another server."""


def localise(html: str) -> str:
    """Replace folium's CDN addresses by our own; refuse pages that still point outside."""
    for cdn, local in _VENDORED.items():
        html = html.replace(cdn, f"{STATIC_URL}/{local}")
    leftover = _EXTERNAL_ASSET.findall(html)
    if leftover:
        msg = f"map page refers to assets outside this server: {sorted(set(leftover))}"
        raise ExternalAssetError(msg)
    return html


def vendored_files() -> list[Path]:
    """The files behind the local addresses (for a test that they all exist)."""
    return sorted({STATIC_DIR / p for p in _VENDORED.values()})
