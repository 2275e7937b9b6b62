"""Batch restoration of files and folders: the threaded run of planned jobs, resume, manifest.

Decoding (reader thread) and encoding (writer thread) overlap with compute through bounded
queues, so memory stays bounded on any folder size. Every output is written atomically and
recorded in an append-only JSONL manifest; a rerun skips outputs that are complete.
This module returns data and emits events; the CLI renders them.
"""

from __future__ import annotations

import os
import queue
import resource
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from irestore import observe
from irestore.batch.jobs import Job, RestoreOptions
from irestore.batch.quality import QualityMeter
from irestore.batch.queue import PixelQueue
from irestore.batch.report import ReportWriter, write_previews
from irestore.batch.resume import OVERWRITE, Decision, decide, file_stamp, finished_outputs
from irestore.io import (
    OUTPUT_MAX_PIXELS,
    ImageError,
    Manifest,
    copy_source,
    image_to_tensor,
    read_image,
    remove_stale_temps,
    tensor_to_rgb,
    unchanged_source,
    write_image,
)


@dataclass
class Summary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    interrupted: bool = False
    seconds: float = 0.0
    megapixels: float = 0.0
    redone: int = 0  # existing outputs restored again: made with other settings, or incomplete
    failures: list[tuple[str, str]] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else (1 if self.failed else 0)


# -- manifest ---------------------------------------------------------------------------

def resume_decisions(jobs: list[Job], model, options: RestoreOptions, manifest: Manifest, upscaler=None,
                     captioner=None) -> list[Decision]:
    """For each job, whether its existing output is kept (complete, made with this run's settings)
    or it is restored (again), and why; ``--overwrite`` restores every job."""
    if options.overwrite:
        return [Decision(False, OVERWRITE) for _ in jobs]
    previous = finished_outputs(manifest.path.parent)
    return [decide(job.target, _base_record(job, model, options, upscaler, captioner)["settings"],
                   previous.get(os.path.normcase(job.target.as_posix()))) for job in jobs]


# -- running ----------------------------------------------------------------------------

def image_seed(seed: int, relative: Path) -> int:
    """Per-image seed from the run seed and the relative path: independent of order and resume."""
    return (seed * 1_000_003 + zlib.crc32(relative.as_posix().encode())) % 2**62


def _peak_memory_mb(device: torch.device | None) -> float:
    if device is not None and device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _settings(job: Job, record: dict, options: RestoreOptions, upscaler, captioner) -> dict:
    """What made an output, as compared on a rerun (batch_resume): tiling and the device are left
    out (they change pixels only within the tiling tolerance); JPEG quality counts for lossy outputs."""
    settings = {key: record[key] for key in ("model", "model_hash", "sampler", "steps", "seed", "scale", "precision",
                                             "prompt", "prompt_source")}
    settings["format"] = options.format
    if job.target.suffix.lower() in (".jpg", ".jpeg", ".webp"):
        settings["jpeg_quality"] = options.jpeg_quality
    if options.strength is not None:
        settings["strength"] = options.strength
    if options.scale > 1 and upscaler is not None:
        settings["upscaler"] = upscaler.name
    if job.prompt_source == "caption":
        settings["captioner"] = getattr(captioner, "name", None)
    return settings


def _base_record(job: Job, model, options: RestoreOptions, upscaler=None, captioner=None) -> dict:
    settings = getattr(model, "sampler_settings", None)  # peer models have no sampler
    sampler, steps = settings(options.sampler, options.steps) if settings else (None, None)
    record = {
        "input": job.source.as_posix(),
        "relative": job.relative.as_posix(),
        "output": job.target.as_posix(),
        "prompt": job.prompt,
        "prompt_source": job.prompt_source,
        "caption": None,
        "caption_source": None,
        "labels": None,
        "model": model.name,
        "model_hash": model.fingerprint,
        "sampler": sampler,
        "steps": steps,
        "tile": options.tile,
        "tile_overlap": options.tile_overlap,
        "seed": image_seed(options.seed, job.relative),
        "scale": options.scale,
        "device": str(getattr(model, "device", "cpu")),
        "precision": str(getattr(model, "dtype", torch.float32)).replace("torch.", ""),
    }
    return record | {"settings": _settings(job, record, options, upscaler, captioner)}


