"""The report of an ``irestore restore`` run: ``OUTPUT/irestore-report.{json,md,html}``.

The manifest is the source of truth: the report holds the last record per image from every
manifest in the output folder (``irestore-manifest*.jsonl``: a resumed run, shards), so it is
correct after an interruption, on resume and across shards. During a run :class:`ReportWriter`
keeps those rows in memory, adds each finished image and rewrites the files at most every few
seconds (and once at the end). Previews (thumbnails for the before/after slider and a crop at
native resolution) are small JPEGs under ``OUTPUT/irestore-report-files/``.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from irestore.batch.report_html import render_page
from irestore.batch.report_lines import cell, metric_lines, summary_lines
from irestore.evaluate.metrics import PROTOCOLS
from irestore.io import REPORT_FILES_DIR, atomic_path, atomic_write_text, remove_stale_temps

REPORT_STEM = "irestore-report"
PREVIEW_DIR = REPORT_FILES_DIR
MANIFEST_NAME = "irestore-manifest.jsonl"
MANIFEST_GLOB = "irestore-manifest*.jsonl"  # MANIFEST_NAME and the shards' (shard.Shard.manifest_name)
THUMB_SIDE = 256  # px, the slider's long side
CROP_SIDE = 128  # px at native resolution
PREVIEW_QUALITY = 80
# the report's per-image fields, in this order (from the manifest record)
ROW_FIELDS = ("relative", "input", "output", "status", "error", "labels", "caption", "prompt", "prompt_source",
              "model", "plan", "plan_proposed", "plan_rolled_back", "plan_run", "plan_search", "generative", "megapixels",
              "time_restore", "peak_memory_mb", "psnr_input", "psnr", "ssim_input", "ssim", "lpips",
              "brisque_input", "brisque", "reference", "reference_error", "protocol", "previews")


# -- previews ---------------------------------------------------------------------------

def _u8(rgb: np.ndarray) -> np.ndarray:
    return np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def _save_jpeg(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(_u8(rgb), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, PREVIEW_QUALITY])
    if not ok:
        raise OSError(f"cannot encode preview {path}")
    remove_stale_temps(path)  # left by a run killed mid-write
    with atomic_path(path) as temporary:
        temporary.write_bytes(data.tobytes())


def _thumbnail(rgb: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    height, width = rgb.shape[:2]
    factor = min(1.0, side / max(height, width))
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) if factor < 1 else rgb


def crop_window(before: np.ndarray, after: np.ndarray, side: int = CROP_SIDE) -> tuple[int, int, int]:
    """(top, left, side) of the square where the restoration changed the image most (the centre
    when nothing changed): the mean absolute change over every window, from an integral image."""
    height, width = after.shape[:2]
    side = min(side, height, width)
    change = np.abs(after.astype(np.float32) - before.astype(np.float32)).mean(axis=2)
    total = cv2.integral(change)
    sums = total[side:, side:] - total[:-side, side:] - total[side:, :-side] + total[:-side, :-side]
    if float(sums.max()) <= 0:
        return (height - side) // 2, (width - side) // 2, side
    top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(top), int(left), side


def write_previews(folder: Path, relative: str, source: np.ndarray, output: np.ndarray) -> dict[str, str]:
    """Before/after thumbnails and native-resolution crops of one image; paths relative to ``folder``.
    An output of another size (``--scale``) is compared with the input resized to it."""
    if source.shape != output.shape:
        source = cv2.resize(source, output.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    top, left, side = crop_window(source, output)
    names = {}
    for kind, image in (("before", _thumbnail(source)), ("after", _thumbnail(output)),
                        ("before_crop", source[top:top + side, left:left + side]),
                        ("after_crop", output[top:top + side, left:left + side])):
        name = f"{PREVIEW_DIR}/{relative}.{kind}.jpg"
        _save_jpeg(folder / name, image)
        names[kind] = name
    return names


# -- rows from manifests ------------------------------------------------------------------

def read_records(folder: Path) -> dict[str, dict]:
    """The last record per image (keyed by its path relative to the input) from every manifest in
    ``folder``; skipped-image records and torn lines are ignored."""
    rows: dict[str, dict] = {}
    for record in manifest_records(folder):
        if record.get("status") in ("done", "failed") and "relative" in record:
            add_record(rows, record)
    return rows


def manifest_records(folder: Path) -> Iterator[dict]:
    """Every record of every manifest in ``folder``, in file and line order; torn lines are skipped."""
    for manifest in sorted(folder.glob(MANIFEST_GLOB)):
        yield from read_manifest(manifest)


def read_manifest(path: Path) -> Iterator[dict]:
    """The records of one manifest file, in line order; torn lines are skipped."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line a killed run left half-written
            if isinstance(record, dict):
                yield record


