// ragkv console: polls api/v1/snapshot and api/v1/history (relative URLs, so it works
// under TLS and behind a path prefix) and renders them; controls POST JSON with the
// X-Ragkv-Console header (see package server/console). No dependencies.
'use strict';

const state = { seq: 0, history: null, historyAt: 0, snap: null, timer: 0 };

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const k of kids) e.append(k);
  return e;
};
const SVG = 'http://www.w3.org/2000/svg';
const svgEl = (tag, attrs) => {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
};

const int = (n) => Math.round(n).toLocaleString('en-US');
function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let f = n, i = 0;
  while (f >= 1024 && i < units.length - 1) { f /= 1024; i++; }
  return i === 0 ? `${n} B` : `${f.toFixed(1)} ${units[i]}`;
}
const pct = (x) => `${(100 * x).toFixed(1)}%`;
const rate = (x) => (x >= 100 ? int(x) : x.toFixed(x >= 10 ? 1 : 2));

// parseBytes accepts "512MiB", "4GiB", "1G" (binary), "100MB" (decimal) or a number.
function parseBytes(s) {
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(i?)(b?)\s*$/i.exec(s);
  if (!m) throw new Error(`capacity "${s}": want e.g. 512MiB, 4GiB or a byte count`);
  const p = { '': 0, k: 1, m: 2, g: 3, t: 4 }[m[2].toLowerCase()];
  const decimal = m[2] !== '' && m[3] === '' && m[4] !== ''; // "100MB"
  const n = Number(m[1]) * Math.pow(decimal ? 1000 : 1024, p);
  if (!Number.isFinite(n) || n < 1) throw new Error(`capacity "${s}" must be at least 1 byte`);
  return Math.round(n);
}

async function getJSON(path) {
  const r = await fetch(path, { cache: 'no-store', credentials: 'same-origin' });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

async function control(path, body) {
  const r = await fetch(path, {
    method: 'POST', cache: 'no-store', credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-Ragkv-Console': '1' },
    body: JSON.stringify(body),
  });
  const j = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) throw new Error(j.error || `HTTP ${r.status}`);
  return j;
}

function flash(msg, isErr) {
  const s = $('#action-status');
  s.textContent = msg;
  s.className = 'action-status shown' + (isErr ? ' err' : '');
  clearTimeout(flash.t);
  flash.t = setTimeout(() => { s.className = 'action-status'; }, 4000);
}

// --- charts ---------------------------------------------------------------------