_END = object()


def run_batch(
    jobs: list[Job],
    model,
    options: RestoreOptions,
    manifest: Manifest,
    *,
    on_start: Callable[[Job], None] | None = None,
    on_record: Callable[[dict], None] | None = None,
    on_todo: Callable[[list[Job]], None] | None = None,
    on_progress: Callable[[Job, str | None, int, int], None] | None = None,
    stop: threading.Event | None = None,
    captioner=None,
    upscaler=None,
    meter: QualityMeter | None = None,
    report: ReportWriter | None = None,
) -> Summary:
    """Restore every job not already complete; returns the summary. `stop` ends the batch
    after the image in progress (its output and manifest record are still written).
    `captioner` (irestore.conditioning.captioners) writes the prompt of jobs whose prompt
    source is "caption". With ``options.scale`` > 1, a model that keeps the size is followed by
    ``upscaler`` (a registered restoration method) to reach the larger size. ``meter`` scores each
    output (default: PSNR/SSIM against a job's reference only); ``report`` gets every finished
    image's record and previews, and is written once more at the end, interrupted or not.
    ``on_todo`` gets the jobs to restore (after skipping kept outputs); ``on_progress(job, stage,
    tiles_done, tiles_total)`` reports inside an image: a plan step beginning (``stage`` set) or
    tiles done in the current pass (``stage`` None)."""
    stop = stop or threading.Event()
    meter = meter or QualityMeter(brisque=False, lpips=False)
    summary = Summary()
    started = time.perf_counter()
    todo = []
    for job, decision in zip(jobs, resume_decisions(jobs, model, options, manifest, upscaler, captioner)):
        if decision.keep:
            record = {**_base_record(job, model, options, upscaler, captioner), "status": "skipped", "error": None}
            _finish(record | {"reason": decision.reason}, summary, on_record)
        else:
            summary.redone += decision.redone
            todo.append(job)
    if on_todo:
        on_todo(todo)
    decoded, restored = PixelQueue(_decoded_pixels), PixelQueue(_restored_pixels)
    reader = threading.Thread(target=_read_all, args=(todo, options, decoded, stop), daemon=True)
    writer = threading.Thread(
        target=_write_all, args=(restored, options, manifest, summary, on_record, meter, report), daemon=True
    )
    reader.start()
    writer.start()
    interrupted = False
    try:
        for job, image, read_seconds, error in _drain_until(decoded, stop):
            record = _base_record(job, model, options, upscaler, captioner)
            if error is not None:
                restored.put((job, None, None, {**record, "status": "failed", "error": str(error)}))
                continue
            if on_start:
                on_start(job)
            watcher = _watcher(job, on_progress)
            with observe.watch(watcher):
                result = _restore_one(job, image, read_seconds, model, options, record, captioner, upscaler)
            result[3]["tile_used"] = sorted(watcher.tiles) or None
            restored.put(result)
        interrupted = stop.is_set()  # only an outside request sets it before this point
    finally:
        stop.set()  # let the reader finish if we leave early
        restored.put(_END)
        writer.join()
        reader.join()
        if report is not None:
            report.close()
    summary.interrupted = interrupted and summary.done + summary.failed < len(todo)
    summary.seconds = time.perf_counter() - started
    return summary


def _watcher(job: Job, on_progress) -> observe.Watcher:
    """Collects the tile sizes chosen for ``job`` and forwards progress inside it."""
    if on_progress is None:
        return observe.Watcher()
    return observe.Watcher(on_stage=lambda name: on_progress(job, name, 0, 0),
                           on_tiles=lambda done, total: on_progress(job, None, done, total))


def _decoded_pixels(item) -> int:
    image = item[1] if isinstance(item, tuple) else None
    return 0 if image is None else image.rgb.shape[0] * image.rgb.shape[1]


def _restored_pixels(item) -> int:
    if not isinstance(item, tuple) or item[2] is None:
        return 0
    return _decoded_pixels(item) + item[2].shape[0] * item[2].shape[1]


