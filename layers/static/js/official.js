/* The officials' page: blind spots (grids by overdue sites, land no grid covers), sites overdue
 * for a visit, hazard hot spots (Gi*) for a chosen period and kind of work, the street ranking
 * and monthly trends, the patrols of the chosen period (vector tiles). Data: /api/coverage/*,
 * /api/hotspots, /api/rankings, /api/stats/trends, /api/layers and /tiles/{name}/....
 */
(function () {
  'use strict';
  const XS = window.XS;
  const boot = XS.boot;
  const t = XS.t;
  const fmt = XS.fmt;
  const district = boot.district;

  // Purple for blind spots (how many sites wait), red/blue for Gi* hot/cold: never confused.
  const BLIND_COLOURS = [
    [4, '#54278f', 'blind.many'], [2, '#8c6bb1', 'blind.few'], [1, '#bcbddc', 'blind.one'],
  ];
  const GI_COLOURS = {
    hot_99: '#b2182b', hot_95: '#ef8a62', hot_90: '#fddbc7',
    cold_90: '#d1e5f0', cold_95: '#67a9cf', cold_99: '#2166ac',
  };

  function blindFill(p) {
    for (const [min, colour] of BLIND_COLOURS) if (p.overdue_sites >= min) return colour;
    return null;
  }

  function days(n) {
    return n === null || n === undefined ? '–' : fmt.days(n);
  }

  // ---- layers -------------------------------------------------------------------------------
  function defineLayers() {
    XS.overlay('blind_spots', {
      title: t('layer.blind_spots'),
      style(f) {
        const fill = blindFill(f.properties);
        return {
          color: f.properties.no_patrols ? '#dc2626' : '#9ca3af',
          weight: f.properties.no_patrols ? 1.6 : 0.5,
          opacity: 0.8,
          fillColor: fill || '#ffffff',
          fillOpacity: fill ? 0.55 : 0.05,
        };
      },
      popup(f) {
        const p = f.properties;
        return '<strong>' + XS.esc(p.grid_name) + '</strong> <small>' + XS.esc(p.grid_code)
          + '</small>' + XS.fields([
          [t('field.overdue_sites'), fmt.number(p.overdue_sites)],
          [t('field.active_sites'), fmt.number(p.active_sites)],
          [t('col.days_since_patrol'), days(p.days_since_patrol)],
          [t('field.visits_30d'), fmt.number(p.visits)],
        ]);
      },
      legend: () => BLIND_COLOURS.map(([, colour, key]) => ({ colour: colour, label: t(key) }))
        .concat([{ colour: '#dc2626', label: t('blind.no_patrols'), line: true }]),
    });
    XS.overlay('uncovered', {
      title: t('layer.uncovered'),
      style: () => ({ color: '#b91c1c', weight: 1.5, dashArray: '4 3', fillColor: '#f87171',
                      fillOpacity: 0.45 }),
      popup: (f) => '<strong>' + XS.esc(t('layer.uncovered')) + '</strong>'
        + XS.fields([[t('field.area'), t('unit.m2', { n: fmt.number(f.properties.area_m2) })]]),
      legend: () => [{ colour: '#f87171', label: t('layer.uncovered') }],
    });
    XS.overlay('hotspots', {
      title: t('layer.hotspots'),
      filter: (f) => f.properties.class in GI_COLOURS,
      style: (f) => ({ color: '#7f1d1d', weight: 0.8, opacity: 0.7,
                       fillColor: GI_COLOURS[f.properties.class], fillOpacity: 0.7 }),
      popup(f) {
        const p = f.properties;
        return '<strong>' + XS.esc(p.name || p.unit_id) + '</strong>' + XS.fields([
          [t('field.class'), XS.esc(XS.label('gi', p.class))],
          [t('field.events'), fmt.number(p.n)],
          [t('field.exposure'), fmt.number(p.exposure)],
          [t('field.rate'), fmt.number(p.rate, 3)],
          [t('field.z'), fmt.number(p.z, 2)],
          [t('field.p'), fmt.number(p.p, 4)],
        ]);
      },
      legend: () => Object.keys(GI_COLOURS).filter((c) => (XS.hotCounts || {})[c])
        .map((c) => ({ colour: GI_COLOURS[c], label: XS.label('gi', c) })),
    });
    XS.overlay('unpatrolled', {
      title: t('layer.unpatrolled'),
      pointToLayer: (f, latlng) => L.circleMarker(latlng, {
        radius: f.properties.high_risk ? 5.5 : 4, weight: 1, color: '#111827',
        fillColor: f.properties.high_risk ? '#dc2626' : '#f59e0b', fillOpacity: 0.9 }),
      popup(f) {
        const p = f.properties;
        return '<strong>' + XS.esc(p.title) + '</strong>' + XS.fields([
          [t('field.reg_no'), XS.esc(p.reg_no)],
          [t('field.state'), XS.esc(XS.label('state', p.state))],
          [t('field.category'), XS.esc(XS.label('category', p.category))],
          [t('field.high_risk'), p.high_risk ? t('yes') : t('no')],
          [t('field.grid'), XS.esc(p.grid_name)],
          [t('field.last_visit'), p.last_on ? fmt.date(p.last_on) : t('field.never_visited')],
          [t('field.due_every'), days(p.due_days)],
          [t('field.days_since_visit'), t('field.overdue_by', { n: fmt.number(p.overdue_days) })],
        ]);
      },
      legend: () => [
        { colour: '#dc2626', label: t('field.high_risk') },
        { colour: '#f59e0b', label: t('layer.unpatrolled') },
      ],
    });
  }

  // ---- blind spots --------------------------------------------------------------------------
  function fillBlindTable(fc) {
    const blind = fc.features.map((f) => f.properties).filter((p) => p.blind_spot)
      .sort((a, b) => b.overdue_sites - a.overdue_sites || b.active_sites - a.active_sites);
    const shown = blind.slice(0, 40);
    const body = document.querySelector('#blind-table tbody');
    body.innerHTML = shown.length ? shown.map((p) => '<tr data-grid="' + XS.esc(p.grid_code)
      + '"><td>' + XS.esc(p.grid_name) + '</td><td class="num">' + fmt.number(p.overdue_sites)
      + '</td><td class="num">' + fmt.number(p.active_sites) + '</td><td class="num">'
      + (p.days_since_patrol === null ? '–' : fmt.number(p.days_since_patrol)) + '</td></tr>').join('')
      : '<tr><td colspan="4">' + XS.esc(t('official.no_blind')) + '</td></tr>';
    document.getElementById('blind-more').textContent = blind.length > shown.length
      ? t('official.blind_table_more', { n: fmt.number(blind.length - shown.length) }) : '';
    body.onclick = (e) => {
      const row = e.target.closest('tr[data-grid]');
      if (row) zoomToGrid(row.dataset.grid);
    };
    document.getElementById('stat-grids').textContent = fmt.number(fc.features.length);
    document.getElementById('stat-blind').textContent = fmt.number(blind.length);
    const sum = (key) => fc.features.reduce((s, f) => s + (f.properties[key] || 0), 0);
    document.getElementById('stat-active').textContent = fmt.number(sum('active_sites'));
    document.getElementById('stat-overdue').textContent = fmt.number(sum('overdue_sites'));
  }

  function zoomToGrid(code) {
    const layer = XS.layers.blind_spots.layer.getLayers()
      .find((l) => l.feature.properties.grid_code === code);
    if (!layer) return;
    if (!XS.map.hasLayer(XS.layers.blind_spots.layer)) XS.layers.blind_spots.layer.addTo(XS.map);
    XS.map.fitBounds(layer.getBounds(), { maxZoom: 16 });
    layer.openPopup(layer.getBounds().getCenter());
  }

  async function loadCoverage() {
    const [blind, uncovered, unpatrolled] = await Promise.all([
      XS.load(t('layer.blind_spots'), XS.fetchJSON(XS.url('/api/coverage/blind-spots', { district }))),
      XS.load(t('layer.uncovered'), XS.fetchJSON(XS.url('/api/coverage/uncovered', { district }))),
      XS.load(t('layer.unpatrolled'), XS.fetchJSON(XS.url('/api/coverage/unpatrolled', {
        district, limit: 5000 }))),
    ]);
    XS.setData('blind_spots', blind);
    fillBlindTable(blind);
    XS.setData('uncovered', uncovered);
    const area = uncovered.features.reduce((s, f) => s + f.properties.area_m2, 0);
    document.getElementById('stat-uncovered').textContent = t('unit.m2', { n: fmt.number(area) });
    XS.setData('unpatrolled', unpatrolled);
  }

  // ---- hot spots ----------------------------------------------------------------------------
  function isoDay(date) {
    return date.toISOString().slice(0, 10);
  }
  // "The last N months": this month so far and the N - 1 whole months before it, as the
  // monthly statistics count them. Whole months are also what the patrol tiles keep counted
  // ahead of time at street zoom (app/services/rollups.py).
  function periodOf(months) {
    const end = new Date(boot.today + 'T12:00:00Z');
    const start = new Date(Date.UTC(end.getUTCFullYear(), end.getUTCMonth() - (Number(months) - 1),
                                    1, 12));
    return { start: isoDay(start), end: isoDay(end) };
  }

  function fillFilters() {
    const kind = document.getElementById('hot-kind');
    const category = document.getElementById('hot-category');
    for (const code of boot.kinds) kind.add(new Option(XS.label('kind', code), code));
    const fillCategories = () => {
      const chosen = category.value;
      category.length = 1;
      for (const [code, k] of Object.entries(boot.categories)) {
        if (!kind.value || kind.value === k) category.add(new Option(XS.label('category', code), code));
      }
      category.value = [...category.options].some((o) => o.value === chosen) ? chosen : '';
    };
    fillCategories();
    kind.addEventListener('change', () => { fillCategories(); loadHotspots(); });
    category.addEventListener('change', loadHotspots);
    document.getElementById('hot-period').addEventListener('change', loadHotspots);
  }

  let hotRequest = 0;
  async function loadHotspots() {
    const months = document.getElementById('hot-period').value;
    const kind = document.getElementById('hot-kind').value;
    const category = document.getElementById('hot-category').value;
    const summary = document.getElementById('hot-summary');
    const mine = ++hotRequest;
    summary.textContent = t('loading');
    const period = periodOf(months);
    const url = XS.url('/api/hotspots', { district, start: period.start, end: period.end,
                                          kind, category });
    try {
      const fc = await XS.fetchJSON(url);
      if (mine !== hotRequest) return;  // a newer choice is on its way
      XS.hotCounts = fc.class_counts;
      XS.setData('hotspots', fc);
      const c = fc.class_counts;
      summary.textContent = t('official.hot_summary', {
        events: fmt.number(fc.n_events),
        hot: fmt.number(c.hot_99 + c.hot_95 + c.hot_90),
        cold: fmt.number(c.cold_99 + c.cold_95 + c.cold_90) });
    } catch (err) {
      if (mine !== hotRequest || err.status === 401) return;
      XS.hotCounts = {};
      XS.setData('hotspots', { type: 'FeatureCollection', features: [] });
      summary.textContent = t('official.not_enough', { why: err.message });
    }
    summary.dataset.loaded = [months, kind, category].join('|');
  }

  // ---- patrols (and projects) from the vector tiles ----------------------------------------
  // Layers the catalogue serves as tiles grow with the city: drawn tile by tile, aggregated
  // at low zoom, never fetched whole. The patrols follow the period chosen for the hot spots.
  function patrolParams() {
    const period = periodOf(document.getElementById('hot-period').value);
    return { district, since: period.start, until: period.end };
  }
  async function loadTileLayers() {
    const catalogue = await XS.load(t('tiles.patrols_title'), XS.fetchJSON('/api/layers'));
    const byName = Object.fromEntries(catalogue.layers.map((l) => [l.name, l]));
    for (const [name, params, def] of [
      ['patrols', patrolParams(), { title: t('tiles.patrols_title') }],
      ['projects', { district, state: 'active' }, { show: false }],
    ]) {
      const cat = byName[name];
      if (cat && cat.served_as === 'tiles') XS.tileOverlay(name, cat, params, def);
    }
    document.getElementById('hot-period').addEventListener('change', () => {
      if (XS.tiles.patrols) XS.setTileParams('patrols', patrolParams());
    });
  }

  // ---- ranking and trends -------------------------------------------------------------------
  async function loadRanking() {
    const data = await XS.load(t('official.ranking'),
      XS.fetchJSON(XS.url('/api/rankings', { district, level: 'street' })));
    const body = document.querySelector('#ranking-table tbody');
    body.innerHTML = data.rows.map((r) => '<tr data-street="' + XS.esc(r.code) + '"><td class="num">'
      + fmt.number(r.rank) + '</td><td>' + XS.esc(r.name) + '</td><td class="num">'
      + fmt.number(r.registrations) + '</td><td class="num">' + fmt.number(r.patrols)
      + '</td><td class="num">' + fmt.number(r.hazards_found) + '</td><td class="num">'
      + fmt.number(r.overdue_sites) + '</td><td class="num">' + fmt.number(r.score, 1)
      + '</td></tr>').join('');
    body.onclick = (e) => {
      const row = e.target.closest('tr[data-street]');
      const layer = row && XS.layers.boundaries.layer.getLayers()
        .find((l) => l.feature.properties.code === row.dataset.street);
      if (layer) XS.map.fitBounds(layer.getBounds());
    };
  }

  async function loadTrends() {
    const data = await XS.load(t('official.trends'),
      XS.fetchJSON(XS.url('/api/stats/trends', { district, months: 12 })));
    const labels = data.months.map((m) => fmt.month(m.month));
    const series = (key) => data.months.map((m) => m[key]);
    const common = {
      animation: false, responsive: true, maintainAspectRatio: false, locale: boot.locale,
      interaction: { mode: 'index', intersect: false },
      plugins: { legend: { labels: { boxWidth: 12, font: { size: 11 } } } },
    };
    XS.charts = {};
    XS.charts.counts = new window.Chart(document.getElementById('chart-counts'), {
      type: 'bar',
      data: { labels: labels, datasets: [
        { label: t('trend.registrations'), data: series('registrations'), backgroundColor: '#60a5fa', yAxisID: 'y' },
        { label: t('trend.hazards'), data: series('hazards'), backgroundColor: '#f87171', yAxisID: 'y' },
        { label: t('trend.patrols'), data: series('patrols'), type: 'line', borderColor: '#059669',
          backgroundColor: '#059669', yAxisID: 'y1', pointRadius: 2 },
      ] },
      options: Object.assign({}, common, { scales: {
        y: { beginAtZero: true, position: 'left' },
        y1: { beginAtZero: true, position: 'right', grid: { drawOnChartArea: false } },
      } }),
    });
    XS.charts.rates = new window.Chart(document.getElementById('chart-rates'), {
      type: 'line',
      data: { labels: labels, datasets: [
        { label: t('trend.hazard_on_time'), data: series('hazard_on_time_rate'), borderColor: '#dc2626',
          backgroundColor: '#dc2626', spanGaps: true, pointRadius: 2 },
        { label: t('trend.close_on_time'), data: series('close_on_time_rate'), borderColor: '#2563eb',
          backgroundColor: '#2563eb', spanGaps: true, pointRadius: 2 },
      ] },
      options: Object.assign({}, common, { scales: { y: { min: 0, max: 1, ticks: {
        callback: (v) => fmt.percent(v) } } },
        plugins: Object.assign({}, common.plugins, { tooltip: { callbacks: {
          label: (c) => c.dataset.label + ': ' + fmt.percent(c.parsed.y) } } }) }),
    });
  }

  // ---- start --------------------------------------------------------------------------------
  XS.createMap();
  defineLayers();
  fillFilters();
  XS.status(t('loading'));
  Promise.allSettled([XS.boundaries(), loadCoverage(), loadHotspots(), loadRanking(), loadTrends(),
                      loadTileLayers()])
    .then((results) => {
      if (results.every((r) => r.status === 'fulfilled')) XS.status('');
      XS.ready();
    });
})();
