"""`irestore restore INPUT OUTPUT`: batch restoration with progress, manifest and resume."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated

import typer
from rich.table import Table

from irestore.batch import (
    PROMPT_PRECEDENCE,
    Manifest,
    RestoreOptions,
    Summary,
    UsageError,
    plan_jobs,
    resume_decisions,
    run_batch,
    summary_dict,
)
from irestore.batch.report import MANIFEST_NAME, REPORT_STEM
from irestore.batch.shard import SHARD_HELP, Shard, ShardError, hold, parse_shard
from irestore.cli.messages import err, fail
from irestore.cli.restore_progress import BatchProgress
from irestore.devices import DEVICES, PRECISIONS
from irestore.diffusion.tiling import memory_limit
from irestore.io import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS
from irestore.pipeline import DEFAULT_MODEL
from irestore.registry import list_samplers
from irestore.restorers.catalogue import ENSEMBLE
from irestore.restorers.ensemble import COUNTS

FORMATS = {"PNG": "PNG", "JPG": "JPEG", "JPEG": "JPEG", "TIF": "TIFF", "TIFF": "TIFF", "WEBP": "WEBP", "BMP": "BMP"}


def restore(
    input: Annotated[Path, typer.Argument(help="Image file or folder (walked recursively).")],
    output: Annotated[Path, typer.Argument(help="Output folder (mirrors INPUT's tree), or a file for one image.")],
    plan: Annotated[str, typer.Option(help="auto (default: the classifier and a search choose and order pool members per image), fixed (detected degradations in the fixed order), none (one model alone, see --model), or explicit steps such as jpeg:allinone-small,noise:ffdnet-color.")] = "auto",
    refine: Annotated[bool, typer.Option(help="Let --plan auto try the diffusion restorer as a final refinement (kept only when it clearly helps).")] = False,
    model: Annotated[str | None, typer.Option(help="Run this one model alone (implies --plan none): allinone-small, ffdnet-color, any registered method, or a checkpoint path.")] = None,
    scale: Annotated[int, typer.Option(min=1, max=8, help="Make the output this many times larger: a model that upscales (waifu2x-photo, realesrgan-x4plus) is asked for the size, anything else is followed by --upscaler.")] = 1,
    upscaler: Annotated[str, typer.Option(help="Upscaler for --scale after a size-keeping model or plan: auto (realesrgan-x4plus on a GPU, waifu2x-photo on the CPU, where the GAN is about 30x slower), realesrgan-x4plus (GAN: sharp, invented detail), waifu2x-photo (fidelity), realesr-animevideov3 (fast, illustrations) or bicubic.")] = "auto",
    strength: Annotated[float | None, typer.Option(help="The model's own control, for --model waifu2x-photo: its JPEG-noise level 0-3 (default: from the estimated JPEG quality).")] = None,
    ensemble: Annotated[int, typer.Option(help="Self-ensemble: average the model's (or every plan member's) results on 1, 2, 4 or 8 flips/rotations; costs that many runs.")] = 1,
    prompt: Annotated[str | None, typer.Option(help="Text prompt for every image.")] = None,
    prompt_file: Annotated[Path | None, typer.Option(help="CSV (path,prompt) or JSONL keyed by path relative to INPUT.")] = None,
    prompt_from_caption: Annotated[bool, typer.Option(help="Caption each image (without a prompt-file row or sidecar) and use the caption as prompt.")] = False,
    captioner: Annotated[str, typer.Option(help="Captioner for --prompt-from-caption: degradation, coca or file.")] = "degradation",
    files_from: Annotated[Path | None, typer.Option(help="Text file listing inputs (relative to INPUT), one per line.")] = None,
    steps: Annotated[int | None, typer.Option(min=1, max=1000, help="Sampler steps (default: the model's).")] = None,
    sampler: Annotated[str | None, typer.Option(help=f"One of {', '.join(list_samplers())} (default: the model's).")] = None,
    tile: Annotated[int | None, typer.Option(min=0, help="Tile size in px; 0 = never tile; default: from free memory.")] = None,
    tile_overlap: Annotated[int, typer.Option(min=0, help="Overlap between tiles in px.")] = 32,
    batch_size: Annotated[int, typer.Option(min=1, help="Tiles evaluated per network call.")] = 4,
    max_memory: Annotated[str, typer.Option(help="Memory the run may hold, e.g. 4G or 2500M; automatic tiles are sized to stay under it (default: 4G on the CPU; on a GPU, a share of its free memory).")] = "auto",
    device: Annotated[str, typer.Option(help=f"One of {', '.join(DEVICES)}.")] = "auto",
    precision: Annotated[str, typer.Option(help=f"One of {', '.join(PRECISIONS)}: auto is bf16 on CUDA; on a CPU with native bf16, bf16 for the models measured faster in it (derain, lowlight, ffdnet-color), else fp32; fp16: CUDA only.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed (each image derives its own from it and its path).")] = 0,
    format: Annotated[str | None, typer.Option("--format", help="Output format: PNG, JPEG, TIFF, WEBP or BMP (default: same as input).")] = None,
    jpeg_quality: Annotated[int, typer.Option(min=1, max=100, help="Quality for JPEG/WebP outputs.")] = 95,
    max_pixels: Annotated[int, typer.Option(min=1, help="Refuse images with more pixels (decompression bombs).")] = DEFAULT_MAX_PIXELS,
    reference: Annotated[Path | None, typer.Option(help="Ground-truth folder with matching relative paths: adds PSNR/SSIM (and LPIPS when its weights are present).")] = None,
    report: Annotated[bool, typer.Option(help="Write OUTPUT/irestore-report.{json,md,html} (per-image scores, what the plan did, a before/after gallery), kept current as images finish.")] = True,
    overwrite: Annotated[bool, typer.Option(help="Redo images whose outputs already exist.")] = False,
    shard: Annotated[str | None, typer.Option(metavar="K/N|auto", help=SHARD_HELP)] = None,
    dry_run: Annotated[bool, typer.Option(help="List what would be done and exit.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per image on stdout; logs on stderr.")] = False,
) -> None:
    """Restore an image or a folder of images. Exit code: 0 all done, 1 some failed, 2 usage error, 130 interrupted."""
    if prompt_from_caption and prompt is not None:
        fail("--prompt and --prompt-from-caption exclude each other: choose one")
    fmt = FORMATS.get(format.upper()) if format else None
    if format and fmt is None:
        fail(f"--format {format}: choose one of {', '.join(FORMATS)}")
    if sampler and sampler not in list_samplers():
        fail(f"--sampler {sampler}: choose one of {', '.join(list_samplers())}")
    memory = _memory_size(max_memory)
    part = _shard(shard)
    if tile and tile <= tile_overlap:
        fail(f"--tile {tile} must be larger than --tile-overlap {tile_overlap}")
    try:
        jobs = plan_jobs(input, output, files_from=files_from, prompt=prompt, prompt_file=prompt_file, reference_dir=reference, fmt=fmt, prompt_from_caption=prompt_from_caption)
    except (UsageError, OSError) as error:
        fail(str(error))
    if not jobs:
        fail(f"no images found in {input}")
    if part is not None:
        jobs, device = _shard_jobs(jobs, part), _rank_device(device)
        if not jobs:
            return  # a shard with no images (more shards than images): nothing to do, and no error
    _check_device(device)
    manifest_dir = output.parent if input.is_file() and output.suffix.lower() in IMAGE_EXTENSIONS else output
    if model is not None and plan not in ("auto", "none"):
        fail(f"--model runs one model alone; it cannot be combined with --plan {plan}")
    if model is None and plan != "none" and precision not in ("auto", "fp32"):
        fail("--precision applies to one model alone (--model NAME or --plan none); the plan's members run in fp32")
    if ensemble not in COUNTS:
        fail(f"--ensemble {ensemble}: choose one of {', '.join(map(str, COUNTS))}")
    if strength is not None and model is None:
        fail("--strength sets one model's control: use it with --model (e.g. --model waifu2x-photo --strength 2)")
    options = RestoreOptions(steps, sampler, "auto" if tile is None else (tile or None), tile_overlap, batch_size, seed, fmt,
                             jpeg_quality, max_pixels, overwrite, scale, strength)
    needs_caption = any(job.prompt_source == "caption" for job in jobs)
    if model is None and plan != "none":
        restorer = _load_planned(plan, device, seed, refine, ensemble)
    else:
        restorer = _load((model or DEFAULT_MODEL) + (f"{ENSEMBLE}{ensemble}" if ensemble > 1 else ""), device,
                         _supported_precision(precision, device))
        _check_strength(restorer, strength)
    _check_steps(restorer, steps)
    resizer = _load_upscaler(upscaler, device) if scale > 1 and not getattr(restorer, "changes_size", False) else None
    manifest_path = manifest_dir.resolve() / (part.manifest_name if part else MANIFEST_NAME)
    if dry_run:  # after loading: whether an output is current depends on the model's weights hash
        _print_plan(jobs, resume_decisions(jobs, restorer, options, Manifest(manifest_path), resizer,
                                           SimpleNamespace(name=captioner)), json_output)
        return
    with contextlib.ExitStack() as held:
        _claim(held, manifest_path, part)
        manifest = Manifest(manifest_path)
        caption_model = _load_captioner(captioner, device) if needs_caption else None
        meter, writer = _reporting(manifest_dir.resolve(), device, part, jobs) if report else (None, None)
        with memory_limit(memory):
            summary = _run(jobs, restorer, options, manifest, json_output, caption_model, resizer, meter, writer)
    _print_summary(summary)
    if writer is not None:
        err.print(f"report: {writer.folder / writer.stem}.html (.json, .md)", highlight=False)
        for name, reason in meter.status.items():
            if reason:
                err.print(f"[yellow]note[/yellow] {name} not in the report: {reason}")
    if part is not None:
        err.print(f"shard {part} recorded in {manifest_path.name}; once every shard has finished: "
                  f"irestore manifest merge {manifest_dir}", highlight=False)
    raise typer.Exit(summary.exit_code)


def _shard(spec: str | None) -> Shard | None:
    """--shard as a Shard (None without it); a bad spec, or auto without a launcher's variables, is a usage error."""
    try:
        return None if spec is None else parse_shard(spec)
    except ShardError as error:
        fail(str(error))


