"""The self-contained HTML report: tables, zoomed side-by-side crops per task, and inline SVG charts.

Images are embedded as base64 PNG, charts as inline SVG; the page loads nothing else and runs
no script. For each task one image is shown (the one most methods restored); the crop is the
window where the methods disagree most, enlarged with nearest-neighbour pixels so that
differences show.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from html import escape
from pathlib import Path

import cv2
import numpy as np

from irestore.benchmark.cells import DASH, header, method_rows, metric_lines, published_rows, task_cell
from irestore.benchmark.runner import GT_DIR, INPUT_DIR, BenchmarkResult, TaskEntry
from irestore.benchmark.svgchart import PALETTE, Point, Series, line_chart, scatter_chart
from irestore.io import ImageError, read_image

__all__ = ["render_html"]

CROP = 128  # crop side in source pixels
SHOWN = 256  # about how wide each crop is displayed
THUMB = 300

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}h3{font-size:15px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th:first-child,td:first-child{text-align:left}
tr.published td{color:#666;font-style:italic;background:#fafafa}
pre{background:#f5f5f5;padding:8px;font-size:12px;white-space:pre-wrap}
.crops{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start}
figure{margin:0;font-size:12px;text-align:center}
figure img{image-rendering:pixelated;border:1px solid #bbb;display:block}
.charts{display:flex;flex-wrap:wrap;gap:16px}
.note{color:#a15c00}
"""


def render_html(result: BenchmarkResult, out: Path) -> str:
    """The report page as one HTML string; reads the saved images under ``out``."""
    p = result.protocol
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>irestore benchmark: {escape(result.suite)}</title><style>{_CSS}</style></head><body>",
        f"<h1>irestore benchmark: {escape(result.suite)}</h1>",
        (f"<p>Protocol <b>{escape(p.name)}</b> <code>{p.fingerprint}</code> — {escape(p.summary)}. "
        f"{len(result.rows)} rows{_reused(result)}; this run took {result.seconds:.0f} s.</p>"),
        *[f'<p class="note">{escape(note)}</p>' for note in result.notes],
        "<h2>PSNR / SSIM</h2>",
        _table(header(result), method_rows(result), published_rows(result)),
        ("<p>PSNR (dB)/SSIM; Average over the tasks a method has numbers for (k/n when fewer); "
        "s/MP = seconds per megapixel of input; peak MB = peak memory above the level before the call.</p>"),
        "<h2>LPIPS and FID</h2>",
        "<ul>" + "".join(f"<li>{escape(line)}</li>" for line in metric_lines(result)) + "</ul>",
        _perceptual_table(result),
        *[_task_section(result, task, out) for task in result.tasks],
        _steps_section(result),
        "<h2>Protocol</h2>",
        f"<pre>{escape(p.describe())}</pre>",
        _methods_section(result),
        _failures_section(result),
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part) + "\n"


def _reused(result: BenchmarkResult) -> str:
    return f" ({result.reused} reused from an earlier run)" if result.reused else ""


