// docseek web UI: upload, live progress over SSE, page viewer with boxes and rendered text.
// Pages arrive as the JSON schema docseek.document/1 writes them (docs/json-schema.md): blocks
// with kind, boxes (pixels), text, parsed table cells, LaTeX and language.
// Model output is untrusted: it only ever reaches the DOM through textContent, table cells
// rebuilt from parsed text, or KaTeX (trust: false). No innerHTML anywhere.

const $ = (id) => document.getElementById(id);
const FORMATS = ['md', 'json', 'html', 'hocr', 'txt', 'pdf'];
const TYPE_LABELS = {
  title: 'title', sub_title: 'heading', text: 'text', table: 'table', image: 'figure', image_caption: 'caption',
  table_caption: 'caption', table_footnote: 'note', equation: 'formula', footnote: 'footnote', header: 'header',
  footer: 'footer', page_number: 'page no.', list: 'list', code: 'code', other: 'other',
};
const state = { key: sessionStorage.getItem('docseek-key') || '', jobs: new Map(), current: null, page: 0, images: new Map(), renders: 0 };

class ApiError extends Error {
  constructor(code, message, retryAfter) { super(message); this.code = code; this.retryAfter = retryAfter; }
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function announce(msg) { $('status').textContent = msg; }

async function api(path, opts = {}) {
  const headers = new Headers(opts.headers || {});
  if (state.key) headers.set('Authorization', 'Bearer ' + state.key);
  const resp = await fetch(path, { ...opts, headers });
  if (resp.ok) return resp;
  let err = {};
  try { err = (await resp.json()).error || {}; } catch (_) { /* not JSON */ }
  if (resp.status === 401) $('key-form').hidden = false;
  throw new ApiError(err.code || 'http_' + resp.status, err.message || resp.statusText, Number(resp.headers.get('Retry-After')) || 0);
}

async function loadInfo() {
  try {
    const info = await (await api('/v1/info')).json();
    $('engine').textContent = `${info.model} · ${info.device} · up to ${Math.round(info.limits.max_upload_bytes / 1048576)} MB per file`;
  } catch (e) {
    $('engine').textContent = e.code === 'unauthorized' ? 'API key required' : 'server unreachable: ' + e.message;
  }
}

// ---- intake -------------------------------------------------------------------------------

function optionFields() {
  const f = [['task', $('opt-task').value]];
  if ($('opt-mode').value) f.push(['mode', $('opt-mode').value]);
  if ($('opt-pages').value.trim()) f.push(['pages', $('opt-pages').value.trim()]);
  if ($('opt-lang').value.trim()) f.push(['lang', $('opt-lang').value.trim()]);
  return f;
}

function addJobCard(job) {
  const progress = el('progress', { max: 1, value: 0, 'aria-label': `Progress of ${job.name}` });
  const stateLabel = el('span', { class: 'job-state', text: 'uploading' });
  const chips = el('div', { class: 'chips', 'aria-hidden': 'true' });
  const view = el('button', { type: 'button', text: 'View', disabled: true, onclick: () => showJob(job) });
  const cancel = el('button', { type: 'button', text: 'Cancel', onclick: () => cancelJob(job) });
  const card = el('li', { class: 'job' },
    el('div', { class: 'job-head' }, el('span', { class: 'job-name', text: job.name }), stateLabel),
    progress, chips, el('div', { class: 'job-actions' }, view, cancel));
  job.ui = { card, progress, stateLabel, chips, view, cancel };
  $('jobs').prepend(card);
}

function updateCard(job) {
  const ui = job.ui;
  const done = job.pages.filter(Boolean).length;
  const count = job.count || 0;
  let label = job.state;
  if (job.state === 'running' && count) label = `page ${done}/${count}`;
  if (job.state === 'queued' && job.position) label = `queued (#${job.position})`;
  if (job.error) label = `${job.state}: ${job.error}`;
  ui.stateLabel.textContent = label;
  ui.stateLabel.classList.toggle('failed', job.state === 'failed');
  ui.progress.max = Math.max(count, 1);
  ui.progress.value = job.state === 'done' ? Math.max(count, 1) : done;
  ui.progress.setAttribute('aria-valuetext', label);
  if (ui.chips.childElementCount !== count) {
    ui.chips.replaceChildren(...Array.from({ length: count }, () => el('span', { class: 'chip' })));
  }
  job.pages.forEach((p, i) => { if (p && ui.chips.children[i]) ui.chips.children[i].className = 'chip ' + (p.error ? 'failed' : 'done'); });
  ui.view.disabled = done === 0;
  ui.cancel.disabled = ['done', 'failed', 'cancelled'].includes(job.state);
  ui.card.dataset.state = job.state;
}

async function submit(file) {
  const job = { id: null, name: file.name || 'document', state: 'uploading', pages: [], count: 0 };
  addJobCard(job);
  const form = new FormData();
  for (const [k, v] of optionFields()) form.append(k, v);
  form.append('file', file, file.name);
  for (;;) {
    try {
      const accepted = await (await api('/v1/jobs', { method: 'POST', body: form })).json();
      job.id = accepted.id;
      job.state = 'queued';
      job.position = accepted.queue_position;
      state.jobs.set(job.id, job);
      job.ui.card.dataset.jobId = job.id;
      updateCard(job);
      break;
    } catch (e) {
      if (e.code === 'queue_full') {
        job.ui.stateLabel.textContent = `server busy, retrying in ${e.retryAfter || 2} s`;
        await new Promise((r) => setTimeout(r, 1000 * (e.retryAfter || 2)));
        continue;
      }
      job.state = 'failed';
      job.error = e.message;
      updateCard(job);
      announce(`${job.name}: ${e.message}`);
      return;
    }
  }
  await follow(job);
}

async function follow(job) {
  let resp;
  try { resp = await api(`/v1/jobs/${job.id}/events`); } catch (e) { job.error = e.message; updateCard(job); return; }
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let name = 'message'; let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim();
        else if (line.startsWith('data:')) data += line.slice(5).replace(/^ /, '');
      }
      if (data) onEvent(job, name, JSON.parse(data));
    }
  }
}

