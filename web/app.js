// The replay page: plain ES modules, importing the built library directly
// (no bundler). Served by `sediment serve --dir D` at /web/, which also
// serves /dist/src/ and the archive; or host web/ and dist/src/ side by side
// anywhere, and point the page at a manifest URL whose bucket allows CORS.

import { replay, openArchive } from '../dist/src/replay/index.js';

const $ = (id) => document.getElementById(id);
const form = $('form');
const manifestInput = $('manifest');
const partitionSelect = $('partition');
const tbody = document.querySelector('#records tbody');
const utf8 = new TextDecoder('utf-8', { fatal: true });

let running = null; // AbortController of the replay in progress
let summaryFor = '';

function setState(s) { document.body.dataset.state = s; }

function fmtTime(ms) {
  if (!Number.isFinite(ms)) return String(ms);
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString().replace('T', ' ').replace('Z', '');
}

function fmtNum(n, digits = 0) {
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** A short, safe preview of bytes: text when they are printable UTF-8, else hex. */
function preview(bytes, max) {
  const span = document.createElement('span');
  if (bytes === null) { span.className = 'null'; span.textContent = 'null'; return span; }
  if (bytes.length === 0) { span.className = 'null'; span.textContent = '(empty)'; return span; }
  let text = null;
  try {
    text = utf8.decode(bytes.length > max * 4 ? bytes.subarray(0, max * 4) : bytes);
    if (/[\u0000-\u0008\u000e-\u001f\u007f]/.test(text)) text = null;
  } catch { text = null; }
  if (text === null && bytes.length > max * 4) {
    // A prefix cut inside a multi-byte character is still text.
    try { text = new TextDecoder('utf-8').decode(bytes.subarray(0, max * 4)); if (/[\u0000-\u0008\u000e-\u001f\u007f\ufffd]/.test(text)) text = null; } catch { text = null; }
  }
  if (text !== null) {
    span.textContent = text.length > max ? `${text.slice(0, max)}…` : text;
  } else {
    span.className = 'bin';
    const shown = bytes.subarray(0, Math.min(bytes.length, Math.floor(max / 2)));
    span.textContent = `0x${Array.from(shown, (b) => b.toString(16).padStart(2, '0')).join('')}${bytes.length > shown.length ? '…' : ''}`;
  }
  span.title = `${bytes.length} bytes`;
  return span;
}

function headerText(headers) {
  return headers.map((h) => {
    if (h.value === null) return `${h.key}=null`;
    try { return `${h.key}=${utf8.decode(h.value)}`; } catch { return `${h.key}=<${h.value.length} B>`; }
  }).join(', ');
}

function addRows(records) {
  const frag = document.createDocumentFragment();
  for (const r of records) {
    const tr = document.createElement('tr');
    const off = document.createElement('td'); off.className = 'num'; off.textContent = String(r.offset);
    const ts = document.createElement('td'); ts.textContent = fmtTime(r.timestamp); ts.title = String(r.timestamp);
    const key = document.createElement('td'); key.appendChild(preview(r.key, 40));
    const val = document.createElement('td'); val.appendChild(preview(r.value, 160));
    const hd = document.createElement('td'); hd.textContent = headerText(r.headers); hd.title = hd.textContent;
    tr.append(off, ts, key, val, hd);
    frag.appendChild(tr);
  }
  tbody.appendChild(frag);
}

function showError(err) {
  const box = $('error');
  box.hidden = false;
  const code = err && err.code ? ` [${err.code}]` : '';
  box.textContent = `${err && err.name ? err.name : 'Error'}${code}: ${err && err.message ? err.message : String(err)}`;
}

function updateStats(s) {
  $('stats').hidden = false;
  const sec = s.elapsedMs / 1000;
  $('s-records').textContent = fmtNum(s.records);
  $('s-mb').textContent = fmtNum(s.bytesScanned / 1e6, 1);
  $('s-rate').textContent = sec > 0 ? fmtNum(s.bytesScanned / 1e6 / sec, 1) : '0';
  $('s-rrate').textContent = sec > 0 ? fmtNum(s.records / sec) : '0';
  $('s-first').textContent = s.firstRecordMs >= 0 ? fmtNum(s.firstRecordMs, 1) : '-';
  $('s-rt').textContent = s.roundTripsToFirstRecord >= 0 ? String(s.roundTripsToFirstRecord) : '-';
  $('s-req').textContent = fmtNum(s.requests);
}

function fromMode() { return form.elements.from.value; }

/**
 * What the archive field holds: a manifest URL, or presigned URLs as JSON
 * ({"manifest": "...", "objects": {"00000000000000000000.log": "...", ...}}).
 */
function sourceOf(text) {
  const v = text.trim();
  if (!v.startsWith('{')) return v;
  let o;
  try { o = JSON.parse(v); } catch (err) { throw new Error(`the archive field looks like JSON but is not valid: ${err.message}`); }
  if (!o || typeof o.manifest !== 'string') throw new Error('presigned JSON needs a "manifest" URL (and "objects": key to URL)');
  return { manifest: o.manifest, objects: o.objects };
}

function syncMode() {
  const t = fromMode() === 'time';
  $('offset-row').hidden = t;
  $('time-row').hidden = !t;
}

function parseTime(text) {
  const v = text.trim();
  if (/^-?\d+$/.test(v)) return Number(v);
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) throw new Error(`cannot read '${v}' as a time: use ISO 8601 (2025-11-20T01:02:03Z) or milliseconds`);
  return ms;
}

