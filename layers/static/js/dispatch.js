/* The dispatcher's desk: a street's sites to visit on a day, by priority; a plan of the
 * inspectors' routes along the roads with numbered stops and ETAs; pins and fixed orders for
 * a re-plan (a new version, the old one kept); the left-out sites with their reasons; exports.
 * Data: /api/inspectors, /api/plans/candidates, /api/plans (list, POST), /api/plans/{id}
 * (.geojson, .gpx), POST /api/plans/{id}/replan.
 */
(function () {
  'use strict';
  const XS = window.XS;
  const boot = XS.boot;
  const t = XS.t;
  const fmt = XS.fmt;
  const esc = XS.esc;
  const english = boot.lang === 'en';
  const EMPTY = { type: 'FeatureCollection', features: [] };

  const state = {
    street: boot.street,
    date: boot.date,
    roster: [],           // the street's inspectors on duty (/api/inspectors)
    checked: new Set(),   // the inspectors the next plan may use
    candidates: [],       // the day's sites, mandatory first then by value (as the API sends)
    bySite: {},
    plan: null,           // the plan shown (its JSON)
    pins: {},             // site → inspector: sent with the next plan or re-plan
    fixed: {},            // inspector → sites in order: sent likewise
    stored: [],
    busy: false,
  };

  // Priority: mandatory first, then by value (days overdue × risk weight).
  const PRIORITY = [
    { key: 'dispatch.prio_mandatory', colour: '#991b1b', test: (c) => c.mandatory },
    { key: 'dispatch.prio_high', colour: '#ea580c', test: (c) => c.value >= 21 },
    { key: 'dispatch.prio_medium', colour: '#f59e0b', test: (c) => c.value >= 7 },
    { key: 'dispatch.prio_low', colour: '#fde047', test: () => true },
  ];
  const LEFT_COLOUR = '#4b5563';
  function priority(c) {
    return PRIORITY.find((p) => p.test(c));
  }

  // ---- small helpers ------------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);
  function dot(colour) {
    return '<span class="dp-dot" style="background:' + esc(colour) + '"></span>';
  }
  function badge(text, tone) {
    return ' <span class="xs-badge' + (tone ? ' ' + tone : '') + '">' + esc(text) + '</span>';
  }
  function visitLabel(kind) {
    return XS.label('visit', String(kind || '').replace('+', '_'));
  }
  function minutes(n) {
    return t('dispatch.minutes', { n: fmt.number(n) });
  }
  function inspectorName(code) {
    const route = state.plan && state.plan.routes.find((r) => r.inspector === code);
    const insp = route || state.roster.find((i) => i.code === code);
    return (insp && insp.name) || code;
  }
  function siteTitle(site) {
    const cand = state.bySite[site];
    if (cand) return cand.title;
    if (state.plan) {
      for (const r of state.plan.routes) {
        const s = r.stops.find((x) => x.site === site);
        if (s) return s.title || site;
      }
      const lo = state.plan.left_out.find((x) => x.site === site);
      if (lo) return lo.title || site;
    }
    return site;
  }
  function reasonText(p) {
    return english ? p.reason_en : p.reason_zh;
  }
  function constraintText(p) {
    if (!p.constraint) return '–';
    return english ? String(p.constraint).replace(/_/g, ' ') : p.constraint_zh;
  }

  // ---- writes: POST with the shell's login handling, 422s kept with the input they name -----
  function problemsOf(body) {
    const detail = body && body.detail;
    if (Array.isArray(detail)) {
      return detail.map((d) => {
        const loc = (d.loc || []).filter((part) => part !== 'body' && part !== 'query');
        return { field: loc.length ? String(loc[0]) : 'input', path: loc.slice(1).join(' › '),
                 msg: d.msg || JSON.stringify(d) };
      });
    }
    return detail ? [{ field: null, path: '', msg: String(detail) }] : [];
  }
  async function postJSON(url, body) {
    const response = await fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (response.status === 401) {
      XS.toLogin();
      throw new XS.HttpError(401, 'login required');
    }
    let data = null;
    try {
      data = await response.json();
    } catch (e) { /* not JSON */ }
    if (!response.ok) {
      const err = new XS.HttpError(response.status, response.statusText);
      err.problems = problemsOf(data);
      throw err;
    }
    return data;
  }
  /** A refusal in words: each problem with the input it names (pins, fixed orders, ...). */
  function refusalText(err) {
    const problems = err.problems && err.problems.length ? err.problems
      : [{ field: null, path: '', msg: err.message }];
    const why = problems.map((p) => (p.field ? t('dispatch.input', {
      field: XS.label('input', p.field) + (p.path ? ' › ' + p.path : ''), msg: p.msg }) : p.msg));
    return t('dispatch.refused', { status: err.status || '–', why: '\n' + why.join('\n') });
  }
  /** A message where the action was asked for (the plan form or the re-plan button). */
  function showError(message, where) {
    for (const id of ['dp-error', 'dp-replan-error']) $(id).textContent = '';
    if (!message) return;
    const el = $(where || 'dp-error');
    el.textContent = message;
    el.scrollIntoView({ block: 'nearest' });
  }

  // ---- layers -------------------------------------------------------------------------------
  function defineLayers() {
    XS.overlay('routes', {
      title: t('layer.plan_routes'),
      style: (f) => ({ color: f.properties.colour, weight: 5, opacity: 0.8 }),
      popup(f) {
        const p = f.properties;
        return '<strong>' + dot(p.colour) + esc(p.name || p.inspector) + '</strong>' + XS.fields([
          [t('dispatch.col_stops'), fmt.number(p.stops)],
          [t('dispatch.distance'), esc(t('dispatch.km', { n: fmt.number(p.distance_m / 1000, 1) }))],
          [t('dispatch.col_time'), esc((p.depart || '–') + ' – ' + (p['return'] || '–'))],
          [t('dispatch.travel'), esc(minutes(p.travel_min))],
        ]);
      },
      legend() {
        if (!state.plan) return [];
        const seen = new Set();
        return state.plan.routes.filter((r) => r.stops.length && !seen.has(r.inspector)
          && seen.add(r.inspector)).map((r) => ({ colour: r.colour, label: r.name || r.inspector,
          line: true }));
      },
    });
    XS.overlay('candidates', {
      title: t('layer.candidates'),
      pointToLayer: (f, latlng) => L.circleMarker(latlng, {
        radius: f.properties.mandatory ? 7 : 5.5, weight: 1, color: '#111827',
        opacity: state.plan ? 0.45 : 1, fillColor: priority(f.properties).colour,
        fillOpacity: state.plan ? 0.4 : 0.95 }),
      popup: (f) => candidatePopup(f.properties),
      tooltip: (f) => esc(f.properties.rank + '. ' + f.properties.title),
      legend: () => PRIORITY.map((p) => ({ colour: p.colour, label: t(p.key) })),
    });
    XS.overlay('left_out', {
      title: t('layer.left_out'),
      pointToLayer: (f, latlng) => L.marker(latlng, { icon: L.divIcon({
        className: 'dp-left-icon', iconSize: [16, 16], html: '<span>×</span>' }) }),
      popup: (f) => leftPopup(f.properties),
      tooltip: (f) => esc(f.properties.title + ' · ' + reasonText(f.properties)),
      legend: () => (state.plan && state.plan.left_out.length
        ? [{ colour: LEFT_COLOUR, label: t('layer.left_out'), line: true }] : []),
    });
    XS.overlay('stops', {
      title: t('layer.plan_stops'),
      pointToLayer(f, latlng) {
        const p = f.properties;
        const colour = esc(p.colour);
        const style = p.mandatory ? 'background:' + colour + ';border-color:' + colour
          : 'border-color:' + colour + ';color:' + colour;
        return L.marker(latlng, { riseOnHover: true, icon: L.divIcon({
          className: 'xs-stop-icon', iconSize: [22, 22],
          html: '<span class="xs-stop' + (p.mandatory ? ' dp-mandatory' : '') + '" style="'
            + style + '">' + esc(p.seq) + '</span>' }) });
      },
      popup: (f) => stopPopup(f.properties),
      tooltip: (f) => esc(t('dispatch.stop_tip', { n: f.properties.seq, eta: f.properties.eta || '–',
                                                  title: f.properties.title || f.properties.site })),
    });
  }

  function navLinks(p) {
    return '<p class="dp-links"><a href="' + esc(p.nav_route_url) + '" target="_blank" '
      + 'rel="noopener" data-nav="route">' + esc(t('dispatch.nav_route')) + '</a><a href="'
      + esc(p.nav_url) + '" target="_blank" rel="noopener" data-nav="marker">'
      + esc(t('dispatch.nav_marker')) + '</a></p>';
  }

  /** Who a site may be pinned to: the plan's inspectors (before a plan, those ticked). */
  function pinChoices() {
    if (state.plan) {
      const seen = new Set();
      return state.plan.routes.filter((r) => !seen.has(r.inspector) && seen.add(r.inspector))
        .map((r) => ({ code: r.inspector, name: r.name || r.inspector }));
    }
    return state.roster.filter((i) => state.checked.has(i.code))
      .map((i) => ({ code: i.code, name: i.name || i.code }));
  }
  function pinForm(site, routeOf) {
    const pinned = state.pins[site] || '';
    const eligible = (state.bySite[site] || {}).eligible;
    const option = (i) => '<option value="' + esc(i.code) + '"' + (i.code === pinned ? ' selected' : '')
      + '>' + esc(i.name) + '</option>';
    const choices = pinChoices();
    let options = '<option value="">' + esc(t('dispatch.no_pin')) + '</option>';
    if (eligible) {
      const outside = choices.filter((i) => !eligible.includes(i.code));
      options += choices.filter((i) => eligible.includes(i.code)).map(option).join('');
      if (outside.length) {
        options += '<optgroup label="' + esc(t('dispatch.outside_area')) + '">'
          + outside.map(option).join('') + '</optgroup>';
      }
    } else {
      options += choices.map(option).join('');
    }
    let html = '<div class="dp-pin"><label>' + esc(t('dispatch.pin_to')) + ' <select data-pin-site="'
      + esc(site) + '">' + options + '</select></label>';
    if (routeOf && state.plan && state.plan.kind === 'day') {
      html += '<label><input type="checkbox" data-fix="' + esc(routeOf) + '"'
        + (state.fixed[routeOf] ? ' checked' : '') + '> '
        + esc(t('dispatch.fix_order', { name: inspectorName(routeOf) })) + '</label>';
    }
    return html + '</div>';
  }

  function candidatePopup(c) {
    return '<strong>' + esc(c.rank + '. ' + c.title) + '</strong>'
      + (c.mandatory ? badge(t('dispatch.mandatory'), 'red') : '')
      + (c.high_risk ? badge(t('field.high_risk'), 'amber') : '')
      + XS.fields([
        [t('field.reg_no'), esc(c.reg_no || '–')],
        [t('dispatch.visit'), esc(visitLabel(c.kind))],
        [t('field.category'), esc(XS.label('category', c.category))],
        c.overdue_days !== null ? [t('dispatch.overdue'), esc(fmt.days(c.overdue_days))] : null,
        c.hazard_ids.length ? [t('dispatch.hazards'), esc('#' + c.hazard_ids.join(', #'))] : null,
        [t('dispatch.value'), fmt.number(c.value, 1)],
        [t('dispatch.service'), esc(minutes(c.service_min))],
        c.window ? [t('dispatch.window'), esc(c.window.join('–'))] : null,
        [t('field.grid'), esc(c.grid_code || '–')],
        [t('dispatch.eligible'), esc((c.eligible || []).map(inspectorName).join('; ') || '–')],
      ]) + pinForm(c.site, null);
  }

  function stopPopup(p) {
    const cand = state.bySite[p.site];
    return '<strong data-eta="' + esc(p.eta || '') + '">'
      + esc(t('dispatch.stop', { n: p.seq, eta: p.eta || '–' })) + '</strong>'
      + (p.mandatory ? badge(t('dispatch.mandatory'), 'red') : '')
      + (p.high_risk ? badge(t('field.high_risk'), 'amber') : '')
      + XS.fields([
        [t('field.title'), esc(p.title || p.site)],
        p.reg_no ? [t('field.reg_no'), esc(p.reg_no)] : null,
        [t('dispatch.inspector'), dot(p.colour) + esc(p.name || p.inspector)],
        [t('dispatch.visit'), esc(visitLabel(p.site_kind))],
        [t('dispatch.arrive'), esc(p.eta || '–')
          + (p.estimated ? badge(t('dispatch.estimated'), 'amber') : '')],
        p.wait_min > 0 ? [t('dispatch.wait'), esc(minutes(p.wait_min))] : null,
        [t('dispatch.start'), esc(p.start || '–')],
        [t('dispatch.depart'), esc(p.depart || '–')],
        p.service_min ? [t('dispatch.service'), esc(minutes(p.service_min))] : null,
        p.window ? [t('dispatch.window'), esc(p.window.join('–'))] : null,
        cand && cand.overdue_days !== null
          ? [t('dispatch.overdue'), esc(fmt.days(cand.overdue_days))] : null,
        p.hazard_ids && p.hazard_ids.length
          ? [t('dispatch.hazards'), esc('#' + p.hazard_ids.join(', #'))] : null,
      ])
      + (p.fixed ? '<p class="xs-note">' + esc(t('dispatch.fixed')) + '</p>' : '')
      + navLinks(p) + pinForm(p.site, p.inspector);
  }

  function leftPopup(p) {
    return '<strong>' + esc(p.title || p.site) + '</strong>'
      + (p.mandatory ? badge(t('dispatch.mandatory'), 'red') : '')
      + XS.fields([
        p.reg_no ? [t('field.reg_no'), esc(p.reg_no)] : null,
        [t('dispatch.visit'), esc(visitLabel(p.site_kind))],
        [t('dispatch.reason'), esc(reasonText(p))],
        [t('dispatch.constraint'), esc(constraintText(p))],
        english && p.detail ? ['', esc(p.detail)] : null,
      ]) + pinForm(p.site, null);
  }

  // ---- the form: date, street, time limit, inspectors -----------------------------------------
  function setupForm() {
    const street = $('dp-street');
    for (const s of boot.streets) street.add(new Option(s.name, s.code));
    if (state.street) street.value = state.street;
    $('dp-date').value = state.date;
    const deadline = $('dp-deadline');
    deadline.value = boot.deadline_s;
    deadline.max = boot.max_deadline_s;
    if (boot.unknown_street) {
      const name = (boot.streets.find((s) => s.code === state.street) || {}).name || '–';
      $('dp-street-note').textContent = t('dispatch.unknown_street', { code: boot.unknown_street,
                                                                      name: name });
    }
    street.addEventListener('change', () => changeArea(street.value, state.date));
    $('dp-date').addEventListener('change', (e) => {
      if (e.target.value) changeArea(state.street, e.target.value);
    });
    $('dp-inspectors').addEventListener('change', (e) => {
      const box = e.target.closest('input[type=checkbox]');
      if (!box) return;
      if (box.dataset.all !== undefined) {
        state.checked = new Set(box.checked ? state.roster.map((i) => i.code) : []);
      } else if (box.checked) {
        state.checked.add(box.value);
      } else {
        state.checked.delete(box.value);
      }
      renderInspectors();
    });
    $('dp-plan').addEventListener('click', makePlan);
    $('dp-replan').addEventListener('click', replan);
  }

  function deadlineS() {
    const value = Number($('dp-deadline').value);
    if (!Number.isFinite(value) || value <= 0) return boot.deadline_s;
    return Math.min(Math.max(value, 1), boot.max_deadline_s);
  }

  function renderInspectors() {
    const el = $('dp-inspectors');
    if (!state.roster.length) {
      el.innerHTML = '<span class="xs-note">' + esc(t('dispatch.no_inspectors')) + '</span>';
    } else {
      const all = state.roster.every((i) => state.checked.has(i.code));
      el.innerHTML = '<label><input type="checkbox" data-all' + (all ? ' checked' : '') + '> '
        + esc(t('dispatch.all_inspectors')) + '</label>' + state.roster.map((i) => '<label title="'
        + esc(i.code) + '"><input type="checkbox" value="' + esc(i.code) + '"'
        + (state.checked.has(i.code) ? ' checked' : '') + '> ' + esc(i.name || i.code) + '</label>')
        .join('');
    }
    setBusy(state.busy);
  }

  function renderCandidates() {
    const items = state.candidates;
    const mandatory = items.filter((c) => c.mandatory).length;
    $('cand-count').textContent = items.length
      ? t('dispatch.cand_count', { n: fmt.number(items.length), m: fmt.number(mandatory) })
      : t('dispatch.no_candidates');
    $('cand-list').innerHTML = items.map((c) => '<li data-site="' + esc(c.site) + '">'
      + dot(priority(c).colour) + esc(c.title)
      + (c.mandatory ? badge(t('dispatch.mandatory'), 'red') : '')
      + (c.overdue_days !== null ? badge(t('field.overdue_by', { n: fmt.number(c.overdue_days) }))
        : badge(visitLabel(c.kind)))
      + '</li>').join('');
  }

  function candidateFC(items) {
    return { type: 'FeatureCollection', features: items.map((c, i) => ({
      type: 'Feature', id: c.site, geometry: { type: 'Point', coordinates: [c.lon, c.lat] },
      properties: Object.assign({ rank: i + 1 }, c) })) };
  }

  // ---- the plan shown -------------------------------------------------------------------------
  function renderPlan() {
    const plan = state.plan;
    const section = $('plan-section');
    $('plan-empty').hidden = !!plan;
    $('plan-body').hidden = !plan;
    if (!plan) {
      $('plan-title').textContent = t('layer.plan_routes');
      delete section.dataset.plan;
      delete section.dataset.version;
      return;
    }
    $('plan-title').innerHTML = esc(t('dispatch.plan_title', { id: plan.id, version: plan.version }))
      + badge(XS.label('plan_status', plan.status), plan.status === 'issued' ? '' : 'amber')
      + (plan.kind === 'week' ? badge(t('dispatch.week')) : '');
    const banner = $('dp-banner');
    const estimated = plan.routes.reduce((n, r) => n + (r.estimated_legs || 0), 0);
    if (plan.matrix_source && plan.matrix_source !== 'roads') {
      banner.hidden = false;
      banner.textContent = t(plan.matrix_source === 'straight_line' ? 'dispatch.banner_straight'
        : 'dispatch.banner_mixed') + (estimated ? ' ' + t('dispatch.estimated_legs', {
        n: fmt.number(estimated) }) : '') + (english && plan.matrix_note ? ' (' + plan.matrix_note
        + ')' : '');
      banner.dataset.source = plan.matrix_source;
    } else {
      banner.hidden = true;
      banner.textContent = '';
    }
    const s = plan.summary || {};
    const km = plan.routes.reduce((sum, r) => sum + r.distance_m, 0) / 1000;
    $('stat-served').textContent = fmt.number(plan.served);
    $('stat-left').textContent = fmt.number(plan.left_out.length);
    $('stat-mandatory').textContent = fmt.number(plan.mandatory_served) + ' / '
      + fmt.number(plan.mandatory_total);
    $('stat-distance').textContent = t('dispatch.km', { n: fmt.number(km, 1) });
    const day = plan.kind === 'day';
    $('route-table').querySelector('tbody').innerHTML = plan.routes.map((r, i) => '<tr data-route="'
      + i + '"' + (r.note ? ' title="' + esc(r.note) + '"' : '') + '><td>' + dot(r.colour)
      + esc(r.name || r.inspector) + (plan.days > 1 ? ' <span class="xs-note">'
        + esc(fmt.date(r.date)) + '</span>' : '')
      + (english && r.note ? '<div class="xs-note">' + esc(r.note) + '</div>' : '')
      + '</td><td class="num">' + fmt.number(r.stops.length) + '</td><td class="num">'
      + fmt.number(r.distance_m / 1000, 1) + '</td><td>' + esc((r.depart || '–') + '–'
        + (r['return'] || '–')) + '</td><td class="num">' + fmt.number(r.travel_min)
      + '</td><td class="fix"><input type="checkbox" data-fix="' + esc(r.inspector) + '"'
      + (state.fixed[r.inspector] ? ' checked' : '') + (day && r.stops.length ? '' : ' disabled')
      + ' aria-label="' + esc(t('dispatch.fix_order', { name: r.name || r.inspector })) + '"></td></tr>')
      .join('');
    $('route-stops').innerHTML = plan.routes.filter((r) => r.stops.length).map((r) => '<details '
      + 'class="dp-stops"><summary>' + dot(r.colour) + esc(t('dispatch.stops_of', {
        name: r.name || r.inspector })) + (plan.days > 1 ? ' · ' + esc(fmt.date(r.date)) : '')
      + '</summary><ol>' + r.stops.map((st) => '<li data-stop="' + esc(st.site) + '" data-inspector="'
        + esc(r.inspector) + '" data-day="' + r.day_index + '">' + esc((st.eta || '–') + ' · '
        + (st.title || st.site)) + (st.mandatory ? badge(t('dispatch.mandatory'), 'red') : '')
        + '</li>').join('') + '</ol></details>').join('');
    $('dp-exports').innerHTML = '<span>' + esc(t('dispatch.exports')) + '</span><a id="export-geojson" '
      + 'href="/api/plans/' + plan.id + '.geojson" download="plan-' + plan.id + '.geojson">'
      + esc(t('dispatch.export_geojson')) + '</a><a id="export-gpx" href="/api/plans/' + plan.id
      + '.gpx" download="plan-' + plan.id + '.gpx">' + esc(t('dispatch.export_gpx')) + '</a>';
    section.dataset.plan = String(plan.id);
    section.dataset.version = String(plan.version);
  }

  function renderLeft() {
    const left = state.plan ? state.plan.left_out : [];
    $('left-section').hidden = !state.plan;
    $('left-count').textContent = fmt.number(left.length);
    $('left-list').innerHTML = !state.plan ? ''
      : left.length ? left.map((lo) => '<li data-left="' + esc(lo.site) + '">' + esc(lo.title || lo.site)
        + (lo.mandatory ? badge(t('dispatch.mandatory'), 'red') : '')
        + (state.pins[lo.site] ? badge(t('dispatch.pinned_to', {
          name: inspectorName(state.pins[lo.site]) }), 'amber') : '')
        + '<br><span class="xs-note">' + esc(reasonText(lo)) + ' · ' + esc(constraintText(lo))
        + '</span></li>').join('')
        : '<li class="xs-empty">' + esc(t('dispatch.none_left')) + '</li>';
  }

  /** Whether the pins or fixed orders differ from the plan shown (or, before one, exist). */
  function pinsChanged() {
    const canon = (pins, fixed) => JSON.stringify([Object.entries(pins).sort(),
                                                   Object.entries(fixed).sort()]);
    const plan = state.plan || { pins: {}, fixed_orders: {} };
    return canon(state.pins, state.fixed) !== canon(plan.pins || {}, plan.fixed_orders || {});
  }

  function renderPins() {
    const changed = pinsChanged();
    const pins = Object.entries(state.pins).map(([site, code]) => {
      const what = siteTitle(site) + ' → ' + inspectorName(code);
      return '<li data-pin="' + esc(site) + '">' + esc(what) + '<button type="button" data-unpin="'
        + esc(site) + '" aria-label="' + esc(t('dispatch.unpin', { what: what })) + '">×</button></li>';
    });
    const fixed = Object.entries(state.fixed).map(([code, sites]) => {
      const what = t('dispatch.fixed_item', { name: inspectorName(code), n: sites.length });
      return '<li data-fixed="' + esc(code) + '">' + esc(what) + '<button type="button" data-unfix="'
        + esc(code) + '" aria-label="' + esc(t('dispatch.unpin', { what: what })) + '">×</button></li>';
    });
    $('dp-pins').innerHTML = pins.concat(fixed).join('');
    $('dp-pins-note').textContent = changed && state.plan ? t('dispatch.changed')
      : pins.length || fixed.length ? '' : t('dispatch.pins_none');
    // The same choices in the table and in an open popup.
    for (const box of document.querySelectorAll('input[data-fix]')) {
      box.checked = !!state.fixed[box.dataset.fix];
    }
    for (const select of document.querySelectorAll('select[data-pin-site]')) {
      select.value = state.pins[select.dataset.pinSite] || '';
    }
    setBusy(state.busy);
  }

  function renderStored() {
    const streetName = {};
    for (const s of boot.streets) streetName[s.code] = s.name;
    const el = $('stored-list');
    el.innerHTML = state.stored.length ? state.stored.map((p) => '<li data-plan="' + p.id + '"'
      + (state.plan && state.plan.id === p.id ? ' class="current" aria-current="true"' : '') + '>'
      + esc(t('dispatch.stored_item', { id: p.id, version: p.version })) + ' · '
      + esc(p.street_code ? streetName[p.street_code] || p.street_code : t('dispatch.district_wide'))
      + badge(XS.label('plan_status', p.status), p.status === 'issued' ? '' : 'amber')
      + (p.kind === 'week' ? badge(t('dispatch.week')) : '')
      + '<br><span class="xs-note">' + esc(fmt.datetime(p.created_at)) + ' · '
      + esc(t('dispatch.stored_counts', { served: fmt.number(p.served),
                                          left: fmt.number(p.left_out_count) })) + '</span></li>')
      .join('') : '<li class="xs-empty">' + esc(t('dispatch.no_stored')) + '</li>';
  }

  function setBusy(busy) {
    state.busy = busy;
    $('dp-plan').disabled = busy || !state.street || !state.checked.size;
    $('dp-replan').disabled = busy || !state.plan || state.plan.kind !== 'day';
    $('dp-progress').hidden = !busy;
    document.body.dataset.busy = busy ? '1' : '';
  }

  /** Draw a plan: its JSON for the panel, its GeoJSON (routes along the roads) for the map. */
  function showPlan(plan, fc) {
    state.plan = plan;
    state.pins = Object.assign({}, plan.pins || {});
    state.fixed = {};
    for (const [code, sites] of Object.entries(plan.fixed_orders || {})) state.fixed[code] = sites.slice();
    const of = (kind) => ({ type: 'FeatureCollection',
                            features: fc.features.filter((f) => f.properties.kind === kind) });
    XS.setData('routes', of('route'));
    XS.setData('left_out', of('left_out'));
    XS.setData('stops', of('stop'));
    XS.setData('candidates', candidateFC(state.candidates));  // faded under the plan
    renderPlan();
    renderLeft();
    renderPins();
    renderStored();
    syncUrl();
    const bounds = L.latLngBounds([]);
    for (const name of ['routes', 'stops', 'left_out']) {
      const layer = XS.layers[name].layer;
      if (layer.getLayers().length) bounds.extend(layer.getBounds());
    }
    if (bounds.isValid()) XS.map.fitBounds(bounds, fitOptions());
  }

  /** Keep what is fitted clear of the legend in the bottom right corner. */
  function fitOptions() {
    const legend = XS.legendControl && XS.legendControl.getContainer();
    const width = legend && legend.offsetWidth < XS.map.getSize().x / 2 ? legend.offsetWidth : 0;
    return { paddingTopLeft: [20, 20], paddingBottomRight: [width + 20, 20], maxZoom: 16,
             animate: false };
  }

  function clearPlan() {
    state.plan = null;
    state.pins = {};
    state.fixed = {};
    for (const name of ['routes', 'left_out', 'stops']) XS.setData(name, EMPTY);
    XS.setData('candidates', candidateFC(state.candidates));
    renderPlan();
    renderLeft();
    renderPins();
  }

  // ---- actions --------------------------------------------------------------------------------
  /** Send a plan or re-plan and show it; progress (elapsed seconds) while the solver works. */
  async function solve(call, where) {
    const limit = deadlineS();
    showError('');
    setBusy(true);
    const t0 = performance.now();
    const tick = () => {
      $('dp-progress-text').textContent = t('dispatch.solving', {
        s: fmt.number(Math.floor((performance.now() - t0) / 1000)), limit: fmt.number(limit) });
    };
    tick();
    const timer = setInterval(tick, 250);
    try {
      const plan = await call(limit);
      const fc = await XS.load(t('layer.plan_routes'),
                               XS.fetchJSON('/api/plans/' + plan.id + '.geojson'));
      showPlan(plan, fc);
      XS.status(t('dispatch.planned', { id: plan.id, version: plan.version }));
      loadStored().catch(() => {});
    } catch (err) {
      if (err.status !== 401) showError(refusalText(err), where);
    } finally {
      clearInterval(timer);
      setBusy(false);
    }
  }

  function makePlan() {
    if (!state.checked.size) {
      showError(t('dispatch.none_checked'));
      return Promise.resolve();
    }
    const inspectors = state.roster.map((i) => i.code).filter((c) => state.checked.has(c));
    return solve((limit) => postJSON('/api/plans', {
      date: state.date, district: boot.district, street: state.street, inspectors: inspectors,
      deadline_s: limit, pins: state.pins, fixed_orders: state.fixed }), 'dp-error');
  }

  function replan() {
    if (!state.plan) return Promise.resolve();
    const id = state.plan.id;
    return solve((limit) => postJSON('/api/plans/' + id + '/replan', {
      pins: state.pins, fixed_orders: state.fixed, deadline_s: limit }), 'dp-replan-error');
  }

  function setPin(site, code) {
    if (code) state.pins[site] = code; else delete state.pins[site];
    showError('');
    renderPins();
  }
  function setFixed(code, on) {
    if (on && state.plan) {
      const route = state.plan.routes.find((r) => r.inspector === code);
      if (route && route.stops.length) state.fixed[code] = route.stops.map((s) => s.site);
    } else {
      delete state.fixed[code];
    }
    showError('');
    renderPins();
  }

  async function openPlan(id) {
    XS.status(t('loading'));
    const [plan, fc] = await Promise.all([
      XS.load(t('dispatch.stored'), XS.fetchJSON('/api/plans/' + id)),
      XS.load(t('layer.plan_routes'), XS.fetchJSON('/api/plans/' + id + '.geojson')),
    ]);
    if (plan.date !== state.date || (plan.street_code && plan.street_code !== state.street)) {
      state.date = plan.date;
      $('dp-date').value = plan.date;
      if (plan.street_code && boot.streets.some((s) => s.code === plan.street_code)) {
        state.street = plan.street_code;
        $('dp-street').value = plan.street_code;
      }
      await loadArea();
      await loadStored();
    }
    showPlan(plan, fc);
    XS.status('');
  }

  // ---- loading --------------------------------------------------------------------------------
  let loadNo = 0;
  async function loadArea() {
    const mine = ++loadNo;
    if (!state.street) {
      state.roster = [];
      state.candidates = [];
      renderInspectors();
      renderCandidates();
      return;
    }
    XS.status(t('loading'));
    const where = { district: boot.district, street: state.street };
    const [roster, cands] = await Promise.all([
      XS.load(t('dispatch.inspectors'), XS.fetchJSON(XS.url('/api/inspectors', where))),
      XS.load(t('layer.candidates'), XS.fetchJSON(XS.url('/api/plans/candidates',
                                                         Object.assign({ date: state.date }, where)))),
    ]);
    if (mine !== loadNo) return;
    state.roster = roster.inspectors;
    state.checked = new Set(state.roster.map((i) => i.code));
    state.candidates = cands.candidates;
    state.bySite = {};
    for (const c of state.candidates) state.bySite[c.site] = c;
    renderInspectors();
    renderCandidates();
    XS.setData('candidates', candidateFC(state.candidates));
    XS.status('');
    if (!state.plan) fitArea();
  }

  function fitArea() {
    const layer = XS.layers.candidates.layer;
    let bounds = layer.getLayers().length ? layer.getBounds() : null;
    const outline = XS.layers.boundaries && XS.layers.boundaries.layer.getLayers()
      .find((l) => l.feature.id === state.street);
    if (outline) bounds = bounds ? bounds.extend(outline.getBounds()) : outline.getBounds();
    if (bounds && bounds.isValid()) XS.map.fitBounds(bounds, fitOptions());
  }

  async function loadStored() {
    const data = await XS.load(t('dispatch.stored'), XS.fetchJSON(XS.url('/api/plans', {
      district: boot.district, date: state.date, limit: 50 })));
    state.stored = data.plans;
    renderStored();
  }

  async function changeArea(street, date) {
    state.street = street;
    state.date = date;
    showError('');
    clearPlan();
    syncUrl();
    await Promise.all([loadArea(), loadStored()]);
  }

  /** Keep the address (and the language switch) on what is shown. */
  function syncUrl() {
    const apply = (params) => {
      if (state.street) params.set('street', state.street); else params.delete('street');
      params.set('date', state.date);
      if (state.plan) params.set('plan', String(state.plan.id)); else params.delete('plan');
      return params.toString();
    };
    history.replaceState(null, '', location.pathname + '?' + apply(new URLSearchParams(location.search)));
    const lang = $('xs-lang');
    lang.search = apply(new URLSearchParams(lang.search));
  }

  // ---- clicks in the panel and in popups --------------------------------------------------------
  function openMarker(layerName, predicate) {
    const entry = XS.layers[layerName];
    if (!XS.map.hasLayer(entry.layer)) entry.layer.addTo(XS.map);
    const marker = entry.layer.getLayers().find((l) => predicate(l.feature.properties));
    if (!marker) return;
    XS.map.setView(marker.getLatLng(), Math.max(XS.map.getZoom(), 16), { animate: false });
    marker.openPopup();
  }
  document.addEventListener('change', (e) => {
    const select = e.target.closest('select[data-pin-site]');
    if (select) {
      setPin(select.dataset.pinSite, select.value);
      return;
    }
    const fix = e.target.closest('input[data-fix]');
    if (fix) setFixed(fix.dataset.fix, fix.checked);
  });
  document.addEventListener('click', (e) => {
    const unpin = e.target.closest('button[data-unpin]');
    if (unpin) {
      setPin(unpin.dataset.unpin, '');
      return;
    }
    const unfix = e.target.closest('button[data-unfix]');
    if (unfix) {
      setFixed(unfix.dataset.unfix, false);
      return;
    }
    if (e.target.closest('input, select, button, a')) return;
    const stop = e.target.closest('#panel li[data-stop]');
    if (stop) {
      openMarker('stops', (p) => p.site === stop.dataset.stop && p.inspector === stop.dataset.inspector
        && String(p.day_index) === stop.dataset.day);
      return;
    }
    const left = e.target.closest('#panel li[data-left]');
    if (left) {
      openMarker('left_out', (p) => p.site === left.dataset.left);
      return;
    }
    const cand = e.target.closest('#panel li[data-site]');
    if (cand) {
      openMarker('candidates', (p) => p.site === cand.dataset.site);
      return;
    }
    const stored = e.target.closest('#panel li[data-plan]');
    if (stored) {
      openPlan(Number(stored.dataset.plan)).catch(() => {});
      return;
    }
    const row = e.target.closest('#route-table tr[data-route]');
    if (row && state.plan) {
      const r = state.plan.routes[Number(row.dataset.route)];
      const layer = XS.layers.routes.layer.getLayers().find((l) => l.feature.properties.inspector
        === r.inspector && l.feature.properties.day_index === r.day_index);
      if (layer) XS.map.fitBounds(layer.getBounds(), { padding: [20, 20], animate: false });
    }
  });

  // ---- start ----------------------------------------------------------------------------------
  XS.createMap();
  defineLayers();
  setupForm();
  renderPlan();
  renderLeft();
  renderPins();
  async function start() {
    await Promise.all([loadArea(), loadStored()]);
    if (boot.plan) await openPlan(boot.plan);
  }
  Promise.allSettled([XS.boundaries().then(() => { if (!state.plan) fitArea(); }), start()])
    .then(() => XS.ready());
})();