function onEvent(job, name, ev) {
  if (name === 'state') job.state = ev.state;
  if (name === 'pages') job.count = ev.count;
  if (name === 'page') {
    job.pages[ev.page.index] = ev.page;
    announce(`${job.name}: page ${ev.page.number} done`);
    if (!state.current) showJob(job);
    else if (state.current === job && state.page === ev.page.index) renderPage();
  }
  if (name === 'done') {
    job.state = ev.state;
    if (ev.message) job.error = ev.message;
    announce(`${job.name}: ${ev.state}`);
    if (state.current === job) { renderExports(); if (ev.state === 'done') renderPage(); }
  }
  updateCard(job);
}

async function cancelJob(job) {
  if (!job.id) return;
  try { await api(`/v1/jobs/${job.id}`, { method: 'DELETE' }); } catch (e) { announce(e.message); }
}

// ---- viewer -------------------------------------------------------------------------------

function showJob(job) {
  state.current = job;
  state.page = Math.max(0, job.pages.findIndex(Boolean));
  for (const j of state.jobs.values()) j.ui.card.classList.toggle('active', j === job);
  $('viewer').hidden = false;
  $('viewer-title').textContent = job.name;
  renderExports();
  renderPage();
}

// Figure crops exist once a job is done: the JSON result names them (figures/page-N-fig-K.png,
// relative to the result URL). Fetched with the API key, shown from blob: URLs.
const FIGURE_PATH = /^figures\/page-\d+-fig-\d+\.png$/;

async function figurePaths(job) {
  if (job.state !== 'done') return null;
  if (!job.figures) {
    job.figures = (async () => {
      const doc = await (await api(`/v1/jobs/${job.id}/result?format=json`)).json();
      const paths = new Map();
      for (const p of doc.pages || []) {
        for (const b of p.blocks || []) if (typeof b.figure === 'string' && FIGURE_PATH.test(b.figure)) paths.set(`${p.number}/${b.index}`, b.figure);
      }
      return paths;
    })().catch(() => new Map());
  }
  return job.figures;
}

