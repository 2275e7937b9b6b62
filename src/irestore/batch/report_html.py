"""The HTML page of a restore report: a gallery with a before/after slider and a native-resolution
crop per image, sortable by gain, filtered by degradation, paginated, readable on a phone.

No network: the styles and script are inline; previews are embedded as data URIs for batches of up
to :data:`INLINE_LIMIT` images (the page is then one file), and linked from
``irestore-report-files/`` beside it for larger ones, so the page stays small and opens fast with
10 000 rows (only the current page's images load). Text from the manifest is only ever set as
``textContent``: a file name or prompt cannot inject markup.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from irestore.batch.report_lines import metric_lines, summary_lines

INLINE_LIMIT = 60  # images whose previews are embedded in the page
PAGE_SIZE = 24

_STYLE = """
*{box-sizing:border-box}body{font:15px/1.45 system-ui,sans-serif;margin:0;padding:12px;color:#1d232a;background:#f5f6f8}
h1{font-size:1.3em;margin:.2em 0}.summary{background:#fff;border-radius:8px;padding:10px 14px;margin-bottom:10px}
.summary p{margin:.3em 0}.controls{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:8px 0}
select,button{font:inherit;padding:4px 8px}.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:12px}
.card{background:#fff;border-radius:8px;padding:10px;overflow:hidden}.card h2{font-size:1em;margin:0 0 6px;word-break:break-all}
.slider{position:relative;width:100%;line-height:0;background:#222}.slider img{width:100%;display:block}
.slider .after{position:absolute;top:0;left:0}.wipe{width:100%;margin:6px 0}
.crops{display:flex;gap:6px;margin:4px 0}.crops figure{margin:0;flex:1;text-align:center;font-size:.8em}
.crops img{width:100%;image-rendering:pixelated;display:block}.meta{font-size:.85em;margin:4px 0 0;padding:0;list-style:none}
.meta li{margin:2px 0;word-break:break-word}.up{color:#137333}.down{color:#b3261e}.failed{border:2px solid #b3261e}
.muted{color:#667}@media (max-width:400px){.grid{grid-template-columns:1fr}}
"""

_SCRIPT = """
const data = JSON.parse(document.getElementById('report-data').textContent);
const rows = data.images, images = data.previews, pageSize = data.page_size;
let page = 0;
const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; };
const num = (v, d) => (v === undefined || v === null) ? '' : Number(v).toFixed(d);
function visible() {
  const label = document.getElementById('filter').value, order = document.getElementById('sort').value;
  let list = rows.filter(r => label === '' || (label === 'failed' ? r.status === 'failed' : (r.labels || []).includes(label)));
  const key = { gain: r => r.gain ?? -1e9, loss: r => -(r.gain ?? 1e9), name: null, time: r => r.time_restore ?? 0 }[order];
  list = list.slice();
  if (key) list.sort((a, b) => key(b) - key(a)); else list.sort((a, b) => a.relative < b.relative ? -1 : 1);
  return list;
}
function picture(src, alt, cls) { const img = el('img', cls); img.loading = 'lazy'; img.src = src; img.alt = alt; return img; }
function card(r) {
  const c = el('article', r.status === 'failed' ? 'card failed' : 'card');
  c.append(el('h2', '', r.relative));
  if (r.gain !== undefined && r.gain !== null) c.append(el('div', r.gain > 0 ? 'up' : (r.gain < 0 ? 'down' : 'muted'),
    r.psnr_input !== undefined ? 'PSNR ' + (r.gain >= 0 ? '+' : '') + num(r.gain, 2) + ' dB' : 'BRISQUE ' + (r.gain >= 0 ? '-' : '+') + num(Math.abs(r.gain), 1)));
  const p = images[r.relative];
  if (p) {
    const s = el('div', 'slider'), after = picture(p.after, 'after: ' + r.relative, 'after');
    const range = el('input', 'wipe'); range.type = 'range'; range.min = 0; range.max = 100; range.value = 50;
    range.setAttribute('aria-label', 'before / after');
    const move = () => { after.style.clipPath = 'inset(0 0 0 ' + range.value + '%)'; };
    range.addEventListener('input', move); move();
    s.append(picture(p.before, 'before: ' + r.relative, 'before'), after);
    c.append(s, range, el('div', 'muted', 'left: input, right: output; crops at native resolution:'));
    const crops = el('div', 'crops');
    for (const [k, label] of [['before_crop', 'input'], ['after_crop', 'output']]) {
      const f = el('figure'); f.append(picture(p[k], label + ' crop', ''), el('figcaption', '', label)); crops.append(f);
    }
    c.append(crops);
  }
  const meta = el('ul', 'meta');
  const item = (name, value, cls) => { if (value === undefined || value === null || value === '') return; const li = el('li', cls || ''); li.append(el('b', '', name + ': '), document.createTextNode(value)); meta.append(li); };
  if (r.status === 'failed') item('failed', r.error, 'down');
  item('degradations', (r.labels || []).join(', ') || (r.labels ? 'none found' : ''));
  item('prompt', r.prompt ? r.prompt + ' (' + r.prompt_source + ')' : '');
  item('plan', r.plan !== undefined ? (r.plan || 'nothing applied') : r.model);
  if (r.plan_proposed !== undefined && r.plan_proposed !== r.plan) item('proposed', r.plan_proposed || 'nothing');
  if (r.plan_search) item('search', r.plan_search.evaluations + ' steps tried on the proxy; remaining degradation ' + num(r.plan_search.score_before, 3) + ' → ' + num(r.plan_search.score_after, 3));
  item('rolled back', (r.plan_rolled_back || []).join(', '));
  for (const s of r.plan_run || []) item(s.kept ? 'step kept' : 'step undone', s.step + (s.score_before !== undefined ? ' (remaining degradation ' + num(s.score_before, 3) + ' → ' + num(s.score_after, 3) + ')' : '') + ', ' + num(s.seconds, 1) + ' s');
  const g = r.gain;
  if (r.psnr !== undefined) item('PSNR', num(r.psnr_input, 2) + ' → ' + num(r.psnr, 2) + ' dB; SSIM ' + num(r.ssim_input, 4) + ' → ' + num(r.ssim, 4), g > 0 ? 'up' : (g < 0 ? 'down' : ''));
  if (r.lpips !== undefined) item('LPIPS', num(r.lpips, 4));
  if (r.brisque !== undefined) item('BRISQUE', num(r.brisque_input, 1) + ' → ' + num(r.brisque, 1) + ' (lower is better)');
  if (r.reference_error) item('reference', r.reference_error, 'down');
  if (r.time_restore !== undefined) item('time', num(r.time_restore, 1) + ' s, ' + num(r.megapixels, 2) + ' MP, peak ' + num(r.peak_memory_mb, 0) + ' MB');
  c.append(meta);
  return c;
}
function render() {
  const list = visible(), pages = Math.max(1, Math.ceil(list.length / pageSize));
  page = Math.min(page, pages - 1);
  const grid = document.getElementById('grid'); grid.replaceChildren(...list.slice(page * pageSize, (page + 1) * pageSize).map(card));
  document.getElementById('where').textContent = 'page ' + (page + 1) + ' of ' + pages + ' (' + list.length + ' images)';
  document.getElementById('prev').disabled = page === 0; document.getElementById('next').disabled = page >= pages - 1;
}
const labels = new Set(); rows.forEach(r => (r.labels || []).forEach(l => labels.add(l)));
const filter = document.getElementById('filter');
for (const l of [...labels].sort()) { const o = el('option', '', l); o.value = l; filter.append(o); }
if (rows.some(r => r.status === 'failed')) { const o = el('option', '', 'failed'); o.value = 'failed'; filter.append(o); }
filter.addEventListener('change', () => { page = 0; render(); });
document.getElementById('sort').addEventListener('change', () => { page = 0; render(); });
document.getElementById('prev').addEventListener('click', () => { page--; render(); window.scrollTo(0, 0); });
document.getElementById('next').addEventListener('click', () => { page++; render(); window.scrollTo(0, 0); });
render();
"""


def _preview_sources(report: dict, folder: Path) -> dict[str, dict[str, str]]:
    """relative path -> preview kind -> data URI (small batches) or link relative to the page."""
    inline = len(report["images"]) <= INLINE_LIMIT
    sources = {}
    for row in report["images"]:
        previews = row.get("previews")
        if not previews or not all((folder / name).is_file() for name in previews.values()):
            continue
        if inline:
            sources[row["relative"]] = {kind: "data:image/jpeg;base64," + base64.b64encode((folder / name).read_bytes()).decode()
                                        for kind, name in previews.items()}
        else:
            sources[row["relative"]] = {kind: "/".join(Path(name).parts) for kind, name in previews.items()}
    return sources


def render_page(report: dict, folder: Path) -> str:
    payload = {"images": report["images"], "previews": _preview_sources(report, folder), "page_size": PAGE_SIZE}
    data = json.dumps(payload, ensure_ascii=False, default=str).replace("<", "\\u003c")  # no tag can start inside
    summary = "".join(f"<p>{html.escape(line)}</p>" for line in summary_lines(report))
    missing = [line for line in metric_lines(report) if ": unavailable" in line]
    if missing:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in missing)
        summary += f"<details><summary>not measured here: {len(missing)} metric(s)</summary><ul>{items}</ul></details>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>irestore restore report</title><style>{_STYLE}</style></head>
<body><h1>irestore restore report</h1><section class="summary">{summary}</section>
<div class="controls"><label>sort <select id="sort"><option value="gain">largest gain first</option>
<option value="loss">largest loss first</option><option value="name">name</option><option value="time">slowest first</option></select></label>
<label>degradation <select id="filter"><option value="">all</option></select></label>
<button id="prev" type="button">previous</button><span id="where"></span><button id="next" type="button">next</button></div>
<main id="grid" class="grid"></main>
<script type="application/json" id="report-data">{data}</script>
<script>{_SCRIPT}</script></body></html>
"""
