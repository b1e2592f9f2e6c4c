"""Map pages served by the app (HTML; every asset local)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from app.api.access import ReferenceAccess
from app.api.deps import SessionDep
from app.config import get_settings
from app.services import territory
from layers.pages import with_nav
from layers.territory import render, territory_map

router = APIRouter(tags=["pages"])


@router.get("/", response_class=HTMLResponse)
@router.get("/map/territory", response_class=HTMLResponse)
def territory_page(session: SessionDep, access: ReferenceAccess, district: str | None = None):
    """The territory map: district, streets, communities and grids."""
    district = district or get_settings().demo_district
    levels = {
        level: territory.level_geojson(session, level, district_code=district)
        for level in ("district", "street", "community", "grid")
    }
    if not levels["district"]["features"]:
        return HTMLResponse(
            "<h1>辖区尚未导入 · No territory loaded</h1>"
            f"<p>District {district} has no boundaries yet: "
            "run <code>xiaosan demo load</code>.</p>",
            status_code=404,
        )
    return HTMLResponse(render(with_nav(territory_map(levels), "territory")))
