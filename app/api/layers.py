"""Map layers: the catalogue, each layer as GeoJSON, and Mapbox vector tiles.

The contract the map pages build on:

- ``GET /api/layers``: the catalogue (:func:`layers.catalog.catalogue`);
- ``GET /api/layers/{name}?bbox=&since=&until=&<filters>``: ``application/geo+json``;
- ``GET /tiles/{name}/{z}/{x}/{y}.pbf?since=&until=&<filters>``:
  ``application/vnd.mapbox-vector-tile``, 204 when the tile is empty.

A parameter the layer does not take, or a value it does not know, is a 422 naming it; an
unknown layer or a tile outside the zoom's range is a 404. Answers carry an ``ETag`` (a
conditional request with ``If-None-Match`` gets 304) and a short private ``max-age``: the
data changes all day, and what an account sees depends on its scope.
"""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import Response

from app import jsonio
from app.access import allowed
from app.api.access import Access, ListAccess, ReferenceAccess
from app.api.deps import SessionDep
from app.services import layers as layer_service
from layers import catalog

router = APIRouter(tags=["layers"])

TILE_MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
GEOJSON_MEDIA_TYPE = "application/geo+json"
CACHE_SECONDS = 60
Bbox = Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat (WGS84)")]
Day = Annotated[date | None, Query(description="YYYY-MM-DD, inclusive")]


def _layer(name: str, access: Access) -> catalog.Layer:
    layer = catalog.get(name)
    if layer is None:
        raise HTTPException(404, f"layer: no layer {name!r}; GET /api/layers lists them")
    if layer.action != "list" and not allowed(access.user.role, layer.action):
        raise HTTPException(403, f"role: a {access.user.role} account may not "
                                 f"{layer.action} here")
    return layer


def _unprocessable(exc: layer_service.LayerQueryError) -> HTTPException:
    return HTTPException(422, [{"loc": ["query", exc.field], "msg": str(exc),
                                "type": "value_error"}])


def _cached(request: Request, body: bytes, media_type: str, status: int = 200) -> Response:
    etag = '"' + hashlib.sha1(body).hexdigest()[:24] + '"'
    headers = {"ETag": etag, "Cache-Control": f"private, max-age={CACHE_SECONDS}",
               "Vary": "Authorization, Cookie"}
    if etag in {t.strip() for t in request.headers.get("if-none-match", "").split(",")}:
        return Response(status_code=304, headers=headers)
    if status == 204:
        return Response(status_code=204, headers=headers)
    return Response(body, status_code=status, media_type=media_type, headers=headers)


@router.get("/api/layers")
def layer_catalogue(access: ReferenceAccess):
    """The catalogue: every layer's titles, URLs, filters, zooms, style, legend and popup."""
    return catalog.catalogue()


@router.get("/api/layers/{name}", response_class=Response,
            responses={200: {"content": {GEOJSON_MEDIA_TYPE: {}}}})
def layer_geojson(name: str, request: Request, session: SessionDep, access: ListAccess,
                  bbox: Bbox = None, since: Day = None, until: Day = None):
    """One layer as GeoJSON (6 decimals), within ``bbox``, in the period, filtered."""
    layer = _layer(name, access)
    try:
        query = layer_service.parse_query(session, layer, request.query_params)
        if isinstance(layer.source, catalog.Sql):
            body = layer_service.feature_collection_json(session, layer, query,
                                                         scope=access.scope)
        else:
            body = jsonio.dumps(layer_service.feature_collection(session, layer, query,
                                                                 scope=access.scope))
    except layer_service.LayerQueryError as exc:
        raise _unprocessable(exc) from None
    except layer_service.LayerForbidden as exc:
        raise HTTPException(403, str(exc)) from None
    return _cached(request, body, GEOJSON_MEDIA_TYPE)


@router.get("/tiles/{name}/{z}/{x}/{y}.pbf", response_class=Response,
            responses={200: {"content": {TILE_MEDIA_TYPE: {}}}, 204: {"description": "empty"}})
def layer_tile(name: str, request: Request, session: SessionDep, access: ListAccess,
               z: Annotated[int, Path(ge=0, le=layer_service.MAX_TILE_ZOOM)],
               x: Annotated[int, Path(ge=0)], y: Annotated[int, Path(ge=0)],
               since: Day = None, until: Day = None):
    """Tile z/x/y (XYZ, Web Mercator) of a layer; points aggregated at low zoom."""
    layer = _layer(name, access)
    if not layer.tiles:
        raise HTTPException(404, f"layer: {name} is computed per request and has no tiles; "
                                 f"use /api/layers/{name}")
    if not layer_service.valid_tile(z, x, y):
        raise HTTPException(404, f"tile: no tile {z}/{x}/{y} (x and y run from 0 to "
                                 f"{(1 << z) - 1} at zoom {z})")
    try:
        query = layer_service.parse_query(session, layer, request.query_params, tiles=True)
        data = layer_service.tile(session, layer, z, x, y, query, scope=access.scope)
    except layer_service.LayerQueryError as exc:
        raise _unprocessable(exc) from None
    return _cached(request, data, TILE_MEDIA_TYPE, status=200 if data else 204)