async function showSummary(url) {
  summaryFor = url;
  const box = $('summary');
  box.hidden = true;
  if (!url) return;
  try {
    const a = await openArchive(sourceOf(url));
    if (summaryFor !== url) return;
    const m = a.manifest;
    const segs = m.segments;
    const bytes = segs.reduce((n, s) => n + s.objects.log.size, 0);
    const maxTs = segs.reduce((x, s) => Math.max(x, s.maxTimestamp), -Infinity);
    const rows = [
      ['topic', `${m.topic} / partition ${m.partition}`],
      ['offsets', `${a.logStartOffset} … ${a.logEndOffset - 1} (${fmtNum(a.logEndOffset - a.logStartOffset)} offsets)`],
      ['segments', `${segs.length} (${fmtNum(bytes / 1e6, 2)} MB of log)`],
      ['time', segs.length ? `${fmtTime(segs[0].firstTimestamp)} … ${fmtTime(maxTs)}` : '-'],
      ['manifest', `version ${m.version}, updated ${fmtTime(m.updatedAt)}`],
    ];
    box.replaceChildren(...rows.flatMap(([k, v]) => { const dt = document.createElement('dt'); dt.textContent = k; const dd = document.createElement('dd'); dd.textContent = v; return [dt, dd]; }));
    const dl = box;
    dl.hidden = false;
    if (!$('time').value && segs.length) $('time').value = new Date(segs[0].firstTimestamp).toISOString();
    if (Number($('offset').value) < a.logStartOffset) $('offset').value = String(a.logStartOffset);
  } catch (err) {
    if (summaryFor === url) showError(err);
  }
}

async function loadPartitions() {
  let list;
  try {
    const res = await fetch(new URL('../api/partitions', location.href));
    if (!res.ok) return;
    list = (await res.json()).partitions;
  } catch { return; }
  if (!Array.isArray(list) || list.length === 0) {
    $('source-hint').textContent = 'No archived partitions were found in the served directory. Paste a manifest URL instead.';
    return;
  }
  partitionSelect.replaceChildren();
  for (const p of list) {
    const o = document.createElement('option');
    o.value = new URL(p.manifest, location.href).href;
    o.textContent = p.error ? `${p.manifest} (unreadable: ${p.error})` :
      `${p.topic}-${p.partition}: ${fmtNum(p.logEndOffset - p.logStartOffset)} offsets, ${p.segments} segments, ${fmtNum(p.bytes / 1e6, 2)} MB`;
    o.disabled = Boolean(p.error);
    partitionSelect.appendChild(o);
  }
  $('pick-row').hidden = false;
  if (!manifestInput.value) {
    const first = list.find((p) => !p.error);
    if (first) manifestInput.value = new URL(first.manifest, location.href).href;
  }
  partitionSelect.value = manifestInput.value;
}