def _drain(q: PixelQueue) -> Iterator[tuple]:
    while (item := q.get()) is not _END:
        yield item


def _drain_until(q: PixelQueue, stop: threading.Event) -> Iterator[tuple]:
    """Items of ``q`` until its end or until ``stop`` is set (Ctrl-C): images already read ahead
    are then left for the rerun, and only the one in hand is finished."""
    while not stop.is_set():
        try:
            item = q.get(timeout=0.05)
        except queue.Empty:
            continue
        if item is _END or stop.is_set():
            return
        yield item


def _read_all(jobs: list[Job], options: RestoreOptions, out: PixelQueue, stop: threading.Event) -> None:
    for job in jobs:
        if stop.is_set():
            break
        began = time.perf_counter()
        try:
            item = (job, read_image(job.source, options.max_pixels), time.perf_counter() - began, None)
        except ImageError as error:
            item = (job, None, 0.0, error)
        except Exception as error:  # anything unexpected still must not end the batch
            item = (job, None, 0.0, ImageError(job.source, f"unreadable ({type(error).__name__}: {error})"))
        if not _put_unless_stopped(out, item, stop):
            return
    _put_unless_stopped(out, _END, stop)


def _put_unless_stopped(q: PixelQueue, item, stop: threading.Event) -> bool:
    """Put ``item`` once there is room; False (item dropped) when ``stop`` is set first, so a
    reader never blocks on a queue nobody drains any more."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def _caption(job: Job, pixels: torch.Tensor, captioner, record: dict) -> tuple[dict, object]:
    """The record with the caption as prompt, for jobs that take their prompt from a caption, and
    the classification the captioner made (None when it made none)."""
    if job.prompt_source != "caption":
        return record, None
    if captioner is None:
        raise ValueError("this job's prompt comes from a caption, but no captioner was given")
    caption = captioner.caption(pixels, job.source, job.relative.as_posix())
    fields = {"prompt": caption.text, "caption": caption.text, "caption_source": caption.source, "labels": caption.labels}
    return record | fields, caption.classification


def _run_model(model, pixels: torch.Tensor, record: dict, options: RestoreOptions, classification, upscaler=None) -> tuple[torch.Tensor, dict]:
    """Restore with a planned restorer (its plan goes into the record) or a single model, then
    bring the result to ``options.scale`` times the input's size."""
    target = (pixels.shape[-2] * options.scale, pixels.shape[-1] * options.scale)
    if hasattr(model, "restore_planned"):
        from irestore.restorers import RunSettings

        settings = RunSettings(options.steps, options.sampler, options.tile, options.tile_overlap, options.tile_batch)
        result = model.restore_planned(pixels, prompt=record["prompt"], prompt_source=record["prompt_source"],
                                       settings=settings, classification=classification)
        image, fields = result.image, result.to_record()
    else:
        sized = {"target_size": target} if getattr(model, "changes_size", False) else {}
        strength = {"strength": options.strength} if options.strength is not None else {}
        generator = torch.Generator().manual_seed(record["seed"])
        image = model.restore(
            pixels,
            prompt=record["prompt"],
            steps=options.steps,
            sampler=options.sampler,
            tile=options.tile,
            tile_overlap=options.tile_overlap,
            tile_batch=options.tile_batch,
            generator=generator,
            **sized,
            **strength,
        )
        fields = {"generative": bool(getattr(model, "generative", False))}
    if tuple(image.shape[-2:]) != target:
        image, fields = _upscale(image, target, upscaler, fields, options.tile)
    return image, fields


def _upscale(image: torch.Tensor, target: tuple[int, int], upscaler, fields: dict, tile) -> tuple[torch.Tensor, dict]:
    if upscaler is None:
        raise ValueError(f"the result is {tuple(image.shape[-2:])}, {target} was asked, and no upscaler was given")
    from irestore.restorers import Condition, RunSettings

    began = time.perf_counter()
    image = upscaler.restore(image, Condition(labels=("lowres",), target_size=target), RunSettings(tile=tile))
    generative = bool(fields.get("generative")) or upscaler.card.generative
    return image, fields | {"upscaler": upscaler.name, "generative": generative, "time_upscale": round(time.perf_counter() - began, 4)}


