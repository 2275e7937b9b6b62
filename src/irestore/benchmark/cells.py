"""The cells and rows every benchmark report shares (terminal, Markdown, HTML): scores, speeds,
the per-method averages, published rows and the header lines."""

from __future__ import annotations

from irestore.benchmark.runner import BenchmarkResult

DASH = "—"


def number_cell(value: float | None, digits: int) -> str:
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
                    number_cell(_speed(result, entry.name), 3), number_cell(_peak(result, entry.name), 0)])
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
