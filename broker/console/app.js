// Brook web console: a single-page app over the broker's JSON API (/api/v1,
// docs/console.md). Vanilla JavaScript, no build step; the only library is
// uPlot (vendor/). Every string from the server reaches the page through
// textContent or an attribute (the h() builder below), never through HTML.
'use strict';

(function () {
  const TOKEN_KEY = 'brook.console.token';
  const CHART_HEIGHT = 220;

  const state = {
    session: null, // GET /api/v1/session
    gen: 0, // bumped on every navigation: stale async work checks it
    timers: [],
    charts: [],
  };

  // ------------------------------------------------------------------
  // DOM helpers
  // ------------------------------------------------------------------

  // h('tag', {attrs}, ...children): strings become text nodes; `testid` sets
  // data-testid; `on*` attributes take functions; null/false attrs are skipped.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    let value;
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === 'class') el.className = v;
        else if (k === 'testid') el.setAttribute('data-testid', v);
        else if (k === 'value') value = v;
        else if (k === 'checked') el.checked = !!v;
        // Through the CSSOM: the page's CSP allows no inline style attribute.
        else if (k === 'width') el.style.width = v;
        else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    append(el, children);
    if (value !== undefined) el.value = String(value); // after the options of a <select>
    return el;
  }

  function append(el, children) {
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) append(el, c);
      else if (c instanceof Node) el.appendChild(c);
      else el.appendChild(document.createTextNode(String(c)));
    }
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
  }

  // Replaces a container's content when the data it shows has changed (so a
  // refresh that brings nothing new leaves the page alone).
  function update(container, data, render) {
    const key = JSON.stringify(data);
    if (container._shown === key) return;
    container._shown = key;
    clear(container);
    append(container, [render(data)]);
  }

  function link(href, text, attrs) {
    return h('a', Object.assign({ href }, attrs || {}), text);
  }

  function field(label, input, hint) {
    return h('label', { class: 'field' }, h('span', { class: 'field-label' }, label), input,
      hint ? h('span', { class: 'field-hint' }, hint) : null);
  }

  function panel(title, ...children) {
    return h('section', { class: 'panel' }, title ? h('h2', null, title) : null, ...children);
  }

  function stat(label, value, testid, extra) {
    return h('div', { class: 'stat' }, h('div', { class: 'stat-label' }, label),
      h('div', { class: 'stat-value', testid }, value), extra ? h('div', { class: 'stat-extra' }, extra) : null);
  }

  function badge(text, kind, testid) {
    return h('span', { class: 'badge' + (kind ? ' badge-' + kind : ''), testid }, text);
  }

  function muted(text) {
    return h('span', { class: 'muted' }, text);
  }

  // table([{label, num, testid, render(row)}], rows, {rowTestid, empty, testid})
  function table(cols, rows, opts) {
    opts = opts || {};
    const head = h('thead', null, h('tr', null, cols.map((c) => h('th', { class: c.num ? 'num' : null }, c.label))));
    const body = h('tbody');
    if (!rows.length) {
      body.appendChild(h('tr', null, h('td', { class: 'empty', colspan: cols.length }, opts.empty || 'Nothing here.')));
    }
    for (const r of rows) {
      body.appendChild(h('tr', { testid: opts.rowTestid },
        cols.map((c) => h('td', { class: c.num ? 'num' : null, testid: c.testid }, c.render(r)))));
    }
    return h('div', { class: 'table-wrap' }, h('table', { class: 'grid', testid: opts.testid }, head, body));
  }

  // key/value table of an object
  function kvTable(rows, testid) {
    return h('table', { class: 'kv', testid }, h('tbody', null,
      rows.map(([k, v]) => h('tr', null, h('th', null, k), h('td', null, v)))));
  }

  // ------------------------------------------------------------------
  // Formatting
  // ------------------------------------------------------------------

  function fmtInt(n) {
    if (n === null || n === undefined || n === '') return '—';
    const x = Number(n);
    return Number.isFinite(x) ? x.toLocaleString('en-US') : String(n);
  }

  function fmtBytes(n) {
    if (n === null || n === undefined) return '—';
    let x = Number(n);
    if (!Number.isFinite(x)) return String(n);
    if (x < 0) return 'unlimited';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let i = 0;
    while (x >= 1024 && i < units.length - 1) { x /= 1024; i += 1; }
    return i === 0 ? `${x} B` : `${x.toFixed(x < 10 ? 2 : 1)} ${units[i]}`;
  }

  function fmtDuration(ms) {
    if (ms === null || ms === undefined) return '—';
    let x = Number(ms);
    if (!Number.isFinite(x)) return String(ms);
    if (x < 0) return 'unlimited';
    if (x < 1000) return `${Math.round(x)} ms`;
    x = Math.floor(x / 1000);
    const d = Math.floor(x / 86400), hr = Math.floor((x % 86400) / 3600), m = Math.floor((x % 3600) / 60), s = x % 60;
    if (d) return hr ? `${d}d ${hr}h` : `${d}d`;
    if (hr) return m ? `${hr}h ${m}m` : `${hr}h`;
    if (m) return s ? `${m}m ${s}s` : `${m}m`;
    return `${s}s`;
  }

  function fmtRate(x, unit) {
    if (x === null || x === undefined) return '—';
    const n = Number(x);
    const s = n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(n >= 10 ? 1 : 2);
    return `${s}${unit || '/s'}`;
  }

  function fmtTime(ms) {
    if (ms === null || ms === undefined) return '—';
    const d = new Date(Number(ms));
    return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString();
  }

  function fmtRetentionMs(v) {
    return v === null || v === undefined || Number(v) < 0 ? 'unlimited' : fmtDuration(v);
  }

  function fmtRetentionBytes(v) {
    return v === null || v === undefined || Number(v) < 0 ? 'unlimited' : fmtBytes(v);
  }

  function fmtShort(n) {
    const a = Math.abs(n);
    if (a >= 1e9) return (n / 1e9).toFixed(1) + 'G';
    if (a >= 1e6) return (n / 1e6).toFixed(1) + 'M';
    if (a >= 1e4) return (n / 1e3).toFixed(0) + 'k';
    if (a >= 1e3) return (n / 1e3).toFixed(1) + 'k';
    return Number.isInteger(n) ? String(n) : n.toFixed(2);
  }

  function fmtPrincipal(p) {
    if (p === null || p === undefined) return null;
    if (typeof p === 'string') return p;
    return p.name || p.principal || JSON.stringify(p);
  }

  function enc(s) {
    return encodeURIComponent(s);
  }

  // a number from an input, or null when empty; throws on garbage
  function numberInput(input, what) {
    const s = input.value.trim();
    if (s === '') return null;
    const n = Number(s);
    if (!Number.isFinite(n)) throw clientError(`${what}: "${s}" is not a number`);
    return n;
  }

  // milliseconds since the epoch from "1767225600000" or an ISO date
  function parseTime(s, what) {
    s = String(s).trim();
    if (/^-?\d+$/.test(s)) return Number(s);
    const t = Date.parse(s);
    if (Number.isNaN(t)) throw clientError(`${what}: "${s}" is neither milliseconds nor a date (2026-01-31T12:00:00Z)`);
    return t;
  }

  // ------------------------------------------------------------------
  // The API and the error banner
  // ------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, err) {
      super((err && err.message) || 'request failed');
      this.status = status;
      this.code = (err && err.code) || '';
      this.reason = (err && err.reason) || '';
      this.metadata = (err && err.metadata) || {};
    }
  }

  function clientError(message) {
    return new ApiError(0, { code: 'INVALID_ARGUMENT', reason: 'INVALID_INPUT', message });
  }

  // The one way to the broker. Adds the bearer token, parses JSON, turns an
  // {"error": {...}} answer into an ApiError shown in the banner (unless
  // opts.quiet: the caller shows it itself).
  async function api(method, path, body, opts) {
    opts = opts || {};
    const headers = { Accept: 'application/json' };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    const init = { method, headers };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch('/api/v1' + path, init);
    } catch (e) {
      throw failed(new ApiError(0, { code: 'UNAVAILABLE', reason: 'UNREACHABLE', message: `the broker did not answer ${method} ${path}: ${e.message}` }), opts);
    }
    const text = resp.status === 204 ? '' : await resp.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = undefined; }
    }
    if (!resp.ok || (data && data.error)) {
      const err = data && data.error ? data.error
        : { code: 'HTTP_' + resp.status, reason: 'HTTP_' + resp.status, message: (text || resp.statusText || '').slice(0, 300) };
      throw failed(new ApiError(resp.status, err), opts);
    }
    if (data === undefined) {
      throw failed(new ApiError(resp.status, { code: 'INTERNAL', reason: 'BAD_RESPONSE', message: `${method} ${path} answered something that is not JSON` }), opts);
    }
    return data;
  }

  function failed(err, opts) {
    if (!opts.quiet) showError(err);
    // a token that stopped working (revoked, broker restarted with another
    // tokens file): back to the login form
    if (err.status === 401 && state.session && state.session.auth_required && !opts.session) {
      sessionStorage.removeItem(TOKEN_KEY);
      state.session = null;
      showLogin(err);
    }
    return err;
  }

  function showError(err) {
    const banner = document.getElementById('banner');
    if (!banner) return;
    clear(banner);
    const reason = err.reason || err.code || 'ERROR';
    banner.appendChild(h('div', { class: 'banner', testid: 'error', role: 'alert' },
      h('strong', { class: 'banner-reason', testid: 'error-reason' }, reason),
      err.status ? h('span', { class: 'banner-status' }, `HTTP ${err.status}`) : null,
      h('span', { class: 'banner-message', testid: 'error-message' }, err.message || ''),
      h('button', { class: 'banner-close', type: 'button', title: 'Dismiss', onclick: () => clear(banner) }, '×')));
  }

  function clearError() {
    const banner = document.getElementById('banner');
    if (banner) clear(banner);
  }

  // a handler for forms and buttons: runs fn, shows what it throws
  function guarded(fn) {
    return async (ev) => {
      if (ev && ev.preventDefault) ev.preventDefault();
      try {
        await fn(ev);
      } catch (e) {
        report(e);
      }
    };
  }

  function report(e) {
    if (e instanceof ApiError) {
      if (e.status === 0 && e.reason === 'INVALID_INPUT') showError(e); // client-side check
      return; // API errors are in the banner already
    }
    console.error(e);
    showError({ reason: 'CONSOLE_ERROR', message: String(e && e.message ? e.message : e) });
  }

  function canAlter() {
    return !!(state.session && state.session.may_alter);
  }

  // ------------------------------------------------------------------
  // Charts (uPlot)
  // ------------------------------------------------------------------

  // series: [{label, stroke, scale, fmt}], axes: [{scale, side, fmt}]
  function makeChart(el, series, axes, data) {
    // without a cursor on the plot, the legend shows the latest point
    const latest = (u, v, si, idx) => {
      if (idx === null || idx === undefined) {
        const d = u.data[si] || [];
        return d.length ? d[d.length - 1] : null;
      }
      return v;
    };
    const uSeries = [{
      label: 'time',
      value: (u, v, si, idx) => { const t = latest(u, v, si, idx); return t == null ? '—' : new Date(t * 1000).toLocaleTimeString(); },
    }];
    for (const s of series) {
      uSeries.push({
        label: s.label, stroke: s.stroke, width: 1.5, scale: s.scale || 'y',
        fill: s.fill, points: { show: false },
        value: (u, v, si, idx) => { const x = latest(u, v, si, idx); return x == null ? '—' : (s.fmt ? s.fmt(x) : fmtShort(x)); },
      });
    }
    const scales = { x: { time: true } };
    const uAxes = [{
      stroke: '#6b7280', grid: { stroke: '#eef0f4', width: 1 }, ticks: { stroke: '#e5e7eb', width: 1 },
      space: 70, incrs: TIME_INCRS, values: (u, vals) => vals.map(fmtClock),
    }];
    for (const a of axes) {
      scales[a.scale || 'y'] = { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] };
      uAxes.push({
        scale: a.scale || 'y', side: a.side === 'right' ? 1 : 3, size: 60,
        stroke: a.stroke || '#6b7280', label: a.label, labelSize: a.label ? 18 : 0,
        grid: { show: a.side !== 'right', stroke: '#eef0f4', width: 1 },
        ticks: { stroke: '#e5e7eb', width: 1 },
        values: (u, vals) => vals.map((v) => (a.fmt ? a.fmt(v) : fmtShort(v))),
        incrs: a.integer ? INT_INCRS : undefined,
      });
    }
    const opts = {
      width: Math.max(320, el.clientWidth || 640), height: CHART_HEIGHT,
      series: uSeries, axes: uAxes, scales,
      cursor: { drag: { x: true, y: false } },
      legend: { live: true },
    };
    const u = new uPlot(opts, data, el);
    state.charts.push({ u, el });
    return u;
  }

  // x axis steps (seconds): never below a second, history is at most an hour or so
  const TIME_INCRS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400];

  function fmtClock(sec) {
    const d = new Date(sec * 1000);
    const p2 = (n) => String(n).padStart(2, '0');
    return `${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}`;
  }

  const INT_INCRS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 2e6, 5e6, 1e7, 2e7, 5e7, 1e8, 1e9, 1e10, 1e11, 1e12];

  // new data for a chart made by makeChart
  function setChartData(u, data) {
    u.setData(data);
    const n = data[0].length;
    if (n && !(u.cursor && u.cursor.left >= 0)) u.setLegend({ idx: n - 1 });
  }

  window.addEventListener('resize', () => {
    for (const c of state.charts) c.u.setSize({ width: Math.max(320, c.el.clientWidth || 640), height: CHART_HEIGHT });
  });

  function seriesOf(points, ...keys) {
    return [points.map((p) => p.t_ms / 1000), ...keys.map((k) => points.map((p) => (p[k] === undefined ? null : p[k])))];
  }

  // ------------------------------------------------------------------
  // Routing and page context
  // ------------------------------------------------------------------

  const NAV = [
    ['overview', 'Overview', '#/'],
    ['topics', 'Topics', '#/topics'],
    ['groups', 'Consumer groups', '#/groups'],
    ['queues', 'Queues', '#/queues'],
    ['rules', 'Rules', '#/rules'],
    ['schemas', 'Schemas', '#/schemas'],
  ];

  const ROUTES = [
    [/^\/?$/, 'overview', pageOverview],
    [/^\/overview$/, 'overview', pageOverview],
    [/^\/topics$/, 'topics', pageTopics],
    [/^\/topics\/([^/]+)$/, 'topics', pageTopic],
    [/^\/topics\/([^/]+)\/messages$/, 'topics', pageMessages],
    [/^\/groups$/, 'groups', pageGroups],
    [/^\/groups\/([^/]+)$/, 'groups', pageGroup],
    [/^\/queues$/, 'queues', pageQueues],
    [/^\/queues\/([^/]+)$/, 'queues', pageQueue],
    [/^\/rules$/, 'rules', pageRules],
    [/^\/schemas$/, 'schemas', pageSchemas],
    [/^\/schemas\/([^/]+)$/, 'schemas', pageSubject],
  ];

  function parseHash() {
    const raw = location.hash.replace(/^#/, '');
    const q = raw.indexOf('?');
    return {
      path: q < 0 ? raw : raw.slice(0, q),
      params: new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)),
    };
  }

  function go(hash) {
    if (location.hash === hash) render();
    else location.hash = hash;
  }

  function stopPage() {
    state.gen += 1;
    for (const t of state.timers) clearInterval(t);
    state.timers = [];
    for (const c of state.charts) c.u.destroy();
    state.charts = [];
  }

  // a field being edited: live refreshes wait
  function isTyping() {
    const a = document.activeElement;
    return !!(a && /^(INPUT|TEXTAREA|SELECT)$/.test(a.tagName) && a.closest('form'));
  }

  async function render() {
    const main = document.getElementById('main');
    if (!main || !state.session) return;
    stopPage();
    clearError();
    clear(main);
    const { path, params } = parseHash();
    let found = null;
    for (const [re, nav, fn] of ROUTES) {
      const m = re.exec(path);
      if (m) {
        // A hand-typed fragment may not decode (`#/topics/%`): not found.
        try { found = { nav, fn, args: m.slice(1).map(decodeURIComponent) }; } catch (e) { found = null; }
        break;
      }
    }
    for (const a of document.querySelectorAll('#nav a[data-nav]')) {
      a.classList.toggle('active', !!found && a.getAttribute('data-nav') === found.nav);
    }
    const gen = state.gen;
    const ctx = {
      main, params,
      add: (...nodes) => append(main, nodes), // skips null (Element.append would print "null")
      alive: () => state.gen === gen,
      title(...crumbs) {
        document.title = ['Brook', ...crumbs.map((c) => (Array.isArray(c) ? c[0] : c))].join(' · ');
        const el = document.getElementById('crumbs');
        clear(el);
        crumbs.forEach((c, i) => {
          if (i) el.appendChild(h('span', { class: 'crumb-sep' }, '/'));
          el.appendChild(Array.isArray(c) ? link(c[1], c[0]) : h('span', { class: 'crumb-here' }, c));
        });
      },
      // run fn every ms while this page is shown (not while a form field has
      // the focus, not while the tab is hidden, never twice at once)
      every(ms, fn) {
        let running = false;
        const t = setInterval(async () => {
          if (!ctx.alive() || running || document.hidden || isTyping()) return;
          running = true;
          try { await fn(); } catch (e) { report(e); } finally { running = false; }
        }, ms);
        state.timers.push(t);
      },
    };
    if (!found) {
      ctx.title('Not found');
      main.appendChild(panel('Not found', h('p', null, 'No page here. ', link('#/', 'Overview'))));
      return;
    }
    try {
      await found.fn(ctx, ...found.args);
    } catch (e) {
      report(e);
      if (ctx.alive() && !main.querySelector('.panel, .cards')) {
        main.appendChild(h('p', { class: 'muted load-failed' }, 'This page could not be loaded (see the error above).'));
      }
    }
  }

  window.addEventListener('hashchange', render);

  // ------------------------------------------------------------------
  // Shell: login form, header, navigation
  // ------------------------------------------------------------------

  async function boot() {
    let session;
    try {
      session = await api('GET', '/session', undefined, { quiet: true, session: true });
    } catch (e) {
      if (e.status === 401 && sessionStorage.getItem(TOKEN_KEY)) {
        sessionStorage.removeItem(TOKEN_KEY);
        showLogin(e);
        return;
      }
      showFatal(e);
      return;
    }
    if (session.auth_required && !session.authenticated) {
      showLogin();
      return;
    }
    state.session = session;
    showApp();
  }

  function showFatal(err) {
    const root = document.getElementById('root');
    clear(root);
    root.appendChild(h('div', { class: 'login-wrap' }, h('div', { class: 'login-card' },
      h('div', { class: 'brand brand-dark' }, 'Brook'),
      h('div', { id: 'banner' }),
      h('p', null, 'The console could not reach the broker.'),
      h('button', { type: 'button', onclick: () => boot() }, 'Retry'))));
    showError(err);
  }

  function showLogin(err) {
    stopPage();
    state.session = null;
    const root = document.getElementById('root');
    clear(root);
    const token = h('input', { type: 'password', testid: 'login-token', autocomplete: 'off', required: true, placeholder: 'token', autofocus: true });
    const form = h('form', { class: 'login-card', testid: 'login-form', onsubmit: guarded(() => login(token.value.trim())) },
      h('div', { class: 'brand brand-dark' }, 'Brook ', h('span', { class: 'brand-sub' }, 'console')),
      h('p', { class: 'muted' }, 'This broker requires a token (one of its tokens file). It is kept in this tab only.'),
      h('div', { id: 'banner' }),
      field('Token', token),
      h('button', { type: 'submit', class: 'primary', testid: 'login-submit' }, 'Sign in'));
    root.appendChild(h('div', { class: 'login-wrap' }, form));
    if (err) showError(err);
    token.focus();
  }

  async function login(token) {
    if (!token) throw clientError('enter a token');
    sessionStorage.setItem(TOKEN_KEY, token);
    let session;
    try {
      session = await api('GET', '/session', undefined, { session: true });
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
      throw e;
    }
    if (session.auth_required && !session.authenticated) {
      sessionStorage.removeItem(TOKEN_KEY);
      throw new ApiError(401, { reason: 'NOT_AUTHENTICATED', message: 'the broker did not accept this token' });
    }
    state.session = session;
    showApp();
  }

  function logout() {
    sessionStorage.removeItem(TOKEN_KEY);
    state.session = null;
    stopPage();
    boot();
  }

  function showApp() {
    const s = state.session;
    const root = document.getElementById('root');
    clear(root);
    const principal = fmtPrincipal(s.principal);
    const who = h('div', { class: 'who' },
      canAlter() ? null : badge('read-only', 'ro', 'read-only'),
      principal ? h('span', { class: 'principal', testid: 'principal', title: 'signed in as' }, principal)
        : (s.auth_required ? null : muted('authentication off')),
      s.auth_required ? h('a', { href: '#', class: 'logout', testid: 'logout', onclick: (e) => { e.preventDefault(); logout(); } }, 'Log out') : null);
    root.appendChild(h('div', { class: 'shell' },
      h('aside', { id: 'nav' }, h('div', { class: 'nav-inner' },
        h('a', { class: 'brand', href: '#/' }, 'Brook', h('span', { class: 'brand-sub' }, 'console')),
        h('nav', null, NAV.map(([key, label, href]) => h('a', { href, 'data-nav': key, testid: 'nav-' + key }, label))))),
      h('div', { class: 'content' },
        h('header', { class: 'topbar' }, h('div', { id: 'crumbs', class: 'crumbs' }), who),
        h('div', { id: 'banner' }),
        h('main', { id: 'main' }))));
    render();
  }

  // ------------------------------------------------------------------
  // Overview
  // ------------------------------------------------------------------

  async function pageOverview(ctx) {
    ctx.title('Overview');
    const cards = h('div', { class: 'cards', testid: 'overview' });
    const rates = h('div', { class: 'rates' });
    const chartBox = h('div', { class: 'chart', testid: 'rate-chart' });
    ctx.add(cards, panel('Throughput', rates, chartBox));
    let chart = null;
    async function load() {
      const [ov, hist] = await Promise.all([api('GET', '/overview'), api('GET', '/overview/history')]);
      if (!ctx.alive()) return;
      update(cards, ov, overviewCards);
      update(rates, ov.rates || {}, rateLine);
      const pts = hist.points || [];
      const data = seriesOf(pts, 'produce_records_per_sec', 'fetch_records_per_sec');
      if (!chart) {
        chart = makeChart(chartBox, [
          { label: 'produce records/s', stroke: '#2563eb', fill: 'rgba(37,99,235,0.08)', fmt: (v) => fmtRate(v) },
          { label: 'fetch records/s', stroke: '#059669', fmt: (v) => fmtRate(v) },
        ], [{ scale: 'y' }], data);
      } else {
        setChartData(chart, data);
      }
      chartBox.setAttribute('data-points', String(pts.length));
    }
    await load();
    ctx.every(3000, load);
  }

  function overviewCards(ov) {
    const dd = ov.data_dir || {};
    const total = Number(dd.fs_total_bytes) || 0;
    const used = total ? total - Number(dd.fs_available_bytes || 0) : 0;
    const pct = total ? Math.round((used / total) * 100) : 0;
    return [
      stat('Version', ov.version || '—', 'version', ov.commit ? h('code', { title: ov.commit }, String(ov.commit).slice(0, 12)) : null),
      stat('Uptime', fmtDuration(ov.uptime_ms), 'uptime', 'since ' + fmtTime(ov.started_at_ms)),
      stat('Health', ov.ready ? badge('ready', 'ok') : badge('not ready', 'bad'), 'ready',
        Number(ov.offline_partitions) ? h('span', { class: 'bad-text' }, `${fmtInt(ov.offline_partitions)} offline partitions`) : 'all partitions online'),
      stat('Topics', fmtInt(ov.topics), 'topic-count', `${fmtInt(ov.partitions)} partitions`),
      stat('Log data', fmtBytes(dd.log_bytes), 'log-bytes', h('span', { class: 'path', title: dd.path || '' }, dd.path || '')),
      stat('Disk', total ? `${pct}% used` : '—', 'disk',
        h('div', null,
          h('div', { class: 'meter' }, h('div', { class: 'meter-fill' + (pct > 90 ? ' meter-bad' : ''), width: `${pct}%` })),
          total ? `${fmtBytes(dd.fs_available_bytes)} free of ${fmtBytes(total)}` : '')),
    ];
  }

  function fmtByteRate(x) {
    return x === null || x === undefined ? '—' : `${fmtBytes(Math.round(Number(x)))}/s`;
  }

  function rateLine(r) {
    const one = (label, rec, bytes, testid) => h('span', { class: 'rate' }, muted(label + ' '),
      h('strong', { testid }, fmtRate(rec, ' rec/s')), muted(' · '), fmtByteRate(bytes));
    return [
      one('produce', r.produce_records_per_sec, r.produce_bytes_per_sec, 'produce-rate'),
      one('fetch', r.fetch_records_per_sec, r.fetch_bytes_per_sec, 'fetch-rate'),
    ];
  }

  // ------------------------------------------------------------------
  // Topics
  // ------------------------------------------------------------------

  async function pageTopics(ctx) {
    ctx.title('Topics');
    const list = h('div');
    if (canAlter()) ctx.main.appendChild(createTopicForm());
    ctx.main.appendChild(panel('Topics', list));
    async function load() {
      const res = await api('GET', '/topics');
      if (!ctx.alive()) return;
      const topics = (res.topics || []).slice().sort((a, b) => a.name.localeCompare(b.name));
      update(list, topics, topicsTable);
    }
    await load();
    ctx.every(5000, load);
  }

  function topicsTable(topics) {
    return table([
      { label: 'Name', render: (t) => link('#/topics/' + enc(t.name), t.name, { class: 'strong' }) },
      { label: 'Partitions', num: true, render: (t) => fmtInt(t.partitions) },
      { label: 'Records', num: true, render: (t) => fmtInt(t.records) },
      { label: 'Size', num: true, render: (t) => fmtBytes(t.size_bytes) },
      { label: 'Retention', num: true, render: (t) => fmtRetentionMs(t.retention_ms) },
      { label: 'Retention size', num: true, render: (t) => fmtRetentionBytes(t.retention_bytes) },
      { label: 'Cleanup', render: (t) => t.cleanup_policy || '—' },
      { label: 'Produce', num: true, render: (t) => fmtRate(t.produce_records_per_sec, ' rec/s') },
      { label: '', render: (t) => link('#/topics/' + enc(t.name) + '/messages', 'messages', { class: 'small' }) },
    ], topics, { rowTestid: 'topic-row', testid: 'topics-table', empty: 'No topics yet.' });
  }

  function createTopicForm() {
    const name = h('input', { testid: 'topic-name', required: true, placeholder: 'new-topic', autocomplete: 'off' });
    const partitions = h('input', { testid: 'topic-partitions', type: 'number', min: 1, value: 1, required: true });
    const retention = h('input', { testid: 'topic-retention-ms', type: 'number', placeholder: 'default' });
    return panel('Create a topic', h('form', {
      class: 'inline-form', testid: 'create-topic-form',
      onsubmit: guarded(async () => {
        const body = { name: name.value.trim(), partitions: numberInput(partitions, 'partitions') };
        if (!body.name) throw clientError('a topic needs a name');
        const r = numberInput(retention, 'retention ms');
        if (r !== null) body.settings = { retention_ms: r };
        const t = await api('POST', '/topics', body);
        go('#/topics/' + enc((t && t.name) || body.name));
      }),
    },
    field('Name', name), field('Partitions', partitions), field('Retention (ms)', retention),
    h('button', { type: 'submit', class: 'primary', testid: 'create-topic-submit' }, 'Create topic')));
  }

  // ------------------------------------------------------------------
  // Topic
  // ------------------------------------------------------------------

  const SETTING_KEYS = [
    ['partitions', 'count'], ['retention_ms', 'retms'], ['retention_bytes', 'retbytes'], ['segment_bytes', 'bytes'],
    ['segment_ms', 'ms'], ['max_batch_bytes', 'bytes'], ['flush_policy', ''], ['flush_interval_ms', 'ms'],
    ['cleanup_policy', ''], ['min_compaction_lag_ms', 'ms'], ['max_compaction_lag_ms', 'ms'],
    ['delete_retention_ms', 'ms'], ['min_cleanable_dirty_ratio', ''],
  ];

  function fmtSetting(kind, v) {
    if (v === null || v === undefined) return kind === 'retms' || kind === 'retbytes' ? 'unlimited' : '—';
    const raw = typeof v === 'object' ? JSON.stringify(v) : String(v);
    let human = null;
    if (kind === 'retms') human = fmtRetentionMs(v);
    else if (kind === 'retbytes') human = fmtRetentionBytes(v);
    else if (kind === 'ms') human = fmtDuration(v);
    else if (kind === 'bytes') human = fmtBytes(v);
    return human && human !== raw ? h('span', null, h('span', { class: 'human' }, human), ' ', muted(raw)) : raw;
  }

  function settingsTable(settings) {
    const known = new Set(SETTING_KEYS.map(([k]) => k));
    const rows = [];
    for (const [k, kind] of SETTING_KEYS) if (k in settings) rows.push([k, fmtSetting(kind, settings[k])]);
    for (const k of Object.keys(settings).sort()) if (!known.has(k)) rows.push([k, fmtSetting('', settings[k])]);
    return kvTable(rows, 'settings-table');
  }

  function partitionsTable(parts) {
    return table([
      { label: 'Partition', num: true, render: (p) => String(p.partition) },
      { label: 'Log start', num: true, render: (p) => fmtInt(p.log_start_offset) },
      { label: 'Log end', num: true, render: (p) => fmtInt(p.log_end_offset) },
      { label: 'Records', num: true, render: (p) => fmtInt(Number(p.log_end_offset) - Number(p.log_start_offset)) },
      { label: 'Segments', num: true, render: (p) => fmtInt(p.segment_count) },
      { label: 'Size', num: true, render: (p) => fmtBytes(p.size_bytes) },
      { label: 'Dirty ratio', num: true, render: (p) => (p.dirty_ratio === null || p.dirty_ratio === undefined ? '—' : `${(Number(p.dirty_ratio) * 100).toFixed(1)}%`) },
      { label: 'Cleaned to', num: true, render: (p) => fmtInt(p.cleaned_to) },
      { label: 'Status', render: partitionStatus },
      { label: '', render: (p) => link(`#/topics/${enc(p._topic)}/messages?partition=${p.partition}`, 'browse', { class: 'small' }) },
    ], parts, { rowTestid: 'partition-row', testid: 'partitions-table' });
  }

  function partitionStatus(p) {
    const out = [];
    if (p.offline_reason) out.push(badge('offline', 'bad'), ' ', p.offline_reason);
    for (const d of p.damaged || []) {
      out.push(h('div', { class: 'bad-text' }, `damaged ${d.first_offset}–${d.end_offset}: ${d.reason}`));
    }
    return out.length ? out : badge('online', 'ok');
  }

  async function pageTopic(ctx, name) {
    ctx.title(['Topics', '#/topics'], name);
    let topic = await api('GET', '/topics/' + enc(name));
    if (!ctx.alive()) return;
    const summary = h('div', { class: 'cards' });
    const settings = h('div');
    const parts = h('div');
    const show = (t) => {
      topic = t;
      update(summary, [t.records, t.size_bytes, t.produce_records_per_sec, (t.partitions || []).length], () => [
        stat('Partitions', fmtInt((t.partitions || []).length)),
        stat('Records', fmtInt(t.records), 'topic-records'),
        stat('Size', fmtBytes(t.size_bytes)),
        stat('Produce', fmtRate(t.produce_records_per_sec, ' rec/s'), null, fmtByteRate(t.produce_bytes_per_sec)),
      ]);
      update(settings, t.settings || {}, settingsTable);
      update(parts, (t.partitions || []).map((p) => Object.assign({ _topic: name }, p)), partitionsTable);
    };
    const reload = async () => {
      const t = await api('GET', '/topics/' + enc(name));
      if (ctx.alive()) show(t);
    };
    ctx.add(
      h('div', { class: 'page-head' }, h('h1', null, name),
        h('div', { class: 'actions' }, link(`#/topics/${enc(name)}/messages`, 'Browse messages', { class: 'button', testid: 'browse-messages' }))),
      summary,
      canAlter()
        ? h('div', { class: 'columns' },
          panel('Settings', settings),
          h('div', null, produceForm(name, reload), alterForm(() => topic, reload), addPartitionsForm(() => topic, reload)))
        : panel('Settings', settings),
      panel('Partitions', parts),
      canAlter() ? deleteTopicPanel(name) : null);
    show(topic);
    ctx.every(5000, reload);
  }

  function alterForm(current, reload) {
    const inputs = {
      retention_ms: h('input', { type: 'number', testid: 'alter-retention-ms' }),
      retention_bytes: h('input', { type: 'number', testid: 'alter-retention-bytes' }),
      segment_bytes: h('input', { type: 'number', testid: 'alter-segment-bytes' }),
      min_cleanable_dirty_ratio: h('input', { type: 'number', step: 'any', testid: 'alter-dirty-ratio' }),
    };
    const policy = h('select', { testid: 'alter-cleanup-policy' },
      h('option', { value: '' }, '(unchanged)'), ['delete', 'compact', 'compact,delete'].map((p) => h('option', { value: p }, p)));
    const note = h('span', { class: 'form-note', testid: 'alter-result' });
    const setPlaceholders = () => {
      const s = (current() && current().settings) || {};
      for (const [k, el] of Object.entries(inputs)) el.placeholder = s[k] === null || s[k] === undefined ? 'unlimited / default' : String(s[k]);
    };
    setPlaceholders();
    return panel('Alter settings', h('form', {
      class: 'stack-form', testid: 'alter-form',
      onsubmit: guarded(async () => {
        const settings = {};
        for (const [k, el] of Object.entries(inputs)) {
          const v = numberInput(el, k);
          if (v !== null) settings[k] = v;
        }
        if (policy.value) settings.cleanup_policy = policy.value;
        if (!Object.keys(settings).length) throw clientError('change at least one setting');
        note.textContent = '';
        await api('PATCH', '/topics/' + enc(current().name), { settings });
        for (const el of Object.values(inputs)) el.value = '';
        policy.value = '';
        await reload();
        setPlaceholders();
        note.textContent = 'Saved: ' + Object.keys(settings).join(', ');
      }),
    },
    h('p', { class: 'muted small' }, 'Empty fields stay as they are; -1 means unlimited.'),
    field('retention_ms', inputs.retention_ms), field('retention_bytes', inputs.retention_bytes),
    field('cleanup_policy', policy), field('segment_bytes', inputs.segment_bytes),
    field('min_cleanable_dirty_ratio', inputs.min_cleanable_dirty_ratio),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'primary', testid: 'alter-submit' }, 'Save settings'), note)));
  }

  function addPartitionsForm(current, reload) {
    const total = h('input', { type: 'number', testid: 'add-partitions-total', required: true });
    const note = h('span', { class: 'form-note', testid: 'add-partitions-result' });
    const n = (current().partitions || []).length;
    total.min = n + 1;
    total.placeholder = `more than ${n}`;
    return panel('Add partitions', h('form', {
      class: 'inline-form', testid: 'add-partitions-form',
      onsubmit: guarded(async () => {
        const v = numberInput(total, 'partitions');
        if (v === null) throw clientError('give the new total number of partitions');
        await api('POST', `/topics/${enc(current().name)}/partitions`, { partitions: v });
        total.value = '';
        await reload();
        const now = (current().partitions || []).length;
        total.min = now + 1;
        total.placeholder = `more than ${now}`;
        note.textContent = `Now ${now} partitions.`;
      }),
    }, field('New total', total), h('button', { type: 'submit', testid: 'add-partitions-submit' }, 'Add partitions'), note));
  }

  function produceForm(topic, reload) {
    const key = h('input', { testid: 'produce-key', placeholder: '(no key)', autocomplete: 'off' });
    const value = h('textarea', { testid: 'produce-value', rows: 4, placeholder: '{"hello": "world"}', spellcheck: 'false' });
    const hk = h('input', { testid: 'produce-header-key', placeholder: 'header name', autocomplete: 'off' });
    const hv = h('input', { testid: 'produce-header-value', placeholder: 'header value', autocomplete: 'off' });
    const result = h('div', { class: 'form-result' });
    return panel('Produce a test message', h('form', {
      class: 'stack-form', testid: 'produce-form',
      onsubmit: guarded(async () => {
        clear(result);
        const body = { key: key.value === '' ? null : key.value, value: value.value, headers: [] };
        if (hk.value.trim()) body.headers.push({ key: hk.value.trim(), value: hv.value });
        const r = await api('POST', `/topics/${enc(topic)}/messages`, body);
        result.appendChild(h('div', { class: 'ok-box', testid: 'produce-result' },
          'Produced to partition ', h('b', { testid: 'produce-partition' }, String(r.partition)),
          ' at offset ', h('b', { testid: 'produce-offset' }, String(r.offset)), ' — ',
          link(`#/topics/${enc(topic)}/messages?partition=${enc(r.partition)}&offset=${enc(r.offset)}`, 'view it', { testid: 'produce-result-link' })));
        await reload();
      }),
    },
    field('Key', key), field('Value', value),
    h('div', { class: 'row' }, field('Header', hk), field('\u00a0', hv)),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'primary', testid: 'produce-submit' }, 'Produce')),
    result));
  }

  function deleteTopicPanel(name) {
    const box = h('div', { class: 'confirm-box', hidden: true });
    const input = h('input', { testid: 'delete-confirm-input', autocomplete: 'off', placeholder: name });
    const note = h('div', { class: 'form-note bad-text', testid: 'delete-refused' });
    append(box, [
      h('p', null, 'This deletes the topic and all its records. Type ', h('code', null, name), ' to confirm.'),
      h('form', {
        class: 'inline-form',
        onsubmit: guarded(async () => {
          if (input.value !== name) {
            note.textContent = 'The name does not match: nothing was deleted.';
            return;
          }
          note.textContent = '';
          await api('DELETE', '/topics/' + enc(name));
          go('#/topics');
        }),
      }, input, h('button', { type: 'submit', class: 'danger', testid: 'delete-confirm' }, 'Delete this topic')),
      note,
    ]);
    const open = h('button', {
      type: 'button', class: 'danger-outline', testid: 'delete-topic',
      onclick: () => { box.hidden = false; open.hidden = true; input.focus(); },
    }, 'Delete topic…');
    return h('section', { class: 'panel danger-zone' }, h('h2', null, 'Danger zone'), open, box);
  }

  // ------------------------------------------------------------------
  // Messages
  // ------------------------------------------------------------------

  // key, value or header value: a string, null, or {"base64": "..."}
  function bytesView(v, pretty) {
    if (v === null || v === undefined) return h('span', { class: 'null' }, 'null');
    if (typeof v === 'object' && 'base64' in v) {
      return h('span', { class: 'b64' }, badge('base64', 'muted'), ' ', h('span', { class: 'b64-text' }, String(v.base64)));
    }
    const s = String(v);
    if (pretty) {
      const t = s.trim();
      if (t.startsWith('{') || t.startsWith('[')) {
        try { return h('span', { class: 'json' }, JSON.stringify(JSON.parse(t), null, 2)); } catch (e) { /* not JSON */ }
      }
    }
    return s;
  }

  function headerChips(headers, skip) {
    const hs = (headers || []).filter((x) => !skip || !skip(x.key));
    if (!hs.length) return null;
    return h('div', { class: 'headers' }, hs.map((x) => h('span', { class: 'chip', testid: 'msg-header', title: 'header' },
      h('span', { class: 'chip-key' }, x.key), h('span', { class: 'chip-value' }, bytesView(x.value)))));
  }

  function messageCard(m, testid, extra) {
    return h('article', { class: 'msg', testid: testid || 'message', 'data-partition': m.partition, 'data-offset': m.offset },
      h('div', { class: 'msg-meta' },
        h('span', { class: 'msg-pos' }, `p${m.partition}`, h('span', { class: 'at' }, '@'), h('span', { testid: 'msg-offset' }, String(m.offset))),
        h('time', { testid: 'msg-time', title: String(m.timestamp_ms) }, fmtTime(m.timestamp_ms)),
        h('span', { class: 'msg-key' }, muted('key '), h('code', { testid: 'msg-key' }, bytesView(m.key))),
        headerChips(m.headers),
        extra || null),
      h('pre', { class: 'msg-value', testid: 'msg-value' }, bytesView(m.value, true)));
  }

  async function pageMessages(ctx, name) {
    ctx.title(['Topics', '#/topics'], [name, '#/topics/' + enc(name)], 'Messages');
    const topic = await api('GET', '/topics/' + enc(name));
    if (!ctx.alive()) return;
    const nparts = (topic.partitions || []).length;
    const p = ctx.params;
    const partition = Math.min(Math.max(0, Number(p.get('partition') || 0)), Math.max(0, nparts - 1));
    const mode = p.has('offset') ? 'offset' : p.has('timestamp_ms') ? 'timestamp' : 'end';
    const limit = Math.min(500, Math.max(1, Number(p.get('limit') || 50)));

    const partSel = h('select', { testid: 'msg-partition' },
      Array.from({ length: nparts }, (_, i) => h('option', { value: i }, `partition ${i}`)));
    partSel.value = String(partition);
    const modeSel = h('select', { testid: 'msg-from' },
      h('option', { value: 'end' }, 'the end (newest)'), h('option', { value: 'offset' }, 'offset'), h('option', { value: 'timestamp' }, 'timestamp'));
    modeSel.value = mode;
    const pos = h('input', { testid: 'msg-position', autocomplete: 'off' });
    if (mode === 'offset') pos.value = p.get('offset');
    if (mode === 'timestamp') pos.value = fmtTime(Number(p.get('timestamp_ms')));
    const limitIn = h('input', { type: 'number', min: 1, max: 500, value: limit, testid: 'msg-limit' });
    const syncPos = () => {
      pos.disabled = modeSel.value === 'end';
      pos.placeholder = modeSel.value === 'offset' ? 'offset' : modeSel.value === 'timestamp' ? '2026-01-31T12:00:00Z or ms' : '';
    };
    modeSel.addEventListener('change', syncPos);
    syncPos();
    const hashFor = (part, m, v, lim) => {
      const q = new URLSearchParams({ partition: String(part) });
      if (m === 'offset') q.set('offset', String(v));
      if (m === 'timestamp') q.set('timestamp_ms', String(v));
      q.set('limit', String(lim));
      return `#/topics/${enc(name)}/messages?${q}`;
    };
    const browse = h('form', {
      class: 'inline-form', testid: 'messages-form',
      onsubmit: guarded(() => {
        const m = modeSel.value;
        let v = null;
        if (m === 'offset') {
          v = numberInput(pos, 'offset');
          if (v === null) throw clientError('give an offset');
        } else if (m === 'timestamp') {
          v = parseTime(pos.value, 'timestamp');
        }
        go(hashFor(partSel.value, m, v, numberInput(limitIn, 'limit') || 50));
      }),
    }, field('Partition', partSel), field('From', modeSel), field('\u00a0', pos), field('Limit', limitIn),
    h('button', { type: 'submit', class: 'primary', testid: 'msg-load' }, 'Load'));

    const info = h('div', { class: 'msg-info' });
    const list = h('div', { class: 'msg-list', testid: 'messages' });
    ctx.add(
      h('div', { class: 'page-head' }, h('h1', null, name, muted(' messages'))),
      searchPanel(name, nparts),
      panel(null, browse, info, list));

    let q = `limit=${limit}`;
    if (mode === 'offset') q += `&offset=${enc(p.get('offset'))}`;
    if (mode === 'timestamp') q += `&timestamp_ms=${enc(p.get('timestamp_ms'))}`;
    const res = await api('GET', `/topics/${enc(name)}/partitions/${partition}/messages?${q}`);
    if (!ctx.alive()) return;
    const msgs = res.messages || [];
    const first = msgs.length ? Number(msgs[0].offset) : Number(res.next_offset);
    const older = Math.max(Number(res.log_start_offset), first - limit);
    append(info, [
      h('span', { testid: 'msg-range' },
        `Partition ${res.partition} · log ${fmtInt(res.log_start_offset)} → ${fmtInt(res.log_end_offset)} · `,
        msgs.length ? `showing ${msgs.length} (offsets ${fmtInt(msgs[0].offset)}–${fmtInt(msgs[msgs.length - 1].offset)})` : 'no messages here'),
      h('span', { class: 'pager' },
        first > Number(res.log_start_offset) ? link(hashFor(partition, 'offset', older, limit), '← older', { testid: 'msg-older' }) : null,
        Number(res.next_offset) < Number(res.log_end_offset) ? link(hashFor(partition, 'offset', res.next_offset, limit), 'newer →', { testid: 'msg-newer' }) : null,
        link(hashFor(partition, 'end', null, limit), 'newest', { testid: 'msg-newest' })),
    ]);
    append(list, msgs.length ? msgs.map((m) => messageCard(m)) : [h('p', { class: 'empty' }, 'No messages in this range.')]);
  }

  function searchPanel(topic, nparts) {
    const key = h('input', { testid: 'search-key', placeholder: 'key', autocomplete: 'off' });
    const hname = h('input', { testid: 'search-header', placeholder: 'header name', autocomplete: 'off' });
    const hvalue = h('input', { testid: 'search-header-value', placeholder: 'header value', autocomplete: 'off' });
    const part = h('select', { testid: 'search-partition' }, h('option', { value: '' }, 'all'),
      Array.from({ length: nparts }, (_, i) => h('option', { value: i }, String(i))));
    const scan = h('input', { type: 'number', min: 1, max: 100000, value: 10000, testid: 'search-scan-limit' });
    const out = h('div', { class: 'search-out' });
    const form = h('form', {
      class: 'inline-form', testid: 'search-form',
      onsubmit: guarded(async () => {
        const q = new URLSearchParams();
        if (key.value !== '') q.set('key', key.value);
        else if (hname.value.trim()) {
          q.set('header', hname.value.trim());
          if (hvalue.value) q.set('header_value', hvalue.value);
        } else throw clientError('search by key, or by header name and value');
        if (part.value !== '') q.set('partition', part.value);
        const sl = numberInput(scan, 'scan limit');
        if (sl !== null) q.set('scan_limit', String(sl));
        clear(out);
        out.appendChild(muted('Searching…'));
        const res = await api('GET', `/topics/${enc(topic)}/search?${q}`);
        clear(out);
        const matches = res.matches || [];
        out.appendChild(h('div', { testid: 'search-result' },
          h('div', { class: 'msg-info' },
            h('span', { testid: 'search-summary' },
              h('b', { testid: 'search-count' }, String(matches.length)), matches.length === 1 ? ' match' : ' matches',
              ` in ${fmtInt(res.scanned)} records scanned`),
            h('span', { class: 'muted', testid: 'search-ranges' }, 'read: ',
              (res.partitions || []).map((r) => `p${r.partition} [${fmtInt(r.from_offset)}, ${fmtInt(r.to_offset)})`).join(' · '))),
          matches.length ? h('div', { class: 'msg-list' }, matches.map((m) => messageCard(m, 'search-match',
            link(`#/topics/${enc(topic)}/messages?partition=${enc(m.partition)}&offset=${enc(m.offset)}`, 'open in partition', { testid: 'match-open', class: 'small' }))))
            : h('p', { class: 'empty' }, 'No match in the range read.')));
      }),
    }, field('Key', key), muted('or'), field('Header', hname), field('\u00a0', hvalue), field('Partition', part),
    field('Scan limit / partition', scan), h('button', { type: 'submit', class: 'primary', testid: 'search-submit' }, 'Search'));
    return panel('Search', h('p', { class: 'muted small' }, 'Reads at most the scan limit of records per partition (the newest ones).'), form, out);
  }

  // ------------------------------------------------------------------
  // Consumer groups
  // ------------------------------------------------------------------

  function stateBadge(s) {
    const kind = { stable: 'ok', running: 'ok', empty: 'muted', rebalancing: 'warn', paused: 'warn', failed: 'bad' }[s] || 'muted';
    return badge(s || '—', kind);
  }

  async function pageGroups(ctx) {
    ctx.title('Consumer groups');
    const list = h('div');
    ctx.main.appendChild(panel('Consumer groups', list));
    async function load() {
      const res = await api('GET', '/groups');
      if (!ctx.alive()) return;
      const groups = (res.groups || []).slice().sort((a, b) => a.group.localeCompare(b.group));
      update(list, groups, (gs) => table([
        { label: 'Group', render: (g) => link('#/groups/' + enc(g.group), g.group, { class: 'strong' }) },
        { label: 'State', render: (g) => stateBadge(g.state) },
        { label: 'Members', num: true, render: (g) => fmtInt(Array.isArray(g.members) ? g.members.length : g.members) },
        { label: 'Lag (records)', num: true, render: (g) => fmtInt(g.lag_records) },
        { label: 'Max lag (time)', num: true, render: (g) => fmtDuration(g.max_lag_ms) },
      ], gs, { rowTestid: 'group-row', testid: 'groups-table', empty: 'No consumer groups.' }));
    }
    await load();
    ctx.every(3000, load);
  }

  function topicNames(list) {
    return (list || []).map((t) => (typeof t === 'string' ? t : t.topic || t.name)).filter(Boolean);
  }

  async function pageGroup(ctx, name) {
    ctx.title(['Consumer groups', '#/groups'], name);
    let g = await api('GET', '/groups/' + enc(name));
    if (!ctx.alive()) return;
    const summary = h('div', { class: 'cards' });
    const members = h('div');
    const parts = h('div');
    const chartBox = h('div', { class: 'chart', testid: 'lag-chart', 'data-points': '0', 'data-last-lag': '' });
    let chart = null;

    const show = (grp) => {
      g = grp;
      update(summary, [g.state, g.generation, g.strategy, g.lag_records, g.max_lag_ms, (g.members || []).length], () => [
        stat('State', stateBadge(g.state), 'group-state', `generation ${fmtInt(g.generation)}`),
        stat('Members', fmtInt((g.members || []).length), 'member-count', g.strategy ? `strategy ${g.strategy}` : null),
        // the bare number (no separators): people read it, tests parse it
        stat('Total lag (records)', g.lag_records === null || g.lag_records === undefined ? '' : String(g.lag_records), 'total-lag'),
        stat('Max lag (time)', fmtDuration(g.max_lag_ms), 'max-lag'),
      ]);
      update(members, g.members || [], (ms) => table([
        { label: 'Member', render: (m) => h('code', null, m.member_id) },
        { label: 'Client', render: (m) => m.client_id || '—' },
        { label: 'Host', render: (m) => m.host || '—' },
        { label: 'Assignment', render: (m) => (m.assignment || []).map((a) => h('div', null, h('b', null, a.topic), ' ', muted((a.partitions || []).join(', ')))) },
      ], ms, { rowTestid: 'member-row', empty: 'No members: nobody consumes with this group now.' }));
      update(parts, g.partitions || [], (ps) => table([
        { label: 'Topic', render: (p) => link('#/topics/' + enc(p.topic), p.topic) },
        { label: 'Partition', num: true, render: (p) => String(p.partition) },
        { label: 'Committed', num: true, testid: 'lag-committed', render: (p) => (p.committed_offset === null || p.committed_offset === undefined ? muted('none') : fmtInt(p.committed_offset)) },
        { label: 'Log start', num: true, render: (p) => fmtInt(p.log_start_offset) },
        { label: 'Log end', num: true, render: (p) => fmtInt(p.log_end_offset) },
        { label: 'Lag (records)', num: true, testid: 'lag-records', render: (p) => h('span', { class: Number(p.lag_records) > 0 ? 'lagging' : null }, fmtInt(p.lag_records)) },
        { label: 'Lag (time)', num: true, render: (p) => fmtDuration(p.lag_ms) },
      ], ps, { rowTestid: 'lag-row', testid: 'lag-table', empty: 'No committed offsets.' }));
    };

    const loadHistory = async () => {
      const hist = await api('GET', `/groups/${enc(name)}/history`);
      if (!ctx.alive()) return;
      const pts = hist.points || [];
      const data = seriesOf(pts, 'lag_records', 'lag_ms');
      if (!chart) {
        chart = makeChart(chartBox, [
          { label: 'lag (records)', stroke: '#2563eb', fill: 'rgba(37,99,235,0.08)', scale: 'rec', fmt: fmtInt },
          { label: 'lag (time)', stroke: '#d97706', scale: 'ms', fmt: fmtDuration },
        ], [
          { scale: 'rec', label: 'records', integer: true },
          { scale: 'ms', side: 'right', label: 'time', stroke: '#d97706', fmt: (v) => fmtDuration(v) },
        ], data);
      } else {
        setChartData(chart, data);
      }
      chartBox.setAttribute('data-points', String(pts.length));
      chartBox.setAttribute('data-last-lag', pts.length ? String(pts[pts.length - 1].lag_records) : '');
    };
    const load = async () => {
      const grp = await api('GET', '/groups/' + enc(name));
      if (!ctx.alive()) return;
      show(grp);
      await loadHistory();
    };

    ctx.add(
      h('div', { class: 'page-head' }, h('h1', null, name, muted(' consumer group'))),
      summary,
      panel('Lag over time', chartBox),
      panel('Partitions', parts),
      panel('Members', members));
    show(g);
    await loadHistory();
    if (canAlter()) ctx.main.appendChild(await resetOffsetsPanel(ctx, name, () => g, load));
    ctx.every(2000, load);
  }

  async function resetOffsetsPanel(ctx, group, current, reload) {
    let topics = [...new Set([...topicNames(current().topics), ...(current().partitions || []).map((p) => p.topic),
      ...(current().members || []).flatMap((m) => (m.assignment || []).map((a) => a.topic))])];
    if (!topics.length) topics = ((await api('GET', '/topics')).topics || []).map((t) => t.name);
    topics.sort();
    const topic = h('select', { testid: 'reset-topic' }, topics.map((t) => h('option', { value: t }, t)));
    const partitions = h('input', { testid: 'reset-partitions', placeholder: 'all (or 0,2)', autocomplete: 'off' });
    const to = h('select', { testid: 'reset-to' }, ['earliest', 'latest', 'offset', 'timestamp', 'shift'].map((t) => h('option', { value: t }, t)));
    const value = h('input', { testid: 'reset-value', autocomplete: 'off' });
    const force = h('input', { type: 'checkbox', testid: 'reset-force' });
    const preview = h('div', { class: 'reset-out' });
    const applyBox = h('div');
    let planned = null; // the request body the preview showed

    const syncValue = () => {
      value.disabled = to.value === 'earliest' || to.value === 'latest';
      value.placeholder = { offset: 'offset', timestamp: '2026-01-31T12:00:00Z or ms', shift: '-100 or 100' }[to.value] || '';
    };
    const invalidate = () => { planned = null; clear(preview); clear(applyBox); };
    to.addEventListener('change', syncValue);
    for (const el of [topic, partitions, to, value, force]) {
      el.addEventListener('input', invalidate);
      el.addEventListener('change', invalidate);
    }
    syncValue();

    const body = () => {
      const b = { topic: topic.value, to: to.value, dry_run: true };
      const ps = partitions.value.split(',').map((s) => s.trim()).filter((s) => s !== '');
      if (ps.length) {
        b.partitions = ps.map((s) => {
          const n = Number(s);
          if (!Number.isInteger(n) || n < 0) throw clientError(`partitions: "${s}" is not a partition number`);
          return n;
        });
      }
      if (to.value === 'offset' || to.value === 'shift') {
        const v = numberInput(value, to.value);
        if (v === null) throw clientError(`give the ${to.value}`);
        b.value = v;
      } else if (to.value === 'timestamp') {
        b.value = parseTime(value.value, 'timestamp');
      }
      if (force.checked) b.force = true;
      if (!b.topic) throw clientError('choose a topic');
      return b;
    };

    const onPreview = guarded(async () => {
      invalidate();
      const b = body();
      const res = await api('POST', `/groups/${enc(group)}/reset-offsets`, b);
      if (!ctx.alive()) return;
      planned = Object.assign({}, b, { dry_run: false });
      const changes = res.changes || [];
      append(preview, [
        h('p', { class: 'muted' }, `Preview (nothing changed yet): ${changes.length} partition${changes.length === 1 ? '' : 's'}.`),
        table([
          { label: 'Topic', render: (c) => c.topic },
          { label: 'Partition', num: true, render: (c) => String(c.partition) },
          { label: 'Before', num: true, testid: 'change-before', render: (c) => (c.before === null || c.before === undefined ? 'none' : String(c.before)) },
          { label: '', render: () => '→' },
          { label: 'After', num: true, testid: 'change-after', render: (c) => String(c.after) },
          { label: 'Δ', num: true, render: (c) => (c.before === null || c.before === undefined ? '' : fmtInt(Number(c.after) - Number(c.before))) },
        ], changes, { rowTestid: 'reset-change', testid: 'reset-preview-table', empty: 'No partition would change.' }),
      ]);
      append(applyBox, [h('button', { type: 'button', class: 'danger apply', testid: 'reset-apply', onclick: onApply }, `Apply to ${changes.length} partition${changes.length === 1 ? '' : 's'}`)]);
    });

    const onApply = guarded(async () => {
      if (!planned) throw clientError('preview first');
      const b = planned;
      const res = await api('POST', `/groups/${enc(group)}/reset-offsets`, b);
      if (!ctx.alive()) return;
      invalidate();
      const changes = (res && res.changes) || [];
      append(applyBox, [h('div', { class: 'ok-box', testid: 'reset-applied' },
        `Applied: ${changes.length} offset${changes.length === 1 ? '' : 's'} of ${b.topic} reset to ${b.to}${b.value !== undefined ? ' ' + b.value : ''}.`)]);
      await reload();
    });

    return panel('Reset offsets',
      h('p', { class: 'muted small' }, 'Preview first (a dry run); apply what the preview showed. A group with members is refused unless forced.'),
      h('form', { class: 'inline-form', testid: 'reset-form', onsubmit: onPreview },
        field('Topic', topic), field('Partitions', partitions), field('To', to), field('Value', value),
        h('label', { class: 'check' }, force, ' force'),
        h('button', { type: 'submit', class: 'primary', testid: 'reset-preview' }, 'Preview')),
      preview, applyBox);
  }

  // ------------------------------------------------------------------
  // Queues
  // ------------------------------------------------------------------

  async function pageQueues(ctx) {
    ctx.title('Queues');
    const list = h('div');
    ctx.main.appendChild(panel('Queue groups', list));
    async function load() {
      const res = await api('GET', '/queues');
      if (!ctx.alive()) return;
      const qs = (res.queues || []).slice().sort((a, b) => a.group.localeCompare(b.group));
      update(list, qs, (rows) => table([
        { label: 'Queue group', render: (q) => link('#/queues/' + enc(q.group), q.group, { class: 'strong' }) },
        { label: 'Topic', render: (q) => link('#/topics/' + enc(q.topic), q.topic) },
        { label: 'Lag', num: true, render: (q) => fmtInt(q.lag) },
        { label: 'In flight', num: true, render: (q) => fmtInt(q.in_flight) },
        { label: 'Waiting', num: true, render: (q) => fmtInt(q.waiting) },
        { label: 'Oldest unacked', num: true, render: (q) => fmtDuration(q.oldest_unacked_age_ms) },
        { label: 'Redeliveries', num: true, render: (q) => fmtInt(q.redeliveries) },
        { label: 'Dead-lettered', num: true, render: (q) => fmtInt(q.dead_lettered) },
        { label: 'DLQ depth', num: true, render: (q) => h('span', { class: Number(q.dlq_depth) > 0 ? 'bad-text strong' : null }, fmtInt(q.dlq_depth)) },
        { label: 'Consumers', num: true, render: (q) => fmtInt((q.consumers || []).length) },
      ], rows, { rowTestid: 'queue-row', testid: 'queues-table', empty: 'No queue groups.' }));
    }
    await load();
    ctx.every(3000, load);
  }

  function queueSettingsTable(s) {
    const kinds = { lease_ms: 'ms', backoff_initial_ms: 'ms', backoff_max_ms: 'ms' };
    return kvTable(Object.keys(s).map((k) => [k, k === 'dlq_topic' && s[k] ? link('#/topics/' + enc(s[k]), s[k]) : fmtSetting(kinds[k] || '', s[k])]), 'queue-settings');
  }

  async function pageQueue(ctx, name) {
    ctx.title(['Queues', '#/queues'], name);
    let q = await api('GET', '/queues/' + enc(name));
    if (!ctx.alive()) return;
    const summary = h('div', { class: 'cards' });
    const settings = h('div');
    const parts = h('div');
    const consumers = h('div');
    const letters = h('div', { testid: 'dead-letters' });
    const chartBox = h('div', { class: 'chart', testid: 'dlq-chart', 'data-points': '0', 'data-last-depth': '' });
    let chart = null;

    const show = (qq) => {
      q = qq;
      update(summary, [q.topic, q.lag, q.in_flight, q.waiting, q.oldest_unacked_age_ms, q.redeliveries, q.dead_lettered, q.dlq_depth, q.lost_to_retention], () => [
        stat('Topic', link('#/topics/' + enc(q.topic), q.topic), 'queue-topic', `created ${fmtTime(q.created_ms)}`),
        stat('Lag', fmtInt(q.lag), 'queue-lag'),
        stat('In flight', fmtInt(q.in_flight), 'queue-in-flight', `${fmtInt(q.waiting)} waiting`),
        stat('Oldest unacked', fmtDuration(q.oldest_unacked_age_ms)),
        stat('Redeliveries', fmtInt(q.redeliveries), null, `${fmtInt(q.lost_to_retention)} lost to retention`),
        stat('Dead-lettered', fmtInt(q.dead_lettered)),
        stat('DLQ depth', String(q.dlq_depth === null || q.dlq_depth === undefined ? '' : q.dlq_depth), 'dlq-depth'),
      ]);
      update(settings, q.settings || {}, queueSettingsTable);
      update(parts, q.partitions || [], (ps) => table([
        { label: 'Partition', num: true, render: (p) => String(p.partition) },
        { label: 'Acked up to', num: true, render: (p) => fmtInt(p.acked_up_to) },
        { label: 'Log end', num: true, render: (p) => fmtInt(p.log_end_offset) },
        { label: 'Lag', num: true, render: (p) => fmtInt(p.lag) },
        { label: 'Unsettled', num: true, render: (p) => fmtInt(p.unsettled) },
        { label: 'In flight', num: true, render: (p) => fmtInt(p.in_flight) },
        { label: 'Waiting', num: true, render: (p) => fmtInt(p.waiting) },
        { label: 'Oldest unacked', num: true, render: (p) => fmtDuration(p.oldest_unacked_age_ms) },
      ], ps, { rowTestid: 'queue-partition-row' }));
      update(consumers, q.consumers || [], (cs) => table([
        { label: 'Consumer', render: (c) => h('code', null, c.consumer_id) },
        { label: 'In flight', num: true, render: (c) => fmtInt(c.in_flight) },
        { label: 'Idle', num: true, render: (c) => fmtDuration(c.idle_ms) },
      ], cs, { rowTestid: 'consumer-row', empty: 'No consumers now.' }));
    };

    const loadHistory = async () => {
      const hist = await api('GET', `/queues/${enc(name)}/history`);
      if (!ctx.alive()) return;
      const pts = hist.points || [];
      const data = seriesOf(pts, 'dlq_depth', 'in_flight');
      if (!chart) {
        chart = makeChart(chartBox, [
          { label: 'DLQ depth', stroke: '#dc2626', fill: 'rgba(220,38,38,0.08)', fmt: fmtInt },
          { label: 'in flight', stroke: '#2563eb', fmt: fmtInt },
        ], [{ scale: 'y', integer: true }], data);
      } else {
        setChartData(chart, data);
      }
      chartBox.setAttribute('data-points', String(pts.length));
      chartBox.setAttribute('data-last-depth', pts.length ? String(pts[pts.length - 1].dlq_depth) : '');
    };

    const loadLetters = async () => {
      const dlq = q.settings && q.settings.dlq_topic;
      if (!dlq) {
        update(letters, 'none', () => muted('This queue group has no dead-letter topic.'));
        return;
      }
      const found = await deadLetters(dlq);
      if (!ctx.alive()) return;
      update(letters, found, (f) => deadLetterList(dlq, f));
    };

    const load = async () => {
      const qq = await api('GET', '/queues/' + enc(name));
      if (!ctx.alive()) return;
      show(qq);
      await Promise.all([loadHistory(), loadLetters()]);
    };

    ctx.add(
      h('div', { class: 'page-head' }, h('h1', null, name, muted(' queue group'))),
      summary,
      h('div', { class: 'columns' }, panel('DLQ depth over time', chartBox), panel('Settings', settings)),
      panel('Partitions', parts),
      panel('Consumers', consumers),
      panel('Dead letters', letters),
      canAlter() ? redrivePanel(ctx, name, load) : null);
    show(q);
    await Promise.all([loadHistory(), loadLetters()]);
    ctx.every(3000, load);
  }

  // every partition of the dead-letter topic, the newest first
  async function deadLetters(dlq) {
    let topic;
    try {
      topic = await api('GET', '/topics/' + enc(dlq), undefined, { quiet: true });
    } catch (e) {
      if (e.status === 404) return { missing: true, messages: [] };
      showError(e);
      throw e;
    }
    const n = (topic.partitions || []).length;
    const pages = await Promise.all(Array.from({ length: n }, (_, p) => api('GET', `/topics/${enc(dlq)}/partitions/${p}/messages?limit=100`)));
    const messages = pages.flatMap((pg) => pg.messages || []);
    messages.sort((a, b) => (Number(b.timestamp_ms) - Number(a.timestamp_ms)) || (a.partition - b.partition) || (Number(b.offset) - Number(a.offset)));
    return { missing: false, messages };
  }

  function headerValue(m, name) {
    const x = (m.headers || []).find((hh) => hh.key === name);
    if (!x || x.value === null || x.value === undefined) return null;
    return typeof x.value === 'string' ? x.value : `base64:${x.value.base64}`;
  }

  function deadLetterList(dlq, found) {
    if (found.missing) return h('p', { class: 'empty' }, `No dead letters: the topic ${dlq} does not exist yet.`);
    if (!found.messages.length) return h('p', { class: 'empty' }, `No dead letters in ${dlq}.`);
    return h('div', { class: 'msg-list' },
      h('p', { class: 'muted small' },
        found.messages.length === 1 ? 'The one record of ' : `The newest ${found.messages.length} records of `,
        link('#/topics/' + enc(dlq) + '/messages', dlq),
        ', newest first (a redriven dead letter stays in the topic; the DLQ depth counts those not redriven).'),
      found.messages.map((m) => {
        const hv = (k) => headerValue(m, k);
        const srcTopic = hv('brook-dlq-topic');
        const src = srcTopic !== null
          ? link(`#/topics/${enc(srcTopic)}/messages?partition=${enc(hv('brook-dlq-partition') || 0)}&offset=${enc(hv('brook-dlq-offset') || 0)}`,
            `${srcTopic} / ${hv('brook-dlq-partition')} / ${hv('brook-dlq-offset')}`, { testid: 'dlq-origin' })
          : muted('unknown');
        const first = hv('brook-dlq-first-failure-ms');
        const last = hv('brook-dlq-last-failure-ms');
        return h('article', { class: 'msg dead-letter', testid: 'dead-letter', 'data-partition': m.partition, 'data-offset': m.offset },
          h('div', { class: 'dlq-facts' },
            h('div', { class: 'dlq-reason' }, muted('reason '), h('strong', { testid: 'dlq-reason' }, hv('brook-dlq-reason') === null ? '—' : hv('brook-dlq-reason'))),
            h('div', null, muted('deliveries '), h('strong', { testid: 'dlq-delivery-count' }, hv('brook-dlq-delivery-count') || '—')),
            h('div', null, muted('from '), src),
            hv('brook-dlq-group') !== null ? h('div', null, muted('group '), hv('brook-dlq-group')) : null,
            first !== null ? h('div', null, muted('failed '), fmtTime(Number(first)), last !== null && last !== first ? ` … ${fmtTime(Number(last))}` : '') : null),
          h('div', { class: 'msg-meta' },
            h('span', { class: 'msg-pos' }, `${dlq} p${m.partition}`, h('span', { class: 'at' }, '@'), String(m.offset)),
            h('time', null, fmtTime(m.timestamp_ms)),
            h('span', { class: 'msg-key' }, muted('key '), h('code', null, bytesView(m.key))),
            headerChips(m.headers, (k) => k.startsWith('brook-dlq-'))),
          h('pre', { class: 'msg-value' }, bytesView(m.value, true)));
      }));
  }

  function redrivePanel(ctx, group, reload) {
    const part = h('input', { type: 'number', min: 0, testid: 'redrive-partition', placeholder: 'all' });
    const from = h('input', { type: 'number', min: 0, testid: 'redrive-from', placeholder: 'start' });
    const upto = h('input', { type: 'number', min: 0, testid: 'redrive-to', placeholder: 'end' });
    const limit = h('input', { type: 'number', min: 1, testid: 'redrive-limit', placeholder: 'all' });
    const target = h('input', { testid: 'redrive-target', placeholder: "the group's topic", autocomplete: 'off' });
    const toGroup = h('input', { type: 'checkbox', testid: 'redrive-to-group' });
    const out = h('div');
    let planned = null;
    const invalidate = () => { planned = null; clear(out); };
    for (const el of [part, from, upto, limit, target, toGroup]) {
      el.addEventListener('input', invalidate);
      el.addEventListener('change', invalidate);
    }
    const body = () => {
      const b = { dry_run: true };
      const put = (k, el) => { const v = numberInput(el, k); if (v !== null) b[k] = v; };
      put('dlq_partition', part); put('from_offset', from); put('to_offset', upto); put('limit', limit);
      if (target.value.trim()) b.target_topic = target.value.trim();
      if (toGroup.checked) b.to_group = true;
      return b;
    };
    const summary = (r) => `${fmtInt(r.redriven)} redriven · ${fmtInt(r.already_redriven)} already redriven · ${fmtInt(r.unavailable)} unavailable`;
    const onApply = guarded(async () => {
      if (!planned) throw clientError('preview first');
      const r = await api('POST', `/queues/${enc(group)}/redrive`, planned);
      if (!ctx.alive()) return;
      invalidate();
      out.appendChild(h('div', { class: 'ok-box', testid: 'redrive-applied' }, 'Done: ' + summary(r)));
      await reload();
    });
    const onPreview = guarded(async () => {
      invalidate();
      const b = body();
      const r = await api('POST', `/queues/${enc(group)}/redrive`, b);
      if (!ctx.alive()) return;
      planned = Object.assign({}, b, { dry_run: false });
      append(out, [
        h('p', { testid: 'redrive-preview-result' }, 'Preview (nothing moved yet): ', h('b', null, summary(r))),
        h('button', { type: 'button', class: 'danger apply', testid: 'redrive-apply', onclick: onApply }, 'Redrive'),
      ]);
    });
    return panel('Redrive dead letters',
      h('p', { class: 'muted small' }, 'Copies dead letters back to the topic (or another), or, with “to the group only”, makes the queue group deliver their source records again. Preview first.'),
      h('form', { class: 'inline-form', testid: 'redrive-form', onsubmit: onPreview },
        field('DLQ partition', part), field('From offset', from), field('To offset', upto), field('Limit', limit),
        field('Target topic', target), h('label', { class: 'check' }, toGroup, ' to the group only'),
        h('button', { type: 'submit', class: 'primary', testid: 'redrive-preview' }, 'Preview')),
      out);
  }

  // ------------------------------------------------------------------
  // Rules
  // ------------------------------------------------------------------

  function patternText(p) {
    if (p === null || p === undefined) return '';
    return typeof p === 'string' ? p : JSON.stringify(p);
  }

  async function pageRules(ctx) {
    ctx.title('Rules');
    const list = h('div');
    const tester = patternTester();
    ctx.add(panel('Routing rules', list), tester.el);
    async function load() {
      const res = await api('GET', '/rules');
      if (!ctx.alive()) return;
      const rules = (res.rules || []).slice().sort((a, b) => a.name.localeCompare(b.name));
      update(list, rules, (rs) => table([
        { label: 'Rule', render: (r) => h('strong', { testid: 'rule-name' }, r.name) },
        { label: 'Source', render: (r) => link('#/topics/' + enc(r.source_topic), r.source_topic) },
        { label: 'Pattern', render: (r) => h('code', { class: 'pattern', title: patternText(r.event_pattern) }, patternText(r.event_pattern)) },
        { label: 'Targets', render: (r) => topicNames(r.targets).map((t, i) => [i ? ', ' : '', link('#/topics/' + enc(t), t)]) },
        { label: 'State', render: (r) => [stateBadge(r.state), r.reason ? h('div', { class: 'small bad-text' }, r.reason) : null] },
        { label: 'Matched', num: true, testid: 'rule-matched', render: (r) => fmtInt(r.matched) },
        { label: 'Forwarded', num: true, testid: 'rule-forwarded', render: (r) => fmtInt(r.forwarded) },
        { label: 'Failed', num: true, testid: 'rule-failed', render: (r) => h('span', { class: Number(r.failed) > 0 ? 'bad-text' : null }, fmtInt(r.failed)) },
        { label: 'Lag', num: true, testid: 'rule-lag', render: (r) => fmtInt(r.lag) },
        { label: '', render: (r) => h('button', { type: 'button', class: 'small', onclick: () => tester.setPattern(patternText(r.event_pattern)) }, 'test') },
      ], rs, { rowTestid: 'rule-row', testid: 'rules-table', empty: 'No rules.' }));
    }
    await load();
    ctx.every(3000, load);
  }

  function patternTester() {
    const pattern = h('textarea', { rows: 6, testid: 'pattern-input', spellcheck: 'false', placeholder: '{"detail-type": ["OrderPlaced"]}' });
    const event = h('textarea', { rows: 6, testid: 'pattern-event', spellcheck: 'false', placeholder: '{"detail-type": "OrderPlaced", "detail": {}}' });
    const result = h('div', { class: 'pattern-result', testid: 'pattern-result', 'aria-live': 'polite' });
    const form = h('form', {
      class: 'stack-form', testid: 'pattern-form',
      onsubmit: guarded(async () => {
        clear(result);
        result.className = 'pattern-result';
        result.removeAttribute('data-result');
        let res;
        try {
          res = await api('POST', '/rules/test', { pattern: pattern.value, event: event.value }, { quiet: true });
        } catch (e) {
          if (!(e instanceof ApiError)) throw e;
          result.className = 'pattern-result pattern-error';
          result.setAttribute('data-result', 'error');
          append(result, [h('strong', null, e.reason || e.code || 'ERROR'), ': ', e.message]);
          return;
        }
        const yes = !!res.matches;
        result.className = 'pattern-result ' + (yes ? 'pattern-yes' : 'pattern-no');
        result.setAttribute('data-result', yes ? 'match' : 'no-match');
        result.textContent = yes ? 'matches' : 'no match';
      }),
    },
    h('div', { class: 'row' }, field('Pattern', pattern), field('Event', event)),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'primary', testid: 'pattern-test' }, 'Test'), result));
    return {
      el: panel('Pattern tester', h('p', { class: 'muted small' }, 'Does this event match this pattern? (EventBridge pattern language; nothing is published.)'), form),
      setPattern(p) { pattern.value = p; clear(result); pattern.focus(); },
    };
  }

  // ------------------------------------------------------------------
  // Schemas
  // ------------------------------------------------------------------

  const COMPAT_LEVELS = ['BACKWARD', 'BACKWARD_TRANSITIVE', 'FORWARD', 'FORWARD_TRANSITIVE', 'FULL', 'FULL_TRANSITIVE', 'NONE'];

  function versionList(s) {
    if (Array.isArray(s.versions)) return s.versions.map(Number).sort((a, b) => a - b);
    const n = Number(s.versions) || 0;
    return Array.from({ length: n }, (_, i) => i + 1);
  }

  async function pageSchemas(ctx) {
    ctx.title('Schemas');
    const res = await api('GET', '/schemas/subjects');
    if (!ctx.alive()) return;
    const subjects = (res.subjects || []).slice().sort((a, b) => a.subject.localeCompare(b.subject));
    ctx.add(
      h('div', { class: 'cards' }, stat('Global compatibility', res.compatibility || '—', 'global-compat'), stat('Subjects', fmtInt(subjects.length))),
      panel('Subjects', table([
        { label: 'Subject', render: (s) => link('#/schemas/' + enc(s.subject), s.subject, { class: 'strong' }) },
        { label: 'Versions', num: true, render: (s) => fmtInt(versionList(s).length) },
        { label: 'Latest', num: true, render: (s) => (s.latest ? `v${s.latest.version}` : '—') },
        { label: 'Schema id', num: true, render: (s) => (s.latest ? fmtInt(s.latest.id) : '—') },
        { label: 'Type', render: (s) => (s.latest && s.latest.schema_type) || '—' },
        { label: 'Compatibility', render: (s) => (s.compatibility ? s.compatibility : muted(`${res.compatibility || '—'} (global)`)) },
      ], subjects, { rowTestid: 'subject-row', testid: 'subjects-table', empty: 'No subjects registered.' })));
  }

  async function pageSubject(ctx, subject) {
    ctx.title(['Schemas', '#/schemas'], subject);
    const res = await api('GET', '/schemas/subjects');
    if (!ctx.alive()) return;
    const s = (res.subjects || []).find((x) => x.subject === subject);
    if (!s) {
      ctx.main.appendChild(panel('Not found', h('p', null, `No subject ${subject}. `, link('#/schemas', 'All subjects'))));
      return;
    }
    const versions = versionList(s);
    const latest = s.latest ? Number(s.latest.version) : versions[versions.length - 1];
    const vopts = (sel) => h('select', { testid: sel }, versions.map((v) => h('option', { value: v }, `version ${v}`)));

    // one version
    const vsel = vopts('schema-version');
    vsel.value = String(latest);
    const vmeta = h('div', { class: 'msg-info' });
    const vtext = h('pre', { class: 'schema', testid: 'schema-text' });
    const showVersion = async () => {
      const v = await api('GET', `/schemas/subjects/${enc(subject)}/versions/${enc(vsel.value)}`);
      if (!ctx.alive()) return;
      clear(vmeta);
      append(vmeta, [h('span', null, `version ${v.version} · id ${v.id} · ${v.schema_type || ''}`)]);
      vtext.textContent = typeof v.schema === 'string' ? v.schema : JSON.stringify(v.schema, null, 2);
    };
    vsel.addEventListener('change', guarded(showVersion));

    // a diff
    const from = vopts('diff-from');
    const to = vopts('diff-to');
    from.value = String(versions.length > 1 ? versions[versions.length - 2] : versions[0]);
    to.value = String(latest);
    const diffOut = h('div');
    const showDiff = async () => {
      const d = await api('GET', `/schemas/subjects/${enc(subject)}/diff?from=${enc(from.value)}&to=${enc(to.value)}`);
      if (!ctx.alive()) return;
      clear(diffOut);
      const lines = d.lines || [];
      const changed = lines.filter((l) => l.op !== ' ').length;
      append(diffOut, [
        h('p', { class: 'muted small' }, `version ${d.from} → version ${d.to}: ${changed ? `${changed} changed line${changed === 1 ? '' : 's'}` : 'identical'}`),
        h('div', { class: 'diff', testid: 'schema-diff' }, lines.map((l) => {
          const cls = l.op === '+' ? 'add' : l.op === '-' ? 'del' : 'ctx';
          return h('div', { class: 'line ' + cls }, h('span', { class: 'op' }, l.op === ' ' ? '\u00a0' : l.op), h('span', { class: 'text' }, l.text));
        })),
      ]);
    };

    // compatibility
    const level = h('select', { testid: 'compat-level' }, COMPAT_LEVELS.map((l) => h('option', { value: l }, l)));
    level.value = s.compatibility || res.compatibility || 'BACKWARD';
    const compatNote = h('span', { class: 'form-note', testid: 'compat-result' });

    ctx.add(
      h('div', { class: 'page-head' }, h('h1', null, subject, muted(' subject'))),
      h('div', { class: 'cards' },
        stat('Versions', versions.join(', ') || '—', 'subject-versions'),
        stat('Latest', s.latest ? `v${s.latest.version} (id ${s.latest.id})` : '—', null, s.latest ? s.latest.schema_type : null),
        stat('Compatibility', s.compatibility || `${res.compatibility || '—'}`, 'subject-compat', s.compatibility ? 'own level' : 'global level')),
      h('div', { class: 'columns' },
        panel('Schema', h('div', { class: 'inline-form' }, field('Version', vsel)), vmeta, vtext),
        panel('Diff',
          h('form', { class: 'inline-form', testid: 'diff-form', onsubmit: guarded(showDiff) },
            field('From', from), field('To', to), h('button', { type: 'submit', class: 'primary', testid: 'diff-submit' }, 'Compare')),
          diffOut)),
      canAlter() ? panel('Compatibility level',
        h('form', {
          class: 'inline-form', testid: 'compat-form',
          onsubmit: guarded(async () => {
            compatNote.textContent = '';
            const r = await api('PUT', `/schemas/subjects/${enc(subject)}/compatibility`, { level: level.value });
            compatNote.textContent = `Saved: ${(r && r.level) || level.value}`;
          }),
        }, field('Level of this subject', level), h('button', { type: 'submit', class: 'primary', testid: 'compat-save' }, 'Save'), compatNote)) : null);
    await showVersion();
    if (versions.length > 1) await showDiff();
  }

  // ------------------------------------------------------------------

  boot();
})();