def _restore_one(job: Job, image, read_seconds: float, model, options: RestoreOptions, record: dict, captioner=None, upscaler=None):
    device = getattr(model, "device", None)
    if device is not None and device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    pixels = image_to_tensor(image.rgb)
    try:
        record, classification = _caption(job, pixels, captioner, record)
    except Exception as error:  # one image without a caption must not end the batch
        return job, None, None, {**record, "status": "failed", "error": f"captioning failed: {error}"}
    began = time.perf_counter()
    try:
        result, fields = _run_model(model, pixels, record, options, classification, upscaler)
        record |= fields
    except Exception as error:  # one bad image must not end the batch
        return job, None, None, {**record, "status": "failed", "error": f"restoration failed: {error}"}
    height, width = image.rgb.shape[:2]
    record |= {
        "megapixels": round(height * width / 1e6, 4),
        "time_read": round(read_seconds, 4),
        "time_restore": round(time.perf_counter() - began, 4),
        "peak_memory_mb": round(_peak_memory_mb(device), 1),
    }
    return job, image, tensor_to_rgb(result), record


def _write_all(q: PixelQueue, options, manifest: Manifest, summary: Summary, on_record, meter: QualityMeter,
               report: ReportWriter | None) -> None:
    for job, image, rgb, record in _drain(q):
        if rgb is not None:
            record = _write_one(job, image, rgb, options, record)
            if record["status"] == "done":
                record |= _measured(job, image.rgb, meter, report)
        record["finished_at"] = round(time.time(), 3)  # orders records across manifests (manifest merge)
        manifest.append(record)
        if report is not None:
            report.add(record)
        _finish(record, summary, on_record)


def _measured(job: Job, source, meter: QualityMeter, report: ReportWriter | None) -> dict:
    """Scores and report previews of the file as written (a JPEG output is measured after its
    compression); a failure here costs the numbers, not the image."""
    if job.reference is None and report is None:
        return {}
    try:
        rgb = read_image(job.target, OUTPUT_MAX_PIXELS).rgb
        fields = meter.measure(source, rgb, job.reference)
        if report is not None:
            fields["previews"] = write_previews(report.folder, job.relative.as_posix(), source, rgb)
    except Exception as error:  # noqa: BLE001 (in the writer thread: nothing may end it, or the batch would hang)
        return {"report_error": f"{type(error).__name__}: {error}"}
    return fields


def _write_one(job: Job, image, rgb, options: RestoreOptions, record: dict) -> dict:
    began = time.perf_counter()
    try:
        job.target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(job.target)  # left by a run that was killed mid-write
        copied = unchanged_source(image, rgb, options.format)  # untouched: the file itself, not a re-encoding
        if copied:
            copy_source(job.target, image)
        else:
            write_image(job.target, image, rgb, format=options.format, jpeg_quality=options.jpeg_quality)
    except (ImageError, OSError) as error:
        return {**record, "status": "failed", "error": f"cannot write {job.target}: {error}"}
    return {**record, "status": "done", "error": None, "time_write": round(time.perf_counter() - began, 4),
            **({"copied": True} if copied else {}), **file_stamp(job.target)}


def _finish(record: dict, summary: Summary, on_record) -> None:
    status = record["status"]
    if status == "done":
        summary.done += 1
        summary.megapixels += record.get("megapixels", 0.0)
        if "psnr" in record:
            summary.psnr.append(record["psnr"])
            summary.ssim.append(record["ssim"])
    elif status == "skipped":
        summary.skipped += 1
    else:
        summary.failed += 1
        summary.failures.append((record["input"], record["error"]))
    if on_record:
        on_record(record)


def summary_dict(summary: Summary) -> dict:
    data = {k: v for k, v in asdict(summary).items() if k not in ("psnr", "ssim")}
    if summary.psnr:
        data["mean_psnr"] = sum(summary.psnr) / len(summary.psnr)
        data["mean_ssim"] = sum(summary.ssim) / len(summary.ssim)
    return data
