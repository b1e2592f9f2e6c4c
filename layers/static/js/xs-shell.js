/* The map page shell (layers/pages.py): texts, formats, fetch, the map, basemaps, GCJ-02
 * display copies, managed overlays and their legend. Page scripts use window.XS.
 *
 * Coordinates are [lon, lat] everywhere, as in the GeoJSON the APIs send; Leaflet's
 * [lat, lon] appears only where Leaflet is called (XS.latlon).
 */
(function () {
  'use strict';

  const boot = window.XS_BOOT;
  const XS = (window.XS = { boot: boot, layers: {}, bases: {}, datum: 'wgs84' });

  // ---- texts ------------------------------------------------------------------------------
  XS.t = function (key, values) {
    let text = boot.texts[key];
    if (text === undefined) {
      console.warn('no text for', key);
      text = key;
    }
    if (values) {
      text = text.replace(/\{(\w+)\}/g, (m, name) => (name in values ? values[name] : m));
    }
    return text;
  };
  /** The label of a data code (state, category, ...): the dictionary's, else the code. */
  XS.label = function (group, code) {
    if (code === null || code === undefined) return '–';
    const text = boot.texts[group + '.' + code];
    return text === undefined ? String(code) : text;
  };
  XS.esc = function (value) {
    return String(value === null || value === undefined ? '' : value).replace(
      /[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
  };

  // ---- numbers and dates in the page's locale (zh-CN or en-GB) -----------------------------
  const locale = boot.locale;
  const CHINA_TZ = 'Asia/Shanghai';
  function day(iso) {
    const [y, m, d] = iso.slice(0, 10).split('-').map(Number);
    return new Date(Date.UTC(y, m - 1, d, 4));  // noon in Beijing: the same day everywhere
  }
  XS.fmt = {
    number(value, digits) {
      if (value === null || value === undefined || Number.isNaN(value)) return '–';
      return new Intl.NumberFormat(locale, { maximumFractionDigits: digits || 0 }).format(value);
    },
    percent(value) {
      if (value === null || value === undefined) return '–';
      return new Intl.NumberFormat(locale, { style: 'percent', maximumFractionDigits: 1 })
        .format(value);
    },
    date(iso) {
      if (!iso) return '–';
      return new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeZone: CHINA_TZ })
        .format(day(iso));
    },
    datetime(iso) {
      if (!iso) return '–';
      return new Intl.DateTimeFormat(locale, {
        dateStyle: 'medium', timeStyle: 'short', timeZone: CHINA_TZ }).format(new Date(iso));
    },
    month(ym) {
      return new Intl.DateTimeFormat(locale, { year: 'numeric', month: 'short', timeZone: CHINA_TZ })
        .format(day(ym + '-01'));
    },
    days(n) {
      return XS.t('field.days', { n: XS.fmt.number(n) });
    },
  };

  // ---- status line ----------------------------------------------------------------------
  XS.status = function (message, isError) {
    const el = document.getElementById('xs-status');
    if (!el) return;
    el.textContent = message || '';
    el.classList.toggle('error', !!isError);
  };

  // ---- fetch: same-origin credentials; a 401 goes to the login page -----------------------
  XS.url = function (path, params) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params || {})) {
      if (value === null || value === undefined || value === '') continue;
      for (const v of Array.isArray(value) ? value : [value]) query.append(key, v);
    }
    const qs = query.toString();
    return qs ? path + '?' + qs : path;
  };
  XS.toLogin = function () {
    location.assign('/login?next=' + encodeURIComponent(location.pathname + location.search));
  };
  class HttpError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }
  XS.HttpError = HttpError;
  function detailText(body) {
    const detail = body && body.detail;
    if (Array.isArray(detail)) return detail.map((d) => d.msg || JSON.stringify(d)).join('; ');
    return detail ? String(detail) : '';
  }
  XS.fetchJSON = async function (url) {
    const response = await fetch(url, {
      credentials: 'same-origin',
      headers: { Accept: 'application/json, application/geo+json' },
    });
    if (response.status === 401) {
      XS.toLogin();
      throw new HttpError(401, 'login required');
    }
    if (!response.ok) {
      let message = response.statusText;
      try {
        message = detailText(await response.json()) || message;
      } catch (e) { /* not JSON */ }
      throw new HttpError(response.status, message);
    }
    return response.json();
  };
  /** Run a load; on failure say what failed in the status line (and keep the page usable). */
  XS.load = async function (what, promise) {
    try {
      return await promise;
    } catch (err) {
      if (err.status !== 401) XS.status(XS.t('load_failed', { what: what + ': ' + err.message }), true);
      throw err;
    }
  };

  // ---- GCJ-02: a port of gis/gcj02.py's forward transform (tested against it) --------------
  const A = 6378245.0;
  const EE = 0.00669342162296594323;
  function inChina(lon, lat) {
    return lon >= 72.004 && lon <= 137.8347 && lat >= 0.8293 && lat <= 55.8271;
  }
  function wgs84ToGcj02(lon, lat) {
    if (!inChina(lon, lat)) return [lon, lat];
    const x = lon - 105.0;
    const y = lat - 35.0;
    const sqrtAbsX = Math.sqrt(Math.abs(x));
    const common = (20.0 * Math.sin(6.0 * x * Math.PI) + 20.0 * Math.sin(2.0 * x * Math.PI))
      * 2.0 / 3.0;
    let dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrtAbsX
      + common
      + (20.0 * Math.sin(y * Math.PI) + 40.0 * Math.sin(y / 3.0 * Math.PI)) * 2.0 / 3.0
      + (160.0 * Math.sin(y / 12.0 * Math.PI) + 320.0 * Math.sin(y * Math.PI / 30.0)) * 2.0 / 3.0;
    let dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrtAbsX
      + common
      + (20.0 * Math.sin(x * Math.PI) + 40.0 * Math.sin(x / 3.0 * Math.PI)) * 2.0 / 3.0
      + (150.0 * Math.sin(x / 12.0 * Math.PI) + 300.0 * Math.sin(x / 30.0 * Math.PI)) * 2.0 / 3.0;
    const radlat = lat / 180.0 * Math.PI;
    const magic = 1.0 - EE * Math.sin(radlat) ** 2;
    const sqrtMagic = Math.sqrt(magic);
    dlat = (dlat * 180.0) / ((A * (1.0 - EE)) / (magic * sqrtMagic) * Math.PI);
    dlon = (dlon * 180.0) / (A / sqrtMagic * Math.cos(radlat) * Math.PI);
    return [lon + dlon, lat + dlat];
  }
  function shiftCoords(coords) {
    if (typeof coords[0] === 'number') {
      const [lon, lat] = wgs84ToGcj02(coords[0], coords[1]);
      return [lon, lat].concat(coords.slice(2));
    }
    return coords.map(shiftCoords);
  }
  function shiftGeometry(geometry) {
    if (!geometry) return geometry;
    if (geometry.type === 'GeometryCollection') {
      return { type: geometry.type, geometries: geometry.geometries.map(shiftGeometry) };
    }
    return { type: geometry.type, coordinates: shiftCoords(geometry.coordinates) };
  }
  /** A display copy of a FeatureCollection in GCJ-02; the original is not touched. */
  function shiftGeoJSON(fc) {
    return Object.assign({}, fc, {
      features: fc.features.map((f) => Object.assign({}, f, { geometry: shiftGeometry(f.geometry) })),
    });
  }
  XS.gcj02 = { inChina: inChina, wgs84ToGcj02: wgs84ToGcj02, shiftGeoJSON: shiftGeoJSON };

  /** Leaflet's [lat, lon] from our [lon, lat], in the datum of the active base. */
  XS.latlon = function (lon, lat) {
    const p = XS.datum === 'gcj02' ? wgs84ToGcj02(lon, lat) : [lon, lat];
    return [p[1], p[0]];
  };

  // ---- the map, its basemaps and the layer control -----------------------------------------
  const ROAD_STYLE = {
    major: { color: '#f59e0b', weight: 3.2, opacity: 0.9 },
    medium: { color: '#fbbf24', weight: 2.2, opacity: 0.85 },
    minor: { color: '#9ca3af', weight: 1.2, opacity: 0.8 },
    path: { color: '#c4b5a0', weight: 0.8, opacity: 0.7, dashArray: '3 3' },
  };

  function roadsBase(base) {
    const group = L.layerGroup();
    let loaded = false;
    group.on('add', () => {
      if (loaded) return;
      loaded = true;
      XS.load(base.title, XS.fetchJSON(base.url)).then((fc) => {
        L.geoJSON(fc, {
          interactive: false,
          renderer: XS.roadRenderer,
          style: (f) => ROAD_STYLE[f.properties.class] || ROAD_STYLE.minor,
        }).addTo(group);
        XS.roadsLoaded = fc.features.length;
      }).catch(() => { loaded = false; });
    });
    return group;
  }

  function tileBase(base) {
    const options = { attribution: base.attribution, maxZoom: base.max_zoom,
                      subdomains: base.subdomains || 'abc' };
    const tiles = L.tileLayer(base.url, options);
    if (!base.labels_url) return tiles;
    return L.layerGroup([tiles, L.tileLayer(base.labels_url, options)]);
  }

  XS.createMap = function () {
    const narrow = window.matchMedia('(max-width: 760px)').matches;
    const map = L.map('map', { preferCanvas: true, zoomControl: true, minZoom: 9, maxZoom: 19 });
    XS.map = map;
    map.createPane('xsRoads').style.zIndex = 250;
    XS.roadRenderer = L.canvas({ pane: 'xsRoads' });
    // Vector tiles (SVG per tile) above the overlays' shared canvas, which would swallow
    // their pointer events; below markers, tooltips and popups.
    map.createPane('xsTiles').style.zIndex = 450;
    const bases = {};
    for (const base of boot.basemaps) {
      const layer = base.kind === 'roads' ? roadsBase(base) : tileBase(base);
      layer.xsBase = base;
      XS.bases[base.name] = layer;
      bases['<span data-xs-base="' + base.name + '">' + XS.esc(base.title) + '</span>'] = layer;
    }
    XS.control = L.control.layers(bases, {}, { collapsed: narrow });
    XS.control.addTo(map);
    L.control.scale({ imperial: false }).addTo(map);
    XS.legendControl = L.control({ position: 'bottomright' });
    XS.legendControl.onAdd = () => {
      const div = L.DomUtil.create('div', 'xs-legend');
      L.DomEvent.disableClickPropagation(div);
      L.DomEvent.disableScrollPropagation(div);
      return div;
    };
    XS.legendControl.addTo(map);
    const active = XS.bases[boot.basemap] || XS.bases.none;
    XS.datum = active.xsBase.datum;
    active.addTo(map);
    map.on('baselayerchange', (e) => XS.setDatum(e.layer.xsBase.datum));
    map.on('overlayadd', () => { restack(); renderLegend(); });
    map.on('overlayremove', renderLegend);
    if (boot.bounds) {
      const [x0, y0, x1, y1] = boot.bounds;
      map.fitBounds([XS.latlon(x0, y0), XS.latlon(x1, y1)]);
    } else {
      map.setView([22.54, 114.05], 12);
    }
    return map;
  };

  // ---- managed overlays: raw WGS84 data kept, display copies drawn ---------------------------
  function controlLabel(entry) {
    const count = entry.layer.getLayers().length;  // drawn features (after any filter)
    return '<span data-xs-layer="' + entry.name + '">' + XS.esc(entry.def.title) + '</span>'
      + ' <span class="xs-count">(' + XS.fmt.number(count) + ')</span>';
  }
  function relabel(entry) {
    for (const item of XS.control._layers) {
      if (item.layer === entry.layer) item.name = controlLabel(entry);
    }
    XS.control._update();
  }
  function draw(entry) {
    entry.layer.clearLayers();
    if (!entry.data) return;
    entry.layer.addData(XS.datum === 'gcj02' ? shiftGeoJSON(entry.data) : entry.data);
  }

  /**
   * An overlay in the layer control. def: title, style(feature), pointToLayer(feature, latlng),
   * popup(feature) → HTML, tooltip(feature) → HTML, onClick(feature, layer),
   * legend() → [{colour, label, line}],
   * show (default true), filter(feature).
   */
  XS.overlay = function (name, def) {
    const layer = L.geoJSON(null, {
      style: def.style,
      pointToLayer: def.pointToLayer,
      filter: def.filter,
      interactive: def.interactive !== false,
      onEachFeature(feature, lyr) {
        if (def.popup) lyr.bindPopup(() => def.popup(feature), { maxWidth: 320 });
        if (def.tooltip) lyr.bindTooltip(() => def.tooltip(feature), { direction: 'top' });
        if (def.onClick) lyr.on('click', () => def.onClick(feature, lyr));
      },
    });
    const entry = { name: name, def: def, layer: layer, data: null };
    XS.layers[name] = entry;
    XS.control.addOverlay(layer, controlLabel(entry));
    if (def.show !== false) layer.addTo(XS.map);
    return entry;
  };
  /** Replace an overlay's data (WGS84 GeoJSON) and redraw it in the active datum. */
  XS.setData = function (name, fc) {
    const entry = XS.layers[name];
    entry.data = fc;
    draw(entry);
    restack();
    relabel(entry);
    renderLegend();
  };
  /** Redrawn features go on top of a shared canvas: put the overlays back in their order. */
  function restack() {
    for (const entry of Object.values(XS.layers)) {
      if (XS.map.hasLayer(entry.layer)) entry.layer.bringToFront();
    }
  }
  /** WGS84 from GCJ-02 by iterating the forward transform (as gis/gcj02.py does). */
  function gcj02ToWgs84(lon, lat) {
    let w = [lon, lat];
    for (let i = 0; i < 5; i++) {
      const f = wgs84ToGcj02(w[0], w[1]);
      w = [w[0] - (f[0] - lon), w[1] - (f[1] - lat)];
    }
    return w;
  }
  XS.gcj02.gcj02ToWgs84 = gcj02ToWgs84;

  XS.setDatum = function (datum) {
    if (datum === XS.datum) return;
    // Keep the same place in the middle of the map: move the view with the drawing.
    const c = XS.map.getCenter();
    const centre = XS.datum === 'gcj02' ? gcj02ToWgs84(c.lng, c.lat) : [c.lng, c.lat];
    XS.datum = datum;
    XS.map.setView(XS.latlon(centre[0], centre[1]), XS.map.getZoom(), { animate: false });
    for (const entry of Object.values(XS.layers)) draw(entry);
    restack();
    tilesForDatum();
    XS.map.fire('xs:datum', { datum: datum });
    XS.status(datum === 'gcj02' ? XS.t('basemap.shifted_note') : '');
  };

  function renderLegend() {
    const div = XS.legendControl && XS.legendControl.getContainer();
    if (!div) return;
    let html = '';
    for (const entry of [...Object.values(XS.layers), ...Object.values(XS.tiles)]) {
      if (!entry.def.legend || !XS.map.hasLayer(entry.layer)) continue;
      const items = entry.def.legend();
      if (!items.length) continue;
      html += '<h4>' + XS.esc(entry.def.title) + '</h4>';
      for (const item of items) {
        const style = item.line ? 'background:transparent;border:2px solid ' + item.colour
          : 'background:' + item.colour;
        html += '<div><i style="' + style + '"></i>' + XS.esc(item.label) + '</div>';
      }
    }
    // Collapsible, and collapsed at first on a phone, where the map is small.
    const details = div.querySelector('details');
    const open = details ? details.open : !window.matchMedia('(max-width: 760px)').matches;
    div.innerHTML = html ? '<details' + (open ? ' open' : '') + '><summary>'
      + XS.esc(XS.t('legend')) + '</summary>' + html + '</details>' : '';
    div.style.display = html ? '' : 'none';
  }
  XS.renderLegend = renderLegend;

  // ---- tile overlays: layers the catalogue serves as vector tiles ---------------------------
  /*
   * The layers that grow with the city (GET /api/layers: served_as 'tiles') are drawn from
   * /tiles/{name}/{z}/{x}/{y}.pbf with Leaflet.VectorGrid, never fetched whole. Below the
   * layer's aggregate_below_zoom a point tile holds one point per occupied cell with its
   * count: drawn as a circle sized by the count, with the count in a tooltip.
   *
   * Tiles are cut in WGS84 Web Mercator and cannot be shifted feature by feature like the
   * GeoJSON display copies; on a GCJ-02 base (Gaode) they would lie 300-500 m off. Instead
   * each whole tile is moved by the GCJ-02 offset at its centre (see tileGridClass): the
   * offset changes slowly, so every feature lands within a pixel of its shifted place. On a
   * change of datum the tiles are laid out again (tilesForDatum); the data stay WGS84.
   */
  XS.tiles = {};
  let TileGrid = null;
  /**
   * The pixel offset, at zoom z, from a WGS84 place to its GCJ-02 display copy (zero outside
   * China). Leaflet's CRS does not know datums: both are projected as if they were WGS84.
   */
  function gcjOffset(map, latlng, z) {
    const g = wgs84ToGcj02(latlng.lng, latlng.lat);
    return map.project(L.latLng(g[1], g[0]), z).subtract(map.project(latlng, z));
  }
  /**
   * VectorGrid.Protobuf, with two changes.
   *
   * A fix for Leaflet 1.9: a tile's point is a CircleMarker with no latlng, and Leaflet 1.9
   * places a pointer event on a small circle at its latlng (it would throw); without getLatLng
   * the event is placed where the pointer is. That is also what keeps tooltips right on a
   * GCJ-02 base: e.latlng is the pointer's place on the map, wherever the tile was moved.
   *
   * On a GCJ-02 base each tile element is placed shifted by the GCJ-02 offset at the tile's
   * centre (_getTilePos, called once when Leaflet adds a tile). Shifting whole tiles is
   * accurate to a pixel: the offset (300-500 m in Shenzhen) changes by under 0.5 % of the
   * distance moved there (under 0.85 % anywhere in China), and both the offset and the tile
   * are measured in the same pixels, so at any zoom a 256-px tile's corners, 181 px from its
   * centre, are at most 0.9 px from their exact shifted place (1.5 px at the worst in China);
   * neighbouring tiles may overlap or part by as much, unseen on tiles with no background.
   * Leaflet picks the tiles to load for the view around the map's centre
   * (_getTiledPixelBounds): the view shows GCJ-02 places, so it has to ask for the WGS84
   * tiles that land in it, the bounds moved back by the offset; otherwise a strip as wide as
   * the offset (hundreds of pixels at street zooms) stays empty on one side.
   */
  function tileGridClass() {
    TileGrid = TileGrid || L.VectorGrid.Protobuf.extend({
      _createLayer(feat, pxPerExtent, layerStyle) {
        const layer = L.VectorGrid.Protobuf.prototype._createLayer.call(
          this, feat, pxPerExtent, layerStyle);
        layer.getLatLng = null;
        return layer;
      },
      _getTilePos(coords) {
        const pos = L.GridLayer.prototype._getTilePos.call(this, coords);
        if (XS.datum !== 'gcj02') return pos;
        const size = this.getTileSize();
        const centre = this._map.unproject(coords.scaleBy(size).add(size.divideBy(2)), coords.z);
        return pos.add(gcjOffset(this._map, centre, coords.z));
      },
      _getTiledPixelBounds(center) {
        const bounds = L.GridLayer.prototype._getTiledPixelBounds.call(this, center);
        if (XS.datum !== 'gcj02') return bounds;
        const c = L.latLng(center);  // the map's centre, a GCJ-02 place
        const w = gcj02ToWgs84(c.lng, c.lat);
        const offset = gcjOffset(this._map, L.latLng(w[1], w[0]), this._tileZoom);
        return L.bounds(bounds.min.subtract(offset), bounds.max.subtract(offset));
      },
    });
    return TileGrid;
  }
  function catLabel(obj, field) {
    if (!obj) return '';
    const key = (field ? field + '_' : '') + boot.lang;
    return obj[key] || obj[(field ? field + '_' : '') + 'zh'] || '';
  }
  function tileLabel(entry) {
    return '<span data-xs-layer="' + entry.name + '" data-xs-tiles="1">'
      + XS.esc(entry.def.title) + '</span>';
  }
  function tileStyle(cat) {
    const st = cat.style;
    const colour = (p) => (st.property && st.colours[p[st.property]]) || st.default;
    const outline = (p) => (st.outline_by && st.outline_colours[p[st.outline_by]]) || '#1f2937';
    return function (p) {
      if (cat.geometry === 'line') {
        return { color: colour(p), weight: st.weight, opacity: st.opacity };
      }
      if (cat.geometry === 'polygon') {
        return { color: colour(p), weight: st.weight, opacity: st.opacity, fill: true,
                 fillColor: colour(p), fillOpacity: st.fill_opacity };
      }
      if (p.count !== undefined) {  // an aggregated cell: the mean of count points
        return { radius: Math.min(2 + Math.sqrt(p.count), 8), fill: true,
                 fillColor: CELL_COLOUR, fillOpacity: 0.4, color: CELL_COLOUR, weight: 0.6,
                 opacity: 0.7 };
      }
      return { radius: st.radius, fill: true, fillColor: colour(p), fillOpacity: 0.9,
               color: outline(p), weight: 1, opacity: 0.9 };
    };
  }
  const CELL_COLOUR = '#0f766e';
  function tileTooltip(cat, p) {
    if (p.count !== undefined) return XS.esc(XS.t('tiles.cell_count', { n: XS.fmt.number(p.count) }));
    return XS.fields(cat.popup.filter((f) => p[f.field] !== undefined)
      .map((f) => [catLabel(f, 'label'), XS.esc(p[f.field])]));
  }

  /**
   * An overlay from the catalogue's vector tiles. cat: the layer's entry in GET /api/layers;
   * params: its query parameters (since, until, filters); def: show (default true), title.
   * The tiles are fetched same-origin with the session cookie.
   */
  XS.tileOverlay = function (name, cat, params, def) {
    def = Object.assign({ title: catLabel(cat.title) }, def || {});
    const legend = (cat.legend || []).map((e) => ({
      colour: e.colour, label: catLabel(e, 'label'),
      line: !!(cat.style.outline_by && e.value in cat.style.outline_colours) }));
    if (cat.geometry === 'point' && cat.aggregate_below_zoom !== null) {
      legend.push({ colour: CELL_COLOUR, label: XS.t('tiles.cells') });
    }
    def.legend = def.legend || (() => legend);
    const styles = {};
    styles[name] = tileStyle(cat);
    const layer = new (tileGridClass())(XS.url(cat.urls.tiles, params), {
      pane: 'xsTiles',
      rendererFactory: L.svg.tile,
      vectorTileLayerStyles: styles,
      interactive: true,
      fetchOptions: { credentials: 'same-origin' },
      minZoom: cat.min_zoom,
      maxZoom: Math.max(cat.max_zoom, 19),
    });
    const tip = L.tooltip({ direction: 'top', offset: [0, -4] });
    layer.on('mouseover', (e) => {
      tip.setContent(tileTooltip(cat, e.layer.properties || {})).setLatLng(e.latlng);
      XS.map.openTooltip(tip);
    });
    layer.on('mouseout', () => XS.map.closeTooltip(tip));
    layer.on('remove', () => XS.map.closeTooltip(tip));
    const entry = { name: name, cat: cat, def: def, layer: layer, params: params };
    XS.tiles[name] = entry;
    XS.control.addOverlay(layer, tileLabel(entry));
    if (def.show !== false) layer.addTo(XS.map);
    return entry;
  };
  /** New query parameters (another period, other filters): the tiles are fetched again. */
  XS.setTileParams = function (name, params) {
    const entry = XS.tiles[name];
    entry.params = params;
    entry.layer.setUrl(XS.url(entry.cat.urls.tiles, params));
  };
  /**
   * A tile is placed once, when it is added: on a change of datum the tiles on the map are
   * dropped and loaded again, placed for the new datum. A layer the user turned off stays off
   * (redraw does nothing off the map); turned on again, its tiles are placed for the datum
   * then in use.
   */
  function tilesForDatum() {
    for (const entry of Object.values(XS.tiles)) entry.layer.redraw();
  }

  /** A popup or card body: rows of [label, value-HTML]. */
  XS.fields = function (rows) {
    return '<dl>' + rows.filter((r) => r).map((r) => '<dt>' + XS.esc(r[0]) + '</dt><dd>'
      + r[1] + '</dd>').join('') + '</dl>';
  };

  /** The district's street outlines, drawn over everything else but never in the way. */
  XS.boundaries = function () {
    XS.overlay('boundaries', {
      title: XS.t('layer.boundaries'),
      interactive: false,
      style: () => ({ color: '#7f1d1d', weight: 2, opacity: 0.8, fill: false }),
      legend: () => [{ colour: '#7f1d1d', label: XS.t('layer.boundaries'), line: true }],
    });
    return XS.load(XS.t('layer.boundaries'), XS.fetchJSON(XS.url('/api/territory/street', {
      district: boot.district, simplify_m: 3 }))).then((fc) => XS.setData('boundaries', fc));
  };

  /** Pages call this when their first load is done (tests wait for body[data-ready]). */
  XS.ready = function () {
    document.body.dataset.ready = '1';
  };
})();