def _shard_jobs(jobs: list, part: Shard) -> list:
    """The jobs of this shard, chosen from every image found (so N shards cover the folder whatever each sees)."""
    mine = [job for job in jobs if part.owns(job.relative)]
    origin = f" (from {part.source})" if part.source else ""
    err.print(f"shard {part}{origin}: {len(mine)} of {len(jobs)} image(s)", highlight=False)
    return mine


def _rank_device(device: str) -> str:
    from irestore.devices import rank_device

    try:
        return rank_device(device, os.environ)
    except ValueError as error:
        fail(f"--device {device}: {error}")


def _check_device(device: str) -> None:
    """An absent or unknown device (cuda on a machine without CUDA) is a usage error, before any model loads."""
    from irestore.devices import resolve_device

    try:
        resolve_device(device)
    except (ValueError, RuntimeError) as error:
        fail(f"--device {device}: {error}")


def _claim(stack: contextlib.ExitStack, manifest_path: Path, part: Shard | None) -> None:
    """A run holds its manifest: the same shard (or a second unsharded run) started into this OUTPUT
    meanwhile is refused, and so is a manifest merge, which would lose the records appended after it read them."""
    what = f"shard {part}" if part is not None else "a restore without --shard"
    try:
        stack.enter_context(hold(manifest_path, f"{manifest_path} is in use by another process: {what} is "
                                                "already running into this OUTPUT, or a manifest merge is"))
    except ShardError as error:
        fail(str(error))


