/* The grid desk: a grid manager's grids, active sites coloured by days since the last visit,
 * overdue items, hazards to verify, today's stored route, and a site's card in the panel.
 * Grids come from ?grid=a,b (later: the logged-in user's scope) or the picker.
 * Data: /api/worklist/{grids,sites,hazards,overdue,route}, /api/worklist/sites/{id}/card.
 */
(function () {
  'use strict';
  const XS = window.XS;
  const boot = XS.boot;
  const t = XS.t;
  const fmt = XS.fmt;
  let chosen = boot.chosen.slice();

  // Days since the last visit, against the site's period (3 days high risk, 7 others).
  const FRESHNESS = [
    { key: 'grid.fresh', colour: '#16a34a' },
    { key: 'grid.due_soon', colour: '#f59e0b' },
    { key: 'grid.overdue_state', colour: '#dc2626' },
    { key: 'grid.never', colour: '#450a0a' },
  ];
  function freshness(p) {
    if (p.overdue) return p.never_visited ? FRESHNESS[3] : FRESHNESS[2];
    return p.days_waiting * 2 <= p.due_days ? FRESHNESS[0] : FRESHNESS[1];
  }
  const HAZARD_COLOURS = { rectified: '#7c3aed', found: '#dc2626', ordered: '#ea580c' };

  // ---- picker -------------------------------------------------------------------------------
  const byCode = {};
  for (const g of boot.grids) byCode[g.code] = g;
  const communityName = {};
  for (const c of boot.communities) communityName[c.code] = c.name;

  function fillSelect(select, items, selected) {
    select.length = 0;
    for (const item of items) select.add(new Option(item.name, item.code));
    if (selected && items.some((i) => i.code === selected)) select.value = selected;
  }
  function setupPicker() {
    const street = document.getElementById('pick-street');
    const community = document.getElementById('pick-community');
    const grid = document.getElementById('pick-grid');
    const first = chosen.length ? byCode[chosen[0]] : null;
    const firstCommunity = first ? first.community : null;
    const firstStreet = firstCommunity
      ? (boot.communities.find((c) => c.code === firstCommunity) || {}).street : null;
    const onStreet = () => {
      fillSelect(community, boot.communities.filter((c) => c.street === street.value), firstCommunity);
      onCommunity();
    };
    const onCommunity = () => fillSelect(grid, boot.grids.filter((g) => g.community === community.value),
      first ? first.code : null);
    fillSelect(street, boot.streets, firstStreet);
    onStreet();
    street.addEventListener('change', onStreet);
    community.addEventListener('change', onCommunity);
    document.getElementById('pick-add').addEventListener('click', () => {
      if (grid.value && !chosen.includes(grid.value)) {
        chosen.push(grid.value);
        changed();
      }
    });
    document.getElementById('chosen').addEventListener('click', (e) => {
      const button = e.target.closest('button[data-grid]');
      if (!button) return;
      chosen = chosen.filter((c) => c !== button.dataset.grid);
      changed();
    });
    if (boot.unknown.length) {
      document.getElementById('pick-note').textContent = t('grid.unknown', { codes: boot.unknown.join(', ') });
    }
  }
  function renderChips() {
    document.getElementById('chosen').innerHTML = chosen.map((code) => {
      const name = byCode[code] ? byCode[code].name : code;
      return '<li data-grid="' + XS.esc(code) + '">' + XS.esc(name) + '<button type="button" data-grid="'
        + XS.esc(code) + '" aria-label="' + XS.esc(t('grid.remove', { name: name })) + '">×</button></li>';
    }).join('');
  }
  function changed() {
    const params = new URLSearchParams(location.search);
    if (chosen.length) params.set('grid', chosen.join(',')); else params.delete('grid');
    const qs = params.toString();
    history.replaceState(null, '', location.pathname + (qs ? '?' + qs : ''));
    const lang = document.getElementById('xs-lang');
    const other = new URLSearchParams(new URL(lang.href).search);
    if (chosen.length) other.set('grid', chosen.join(',')); else other.delete('grid');
    lang.search = other.toString();
    loadAll();
  }

  // ---- layers -------------------------------------------------------------------------------
  function defineLayers() {
    XS.overlay('my_grids', {
      title: t('layer.my_grids'),
      interactive: false,
      style: () => ({ color: '#1d4ed8', weight: 2.5, fillColor: '#93c5fd', fillOpacity: 0.12 }),
      legend: () => [{ colour: '#1d4ed8', label: t('layer.my_grids'), line: true }],
    });
    XS.overlay('route', {
      title: t('layer.route'),
      style: (f) => ({ color: f.properties.colour || '#2563eb', weight: 4, opacity: 0.75 }),
      pointToLayer: (f, latlng) => L.marker(latlng, { icon: L.divIcon({
        className: 'xs-stop-icon', iconSize: [22, 22],
        html: '<span class="xs-stop" style="border-color:' + XS.esc(f.properties.colour) + ';color:'
          + XS.esc(f.properties.colour) + '">' + f.properties.sequence + '</span>' }) }),
      popup(f) {
        const p = f.properties;
        if (p.feature === 'route') return XS.esc(t('grid.route_inspector', { code: p.inspector_code }));
        return '<strong>' + XS.esc(t('grid.route_stop', { n: p.sequence, eta: p.eta || '' })) + '</strong>'
          + XS.fields([[t('field.title'), XS.esc(p.title || '')], [t('field.reg_no'), XS.esc(p.reg_no || '')]]);
      },
      // A stop sits on its site: clicking it opens the site's card as well.
      onClick: (f) => { if (f.properties.project_id) showCard(f.properties.project_id); },
    });
    XS.overlay('sites', {
      title: t('layer.sites'),
      pointToLayer: (f, latlng) => L.circleMarker(latlng, {
        radius: f.properties.high_risk ? 7 : 5.5, weight: f.properties.high_risk ? 2 : 1,
        color: '#111827', fillColor: freshness(f.properties).colour, fillOpacity: 0.95 }),
      onClick: (f) => showCard(f.properties.id),
      tooltip(f) {
        const p = f.properties;
        const seen = p.never_visited ? t('field.never_visited')
          : t('field.days_since_visit') + ' ' + fmt.days(p.days_since_visit);
        return XS.esc(p.title) + '<br>' + XS.esc(XS.label('state', p.state)) + ' · ' + XS.esc(seen);
      },
      legend: () => FRESHNESS.map((s) => ({ colour: s.colour, label: t(s.key) })),
    });
    XS.overlay('hazards', {
      title: t('layer.hazards'),
      pointToLayer: (f, latlng) => L.marker(latlng, { icon: L.divIcon({
        className: 'xs-hazard', iconSize: [18, 18], iconAnchor: [9, 12],
        html: '<span style="color:' + (HAZARD_COLOURS[f.properties.state] || '#dc2626')
          + ';font-size:18px;line-height:18px;text-shadow:0 0 2px #fff">▲</span>' }) }),
      popup(f) {
        const p = f.properties;
        return '<strong>' + XS.esc(XS.label('hazard_type', p.hazard_type)) + '</strong> '
          + (p.to_verify ? '<span class="xs-badge amber">' + XS.esc(t('grid.to_verify')) + '</span>' : '')
          + XS.fields([
            [t('field.state'), XS.esc(XS.label('hazard_state', p.state))],
            [t('field.severity'), XS.esc(XS.label('severity', p.severity))],
            [t('field.found_on'), fmt.date(p.found_on)],
            [t('field.due_on'), fmt.date(p.due_on)],
            p.rectified_on ? [t('field.rectified_on'), fmt.date(p.rectified_on)] : null,
            [t('field.title'), XS.esc(p.project_title || '')],
          ]);
      },
      legend: () => Object.entries(HAZARD_COLOURS).map(([state, colour]) => ({
        colour: colour, label: XS.label('hazard_state', state) })),
    });
  }

  // ---- panel lists --------------------------------------------------------------------------
  function list(id, items, render) {
    const el = document.getElementById(id);
    el.innerHTML = items.length ? items.map(render).join('')
      : '<li class="xs-empty">' + XS.esc(t('grid.nothing')) + '</li>';
  }
  function zoomTo(layerName, predicate, open) {
    const layer = XS.layers[layerName].layer.getLayers().find((l) => predicate(l.feature.properties));
    if (!layer) return;
    XS.map.setView(layer.getLatLng(), Math.max(XS.map.getZoom(), 17));
    if (open) layer.openPopup();
  }

  function renderLists(sites, hazards, clocks, route) {
    const overdue = sites.features.map((f) => f.properties).filter((p) => p.overdue)
      .sort((a, b) => b.overdue_days - a.overdue_days);
    list('overdue-sites', overdue, (p) => '<li data-site="' + p.id + '">' + XS.esc(p.title)
      + ' <span class="xs-badge red">' + XS.esc(p.never_visited ? t('field.never_visited')
        : t('field.overdue_by', { n: fmt.number(p.overdue_days) })) + '</span></li>');
    list('overdue-clocks', clocks.items, (c) => '<li data-site="' + c.id + '">' + XS.esc(c.title)
      + ' <span class="xs-badge amber">' + XS.esc(XS.label('clock', c.clock)) + '</span>'
      + ' <span class="xs-note">' + XS.esc(fmt.date(c.due)) + ' · '
      + XS.esc(t('grid.working_days_late', { n: fmt.number(c.working_days_late) })) + '</span></li>');
    list('hazard-list', hazards.features.map((f) => f.properties), (h) => '<li data-hazard="' + h.id
      + '">' + XS.esc(XS.label('hazard_type', h.hazard_type)) + ' · ' + XS.esc(XS.label('severity', h.severity))
      + ' <span class="xs-badge' + (h.to_verify ? ' amber' : h.late ? ' red' : '') + '">'
      + XS.esc(XS.label('hazard_state', h.state)) + '</span> <span class="xs-note">'
      + XS.esc(fmt.date(h.due_on)) + '</span></li>');
    document.getElementById('stat-sites').textContent = fmt.number(sites.features.length);
    document.getElementById('stat-overdue').textContent = fmt.number(overdue.length);
    document.getElementById('stat-hazards').textContent = fmt.number(hazards.features.length);
    document.getElementById('stat-clocks').textContent = fmt.number(clocks.count);
    renderRoute(route);
  }

  function renderRoute(route) {
    const body = document.getElementById('route-body');
    if (!route.plan) {
      body.innerHTML = '<p class="xs-note">' + XS.esc(t('grid.no_route')) + '</p>';
      return;
    }
    const byInspector = {};
    for (const f of route.features) {
      if (f.properties.feature !== 'stop') continue;
      (byInspector[f.properties.inspector_code] = byInspector[f.properties.inspector_code] || []).push(f.properties);
    }
    body.innerHTML = Object.entries(byInspector).map(([code, stops]) => '<h3>'
      + XS.esc(t('grid.route_inspector', { code: code })) + '</h3><ol class="xs-list">'
      + stops.map((s) => '<li data-stop="' + s.sequence + '"' + (s.in_my_grids ? '' : ' style="opacity:.6"')
        + '>' + XS.esc(t('grid.route_stop', { n: s.sequence, eta: s.eta || '' })) + ' · '
        + XS.esc(s.title || s.kind) + '</li>').join('') + '</ol>').join('');
  }

  document.addEventListener('click', (e) => {
    const site = e.target.closest('#panel li[data-site]');
    if (site) {
      const id = Number(site.dataset.site);
      zoomTo('sites', (p) => p.id === id, false);
      showCard(id);
      return;
    }
    const hazard = e.target.closest('#panel li[data-hazard]');
    if (hazard) zoomTo('hazards', (p) => p.id === Number(hazard.dataset.hazard), true);
  });

  // ---- the site card ------------------------------------------------------------------------
  function photoHTML(photo) {
    // Only our own server's photos are shown: a reference elsewhere would leave the intranet.
    if (/^\/(?!\/)/.test(photo.ref)) {
      return '<a href="' + XS.esc(photo.ref) + '" target="_blank" rel="noopener"><img src="'
        + XS.esc(photo.ref) + '" alt="' + XS.esc(photo.source) + '" loading="lazy"></a>';
    }
    return '<span class="xs-note">' + XS.esc(photo.ref) + '</span>';
  }

  async function showCard(id) {
    const section = document.getElementById('card');
    const body = document.getElementById('card-body');
    section.hidden = false;
    body.innerHTML = '<p class="xs-note">' + XS.esc(t('loading')) + '</p>';
    body.dataset.site = '';
    const c = await XS.load(t('card.title'), XS.fetchJSON('/api/worklist/sites/' + id + '/card'));
    const links = [];
    if (c.links.signboard_png) {
      links.push('<a href="' + XS.esc(c.links.signboard_png) + '" target="_blank" rel="noopener">'
        + XS.esc(t('card.signboard')) + ' (PNG)</a>');
      links.push('<a href="' + XS.esc(c.links.signboard_pdf) + '" target="_blank" rel="noopener">PDF</a>');
    }
    links.push('<a href="' + XS.esc(c.links.public_page) + '" target="_blank" rel="noopener">'
      + XS.esc(t('card.public_page')) + '</a>');
    const since = c.days_since_visit === null ? t('field.never_visited') : fmt.days(c.days_since_visit);
    body.innerHTML = '<div class="xs-card"><h3>' + XS.esc(c.title) + '</h3><p>'
      + '<span class="xs-badge">' + XS.esc(XS.label('state', c.state)) + '</span>'
      + (c.high_risk ? '<span class="xs-badge red">' + XS.esc(t('field.high_risk')) + '</span>' : '')
      + (c.overdue ? '<span class="xs-badge red">' + XS.esc(t('grid.overdue_state')) + '</span>' : '')
      + '</p>' + XS.fields([
        [t('field.reg_no'), XS.esc(c.reg_no)],
        [t('field.kind'), XS.esc(XS.label('kind', c.kind))],
        [t('field.category'), XS.esc(XS.label('category', c.category))],
        [t('field.address'), XS.esc(c.address)],
        [t('field.grid'), XS.esc(c.grid_name)],
        [t('field.builder'), XS.esc(c.builder || '')],
        [t('field.contractor'), XS.esc(c.contractor || '')],
        [t('field.planned'), fmt.date(c.planned_start) + ' – ' + fmt.date(c.planned_end)],
        [t('field.last_visit'), c.last_visit_on ? fmt.date(c.last_visit_on) : '–'],
        [t('field.days_since_visit'), XS.esc(since)],
        [t('field.due_every'), fmt.days(c.due_days)],
      ]) + '<p class="xs-links">' + links.join(' · ') + '</p>'
      + '<h3>' + XS.esc(t('card.visits')) + '</h3><ol>' + (c.visits.length ? c.visits.map((v) => '<li>'
        + fmt.date(v.visited_on) + ' · ' + XS.esc(v.inspector_name || v.force) + '</li>').join('')
        : '<li>' + XS.esc(t('grid.nothing')) + '</li>') + '</ol>'
      + '<h3>' + XS.esc(t('card.timeline')) + '</h3><ol class="xs-timeline">' + c.timeline.map((e) => '<li>'
        + fmt.datetime(e.at) + ' · ' + XS.esc(XS.label('action', e.action)) + ' · ' + XS.esc(e.actor)
        + (e.reason ? ' · ' + XS.esc(e.reason) : '') + '</li>').join('') + '</ol>'
      + '<h3>' + XS.esc(t('card.photos')) + '</h3><div class="xs-photos">' + (c.photos.length
        ? c.photos.map(photoHTML).join('') : '<span class="xs-note">' + XS.esc(t('card.no_photos')) + '</span>')
      + '</div></div>';
    body.dataset.site = String(c.id);
    if (window.matchMedia('(max-width: 760px)').matches) section.scrollIntoView({ behavior: 'smooth' });
  }
  document.getElementById('card-close').addEventListener('click', () => {
    document.getElementById('card').hidden = true;
  });

  // ---- loading ------------------------------------------------------------------------------
  const EMPTY = { type: 'FeatureCollection', features: [] };
  let loadNo = 0;
  async function loadAll() {
    renderChips();
    const mine = ++loadNo;
    if (!chosen.length) {
      for (const name of ['my_grids', 'sites', 'hazards', 'route']) XS.setData(name, EMPTY);
      renderLists(EMPTY, EMPTY, { count: 0, items: [] }, { plan: null });
      document.getElementById('pick-note').textContent = t('grid.none_chosen');
      return;
    }
    const suggested = boot.suggested && chosen.length === 1 && chosen[0] === boot.suggested;
    document.getElementById('pick-note').textContent = suggested
      ? t('grid.suggested', { name: byCode[boot.suggested] ? byCode[boot.suggested].name : boot.suggested })
      : '';
    XS.status(t('loading'));
    const q = { grid: chosen.join(',') };
    const [grids, sites, hazards, clocks, route] = await Promise.all([
      XS.load(t('layer.my_grids'), XS.fetchJSON(XS.url('/api/worklist/grids', q))),
      XS.load(t('layer.sites'), XS.fetchJSON(XS.url('/api/worklist/sites', q))),
      XS.load(t('layer.hazards'), XS.fetchJSON(XS.url('/api/worklist/hazards', q))),
      XS.load(t('grid.overdue_clocks'), XS.fetchJSON(XS.url('/api/worklist/overdue', q))),
      XS.load(t('layer.route'), XS.fetchJSON(XS.url('/api/worklist/route', q))),
    ]);
    if (mine !== loadNo) return;
    XS.setData('my_grids', grids);
    XS.setData('route', route);
    XS.setData('sites', sites);
    XS.setData('hazards', hazards);
    renderLists(sites, hazards, clocks, route);
    const bounds = XS.layers.my_grids.layer.getBounds();
    if (bounds.isValid()) XS.map.fitBounds(bounds, { padding: [20, 20], maxZoom: 17, animate: false });
    XS.status('');
  }

  // ---- start --------------------------------------------------------------------------------
  XS.createMap();
  defineLayers();
  setupPicker();
  Promise.allSettled([XS.boundaries(), loadAll()]).then(() => XS.ready());
})();
