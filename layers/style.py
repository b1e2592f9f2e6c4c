"""Colours and labels shared by the map layers."""

from __future__ import annotations

# One style per territory level: outlines get thinner and lighter going down.
LEVEL_STYLE: dict[str, dict[str, object]] = {
    "district": {"color": "#1f2937", "weight": 3.5, "fillOpacity": 0.0, "opacity": 0.9},
    "street": {"color": "#b91c1c", "weight": 2.5, "fillOpacity": 0.05, "opacity": 0.9},
    "community": {"color": "#1d4ed8", "weight": 1.5, "fillOpacity": 0.0, "opacity": 0.8},
    "grid": {"color": "#6b7280", "weight": 0.7, "fillOpacity": 0.0, "opacity": 0.7},
}

LEVEL_LABEL_ZH: dict[str, str] = {
    "district": "区",
    "street": "街道",
    "community": "社区",
    "grid": "网格",
}

# Qualitative palette for filling streets so neighbours can be told apart.
STREET_FILLS = [
    "#fde68a",
    "#bfdbfe",
    "#c7d2fe",
    "#fbcfe8",
    "#bbf7d0",
    "#fed7aa",
    "#ddd6fe",
    "#a5f3fc",
    "#fecaca",
    "#d9f99d",
    "#e5e7eb",
    "#f5d0fe",
]


def latlon(lon: float, lat: float) -> list[float]:
    """Leaflet and folium want [lat, lon]; everything else in the code is (lon, lat)."""
    return [lat, lon]
