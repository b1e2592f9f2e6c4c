"""The map pages on the shell of :mod:`layers.pages`, and the offline basemap they draw.

Each route gathers what its page needs to start (the district's extent, picker lists) and
hands it to :func:`layers.pages.render_page`; the page's script fetches everything else from
the JSON APIs. A new page (e.g. the dispatchers') is a spec in ``layers/pages.py``, a
template, a script and a route here.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import os
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.api.access import PlanAccess, ReferenceAccess
from app.api.deps import SessionDep
from app.config import get_settings
from app.rules import KINDS, get_rules
from app.services import coverage, route_plans
from app.services.registration import today_cn
from layers import i18n
from layers.basemaps import roads_geojson_bytes
from layers.pages import render_page

router = APIRouter(tags=["pages"])

ROOT = Path(__file__).resolve().parents[2]
Lang = Annotated[str | None, Query(description="en for English; default Chinese")]
District = Annotated[str | None, Query(pattern=r"^\d{12}$", description="default: the demo")]
# The built road GeoJSON per (file, modification time): built once per process.
_ROADS: dict[tuple[str, int], bytes] = {}


def _district_boot(session: Session, district: str, lang: str) -> dict[str, Any] | HTMLResponse:
    """The district's code, extent and today's date; a 404 page when it is not loaded."""
    row = session.execute(text(
        """SELECT ST_XMin(e) AS x0, ST_YMin(e) AS y0, ST_XMax(e) AS x1, ST_YMax(e) AS y1
           FROM (SELECT ST_Extent(geom) AS e FROM districts
                 WHERE code = :d AND valid_to IS NULL) s"""), {"d": district}).first()
    if row is None or row.x0 is None:
        return HTMLResponse(
            f"<!doctype html><meta charset=utf-8><h1>{i18n.t('app.name', lang)}</h1>"
            f"<p>District {district}: no boundaries loaded (run <code>xiaosan demo load</code>)."
            "</p>", status_code=404)
    return {"district": district, "bounds": [row.x0, row.y0, row.x1, row.y1],
            "today": today_cn().isoformat()}


@router.get("/map/official", response_class=HTMLResponse)
def official_page(session: SessionDep, access: ReferenceAccess, lang: Lang = None,
                  district: District = None):
    """Officials: blind spots, hot spots by period, street ranking and monthly trends."""
    lang = i18n.lang_of(lang)
    district = access.district(district, get_settings().demo_district)
    boot = _district_boot(session, district, lang)
    if isinstance(boot, HTMLResponse):
        return boot
    boot["kinds"] = list(KINDS)
    boot["categories"] = {code: v[0] for code, v in get_rules().categories.items()}
    params = {"district": district} if district != get_settings().demo_district else {}
    return HTMLResponse(render_page("official", lang=lang, boot=boot, params=params))


@router.get("/map/grid", response_class=HTMLResponse)
def grid_page(
    session: SessionDep,
    access: ReferenceAccess,
    lang: Lang = None,
    district: District = None,
    grid: Annotated[str | None, Query(description="grid codes, comma-separated")] = None,
):
    """Grid managers: my grids' sites, overdue items, hazards to verify, today's route.

    The picker offers the grids of the account's area; a grid worker's own grid is chosen
    when the address names none, and any other account is shown the grid of its area with the
    most overdue sites (``suggested``), so the desk never opens empty.
    """
    lang = i18n.lang_of(lang)
    district = access.district(district, get_settings().demo_district)
    boot = _district_boot(session, district, lang)
    if isinstance(boot, HTMLResponse):
        return boot
    p = {"d": district}
    boot["streets"] = [dict(r) for r in session.execute(text(
        "SELECT code, name FROM streets WHERE district_code = :d AND valid_to IS NULL "
        "ORDER BY code"), p).mappings()]
    boot["communities"] = [dict(r) for r in session.execute(text(
        "SELECT code, name, parent_code AS street FROM communities "
        "WHERE district_code = :d AND valid_to IS NULL ORDER BY code"), p).mappings()]
    boot["grids"] = [dict(r) for r in session.execute(text(
        "SELECT code, name, parent_code AS community FROM grids "
        "WHERE district_code = :d AND valid_to IS NULL ORDER BY code"), p).mappings()
        if access.scope.covers_unit(r["code"])]
    communities = {g["community"] for g in boot["grids"]}
    boot["communities"] = [c for c in boot["communities"] if c["code"] in communities]
    streets = {c["street"] for c in boot["communities"]}
    boot["streets"] = [s for s in boot["streets"] if s["code"] in streets]
    wanted = list(dict.fromkeys(c.strip() for c in (grid or "").split(",") if c.strip()))
    if not wanted and access.scope.level == "grid" and access.scope.code:
        wanted = [access.scope.code]
    known = {g["code"] for g in boot["grids"]}
    boot["suggested"] = None
    if not wanted:
        boot["suggested"] = coverage.most_overdue_grid(session, district, known)
        wanted = [boot["suggested"]] if boot["suggested"] else []
    boot["chosen"] = [c for c in wanted if c in known]
    boot["unknown"] = [c for c in wanted if c not in known]
    params = {"grid": ",".join(wanted)} if wanted and not boot["suggested"] else {}
    if district != get_settings().demo_district:
        params["district"] = district
    return HTMLResponse(render_page("grid", lang=lang, boot=boot, params=params))


@router.get("/map/dispatch", response_class=HTMLResponse)
def dispatch_page(
    session: SessionDep,
    access: PlanAccess,
    lang: Lang = None,
    district: District = None,
    street: Annotated[str | None, Query(pattern=r"^\d{6,24}$", description="street code")] = None,
    date: Annotated[dt.date | None, Query(description="default tomorrow")] = None,
    plan: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="a plan to open")] = None,
):
    """Dispatchers: plan a street's patrols for a day, pin sites, re-plan, export routes."""
    lang = i18n.lang_of(lang)
    district = access.district(district, get_settings().demo_district)
    boot = _district_boot(session, district, lang)
    if isinstance(boot, HTMLResponse):
        return boot
    # Only the streets the account may plan (a street account: its own).
    boot["streets"] = [dict(r) for r in session.execute(text(
        "SELECT code, name FROM streets WHERE district_code = :d AND valid_to IS NULL "
        "ORDER BY code"), {"d": district}).mappings() if access.scope.covers_unit(r["code"])]
    known = [s["code"] for s in boot["streets"]]
    boot["street"] = street if street in known else (known[0] if known else None)
    boot["unknown_street"] = street if street and street not in known else None
    boot["date"] = (date or today_cn() + dt.timedelta(days=1)).isoformat()
    boot["plan"] = plan
    boot["deadline_s"] = route_plans.DEFAULT_DEADLINE_S
    boot["max_deadline_s"] = route_plans.MAX_DEADLINE_S
    params = {k: str(v) for k, v in (("street", street), ("date", date), ("plan", plan)) if v}
    if district != get_settings().demo_district:
        params["district"] = district
    return HTMLResponse(render_page("dispatch", lang=lang, boot=boot, params=params))


@router.get("/api/basemap/roads", tags=["basemap"])
def basemap_roads(request: Request, access: ReferenceAccess):
    """The road graph as simplified GeoJSON: the offline basemap (cached; gzip on the wire)."""
    from app.services.road_networks import road_graph_path

    path = road_graph_path()
    if path is None:
        body = gzip.compress(b'{"type":"FeatureCollection","features":[]}', mtime=0)
    else:
        key = (str(path), path.stat().st_mtime_ns)
        if key not in _ROADS:
            cache_dir = os.environ.get("XIAOSAN_ROAD_CACHE_DIR") or ROOT / "var" / "cache"
            _ROADS[key] = roads_geojson_bytes(path, cache_dir=cache_dir)
        body = _ROADS[key]
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    headers = {"ETag": etag, "Cache-Control": "public, max-age=86400", "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(body, media_type="application/geo+json",
                        headers={**headers, "Content-Encoding": "gzip"})
    return Response(gzip.decompress(body), media_type="application/geo+json", headers=headers)