def add_record(rows: dict[str, dict], record: dict) -> None:
    """Keep ``record`` as its image's row; a failed retry does not hide an earlier finished output."""
    key = record["relative"]
    earlier = rows.get(key)
    if record["status"] == "failed" and earlier is not None and earlier["status"] == "done" and Path(earlier["output"]).is_file():
        return
    row = {name: record.get(name) for name in ROW_FIELDS if record.get(name) is not None} | {"relative": key}
    if isinstance(record.get("plan_details"), dict):  # the proxy search that chose the plan, in brief
        details = record["plan_details"]
        row["plan_search"] = {"evaluations": len(details.get("evaluations") or []),
                              "score_before": details.get("score_before"), "score_after": details.get("score_after")}
    rows[key] = row


# -- the report's numbers -------------------------------------------------------------------

def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return sum(values) / len(values) if values else None


def gain(row: dict) -> float | None:
    """What the restoration did for this image: PSNR gain with a reference, else the BRISQUE drop."""
    if row.get("psnr") is not None and row.get("psnr_input") is not None:
        return row["psnr"] - row["psnr_input"]
    if row.get("brisque") is not None and row.get("brisque_input") is not None:
        return row["brisque_input"] - row["brisque"]
    return None


def summarize(rows: list[dict], metric_status: dict[str, str]) -> dict:
    done = [r for r in rows if r["status"] == "done"]
    summary: dict = {"images": len(rows), "done": len(done), "failed": len(rows) - len(done)}
    for name in ("psnr_input", "psnr", "ssim_input", "ssim", "lpips", "brisque_input", "brisque", "time_restore"):
        value = _mean([r.get(name) for r in done])
        if value is not None:
            summary[f"mean_{name}"] = round(value, 5)
    summary["peak_memory_mb"] = max((r.get("peak_memory_mb") or 0 for r in done), default=0)
    with_reference = [r for r in done if r.get("psnr") is not None and r.get("psnr_input") is not None]
    if with_reference:
        summary["improved"] = sum(r["psnr"] > r["psnr_input"] for r in with_reference)
        summary["worse"] = sum(r["psnr"] < r["psnr_input"] for r in with_reference)
    labels: dict[str, int] = {}
    for r in done:
        for label in r.get("labels") or ["(none)"]:
            labels[label] = labels.get(label, 0) + 1
    summary["labels"] = dict(sorted(labels.items()))
    summary["metrics"] = {name: ("computed" if not reason else f"unavailable: {reason}") for name, reason in metric_status.items()}
    return summary


def build_report(rows: dict[str, dict], metric_status: dict[str, str], protocol: str = "irestore",
                 fid: float | None = None) -> dict:
    ordered = [rows[k] for k in sorted(rows)]
    for row in ordered:
        row["gain"] = None if (g := gain(row)) is None else round(g, 4)
    summary = summarize(ordered, metric_status)
    if fid is not None:
        summary["fid"] = round(fid, 4)
    return {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "protocol": PROTOCOLS[protocol].to_dict(),
        "summary": summary,
        "images": ordered,
    }


