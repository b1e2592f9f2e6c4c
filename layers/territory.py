"""The territory map page: district, streets, communities and grids, one toggleable layer each."""

from __future__ import annotations

from typing import Any

import folium

from layers.offline import localise
from layers.style import LEVEL_LABEL_ZH, LEVEL_STYLE, STREET_FILLS, latlon


def _bounds(fc: dict[str, Any]) -> tuple[float, float, float, float] | None:
    xs: list[float] = []
    ys: list[float] = []

    def walk(coords):
        if coords and isinstance(coords[0], (int, float)):
            xs.append(coords[0])
            ys.append(coords[1])
        else:
            for c in coords:
                walk(c)

    for f in fc.get("features", []):
        walk(f["geometry"]["coordinates"])
    if not xs:
        return None
    return min(xs), min(ys), max(xs), max(ys)


def _style(level: str, fills: dict[str, str]):
    base = dict(LEVEL_STYLE[level])

    def style(feature: dict[str, Any]) -> dict[str, Any]:
        s = dict(base)
        if level == "street":
            s["fillColor"] = fills.get(feature["properties"]["code"], "#e5e7eb")
            s["fillOpacity"] = 0.35
        return s

    return style


def territory_map(levels: dict[str, dict[str, Any]], *, title: str = "辖区网格") -> folium.Map:
    """A folium map of the given levels (level name → GeoJSON FeatureCollection)."""
    anchor = levels.get("district") or next(iter(levels.values()))
    bounds = _bounds(anchor)
    center = latlon((bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2) if bounds else [0, 0]
    fmap = folium.Map(
        location=center, zoom_start=13, tiles=None, control_scale=True, prefer_canvas=True
    )
    fmap.get_root().header.add_child(folium.Element(f"<title>{title}</title>"))
    streets = levels.get("street", {"features": []})["features"]
    fills = {
        f["properties"]["code"]: STREET_FILLS[i % len(STREET_FILLS)] for i, f in enumerate(streets)
    }
    for level in ("street", "community", "grid", "district"):
        fc = levels.get(level)
        if not fc:
            continue
        label = f"{LEVEL_LABEL_ZH[level]} ({len(fc['features'])})"
        folium.GeoJson(
            fc,
            name=label,
            style_function=_style(level, fills),
            highlight_function=lambda f: {"weight": 3, "color": "#f59e0b"},
            tooltip=folium.GeoJsonTooltip(fields=["name", "code"], aliases=["名称", "代码"]),
            show=level != "grid" or len(fc["features"]) <= 5000,
        ).add_to(fmap)
    folium.LayerControl(collapsed=False).add_to(fmap)
    if bounds:
        fmap.fit_bounds([latlon(bounds[0], bounds[1]), latlon(bounds[2], bounds[3])])
    return fmap


def render(fmap: folium.Map) -> str:
    """The page's HTML with every asset served locally."""
    return localise(fmap.get_root().render())
