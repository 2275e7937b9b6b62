"""Benchmark results -> a terminal table, report.json, report.csv, report.md and report.html.

Every report states the protocol and its fingerprint, the notes that limit comparability, and
why LPIPS/FID are missing when they are. Published numbers appear in their own labelled rows.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, fields
from pathlib import Path

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from irestore.evaluate.benchmark import BenchmarkResult, Row
from irestore.io import atomic_write_text
from irestore.evaluate.published import PUBLISHED_PROTOCOL

__all__ = ["REPORT_FILES", "render_table", "task_cell", "write_reports"]

REPORT_FILES = ("report.json", "report.csv", "report.md", "report.html")
DASH = "—"


def write_reports(result: BenchmarkResult, out: Path) -> dict[str, Path]:
    """Write every report file into ``out``; returns their paths by name."""
    from irestore.evaluate.report_html import render_html

    texts = {
        "report.json": json.dumps(result.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n",
        "report.csv": rows_csv(result.rows),
        "report.md": markdown(result),
        "report.html": render_html(result, out),
    }
    paths = {}
    for name, text in texts.items():
        atomic_write_text(out / name, text)
        paths[name] = out / name
    return paths


# --------------------------------------------------------------------------- shared cells


def _num(value: float | None, digits: int) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def task_cell(psnr: float | None, ssim: float | None) -> str:
    return DASH if psnr is None else f"{psnr:.2f}/{ssim:.3f}"


def _speed(result: BenchmarkResult, method: str) -> float | None:
    ok = [r for r in result.rows if r.method == method and r.status == "ok" and r.megapixels]
    megapixels = sum(r.megapixels for r in ok)
    return sum(r.seconds for r in ok) / megapixels if megapixels else None


def _peak(result: BenchmarkResult, method: str) -> float | None:
    peaks = [r.peak_mb for r in result.rows if r.method == method and r.status == "ok" and r.peak_mb is not None]
    return max(peaks) if peaks else None


def _average_cell(result: BenchmarkResult, method: str) -> str:
    avg = result.averages.get(method, {})
    cell = task_cell(avg.get("psnr"), avg.get("ssim"))
    if avg.get("psnr") is not None and avg["tasks"] < avg["of"]:
        cell += f" ({avg['tasks']}/{avg['of']})"
    return cell


def method_rows(result: BenchmarkResult) -> list[list[str]]:
    """Per method: name, one PSNR/SSIM cell per task, average, s/MP, peak MB."""
    out = []
    for entry in result.methods:
        cells = [task_cell(*_scores(result, t.name, entry.name)) for t in result.tasks]
        out.append([entry.name, *cells, _average_cell(result, entry.name),
                    _num(_speed(result, entry.name), 3), _num(_peak(result, entry.name), 0)])
    return out


def _scores(result: BenchmarkResult, task: str, method: str) -> tuple[float | None, float | None]:
    agg = result.aggregate(task, method)
    return (agg.psnr, agg.ssim) if agg else (None, None)


def published_rows(result: BenchmarkResult) -> list[list[str]]:
    out = []
    for row in result.published:
        cells = [task_cell(*row.scores[t.name]) if t.name in row.scores else DASH for t in result.tasks]
        average = task_cell(*row.average) if row.average else DASH
        out.append([f"{row.method} (published, {row.source})", *cells, average, DASH, DASH])
    return out


def metric_lines(result: BenchmarkResult) -> list[str]:
    return [f"{name.upper()}: {'computed' if not why else 'unavailable: ' + why}"
            for name, why in result.metric_status.items()]


def header(result: BenchmarkResult) -> list[str]:
    return ["Method", *[t.label for t in result.tasks], "Average", "s/MP", "peak MB"]


# --------------------------------------------------------------------------- terminal


def render_table(result: BenchmarkResult, console: Console) -> None:
    """The rich table (PSNR/SSIM per task, average, speed) followed by the protocol and notes."""
    title = f"irestore benchmark: {result.suite} — protocol {result.protocol.name} [{result.protocol.fingerprint}]"
    wide = _wide_table(result, title)
    natural = Measurement.get(console, console.options.update_width(100_000), wide).maximum  # unclamped
    fits = natural <= console.width
    console.print(wide if fits else _long_table(result, title))
    console.print(result.protocol.describe(), highlight=False, markup=False)
    for line in [*metric_lines(result), *result.notes, *_problems(result)]:
        console.print(line, highlight=False, markup=False)


CAPTION = "PSNR (dB)/SSIM; s/MP = seconds per megapixel of input"


def _wide_table(result: BenchmarkResult, title: str) -> Table:
    """Methods down, tasks across; numbers are never broken over lines."""
    table = Table(title=title, caption=CAPTION)
    for i, column in enumerate(header(result)):
        table.add_column(column, justify="left" if i == 0 else "right", no_wrap=i > 0, overflow="fold")
    for row in method_rows(result):
        table.add_row(*row)
    published = published_rows(result)
    if published:
        table.add_section()
        for row in published:
            table.add_row(*row, style="dim italic")
    return table


def _long_table(result: BenchmarkResult, title: str) -> Table:
    """The same cells, one (method, column) pair per line: for a terminal too narrow for the wide table."""
    table = Table(title=title, caption=CAPTION)
    table.add_column("method", overflow="fold")
    table.add_column("task", overflow="fold")
    table.add_column("value", justify="right", no_wrap=True)
    names = header(result)[1:]
    for row in method_rows(result) + published_rows(result):
        for name, cell in zip(names, row[1:]):
            table.add_row(row[0], name, cell)
        table.add_section()
    return table


def _problems(result: BenchmarkResult) -> list[str]:
    failed = [r for r in result.rows if r.status == "failed"]
    lines = [f"failed: {r.method} on {r.task}/{r.key}: {r.error}" for r in failed[:10]]
    if len(failed) > 10:
        lines.append(f"... and {len(failed) - 10} more failures (see report.csv)")
    return lines


# --------------------------------------------------------------------------- csv, markdown


def rows_csv(rows: list[Row]) -> str:
    buffer = io.StringIO()
    names = [f.name for f in fields(Row)]
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in asdict(row).items()})
    return buffer.getvalue()


def _md_table(head: list[str], body: list[list[str]]) -> list[str]:
    escape = lambda text: str(text).replace("|", "\\|")
    lines = ["| " + " | ".join(escape(h) for h in head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    return lines + ["| " + " | ".join(escape(c) for c in row) + " |" for row in body]


def markdown(result: BenchmarkResult) -> str:
    p = result.protocol
    lines = [f"# irestore benchmark: {result.suite}", "",
             f"Protocol **{p.name}** `{p.fingerprint}`: {p.summary}.", "",
             ("PSNR (dB) / SSIM per task; Average over the tasks a method has numbers for "
             "(k/n when fewer than all); s/MP = seconds per megapixel of input; peak MB = peak memory above "
             "the level before the call."), ""]
    lines += _md_table(header(result), method_rows(result))
    published = published_rows(result)
    if published:
        lines += ["", f"Published (as reported in the papers, full test sets, protocol {PUBLISHED_PROTOCOL}):", ""]
        lines += _md_table(header(result), published)
    lines += _plan_section(result)
    lines += ["", "## LPIPS and FID", ""]
    lines += [f"- {line}" for line in metric_lines(result)]
    if any(not why for why in result.metric_status.values()):
        lines += [""] + _md_table(["Method", *[t.label for t in result.tasks]], _perceptual_rows(result))
    lines += ["", "## Protocol", "", "```", p.describe(), "```"]
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in result.notes]
    lines += ["", "## Methods", ""] + [f"- `{m.name}`: {m.description}" + (f" — **could not load**: {m.load_error}"
                                                                           if m.load_error else "")
                                       for m in result.methods]
    return "\n".join(lines) + "\n"


def _plan_section(result: BenchmarkResult) -> list[str]:
    """PSNR per task next to the best fixed order and the oracle plan, with the gap to the oracle."""
    from irestore.evaluate.benchmark import plan_comparison

    comparison = plan_comparison(result)
    if not comparison:
        return []
    methods = [m.name for m in result.methods if any(m.name in c["methods"] for c in comparison)]
    head = ["Task", *methods, "true labels, camera order", "best fixed order", "its PSNR",
            *[f"{m} − oracle" for m in methods if m != "plan:oracle"]]
    body = []
    for c in comparison:
        psnr = [_num(c["methods"].get(m, {}).get("psnr"), 2) for m in methods]
        gaps = [_num(-c["methods"][m]["gap_to_oracle"] if c["methods"].get(m, {}).get("gap_to_oracle") is not None
                     else None, 2) for m in methods if m != "plan:oracle"]
        body.append([c["label"], *psnr, _num(c["camera_order_psnr"], 2), c["best_fixed_order"] or DASH,
                     _num(c["best_fixed_psnr"], 2), *gaps])
    means = []
    for m in methods:
        values = [c["methods"][m]["psnr"] for c in comparison if m in c["methods"]]
        means.append(_num(sum(values) / len(values), 2) if values else DASH)
    fixed = [c["best_fixed_psnr"] for c in comparison if c["best_fixed_psnr"] is not None]
    camera = [c["camera_order_psnr"] for c in comparison if c["camera_order_psnr"] is not None]
    gaps = []
    for m in methods:
        if m == "plan:oracle":
            continue
        values = [c["methods"][m]["gap_to_oracle"] for c in comparison if c["methods"].get(m, {}).get("gap_to_oracle") is not None]
        gaps.append(_num(-sum(values) / len(values), 2) if values else DASH)
    body.append(["**average**", *means, _num(sum(camera) / len(camera), 2) if camera else DASH, "",
                 _num(sum(fixed) / len(fixed), 2) if fixed else DASH, *gaps])
    return ["", "## Plans against the oracle", "",
            "PSNR (dB). True labels, camera order: the true degradations undone in the fixed order with each "
            "label's preferred member. Best fixed order: the one order of the true degradations (with its members) "
            "that is best on average over the task's images. Both from the oracle's runs; the oracle picks the best "
            "order per image against the ground truth.", ""] + _md_table(head, body)


def _perceptual_rows(result: BenchmarkResult) -> list[list[str]]:
    out = []
    for entry in result.methods:
        cells = []
        for task in result.tasks:
            agg = result.aggregate(task.name, entry.name)
            cells.append(DASH if agg is None or agg.lpips is None and agg.fid is None
                         else f"LPIPS {_num(agg.lpips, 4)} / FID {_num(agg.fid, 2)}")
        out.append([entry.name, *cells])
    return out