function chart(title, values, kind, fmt) {
  const w = 200, h = 48;
  const box = el('div', { class: 'chart' });
  const last = values.length ? values[values.length - 1] : null;
  box.append(el('div', { class: 't' }, el('span', { text: title }), el('span', { text: last == null ? '–' : fmt(last) })));
  const svg = svgEl('svg', { viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': title });
  const vals = values.map((v) => (Number.isFinite(v) ? v : 0));
  const max = Math.max(1e-9, ...vals);
  if (kind === 'bars') {
    const bw = w / Math.max(1, vals.length);
    vals.forEach((v, i) => {
      const bh = (v / max) * (h - 2);
      svg.append(svgEl('rect', { x: (i * bw).toFixed(2), y: (h - bh).toFixed(2), width: Math.max(0.5, bw - 0.3).toFixed(2), height: bh.toFixed(2) }));
    });
  } else if (vals.length > 1) {
    const top = kind === 'ratio' ? 1 : max;
    const d = vals.map((v, i) => `${i ? 'L' : 'M'}${((i / (vals.length - 1)) * w).toFixed(2)},${(h - 1 - (v / top) * (h - 2)).toFixed(2)}`).join('');
    svg.append(svgEl('path', { class: 'line', d }));
  }
  box.append(svg);
  return box;
}

// deltas returns, for each consecutive pair of samples, f(prev, cur, seconds).
function deltas(samples, f) {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = (samples[i].t - samples[i - 1].t) / 1000;
    if (dt > 0) out.push(f(samples[i - 1], samples[i], dt));
  }
  return out;
}

function tierSeries(name) {
  const hs = (state.history && state.history.samples) || [];
  const pts = hs.map((s) => ({ t: s.t, tier: (s.tiers || []).find((x) => x.name === name) })).filter((p) => p.tier);
  return {
    occupancy: pts.map((p) => (p.tier.capacity_bytes ? p.tier.bytes / p.tier.capacity_bytes : 0)),
    hitRatio: deltas(pts, (a, b) => {
      const h = b.tier.hits - a.tier.hits, m = b.tier.misses - a.tier.misses;
      return h + m > 0 ? h / (h + m) : NaN;
    }).filter(Number.isFinite),
    evictions: deltas(pts, (a, b) => Math.max(0, b.tier.evictions - a.tier.evictions)),
  };
}

// --- tiers ----------------------------------------------------------------------

const TIER_FIELDS = [
  ['entries', 'entries', int], ['hits', 'hits', int], ['misses', 'misses', int], ['evictions', 'evictions', int],
  ['admissions', 'admissions', int], ['rejections', 'rejections', int], ['promotions', 'promotions', int],
  ['demotions', 'demotions', int], ['pinned_bytes', 'pinned', bytes], ['corrupt_reads', 'corrupt reads', int],
  ['hit_ratio', 'hit ratio', pct], ['occupancy', 'occupancy', pct],
];

function tierCard(t, snap) {
  const card = el('article', { class: 'card tier', 'data-tier': t.name });
  const pol = el('span', { class: 'pol', 'data-field': 'policy' });
  card.append(el('h3', {}, el('span', { text: `${t.name}${t.persistent ? ' (persistent)' : ''}` }), pol));
  const used = el('div', { class: 'used' },
    el('span', { 'data-field': 'bytes' }), ' of ', el('span', { 'data-field': 'capacity_bytes' }));
  card.append(used, el('div', { class: 'bar' }, el('div', { 'data-field': 'bar' })));
  const dl = el('dl', { class: 'stats' });
  for (const [f, label] of TIER_FIELDS) dl.append(el('div', {}, el('dt', { text: label }), el('dd', { 'data-field': f })));
  card.append(dl, el('div', { class: 'charts' }));

  const form = el('form', { class: 'policy', 'data-tier': t.name });
  const selPol = el('select', { name: 'policy' });
  for (const p of snap.policies) selPol.append(el('option', { value: p, text: p }));
  const selAdm = el('select', { name: 'admission' });
  for (const a of snap.admissions) selAdm.append(el('option', { value: a, text: a }));
  const cap = el('input', { name: 'capacity', type: 'text', placeholder: 'e.g. 2GiB', autocomplete: 'off' });
  const out = el('output', { class: 'result' });
  form.append(el('label', {}, 'policy', selPol), el('label', {}, 'admission', selAdm), el('label', {}, 'capacity', cap),
    el('button', { type: 'submit', class: 'primary', text: 'Apply' }), out);
  form.addEventListener('input', () => { form.dataset.dirty = '1'; });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const cur = state.snap && state.snap.tiers.find((x) => x.name === t.name);
    const body = { tier: t.name };
    try {
      if (!cur || selPol.value !== cur.policy) body.policy = selPol.value;
      if (!cur || selAdm.value !== cur.admission) body.admission = selAdm.value;
      if (cap.value.trim() !== '') body.capacity_bytes = parseBytes(cap.value);
      if (Object.keys(body).length === 1) { out.textContent = 'nothing changed'; out.className = 'result'; return; }
      out.textContent = 'applying…'; out.className = 'result';
      const res = await control('api/v1/policy', body);
      const now = res.tiers.find((x) => x.tier === t.name);
      out.textContent = `applied: ${now.policy}, ${now.admission}, ${bytes(now.capacity)}`;
      out.className = 'result ok';
      cap.value = '';
      delete form.dataset.dirty;
      poll();
    } catch (e) {
      out.textContent = e.message; out.className = 'result err';
    }
  });
  card.append(form);
  return card;
}

function setField(root, f, value, fmt) {
  const e = $(`[data-field="${f}"]`, root);
  if (!e) return;
  e.dataset.value = String(value);
  e.textContent = fmt(value);
  if (fmt === bytes) e.title = `${int(value)} bytes`;
}

function renderTiers(snap) {
  const box = $('#tiers');
  for (const t of snap.tiers) {
    let card = $(`article[data-tier="${CSS.escape(t.name)}"]`, box);
    if (!card) { card = tierCard(t, snap); box.append(card); }
    $('[data-field="policy"]', card).textContent = `${t.policy}${t.admission !== 'none' ? ' + ' + t.admission : ''}`;
    $('[data-field="policy"]', card).dataset.value = t.policy;
    setField(card, 'bytes', t.bytes, bytes);
    setField(card, 'capacity_bytes', t.capacity_bytes, bytes);
    for (const [f, , fmt] of TIER_FIELDS) setField(card, f, t[f], fmt);
    const bar = $('[data-field="bar"]', card);
    bar.style.width = `${Math.min(100, 100 * t.occupancy).toFixed(1)}%`;
    bar.className = t.occupancy > 0.95 ? 'high' : '';
    const form = $('form.policy', card);
    if (!form.dataset.dirty) {
      form.elements.policy.value = t.policy;
      form.elements.admission.value = t.admission;
      form.elements.capacity.placeholder = bytes(t.capacity_bytes);
    }
    const s = tierSeries(t.name);
    $('.charts', card).replaceChildren(
      chart('occupancy, last hour', s.occupancy, 'ratio', pct),
      chart('hit ratio per sample', s.hitRatio, 'ratio', pct),
      chart('evictions per sample', s.evictions, 'bars', int));
  }
  $('#chunks').textContent = `${int(snap.chunks)} chunks`;
  $('#controls-note').textContent = snap.controls_note;
}