UNITS = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def _memory_size(text: str) -> int | None:
    """--max-memory: ``auto`` (None) or a size such as 4G, 2500M, 3.5GB, in bytes."""
    if text.lower() == "auto":
        return None
    number, unit = text.upper().removesuffix("B").removesuffix("I"), "B"
    if number and number[-1] in UNITS:
        number, unit = number[:-1], number[-1]
    try:
        size = float(number) * UNITS.get(unit, 1)
    except ValueError:
        size = 0
    if size < 256 * 2**20:
        fail(f"--max-memory {text}: give auto or a size of at least 256M, such as 4G or 2500M")
    return int(size)


def _supported_precision(precision: str, device: str) -> str:
    """``precision``, or fp32 with a note when the device cannot run it."""
    from irestore.devices import precision_supported, resolve_device

    if precision in PRECISIONS and not precision_supported(precision, resolved := resolve_device(device)):
        err.print(f"[yellow]note[/yellow] --precision {precision} does not run on {resolved.type}; using fp32"
                  + (" (bf16 does, on the CPU)" if resolved.type == "cpu" else ""))
        return "fp32"
    return precision


def _load(model: str, device: str, precision: str):
    from irestore.pipeline import load_model

    try:
        restorer = load_model(model, device=device, precision=precision)
    except (FileNotFoundError, ValueError, KeyError) as error:
        fail(f"cannot load model {model!r}: {error}")
    err.print(f"model: {restorer.description}")
    return restorer