async function run(ev) {
  ev?.preventDefault();
  if (running) return;
  $('error').hidden = true;
  tbody.replaceChildren();
  $('records').hidden = true;
  const url = manifestInput.value.trim();
  if (!url) { showError(new Error('enter a manifest URL')); return; }
  const show = Math.max(1, Math.min(100000, Math.floor(Number($('show').value) || 200)));
  const toEnd = $('to-end').checked;
  let from;
  let source;
  try {
    from = fromMode() === 'time' ? { timestamp: parseTime($('time').value) } : { offset: Math.floor(Number($('offset').value)) };
    source = sourceOf(url);
  } catch (err) { showError(err); setState('error'); return; }
  const params = new URLSearchParams({ manifest: url, show: String(show) });
  if ('timestamp' in from) params.set('time', $('time').value.trim()); else params.set('offset', String(from.offset));
  history.replaceState(null, '', `#${params}`);

  const ctrl = new AbortController();
  running = ctrl;
  $('run').disabled = true;
  $('stop').disabled = false;
  setState('running');
  $('status').textContent = 'Replaying…';
  const r = replay(source, { from, signal: ctrl.signal, maxRecords: toEnd ? undefined : show });
  let shown = 0;
  let lastPaint = 0;
  try {
    for await (const chunk of r.chunks()) {
      if (shown < show) {
        const part = chunk.length > show - shown ? chunk.slice(0, show - shown) : chunk;
        addRows(part);
        shown += part.length;
        $('records').hidden = false;
      }
      const now = performance.now();
      if (now - lastPaint > 100) {
        lastPaint = now;
        updateStats(r.stats);
        // Let the page paint while a long replay runs.
        await new Promise((res) => setTimeout(res, 0));
      }
    }
    updateStats(r.stats);
    const s = r.stats;
    $('status').textContent = s.records === 0
      ? 'No records at or after that point.'
      : `Replayed ${fmtNum(s.records)} records (${fmtNum(s.bytesScanned / 1e6, 2)} MB of log) in ${fmtNum(s.elapsedMs, 0)} ms; showing the first ${fmtNum(shown)}.`;
    setState('done');
  } catch (err) {
    updateStats(r.stats);
    if (err && err.code === 'ERR_ABORTED') {
      $('status').textContent = `Stopped after ${fmtNum(r.stats.records)} records.`;
      setState('stopped');
    } else {
      showError(err);
      $('status').textContent = 'Replay failed.';
      setState('error');
    }
  } finally {
    running = null;
    $('run').disabled = false;
    $('stop').disabled = true;
  }
}

form.addEventListener('submit', run);
$('stop').addEventListener('click', () => running?.abort(new Error('stopped by the user')));
for (const el of form.elements.from) el.addEventListener('change', syncMode);
partitionSelect.addEventListener('change', () => { manifestInput.value = partitionSelect.value; showSummary(manifestInput.value.trim()); });
manifestInput.addEventListener('change', () => showSummary(manifestInput.value.trim()));
// The list shows the partition only while the field holds its URL.
manifestInput.addEventListener('input', () => {
  const v = manifestInput.value.trim();
  partitionSelect.selectedIndex = Array.from(partitionSelect.options).findIndex((o) => o.value === v);
});

// State from the URL hash (#manifest=...&offset=... or &time=...).
const hash = new URLSearchParams(location.hash.slice(1));
if (hash.get('manifest')) manifestInput.value = hash.get('manifest');
if (hash.get('offset')) $('offset').value = hash.get('offset');
if (hash.get('time')) { $('time').value = hash.get('time'); form.elements.from.value = 'time'; }
if (hash.get('show')) $('show').value = hash.get('show');
syncMode();
await loadPartitions();
if (manifestInput.value) await showSummary(manifestInput.value.trim());
setState(document.body.dataset.state === 'idle' ? 'ready' : document.body.dataset.state);