async function showFigure(job, page, block, holder) {
  const paths = await figurePaths(job);
  const path = paths && paths.get(`${page.number}/${block.index}`);
  if (!path) return;
  const key = `${job.id}/${path}`;
  if (!state.images.has(key)) {
    const blob = await (await api(`/v1/jobs/${job.id}/${path}`)).blob();
    state.images.set(key, URL.createObjectURL(blob));
  }
  holder.replaceChildren(el('img', { class: 'figure-crop', src: state.images.get(key), alt: block.text || `Figure on page ${page.number}` }));
}

async function pageImage(job, index) {
  const key = `${job.id}/${index}`;
  if (!state.images.has(key)) {
    const blob = await (await api(`/v1/jobs/${job.id}/pages/${index}/image`)).blob();
    state.images.set(key, URL.createObjectURL(blob));
  }
  return state.images.get(key);
}

function pct(v, total) { return `${Math.max(0, Math.min(100, (100 * v) / total)).toFixed(3)}%`; }

function languageLabel(lang) {
  if (!lang || !lang.tag) return null;
  return lang.script ? `${lang.tag} · ${lang.script}` : lang.tag;
}

async function renderPage() {
  // Renders may overlap (a page event and the job's end): only the latest one draws.
  const generation = ++state.renders;
  const job = state.current;
  const page = job.pages[state.page];
  const count = job.count || job.pages.length;
  const pageLang = page && languageLabel(page.language);
  $('page-label').textContent = `page ${state.page + 1} of ${count}` + (page ? ` (p. ${page.number}${pageLang ? ', ' + pageLang : ''})` : '');
  $('prev').disabled = state.page <= 0;
  $('next').disabled = state.page >= count - 1;
  const boxes = $('boxes');
  const out = $('rendered');
  boxes.replaceChildren();
  out.replaceChildren();
  if (!page) { out.append(el('p', { class: 'muted', text: 'This page is not recognised yet.' })); return; }
  let src = null;
  let failure = null;
  try { src = await pageImage(job, state.page); } catch (e) { failure = e; }
  if (generation !== state.renders) return;
  boxes.replaceChildren();
  out.replaceChildren();
  if (src) {
    $('page-img').src = src;
    $('page-img').alt = `Page ${page.number} of ${job.name}`;
  } else { $('page-img').removeAttribute('src'); $('page-img').alt = 'page image unavailable: ' + failure.message; }
  if (page.error) out.append(el('p', { class: 'error', text: page.error }));
  if (page.outcome && page.outcome !== 'finished') {
    out.append(el('p', { class: 'warning', text: `Generation stopped early (${page.outcome}): this page may be incomplete.` }));
  }
  const width = Number(page.pixel_size?.width) || 1;
  const height = Number(page.pixel_size?.height) || 1;
  const types = new Set();
  (page.blocks || []).forEach((b, i) => {
    if (b.flags?.hidden) return;
    const type = String(b.kind || 'text');
    const name = TYPE_LABELS[type] || type;
    types.add(type);
    const lang = languageLabel(b.language);
    const content = renderBlock(b, type);
    if (type === 'image') showFigure(job, page, b, content).catch(() => { /* the placeholder stays */ });
    if (b.language?.tag) content.setAttribute('lang', b.language.tag);
    if (b.language?.rtl) content.setAttribute('dir', 'rtl');
    const block = el('div', { class: 'block', 'data-type': type, id: `blk-${i}` },
      el('div', { class: 'meta' }, name, lang ? el('span', { class: 'lang', text: lang, title: 'language' }) : null),
      content);
    out.append(block);
    for (const bx of Array.isArray(b.boxes) ? b.boxes : []) {
      if (!Array.isArray(bx.pixels) || bx.pixels.length !== 4) continue;
      const [x0, y0, x1, y1] = bx.pixels.map(Number);
      const box = el('div', { class: 'box', 'data-type': type, role: 'img', 'aria-label': `${name} box` },
        el('span', { class: 'box-label', text: name }));
      box.style.left = pct(x0, width); box.style.top = pct(y0, height);
      box.style.width = pct(x1 - x0, width); box.style.height = pct(y1 - y0, height);
      const link = (on) => { box.classList.toggle('hl', on); block.classList.toggle('hl', on); };
      box.addEventListener('mouseenter', () => link(true)); box.addEventListener('mouseleave', () => link(false));
      block.addEventListener('mouseenter', () => link(true)); block.addEventListener('mouseleave', () => link(false));
      box.addEventListener('click', () => block.scrollIntoView({ block: 'nearest' }));
      boxes.append(box);
    }
  });
  $('legend').replaceChildren(...[...types].map((t) => el('span', { 'data-type': t }, el('i'), TYPE_LABELS[t] || t)));
}