def _check_steps(restorer, steps: int | None) -> None:
    from irestore.pipeline import check_steps

    try:
        check_steps(restorer, steps)
    except ValueError as error:
        fail(f"--steps: {error}")


def _check_strength(restorer, strength: float | None) -> None:
    if strength is None:
        return
    bounds = getattr(getattr(getattr(restorer, "method", None), "card", None), "strengths", None)
    if bounds is None:
        fail(f"--strength: model {restorer.name!r} has no strength control (waifu2x-photo has)")
    if not bounds[0] <= strength <= bounds[1]:
        fail(f"--strength {strength:g}: {restorer.name} takes {bounds[0]:g} to {bounds[1]:g}")


AUTO_UPSCALER = {"cpu": "waifu2x-photo"}  # elsewhere (cuda, mps): realesrgan-x4plus


def _load_upscaler(name: str, device: str):
    from irestore.devices import resolve_device
    from irestore.restorers import create_restorer, method_info

    if name == "auto":
        name = AUTO_UPSCALER.get(resolve_device(device).type, "realesrgan-x4plus")
    try:
        if not method_info(name).card.changes_size:
            fail(f"--upscaler {name}: it does not change the image size")
        upscaler = create_restorer(name, device=str(resolve_device(device)))
    except (FileNotFoundError, ValueError, KeyError) as error:
        fail(f"cannot load upscaler {name!r}: {error}")
    err.print(f"upscaler: {upscaler.description}")
    return upscaler


def _load_planned(plan: str, device: str, seed: int, refine: bool, ensemble: int = 1):
    from irestore.devices import resolve_device
    from irestore.plan import AdaptiveRestorer

    try:
        restorer = AdaptiveRestorer.create(plan, device=str(resolve_device(device)), seed=seed, refine=refine, ensemble=ensemble)
    except (FileNotFoundError, ValueError, KeyError) as error:
        fail(f"--plan {plan}: {error}")
    err.print(f"plan: {restorer.description}")
    return restorer


def _load_captioner(name: str, device: str):
    from irestore.devices import resolve_device
    from irestore.registry import create_captioner

    try:
        options = {} if name == "file" else {"device": str(resolve_device(device))}
        captioner = create_captioner(name, **options)
    except (FileNotFoundError, ValueError, KeyError) as error:
        fail(f"cannot load captioner {name!r}: {error}")
    err.print(f"captioner: {captioner.name}")
    return captioner


def _print_plan(jobs, decisions, as_json: bool) -> None:
    """What a run would do with each image: restore it (and why, when it has an output), or skip it (and why)."""
    err.print(f"prompt precedence: {PROMPT_PRECEDENCE}", highlight=False)
    for job, decision in zip(jobs, decisions):
        action = "skip" if decision.keep else "restore"
        if as_json:
            print(json.dumps({"input": str(job.source), "output": str(job.target), "action": action,
                              "reason": decision.reason, "prompt": job.prompt, "prompt_source": job.prompt_source},
                             ensure_ascii=False))
        else:
            why = f"; {decision.reason}" if decision.reason else ""
            what = f"skip: {decision.reason}" if decision.keep else f"{job.prompt_source}: {job.prompt!r}{why}"
            err.print(f"{job.source} -> {job.target}  [dim]{what}[/dim]", highlight=False)
    skipped = sum(decision.keep for decision in decisions)
    err.print(f"{len(jobs) - skipped} image(s) would be restored, {skipped} skipped")


def _reporting(folder: Path, device: str, part: Shard | None = None, jobs: list | None = None):
    """The quality meter and the report writer; a shard's report is a file of its own, of its images."""
    from irestore.batch.quality import QualityMeter
    from irestore.batch.report import ReportWriter
    from irestore.devices import resolve_device

    meter = QualityMeter(device=str(resolve_device(device)))
    if part is None:
        return meter, ReportWriter(folder, meter.status, device=meter.device, stem=REPORT_STEM)
    only = {job.relative.as_posix() for job in jobs or []}
    return meter, ReportWriter(folder, meter.status, device=meter.device, stem=part.report_stem, only=only)