def set_fid(rows: dict[str, dict], metric_status: dict[str, str], device: str = "cpu") -> float | None:
    """FID of the outputs against their references (all images with one), when its weights are here."""
    from irestore.evaluate.metrics import FIDMetric, MetricUnavailable

    pairs = [(r["output"], r["reference"]) for r in rows.values()
             if r["status"] == "done" and r.get("psnr") is not None and Path(r["output"]).is_file()]
    if not pairs:
        return None
    if len(pairs) < 2:
        metric_status["fid"] = "needs at least 2 images with references"
        return None
    try:
        fid = FIDMetric(device)
    except MetricUnavailable as error:
        metric_status["fid"] = str(error)
        return None
    metric_status["fid"] = ""
    return fid([a for a, _ in pairs], [b for _, b in pairs])


# -- files ---------------------------------------------------------------------------------

def report_paths(folder: Path, stem: str = REPORT_STEM) -> dict[str, Path]:
    return {kind: folder / f"{stem}.{kind}" for kind in ("json", "md", "html")}


def write_report(folder: Path, report: dict, stem: str = REPORT_STEM) -> dict[str, Path]:
    """Write the JSON, Markdown and HTML files (each atomically); returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = report_paths(folder, stem)
    atomic_write_text(paths["json"], json.dumps(report, ensure_ascii=False, indent=1, default=str))
    atomic_write_text(paths["md"], markdown(report))
    atomic_write_text(paths["html"], render_page(report, folder))
    return paths


def markdown(report: dict) -> str:
    lines = ["# irestore restore report", "", *(x for line in summary_lines(report) for x in (line, "")),
             *(f"- {line}" for line in metric_lines(report)), "",
             "| image | labels | plan | rolled back | PSNR in → out (dB) | SSIM in → out | BRISQUE in → out | s | status |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in report["images"]:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in [
            r["relative"], ", ".join(r.get("labels") or []), r.get("plan") or r.get("model") or "",
            ", ".join(r.get("plan_rolled_back") or []),
            f"{cell(r.get('psnr_input'))} → {cell(r.get('psnr'))}" if r.get("psnr") is not None else "",
            f"{cell(r.get('ssim_input'), 4)} → {cell(r.get('ssim'), 4)}" if r.get("ssim") is not None else "",
            f"{cell(r.get('brisque_input'))} → {cell(r.get('brisque'))}" if r.get("brisque") is not None else "",
            cell(r.get("time_restore"), 1), r["status"] if r["status"] == "done" else f"failed: {r.get('error', '')}",
        ]) + " |")
    return "\n".join(lines) + "\n"


class ReportWriter:
    """Keeps the run's report current: rows from the manifests already there, then each finished image.
    A shard writes a report of its own (``stem``) with the rows of its images (``only``, paths
    relative to INPUT): shards running at once never write one file."""

    def __init__(self, folder: Path, metric_status: dict[str, str] | None = None, interval: float = 2.0,
                 device: str = "cpu", stem: str = REPORT_STEM, only: set[str] | None = None) -> None:
        self.folder = folder
        self.device = device
        self.stem = stem
        self.metric_status = metric_status if metric_status is not None else {}
        self.interval = interval
        self.rows = {key: row for key, row in read_records(folder).items() if only is None or key in only}
        for path in report_paths(folder, stem).values():
            remove_stale_temps(path)  # left by a run killed mid-write
        self._lock = threading.Lock()
        self._last = 0.0
        self._cost = 0.0  # seconds the last write took: writes stay under a tenth of the run's time

    def add(self, record: dict) -> None:
        if record.get("status") not in ("done", "failed"):
            return
        with self._lock:
            add_record(self.rows, record)
            if time.monotonic() - self._last >= max(self.interval, 10 * self._cost):
                self._write()

    def close(self) -> dict[str, Path]:
        """The final write, with FID over the whole set (it needs every image, so it is not updated per image)."""
        with self._lock:
            return self._write(set_fid(self.rows, self.metric_status, self.device))

    def _write(self, fid: float | None = None) -> dict[str, Path]:
        began = time.monotonic()
        paths = write_report(self.folder, build_report(self.rows, self.metric_status, fid=fid), self.stem)
        self._last = time.monotonic()
        self._cost = self._last - began
        return paths