function renderBlock(b, type) {
  const text = String(b.text || '');
  if (type === 'image') return el('div', { class: 'figure' }, el('p', { class: 'muted', text: text || '[figure]' }));
  if (b.table && Array.isArray(b.table.cells)) return tableFromCells(b.table);
  if (type === 'table' && /<table/i.test(text)) return sanitizeTable(text);
  if (typeof b.latex === 'string') return renderMath(b.latex, true);
  if (b.heading_level) return el('h' + Math.min(Number(b.heading_level) + 1, 6), {}, ...inline(text));
  const lines = text.split('\n');
  if (lines.length > 1 && lines.every((l) => /^\s*([-*•]|\d+[.)])\s+/.test(l) || !l.trim())) {
    return el('ul', {}, ...lines.filter((l) => l.trim()).map((l) => el('li', {}, ...inline(l.replace(/^\s*([-*•]|\d+[.)])\s+/, '')))));
  }
  return el('p', {}, ...inline(text));
}

// Text with \( … \) and \[ … \] formulas: text nodes and KaTeX-rendered math.
function inline(text) {
  const parts = [];
  const re = /\\\(([\s\S]*?)\\\)|\\\[([\s\S]*?)\\\]/g;
  let at = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > at) parts.push(document.createTextNode(text.slice(at, m.index)));
    parts.push(renderMath(m[1] ?? m[2], m[2] !== undefined));
    at = m.index + m[0].length;
  }
  if (at < text.length) parts.push(document.createTextNode(text.slice(at)));
  return parts;
}

function renderMath(tex, display) {
  const holder = el(display ? 'div' : 'span', { class: display ? 'math' : 'math-inline' });
  if (window.katex) {
    try { window.katex.render(tex, holder, { displayMode: display, throwOnError: false, trust: false }); return holder; } catch (_) { /* fall back */ }
  }
  holder.append(el(display ? 'pre' : 'code', { text: tex }));
  return holder;
}

// A table from the server's parsed grid: cells placed by row, with spans; text only.
function tableFromCells(table) {
  const rows = Array.from({ length: Number(table.rows) || 0 }, () => []);
  for (const c of table.cells) {
    const r = rows[Number(c.row)];
    if (!r) continue;
    const span = (n) => (Number(n) > 1 && Number(n) < 1000 ? Number(n) : null);
    r.push(el(c.header ? 'th' : 'td', { text: String(c.text ?? ''), colspan: span(c.column_span), rowspan: span(c.row_span) }));
  }
  return el('table', {}, el('tbody', {}, ...rows.map((cells) => el('tr', {}, ...cells))));
}

// Rebuilds a model-written HTML table from its cells' text. The markup is never handed to the
// browser's HTML parser (even an inert one would compile inline handlers): a small reader takes
// rows, cells, spans and text, and the DOM is built from those with textContent.
const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };
function decodeEntities(s) {
  return s.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (m, e) => {
    if (e[0] === '#') {
      const n = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      return n > 0 && n <= 0x10ffff ? String.fromCodePoint(n) : m;
    }
    return ENTITIES[e.toLowerCase()] ?? m;
  });
}

function cellText(html) {
  const noCode = html.replace(/<(script|style)\b[\s\S]*?(<\/\1\s*>|$)/gi, '');
  return decodeEntities(noCode.replace(/<br\s*\/?>/gi, '\n').replace(/<[^>]*>?/g, '')).trim();
}

