"""The map page shell: one Leaflet map, a side panel, navigation, zh/en, basemaps.

Every page is a :class:`PageSpec` in :data:`PAGES` — a template in ``layers/templates``
extending ``shell.html`` (which fills the side panel through ``{% block panel %}``) and one
script under ``layers/static/js`` that uses the shared ``XS`` object of ``xs-shell.js``
(texts, number and date formats, fetch with the login redirect, the map with its basemaps and
layer control, GCJ-02 display copies, managed overlays, legend). A new page is a spec here, a
template, a script and a route that calls :func:`render_page` with the page's boot data;
the navigation picks it up by itself.

Pages are rendered without the database: the caller hands in what the page needs to start
(``boot``), and the page's script fetches the rest from the JSON APIs with relative URLs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from layers import i18n
from layers.basemaps import active_basemap, basemaps
from layers.offline import STATIC_URL, localise

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class PageSpec:
    """A page: where it lives, its title (an i18n key), its template and its scripts."""

    name: str
    path: str
    title_key: str
    template: str | None = None  # None: a page not built on the shell (the folium territory)
    scripts: tuple[str, ...] = ()
    vendor_scripts: tuple[str, ...] = ()
    in_nav: bool = True


PAGES: dict[str, PageSpec] = {
    spec.name: spec
    for spec in (
        PageSpec("territory", "/", "page.territory"),
        PageSpec("official", "/map/official", "page.official", "official.html",
                 scripts=("js/official.js",),
                 vendor_scripts=("vendor/chartjs/chart.umd.min.js",
                                 "vendor/leaflet.vectorgrid/Leaflet.VectorGrid.bundled.min.js")),
        PageSpec("grid", "/map/grid", "page.grid", "grid.html", scripts=("js/grid.js",)),
        PageSpec("dispatch", "/map/dispatch", "page.dispatch", "dispatch.html",
                 scripts=("js/dispatch.js",)),
    )
}

_env = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def page_href(path: str, lang: str, params: Mapping[str, str] | None = None) -> str:
    """A page address keeping the language (Chinese, the default, needs no parameter)."""
    query = dict(params or {})
    if lang != i18n.DEFAULT_LANG:
        query["lang"] = lang
    return f"{path}?{urlencode(query)}" if query else path


def nav_items(current: str, lang: str) -> list[dict[str, Any]]:
    """The navigation: every page in :data:`PAGES` marked ``in_nav``, the current one flagged."""
    return [
        {"name": s.name, "href": page_href(s.path, lang), "title": i18n.t(s.title_key, lang),
         "current": s.name == current}
        for s in PAGES.values() if s.in_nav
    ]


def nav_html(current: str, lang: str = i18n.DEFAULT_LANG) -> str:
    """The navigation as a small fixed bar, for pages not built on the shell (folium's)."""
    return _env.get_template("nav_overlay.html").render(
        nav=nav_items(current, lang), t=lambda key, **kw: i18n.t(key, lang, **kw))


def with_nav(fmap: Any, current: str, lang: str = i18n.DEFAULT_LANG) -> Any:
    """A folium map with the navigation bar added (the territory page is folium's)."""
    import folium

    fmap.get_root().html.add_child(folium.Element(nav_html(current, lang)))
    return fmap


def render_page(
    name: str,
    *,
    lang: str,
    boot: Mapping[str, Any],
    params: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """A shell page as HTML, every asset local (checked by :func:`layers.offline.localise`).

    ``params`` are the page's own query parameters, kept by the language switch.
    """
    spec = PAGES[name]
    if spec.template is None:
        msg = f"page {name!r} is not built on the shell"
        raise ValueError(msg)
    lang = i18n.lang_of(lang)
    other = "en" if lang == "zh" else "zh"
    bases = [b.for_page(i18n.t(b.title_key, lang)) for b in basemaps(env)]
    data = {
        "page": name,
        "lang": lang,
        "locale": i18n.LOCALES[lang],
        "texts": i18n.texts(lang),
        "basemaps": bases,
        "basemap": active_basemap(env),
        **boot,
    }
    html = _env.get_template(spec.template).render(
        page=spec,
        lang=lang,
        locale=i18n.LOCALES[lang],
        t=lambda key, **kw: i18n.t(key, lang, **kw),
        nav=nav_items(name, lang),
        other_lang_href=page_href(spec.path, other, params),
        static=STATIC_URL,
        boot=data,
    )
    return localise(html)