def _run(jobs, restorer, options: RestoreOptions, manifest: Manifest, as_json: bool, captioner=None, upscaler=None,
         meter=None, report=None) -> Summary:
    stop = threading.Event()

    def interrupt(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        err.print("[yellow]interrupted: finishing the current image (Ctrl-C again to abort now)[/yellow]")
        stop.set()

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        with BatchProgress(err) as display:
            finished = []
            def on_record(record):
                if record["status"] == "skipped":
                    return _emit(record, as_json)
                if record["status"] == "done" and record.get("generative"):
                    display.console.print(f"[yellow]note[/yellow] {record['relative']}: a generative (GAN) model ran "
                                          f"({record.get('upscaler') or record.get('plan') or record['model']}): its fine detail is invented")
                elif record["status"] == "failed":
                    display.console.print(_failure_line(record["input"], record["error"]), highlight=False)
                display.finished(record)
                if record["status"] == "done":
                    finished.append({key: record.get(key) for key in ROW_KEYS})
                _emit(record, as_json)

            summary = run_batch(jobs, restorer, options, manifest, on_start=display.start, on_record=on_record,
                                on_todo=display.todo, on_progress=display.inside, stop=stop, captioner=captioner,
                                upscaler=upscaler, meter=meter, report=report)
        _print_images(finished)
        return summary
    except KeyboardInterrupt:  # the second Ctrl-C: the image in hand is abandoned, finished ones are kept
        err.print("[yellow]aborted: the image in progress was dropped; rerun the same command to continue[/yellow]")
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGINT, previous)


def _failure_line(path: str, error: str) -> str:
    """One line naming the path once (an unreadable file's error already starts with it)."""
    return f"[red]failed[/red] {error}" if error.startswith(path) or path in error.split(": ")[0] else f"[red]failed[/red] {path}: {error}"


def _emit(record: dict, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        sys.stdout.flush()


ROW_KEYS = ("relative", "psnr_input", "psnr", "time_restore", "plan", "model")
SHOWN_ROWS = 30  # a longer batch lists its first rows; the report lists every image


def _print_images(rows: list[dict]) -> None:
    """One row per restored image: PSNR of input and output (with --reference), time, what ran."""
    if not rows:
        return
    scored = any(row["psnr"] is not None for row in rows)
    table = Table(title="restored images", title_justify="left", expand=False)
    table.add_column("image", overflow="fold")
    if scored:
        table.add_column("PSNR in", justify="right")
        table.add_column("PSNR out", justify="right")
    table.add_column("time", justify="right")
    table.add_column("plan / model", overflow="fold")
    for row in rows[:SHOWN_ROWS]:
        scores = [_db(row["psnr_input"]), _db(row["psnr"])] if scored else []
        what = row["plan"] if row["plan"] is not None else row["model"]
        table.add_row(row["relative"], *scores, f"{row['time_restore'] or 0:.1f} s", (what or "(no step)").replace(",", ", "))
    err.print(table)
    if len(rows) > SHOWN_ROWS:
        err.print(f"... and {len(rows) - SHOWN_ROWS} more images: every one is in the report and the manifest")


def _db(value) -> str:
    return "-" if value is None else f"{value:.2f} dB"


def _print_summary(summary: Summary) -> None:
    data = summary_dict(summary)
    columns = ["done", "skipped", "failed", "time"]
    row = [str(summary.done), str(summary.skipped), str(summary.failed), f"{summary.seconds:.1f} s"]
    if "mean_psnr" in data:
        columns += ["mean PSNR", "mean SSIM"]
        row += [f"{data['mean_psnr']:.2f} dB", f"{data['mean_ssim']:.4f}"]
    table = Table(title="irestore restore")
    for column in columns:
        table.add_column(column, justify="right")
    table.add_row(*row)
    err.print(table)
    for path, error in summary.failures:
        err.print(_failure_line(path, error), highlight=False)
    if summary.redone:
        err.print(f"[yellow]note[/yellow] {summary.redone} existing output(s) were restored again: made with other "
                  "settings, or incomplete (--dry-run lists why)")
    if summary.interrupted:
        err.print("[yellow]interrupted: rerun the same command to continue[/yellow]")


def register(app: typer.Typer) -> None:
    app.command("restore", no_args_is_help=True)(restore)
