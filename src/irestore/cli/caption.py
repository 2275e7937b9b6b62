"""`irestore caption INPUT`: a caption per image, printed, as sidecar .txt files or as JSONL.

The JSONL rows carry ``path`` and ``prompt``, so the file works as `irestore restore --prompt-file`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from irestore.cli.inputs import InputImage, decoded_images
from irestore.cli.messages import err, fail
from irestore.conditioning.captioners import Captioner
from irestore.io import DEFAULT_MAX_PIXELS, atomic_write_text
from irestore.registry import create_captioner, list_captioners, list_classifiers


def caption_command(
    input: Annotated[Path, typer.Argument(help="Image file or folder (walked recursively).")],
    captioner: Annotated[str, typer.Option(help=f"One of {', '.join(list_captioners())}.")] = "degradation",
    classifier: Annotated[str | None, typer.Option(help="Degradation classifier model (default degnet-default; 'none' for coca alone).")] = None,
    backend: Annotated[str, typer.Option(help=f"Classifier backend: {' or '.join(list_classifiers())}.")] = "degnet",
    model: Annotated[str | None, typer.Option(help="CoCa model for --captioner coca: coca-b32, ARCH:TAG or ARCH:FILE.")] = None,
    prompt_file: Annotated[Path | None, typer.Option(help="For --captioner file: CSV (path,prompt) or JSONL keyed by relative path.")] = None,
    threshold: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="One probability from which every degradation is named (default: the classifier's calibrated per-label thresholds).")] = None,
    write_sidecars: Annotated[bool, typer.Option(help="Write IMAGE.txt beside each image (existing ones kept unless --overwrite).")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace existing sidecar files.")] = False,
    jsonl: Annotated[Path | None, typer.Option(help="Write one JSON row per image (path, prompt, caption_source, labels).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per image on stdout; tables on stderr.")] = False,
    seed: Annotated[int, typer.Option(help="Seed for sampled CoCa captions.")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    offline: Annotated[bool, typer.Option(help="Never download weights (as HF_HUB_OFFLINE=1).")] = False,
    max_pixels: Annotated[int, typer.Option(min=1, help="Refuse images with more pixels.")] = DEFAULT_MAX_PIXELS,
) -> None:
    """Caption an image or a folder of images. Exit code: 0 all captioned, 1 some failed, 2 usage error."""
    if not input.exists():
        fail(f"INPUT {input}: no such file or folder")
    engine = _load(captioner, classifier, backend, model, prompt_file, threshold, seed, device, offline)
    rows = []
    for item in decoded_images(input, max_pixels, decode=engine.needs_pixels):
        row = _caption_one(engine, item)
        if row["status"] == "done" and write_sidecars:
            row["sidecar"] = _write_sidecar(item.path, row["prompt"], overwrite)
        rows.append(row)
        if json_output:
            print(json.dumps(row, ensure_ascii=False), flush=True)
        if row["status"] == "failed":
            err.print(f"[red]failed[/red] {item.path}: {row['error']}")
    if not rows:
        fail(f"no images found in {input}")
    if jsonl is not None:
        done = [{k: r[k] for k in ("path", "prompt", "caption_source", "labels")} for r in rows if r["status"] == "done"]
        atomic_write_text(jsonl, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in done))
    err.print(_table(rows, engine.name))
    raise typer.Exit(1 if any(r["status"] == "failed" for r in rows) else 0)


def _load(name, classifier, backend, model, prompt_file, threshold, seed, device, offline) -> Captioner:
    if name not in list_captioners():
        fail(f"--captioner {name}: choose one of {', '.join(list_captioners())}")
    options: dict = {"table": prompt_file} if name == "file" else {
        "classifier": classifier, "backend": backend, "device": device, "threshold": threshold, "offline": offline or None,
    }
    if name == "coca":
        with_degradation = (classifier or "").lower() != "none"
        options |= {"model": model, "seed": seed, "with_degradation": with_degradation}
        options["classifier"] = classifier if with_degradation else None
    try:
        return create_captioner(name, **options)
    except (FileNotFoundError, ValueError, KeyError) as error:
        fail(f"cannot load captioner {name!r}: {error}")


def _caption_one(engine: Captioner, item: InputImage) -> dict:
    row = {"input": item.path.as_posix(), "path": item.relative, "status": "failed", "error": item.error}
    if item.error is not None:
        return row
    try:
        caption = engine.caption(item.pixels, item.path, item.relative)
    except Exception as error:  # noqa: BLE001 - one image must not end the batch
        return row | {"error": str(error)}
    return row | {"status": "done", "prompt": caption.text, **caption.to_dict()}


def _write_sidecar(image: Path, text: str, overwrite: bool) -> str:
    """IMAGE.txt beside the image (a new file; the image itself is never touched)."""
    sidecar = image.with_suffix(".txt")
    if sidecar.exists() and not overwrite:
        return f"kept existing {sidecar}"
    atomic_write_text(sidecar, text + "\n")
    return sidecar.as_posix()


def _table(rows: list[dict], name: str) -> Table:
    table = Table(title=f"irestore caption ({name})")
    for column in ("image", "caption", "source"):
        table.add_column(column, overflow="fold")
    for row in rows:
        if row["status"] == "failed":
            table.add_row(row["path"], f"[red]failed: {row['error']}[/red]", "")
        else:
            table.add_row(row["path"], row["prompt"], row["caption_source"])
    return table


def register(app: typer.Typer) -> None:
    app.command("caption", no_args_is_help=True)(caption_command)
