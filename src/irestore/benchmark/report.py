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

from irestore.benchmark.cells import DASH, header, method_rows, metric_lines, number_cell, published_rows, task_cell
from irestore.benchmark.published import PUBLISHED_PROTOCOL
from irestore.benchmark.report_html import render_html
from irestore.benchmark.runner import BenchmarkResult, Row
from irestore.io import atomic_write_text

__all__ = ["REPORT_FILES", "render_table", "task_cell", "write_reports"]

REPORT_FILES = ("report.json", "report.csv", "report.md", "report.html")


def write_reports(result: BenchmarkResult, out: Path) -> dict[str, Path]:
    """Write every report file into ``out``; returns their paths by name."""
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
    from irestore.benchmark.runner import plan_comparison

    comparison = plan_comparison(result)
    if not comparison:
        return []
    methods = [m.name for m in result.methods if any(m.name in c["methods"] for c in comparison)]
    head = ["Task", *methods, "true labels, camera order", "best fixed order", "its PSNR",
            *[f"{m} − oracle" for m in methods if m != "plan:oracle"]]
    body = []
    for c in comparison:
        psnr = [number_cell(c["methods"].get(m, {}).get("psnr"), 2) for m in methods]
        gaps = [number_cell(-c["methods"][m]["gap_to_oracle"] if c["methods"].get(m, {}).get("gap_to_oracle") is not None
                     else None, 2) for m in methods if m != "plan:oracle"]
        body.append([c["label"], *psnr, number_cell(c["camera_order_psnr"], 2), c["best_fixed_order"] or DASH,
                     number_cell(c["best_fixed_psnr"], 2), *gaps])
    means = []
    for m in methods:
        values = [c["methods"][m]["psnr"] for c in comparison if m in c["methods"]]
        means.append(number_cell(sum(values) / len(values), 2) if values else DASH)
    fixed = [c["best_fixed_psnr"] for c in comparison if c["best_fixed_psnr"] is not None]
    camera = [c["camera_order_psnr"] for c in comparison if c["camera_order_psnr"] is not None]
    gaps = []
    for m in methods:
        if m == "plan:oracle":
            continue
        values = [c["methods"][m]["gap_to_oracle"] for c in comparison if c["methods"].get(m, {}).get("gap_to_oracle") is not None]
        gaps.append(number_cell(-sum(values) / len(values), 2) if values else DASH)
    body.append(["**average**", *means, number_cell(sum(camera) / len(camera), 2) if camera else DASH, "",
                 number_cell(sum(fixed) / len(fixed), 2) if fixed else DASH, *gaps])
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
                         else f"LPIPS {number_cell(agg.lpips, 4)} / FID {number_cell(agg.fid, 2)}")
        out.append([entry.name, *cells])
    return out