// --- engine, collections ----------------------------------------------------------

function renderEngine(snap) {
  const e = snap.engine, box = $('#engine');
  if (!e.available) {
    box.replaceChildren(el('p', { class: 'note', text: 'No inference engine (start ragkv serve with --model).' }));
    return;
  }
  const hs = (state.history && state.history.samples) || [];
  const eng = hs.map((s) => ({ t: s.t, e: s.engine }));
  const prefill = deltas(eng, (a, b) => {
    const tok = (b.e.reused_tokens + b.e.recomputed_tokens + b.e.query_tokens) - (a.e.reused_tokens + a.e.recomputed_tokens + a.e.query_tokens);
    const s = b.e.prefill_seconds - a.e.prefill_seconds;
    return s > 0 ? tok / s : 0;
  });
  const decode = deltas(eng, (a, b) => {
    const s = b.e.decode_seconds - a.e.decode_seconds;
    return s > 0 ? (b.e.generated_tokens - a.e.generated_tokens) / s : 0;
  });
  const reuse = deltas(eng, (a, b) => {
    const r = b.e.reused_tokens - a.e.reused_tokens, c = b.e.recomputed_tokens - a.e.recomputed_tokens;
    return r + c > 0 ? r / (r + c) : NaN;
  }).filter(Number.isFinite);
  const totalReuse = e.reused_tokens + e.recomputed_tokens > 0 ? e.reused_tokens / (e.reused_tokens + e.recomputed_tokens) : 0;
  const dl = el('dl', { class: 'stats' });
  const add = (f, label, v, fmt) => dl.append(el('div', {}, el('dt', { text: label }), el('dd', { 'data-field': f, 'data-value': String(v), text: fmt(v) })));
  add('prefill_tokens_per_second', 'prefill tok/s (last min)', e.prefill_tokens_per_second, rate);
  add('decode_tokens_per_second', 'decode tok/s (last min)', e.decode_tokens_per_second, rate);
  add('reuse_fraction', 'reused (last min)', e.reuse_fraction, pct);
  add('reuse_total', 'reused (all)', totalReuse, pct);
  add('prefills', 'prefills', e.prefills, int);
  add('mean_ttft_seconds', 'mean TTFT (last min)', e.mean_ttft_seconds, (x) => `${(1000 * x).toFixed(1)} ms`);
  add('inflight', 'in flight / slots', e.inflight, (x) => `${int(x)} / ${int(e.max_concurrent)}`);
  add('generated_tokens', 'generated tokens', e.generated_tokens, int);
  box.replaceChildren(el('div', { class: 'engine' },
    el('div', { class: 'card' }, dl),
    chart('prefill tok/s', prefill, 'line', rate), chart('decode tok/s', decode, 'line', rate),
    chart('fused-prefill reuse', reuse, 'ratio', pct)));
}

function renderCollections(snap) {
  const box = $('#collections');
  if (!snap.retrieval) { box.replaceChildren(el('p', { class: 'note', text: 'Retrieval is disabled.' })); return; }
  const hs = (state.history && state.history.samples) || [];
  const tbl = el('table', { class: 'grid', id: 'collections-table' });
  tbl.append(el('thead', {}, el('tr', {}, ...['collection', 'shards', 'docs', 'passages', 'embedder', 'queries', 'q/s (last min)', 'q/s, last hour']
    .map((h) => el('th', { text: h })))));
  const tb = el('tbody');
  for (const c of snap.collections) {
    const q = deltas(hs, (a, b, dt) => {
      const x = (b.collections || {})[c.name], y = (a.collections || {})[c.name];
      return x != null && y != null ? Math.max(0, x - y) / dt : 0;
    });
    const spark = chart('', q, 'line', rate);
    tb.append(el('tr', { 'data-collection': c.name },
      el('td', { text: c.name }), el('td', { 'data-field': 'shards', text: int(c.shards) }), el('td', { text: int(c.docs) }),
      el('td', { text: int(c.passages) }), el('td', { text: c.embedder || '–' }), el('td', { 'data-field': 'queries', text: int(c.queries) }),
      el('td', { 'data-field': 'qps', text: rate(c.qps) }), el('td', {}, spark)));
  }
  if (!snap.collections.length) tb.append(el('tr', {}, el('td', { class: 'empty', colSpan: 8, text: 'no collections' })));
  tbl.append(tb);
  box.replaceChildren(tbl);
}

// --- namespaces and chunks -------------------------------------------------------------