def _table(head: list[str], body: list[list[str]], published: list[list[str]] | None = None) -> str:
    rows = ["<tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"]
    rows += ["<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in body]
    rows += ['<tr class="published">' + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>"
             for row in published or []]
    return "<table>" + "".join(rows) + "</table>"


def _perceptual_table(result: BenchmarkResult) -> str:
    if all(result.metric_status.values()):
        return ""
    body = []
    for entry in result.methods:
        cells = []
        for task in result.tasks:
            agg = result.aggregate(task.name, entry.name)
            lpips = DASH if agg is None or agg.lpips is None else f"{agg.lpips:.4f}"
            fid = DASH if agg is None or agg.fid is None else f"{agg.fid:.2f}"
            cells.append(f"{lpips} / {fid}")
        body.append([entry.name, *cells])
    return _table(["Method (LPIPS / FID)", *[t.label for t in result.tasks]], body)


# --------------------------------------------------------------------------- per task


def _task_section(result: BenchmarkResult, task: TaskEntry, out: Path) -> str:
    return "\n".join([
        f"<h2>{escape(task.label)}</h2>",
        (f"<p>{task.images} image(s) from <code>{escape(task.dataset)}</code>; degradation family: "
        f"{escape(task.family or 'unknown')}.</p>"),
        _crops(result, task, out),
        '<div class="charts">' + _speed_chart(result, task) + "</div>",
    ])


def _colors(result: BenchmarkResult) -> dict[str, str]:
    return {m.name: PALETTE[i % len(PALETTE)] for i, m in enumerate(result.methods)}


def _speed_chart(result: BenchmarkResult, task: TaskEntry) -> str:
    colors = _colors(result)
    points = [Point(a.s_per_mp, a.psnr, a.method, colors[a.method]) for a in result.aggregates
              if a.task == task.name and a.psnr is not None and a.s_per_mp]
    return scatter_chart(points, f"{task.label}: quality vs time", "seconds per megapixel (log)", "PSNR (dB)")


def _pick_key(result: BenchmarkResult, task: str) -> str | None:
    """A typical image: among those most methods restored, the one whose mean PSNR is nearest the median."""
    scores: dict[str, list[float]] = defaultdict(list)
    for row in result.rows:
        if row.task == task and row.status == "ok" and row.psnr is not None:
            scores[row.key].append(row.psnr)
    if not scores:
        return None
    most = max(len(v) for v in scores.values())
    means = {k: float(np.mean(v)) for k, v in scores.items() if len(v) == most}
    median = float(np.median(list(means.values())))
    return min(means, key=lambda k: (abs(means[k] - median), k))


def _crops(result: BenchmarkResult, task: TaskEntry, out: Path) -> str:
    key = _pick_key(result, task.name)
    if key is None:
        return "<p>No restored images for this task.</p>"
    name = Path(key).with_suffix(".png")
    rows = [r for r in result.rows if r.task == task.name and r.key == key and r.status == "ok"]
    identity = next((r for r in rows if r.method == "identity"), None)  # the input itself: its score goes there
    input_score = task_cell(identity.psnr, identity.ssim) if identity else ""
    panels = [("degraded input", out / "images" / task.name / INPUT_DIR / name, input_score)]
    panels += [(r.method, out / r.output, task_cell(r.psnr, r.ssim)) for r in rows if r is not identity]
    panels.append(("ground truth", out / "images" / task.name / GT_DIR / name, ""))
    try:
        images = [(label, read_image(path).rgb, score) for label, path, score in panels]
    except ImageError as error:
        return f"<p>Cannot show crops: {escape(str(error))}</p>"
    if len({img.shape for _, img, _ in images}) != 1:
        return "<p>Cannot show crops: the images differ in size.</p>"
    top, left, side = _crop_window([img for _, img, _ in images], images[-1][1])
    zoom = max(1, min(4, SHOWN // side))
    figures = [_figure(_thumbnail(images[-1][1], top, left, side), "ground truth, crop outlined", "")]
    for label, img, score in images:
        crop = img[top : top + side, left : left + side]
        figures.append(_figure(np.repeat(np.repeat(crop, zoom, axis=0), zoom, axis=1), label, score))
    caption = f"<p>{escape(key)}: {side}x{side} px at ({left}, {top}), shown at {zoom}x.</p>"
    return caption + '<div class="crops">' + "".join(figures) + "</div>"


def _crop_window(images: list[np.ndarray], truth: np.ndarray) -> tuple[int, int, int]:
    """(top, left, side) of the square where the images disagree most, weighted towards detail in the ground truth."""
    h, w = images[0].shape[:2]
    side = min(CROP, h, w)
    grey = np.stack([img.mean(axis=2) for img in images]).astype(np.float32)
    detail = np.abs(cv2.Laplacian(truth.mean(axis=2).astype(np.float32), cv2.CV_32F))

    def window_mean(x: np.ndarray) -> np.ndarray:
        out = cv2.boxFilter(x, -1, (side, side), normalize=True, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
        return out[: h - side + 1, : w - side + 1]

    score = window_mean(grey.std(axis=0)) * (window_mean(detail) + 0.02)
    top, left = np.unravel_index(int(np.argmax(score)), score.shape)
    return int(top), int(left), side


def _thumbnail(image: np.ndarray, top: int, left: int, side: int) -> np.ndarray:
    scale = min(1.0, THUMB / max(image.shape[:2]))
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    thumb = np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    corner = (round(left * scale), round(top * scale))
    far = (round((left + side) * scale) - 1, round((top + side) * scale) - 1)
    cv2.rectangle(thumb, corner, far, (1.0, 0.1, 0.1), 1)
    return thumb


def _figure(rgb: np.ndarray, label: str, score: str) -> str:
    ok, png = cv2.imencode(".png", cv2.cvtColor(np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    if not ok:
        return ""
    data = base64.b64encode(png.tobytes()).decode("ascii")
    h, w = rgb.shape[:2]
    text = escape(label) + (f"<br>{escape(score)}" if score else "")
    return (f'<figure><img alt="{escape(label)}" width="{w}" height="{h}" src="data:image/png;base64,{data}">'
            f"<figcaption>{text}</figcaption></figure>")


# --------------------------------------------------------------------------- irestore steps, methods


def _steps_section(result: BenchmarkResult) -> str:
    by_model: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for entry in result.methods:
        psnr = result.averages.get(entry.name, {}).get("psnr")
        if entry.steps is not None and psnr is not None:
            by_model[entry.settings.get("model", entry.name)].append((float(entry.steps), psnr))
    if not by_model:
        return "<h2>irestore: PSNR vs sampling steps</h2><p>No irestore methods with results in this run " \
               "(add e.g. <code>irestore:MODEL@5,irestore:MODEL@20</code> to --methods).</p>"
    series = [Series(model, PALETTE[i % len(PALETTE)], tuple(points)) for i, (model, points) in enumerate(by_model.items())]
    chart = line_chart(series, "irestore: PSNR vs sampling steps", "sampling steps", "average PSNR (dB)")
    return f'<h2>irestore: PSNR vs sampling steps</h2><div class="charts">{chart}</div>'


def _methods_section(result: BenchmarkResult) -> str:
    items = []
    for m in result.methods:
        extra = f" <b>could not load</b>: {escape(m.load_error)}" if m.load_error else ""
        items.append(f"<li><code>{escape(m.name)}</code>: {escape(m.description)}; told: {escape(m.parameters)}{extra}</li>")
    return "<h2>Methods</h2><ul>" + "".join(items) + "</ul>"


def _failures_section(result: BenchmarkResult) -> str:
    problems = [r for r in result.rows if r.status != "ok"]
    if not problems:
        return ""
    items = "".join(f"<li>{escape(r.status)}: <code>{escape(r.method)}</code> on {escape(r.task)}/{escape(r.key)}: "
                    f"{escape(r.error)}</li>" for r in problems[:500])
    return f"<details><summary>{len(problems)} skipped or failed row(s)</summary><ul>{items}</ul></details>"