function tableRows(html) {
  const rows = [];
  for (const row of html.matchAll(/<tr\b[^>]*>([\s\S]*?)(?=<tr\b|<\/table|$)/gi)) {
    const cells = [];
    for (const c of row[1].matchAll(/<(td|th)\b([^>]*)>([\s\S]*?)(?=<t[dh]\b|<\/tr|$)/gi)) {
      const span = (name) => {
        const m = c[2].match(new RegExp(name + '\\s*=\\s*["\']?(\\d+)', 'i'));
        const n = m ? parseInt(m[1], 10) : 1;
        return n > 1 && n < 1000 ? n : 1;
      };
      cells.push({ th: c[1].toLowerCase() === 'th', colspan: span('colspan'), rowspan: span('rowspan'), text: cellText(c[3]) });
    }
    rows.push(cells);
  }
  return rows;
}

function sanitizeTable(html) {
  const body = el('tbody');
  for (const cells of tableRows(html)) {
    body.append(el('tr', {}, ...cells.map((c) => el(c.th ? 'th' : 'td', {
      text: c.text, colspan: c.colspan > 1 ? c.colspan : null, rowspan: c.rowspan > 1 ? c.rowspan : null,
    }))));
  }
  return el('table', {}, body);
}

function renderExports() {
  const job = state.current;
  const ready = job.state === 'done';
  $('export-buttons').replaceChildren(...FORMATS.map((fmt) => el('span', { class: 'fmt' },
    el('span', { text: fmt }),
    fmt === 'pdf' ? null : el('button', { type: 'button', text: 'Copy', disabled: !ready, 'aria-label': `Copy ${fmt}`, onclick: () => copyResult(job, fmt) }),
    el('button', { type: 'button', text: 'Download', disabled: !ready, 'aria-label': `Download ${fmt}`, onclick: () => downloadResult(job, fmt) }))));
}

async function copyResult(job, fmt) {
  try {
    const text = await (await api(`/v1/jobs/${job.id}/result?format=${fmt}`)).text();
    await navigator.clipboard.writeText(text);
    announce(`${fmt} copied`);
  } catch (e) { announce(`copy failed: ${e.message}`); }
}

async function downloadResult(job, fmt) {
  try {
    const blob = await (await api(`/v1/jobs/${job.id}/result?format=${fmt}`)).blob();
    const url = URL.createObjectURL(blob);
    const base = job.name.replace(/\.[^.]+$/, '') || 'docseek';
    const a = el('a', { href: url, download: `${base}.${fmt}` });
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) { announce(`download failed: ${e.message}`); }
}

// ---- wiring -------------------------------------------------------------------------------

function submitAll(files) { for (const f of files) submit(f); }

function init() {
  const drop = $('drop');
  const input = $('file');
  drop.addEventListener('click', (e) => { if (e.target === drop || e.target.tagName === 'P' || e.target.tagName === 'STRONG') input.click(); });
  drop.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); input.click(); } });
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); submitAll(e.dataTransfer.files); });
  input.addEventListener('change', () => { submitAll(input.files); input.value = ''; });
  $('prev').addEventListener('click', () => { state.page--; renderPage(); });
  $('next').addEventListener('click', () => { state.page++; renderPage(); });
  $('show-boxes').addEventListener('change', (e) => $('boxes').classList.toggle('hidden', !e.target.checked));
  document.addEventListener('keydown', (e) => {
    if (!state.current || ['INPUT', 'SELECT', 'TEXTAREA'].includes(document.activeElement?.tagName)) return;
    const count = state.current.count || state.current.pages.length;
    if (e.key === 'ArrowLeft' && state.page > 0) { state.page--; renderPage(); }
    if (e.key === 'ArrowRight' && state.page < count - 1) { state.page++; renderPage(); }
  });
  $('key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    state.key = $('api-key').value.trim();
    sessionStorage.setItem('docseek-key', state.key);
    $('key-form').hidden = true;
    loadInfo();
  });
  loadInfo();
}

init();