// quotaUse is a namespace's use of its quotas ("memory 1.2 MiB / 2 GiB, ..."; "—" without).
function quotaUse(stats) {
  const parts = ((stats && stats.tiers) || []).filter((t) => t.quota_bytes > 0)
    .map((t) => `${t.tier} ${bytes(t.bytes)} / ${bytes(t.quota_bytes)}`);
  return parts.length ? parts.join(', ') : '—';
}

function renderNamespaces(snap) {
  const tb = $('#namespaces tbody');
  const stats = new Map((snap.namespace_stats || []).map((s) => [s.name, s]));
  tb.replaceChildren(...snap.usage.namespaces.map((n) => el('tr', { 'data-namespace': n.name },
    el('td', { text: n.name }), el('td', { text: int(n.chunks) }), el('td', { text: bytes(n.bytes), title: `${int(n.bytes)} bytes` }),
    el('td', { text: int(n.pinned_chunks) }), el('td', { text: bytes(n.pinned_bytes) }), el('td', { text: int(n.hits) }),
    el('td', { text: quotaUse(stats.get(n.name)) }))));
}

const PIN_NAMES = ['unpinned', 'soft', 'hard'];

async function setPin(ns, key, pin) {
  try {
    await control('api/v1/pin', { namespace: ns, key, pin });
    flash(`${key.slice(0, 16)}… ${pin === 'unpinned' ? 'unpinned' : 'pinned (' + pin + ')'}`);
    poll();
  } catch (e) {
    flash(e.message, true);
  }
}

function renderChunks(id, list) {
  const tbl = $(`#${id}`);
  if (!tbl.tHead.rows.length) {
    tbl.tHead.append(el('tr', {}, ...['key', 'namespace', 'size', 'reads', 'pin', 'tiers', ''].map((h) => el('th', { text: h }))));
  }
  const rows = list.map((c) => {
    const pin = PIN_NAMES[c.pin] || String(c.pin);
    const actions = el('td', { class: 'actions' });
    if (c.pin !== 2) actions.append(el('button', { type: 'button', text: 'pin', 'data-action': 'pin-hard', onclick: () => setPin(c.namespace, c.key, 'hard') }));
    if (c.pin !== 1) actions.append(el('button', { type: 'button', text: 'soft', 'data-action': 'pin-soft', onclick: () => setPin(c.namespace, c.key, 'soft') }));
    if (c.pin !== 0) actions.append(el('button', { type: 'button', text: 'unpin', 'data-action': 'unpin', onclick: () => setPin(c.namespace, c.key, 'unpinned') }));
    return el('tr', { 'data-key': c.key, 'data-namespace': c.namespace },
      el('td', {}, el('code', { class: 'key', text: c.key.slice(0, 16) + '…', title: c.key })),
      el('td', { text: c.namespace }), el('td', { text: bytes(c.bytes) }), el('td', { text: int(c.hits) }),
      el('td', { class: `pin-${pin}`, 'data-field': 'pin', text: pin }), el('td', { text: c.tiers.join('+') }), actions);
  });
  if (!rows.length) rows.push(el('tr', {}, el('td', { class: 'empty', colSpan: 7, text: 'none' })));
  tbl.tBodies[0].replaceChildren(...rows);
}

// --- loop ------------------------------------------------------------------------------

function render(snap) {
  renderTiers(snap);
  renderEngine(snap);
  renderCollections(snap);
  renderNamespaces(snap);
  renderChunks('hottest', snap.usage.hottest);
  renderChunks('largest', snap.usage.largest);
  renderChunks('pinned', snap.usage.pinned);
  $('#pinned-count').textContent = `${int(snap.usage.pinned_chunks)} in all`;
  $('#interval').textContent = String(snap.interval_seconds);
  $('#history').textContent = `${Math.round(snap.history_seconds / 60)} min`;
  $('#refresh').textContent = String(snap.refresh_ms / 1000);
}

async function poll() {
  clearTimeout(state.timer);
  let next = 2000;
  const st = $('#status');
  try {
    const snap = await getJSON('api/v1/snapshot');
    next = snap.refresh_ms;
    if (!state.history || Date.now() - state.historyAt >= Math.max(1000 * snap.interval_seconds, snap.refresh_ms)) {
      state.history = await getJSON('api/v1/history');
      state.historyAt = Date.now();
    }
    state.snap = snap;
    render(snap);
    state.seq++;
    st.dataset.seq = String(state.seq);
    st.dataset.time = String(snap.t);
    st.textContent = `updated ${new Date(snap.t).toLocaleTimeString()}`;
    st.className = 'status';
  } catch (e) {
    st.textContent = `disconnected: ${e.message}`;
    st.className = 'status error';
  }
  state.timer = setTimeout(poll, next);
}

document.addEventListener('DOMContentLoaded', poll);
