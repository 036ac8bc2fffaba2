"""The fixed parts of report.html: style, the script that renders the table, and the content security policy.

No user-controlled text is ever placed in the script or in markup by the browser side: the data travels in
``<script type="application/json">`` blocks (``<``, ``>`` and ``&`` escaped as ``\\u003c`` ...) and the script puts it
into the page with ``textContent`` and attribute setters only, never ``innerHTML``. Server-side text (the header,
summary cards) goes through :func:`html.escape`.
"""

from __future__ import annotations

import html
import json
from typing import Any

#: Nothing loads from the network: scripts only inline or from the sidecar folder next to the page (``'self'`` and
#: ``file:`` so the page works opened from disk and served from a folder), images only as data: URIs.
CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "script-src 'unsafe-inline' 'self' file:; connect-src 'none'; base-uri 'none'; form-action 'none'"
)

CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em;color:#1b1b1b;background:#fff}
h1{font-size:1.4em;margin:0 0 .3em} h2{font-size:1.1em;margin:1.4em 0 .4em}
.meta{color:#555;font-size:.92em} .meta code{background:#f3f3f3;padding:0 .25em;word-break:break-all}
.cards{display:flex;gap:.8em;flex-wrap:wrap;margin:.8em 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.5em .9em;min-width:6em}
.card b{display:block;font-size:1.5em}
.controls{display:flex;gap:.6em;flex-wrap:wrap;align-items:center;margin:.6em 0}
.controls input[type=search]{min-width:18em} .controls input[type=number]{width:5em}
table{border-collapse:collapse;width:100%;font-size:.92em}
th,td{border-bottom:1px solid #e5e5e5;padding:.3em .5em;text-align:left;vertical-align:top}
th{cursor:pointer;background:#fafafa;position:sticky;top:0;user-select:none}
th[data-dir=asc]:after{content:" \\2191"} th[data-dir=desc]:after{content:" \\2193"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.fake{color:#b00020;font-weight:600} .real{color:#1b6e20;font-weight:600} .unknown,.error{color:#8a6d00}
.err{color:#8a1c00;font-size:.9em;word-break:break-word} .path{word-break:break-all}
.dir{color:#777;font-size:.85em} tr.detail td{background:#fcfcfc}
.thumbs figure{display:inline-block;margin:0 .4em 0 0;text-align:center;font-size:.8em}
.thumbs img{width:96px;height:96px;border:1px solid #ccc}
svg.tl,svg.hist{background:#fcfcfc;border:1px solid #e3e3e3}
button{font:inherit}
"""

# The renderer. State lives in location.hash (q, status, verdict, min, max, sort, dir, page, size) so a view can be
# bookmarked and a headless browser can be pointed at one; the body carries data-load-ms / data-matches for the
# same reason.
JS = r"""
(function(){
'use strict';
var t0 = performance.now();
function data(id){ return JSON.parse(document.getElementById(id).textContent); }
var ROWS = data('rows-data'), META = data('meta-data');
var COLS = META.columns, C = {};
COLS.forEach(function(c, i){ C[c.key] = i; });
var DIRS = META.dirs, DETAILS = META.details, CHUNKS = {}, PENDING = {};
function val(r, k){ var v = r[C[k]]; return v === undefined ? null : v; }
function fullPath(r){ return DIRS[val(r, 'dir')] + val(r, 'name'); }
var state = {q:'', status:'', verdict:'', min:'', max:'', sort:'score', dir:'desc', page:1, size:100, open:''};
function readHash(){
  var h = location.hash.replace(/^#/, ''); if (!h) return;
  h.split('&').forEach(function(kv){ var i = kv.indexOf('='); if (i < 0) return;
    var k = decodeURIComponent(kv.slice(0, i)), v = decodeURIComponent(kv.slice(i + 1));
    if (k in state) state[k] = (k === 'page' || k === 'size') ? Math.max(1, parseInt(v, 10) || 1) : v; });
}
function writeHash(){
  var parts = []; Object.keys(state).forEach(function(k){
    parts.push(encodeURIComponent(k) + '=' + encodeURIComponent(state[k])); });
  var h = '#' + parts.join('&'); if (location.hash !== h) history.replaceState(null, '', h);
}
function el(tag, attrs, text){ var e = document.createElement(tag);
  if (attrs) Object.keys(attrs).forEach(function(k){ e.setAttribute(k, attrs[k]); });
  if (text !== undefined && text !== null) e.textContent = String(text); return e; }
function svgEl(tag, attrs){ var e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  Object.keys(attrs).forEach(function(k){ e.setAttribute(k, attrs[k]); }); return e; }
function fmt(v, nd){ if (v === null) return ''; if (typeof v === 'number' && !Number.isInteger(v)) return v.toFixed(nd);
  return String(v); }
function filtered(){
  var q = state.q.toLowerCase(), lo = state.min === '' ? null : parseFloat(state.min),
      hi = state.max === '' ? null : parseFloat(state.max), out = [];
  for (var i = 0; i < ROWS.length; i++) { var r = ROWS[i];
    if (state.status && val(r, 'status') !== state.status) continue;
    if (state.verdict && val(r, 'verdict') !== state.verdict) continue;
    if (lo !== null || hi !== null) { var s = val(r, 'score'); if (s === null) continue;
      if (lo !== null && s < lo) continue; if (hi !== null && s > hi) continue; }
    if (q && fullPath(r).toLowerCase().indexOf(q) < 0) continue;
    out.push(i); }
  var k = state.sort, sign = state.dir === 'asc' ? 1 : -1;
  if (k in C || k === 'path') out.sort(function(a, b){
    var x = k === 'path' ? fullPath(ROWS[a]) : val(ROWS[a], k), y = k === 'path' ? fullPath(ROWS[b]) : val(ROWS[b], k);
    if (x === null && y === null) return a - b; if (x === null) return 1; if (y === null) return -1;
    if (typeof x === 'string') { x = x.toLowerCase(); y = String(y).toLowerCase(); }
    return x < y ? -sign : x > y ? sign : a - b; });
  return out;
}
var SHOWN = ['path','status','verdict','score','frames_sampled','frames_with_faces','faces','identities','codec',
             'resolution','duration_s','seconds','error','duplicate_of'];
function headers(){
  var tr = document.getElementById('head'); tr.textContent = '';
  SHOWN.forEach(function(k){ if (!(k in C) && k !== 'path') return;
    var label = k === 'path' ? 'file' : COLS[C[k]].label, th = el('th', {'data-key': k}, label);
    if (state.sort === k) th.setAttribute('data-dir', state.dir);
    th.addEventListener('click', function(){
      if (state.sort === k) state.dir = state.dir === 'asc' ? 'desc' : 'asc';
      else { state.sort = k; state.dir = (k === 'score' || k === 'seconds') ? 'desc' : 'asc'; }
      state.page = 1; render(); });
    tr.appendChild(th); });
  tr.appendChild(el('th', null, 'details'));
}
function detailRow(idx, ncols){
  var tr = el('tr', {'class': 'detail'}), td = el('td', {colspan: ncols}); tr.appendChild(td);
  var d = DETAILS[idx]; if (!d) { td.textContent = 'no details kept for this video'; return tr; }
  td.textContent = 'loading...';
  loadChunk(d[0], function(chunk){ td.textContent = ''; fillDetail(td, chunk[d[1]]); });
  return tr;
}
function fillDetail(td, det){
  var box = el('div', {'class': 'thumbs'});
  (det.thumbs || []).forEach(function(t){ var f = el('figure');
    if (/^[A-Za-z0-9+\/=]+$/.test(t.jpeg || '')) f.appendChild(el('img', {alt: 'face crop',
      src: 'data:image/jpeg;base64,' + t.jpeg}));
    f.appendChild(el('figcaption', null, fmt(t.score, 3) + ' \u00b7 f' + t.frame + ' id' + t.identity));
    box.appendChild(f); });
  td.appendChild(box); td.appendChild(timeline(det.timeline || []));
}
function timeline(tl){
  var W = 420, H = 90, P = 6, svg = svgEl('svg', {'class': 'tl', width: W, height: H, viewBox: '0 0 ' + W + ' ' + H});
  if (!tl.length) return svg;
  var ts = tl.map(function(p){ return +p[1]; }), t0 = Math.min.apply(null, ts);
  var span = (Math.max.apply(null, ts) - t0) || 1;
  function x(t){ return P + (t - t0) / span * (W - 2 * P); } function y(s){ return P + (1 - s) * (H - 2 * P); }
  var th = META.threshold;
  svg.appendChild(svgEl('line', {x1: P, x2: W - P, y1: y(th), y2: y(th), stroke: '#d88', 'stroke-dasharray': '4 3'}));
  var pts = [];
  tl.forEach(function(p){ var s = p[2], c;
    if (s === null) { c = svgEl('circle', {cx: x(+p[1]), cy: H - P, r: 1.5, fill: '#ccc'}); pts.push(null); }
    else { c = svgEl('circle', {cx: x(+p[1]), cy: y(+s), r: 2.5, fill: s >= th ? '#b00020' : '#1b6e20'});
      pts.push(x(+p[1]).toFixed(1) + ',' + y(+s).toFixed(1)); }
    var title = svgEl('title', {});
    title.textContent = 'frame ' + p[0] + ': ' + (s === null ? 'no face' : (+s).toFixed(3));
    c.appendChild(title); svg.appendChild(c); });
  var seg = [];
  pts.concat([null]).forEach(function(p){ if (p === null) { if (seg.length > 1) svg.appendChild(svgEl('polyline',
    {points: seg.join(' '), fill: 'none', stroke: '#888', 'stroke-width': 1})); seg = []; } else seg.push(p); });
  return svg;
}
window.LIBREPORT_CHUNK = function(id, items){ CHUNKS[id] = items; (PENDING[id] || []).forEach(function(f){ f(items); });
  delete PENDING[id]; };
function loadChunk(id, done){
  if (CHUNKS[id]) { done(CHUNKS[id]); return; }
  if (PENDING[id]) { PENDING[id].push(done); return; }
  PENDING[id] = [done];
  var s = document.createElement('script'); s.src = META.files + '/' + META.chunk_files[id];
  s.onerror = function(){ (PENDING[id] || []).length = 0; alert('cannot load ' + s.src + ' (keep the ' + META.files +
    ' folder next to report.html)'); };
  document.head.appendChild(s);
}
function render(){
  writeHash();
  var idx = filtered(), size = Math.max(1, +state.size), pages = Math.max(1, Math.ceil(idx.length / size));
  if (state.page > pages) state.page = pages;
  headers();
  var body = document.getElementById('rows'); body.textContent = '';
  var ncols = document.getElementById('head').children.length;
  idx.slice((state.page - 1) * size, state.page * size).forEach(function(i){
    var r = ROWS[i], tr = el('tr', {'data-row': i});
    SHOWN.forEach(function(k){ if (!(k in C) && k !== 'path') return; var v, td;
      if (k === 'path') { td = el('td', {'class': 'path'}); td.appendChild(el('span', null, val(r, 'name')));
        td.appendChild(el('br')); td.appendChild(el('span', {'class': 'dir'}, DIRS[val(r, 'dir')])); }
      else { v = val(r, k);
        if (k === 'verdict') td = el('td', {'class': String(v)}, v);
        else if (k === 'error' || k === 'duplicate_of') td = el('td', {'class': 'err'}, v);
        else if (typeof v === 'number') td = el('td', {'class': 'num'}, k === 'score' ? v.toFixed(3) : fmt(v, 3));
        else td = el('td', null, v); }
      tr.appendChild(td); });
    var dt = el('td');
    if (DETAILS[i]) { var b = el('button', {type: 'button'}, 'show'); b.addEventListener('click', function(){
        var next = tr.nextSibling;
        if (next && next.className === 'detail') { next.remove(); b.textContent = 'show'; return; }
        tr.parentNode.insertBefore(detailRow(i, ncols), tr.nextSibling); b.textContent = 'hide'; });
      dt.appendChild(b); }
    tr.appendChild(dt); body.appendChild(tr); });
  document.getElementById('count').textContent = idx.length + ' of ' + ROWS.length + ' files \u00b7 page ' +
    state.page + ' of ' + pages;
  document.body.setAttribute('data-matches', idx.length);
  document.body.setAttribute('data-page-rows', body.children.length);
}
function histogram(){
  var bins = new Array(20).fill(0), n = 0;
  ROWS.forEach(function(r){ var s = val(r, 'score'); if (s === null) return; n++;
    bins[Math.min(19, Math.max(0, Math.floor(s * 20)))]++; });
  var W = 420, H = 100, P = 4, max = Math.max.apply(null, bins) || 1, bw = (W - 2 * P) / 20;
  var svg = svgEl('svg', {'class': 'hist', width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, role: 'img'});
  bins.forEach(function(c, i){ var h = c / max * (H - 2 * P - 10);
    var rect = svgEl('rect', {x: P + i * bw + 1, y: H - P - h, width: bw - 2, height: h,
      fill: (i / 20) >= META.threshold ? '#b00020' : '#1b6e20'});
    var title = svgEl('title', {});
    title.textContent = (i / 20).toFixed(2) + '-' + ((i + 1) / 20).toFixed(2) + ': ' + c;
    rect.appendChild(title); svg.appendChild(rect); });
  var lx = P + META.threshold * (W - 2 * P);
  svg.appendChild(svgEl('line', {x1: lx, x2: lx, y1: P, y2: H - P, stroke: '#555', 'stroke-dasharray': '3 3'}));
  var box = document.getElementById('hist'); box.textContent = ''; box.appendChild(svg);
  box.appendChild(el('div', {'class': 'meta'}, n + ' scored videos; scores 0 to 1, dashed line at the threshold ' +
    META.threshold));
}
function bind(id, key, numeric){ var e = document.getElementById(id); e.value = state[key];
  e.addEventListener(e.tagName === 'SELECT' ? 'change' : 'input', function(){ state[key] = e.value; state.page = 1;
    render(); }); }
readHash();
bind('q', 'q'); bind('status', 'status'); bind('verdict', 'verdict'); bind('min', 'min'); bind('max', 'max');
bind('size', 'size');
document.getElementById('prev').addEventListener('click', function(){
  if (state.page > 1) { state.page--; render(); } });
document.getElementById('next').addEventListener('click', function(){ state.page++; render(); });
histogram(); render();
// open=top: show the first listed video's details (a link to the worst case; also how tests reach them)
if (state.open === 'top') { var first = document.querySelector('#rows button'); if (first) first.click(); }
// since navigation start: parsing the page and its data included
document.body.setAttribute('data-load-ms', Math.round(performance.now()));
document.body.setAttribute('data-script-ms', Math.round(performance.now() - t0));
})();
"""

CONTROLS = """
<div class="controls">
<input type="search" id="q" placeholder="search paths" aria-label="search paths">
<label>status <select id="status"><option value="">all</option><option>ok</option><option>no_face</option>
<option>error</option></select></label>
<label>verdict <select id="verdict"><option value="">all</option><option>fake</option><option>real</option>
<option>unknown</option><option>error</option></select></label>
<label>score <input type="number" id="min" min="0" max="1" step="0.01" placeholder="min"> to
<input type="number" id="max" min="0" max="1" step="0.01" placeholder="max"></label>
<label>rows <select id="size"><option>50</option><option>100</option><option>500</option></select></label>
<button type="button" id="prev">&larr; prev</button><button type="button" id="next">next &rarr;</button>
<span id="count"></span>
</div>
"""


def esc(value: Any) -> str:
    """HTML-escape anything (quotes too, for attributes); None -> empty."""
    return "" if value is None else html.escape(str(value), quote=True)


def json_for_script(obj: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&`` survives, so no file
    name can close the block; ensure_ascii also keeps U+2028/2029 and lone surrogates out."""
    text = json.dumps(obj, ensure_ascii=True, allow_nan=False, separators=(",", ":"), default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


__all__ = ["CONTROLS", "CSP", "CSS", "JS", "esc", "json_for_script"]
