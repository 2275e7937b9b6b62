"""`irestore classify INPUT`: what is wrong with each image (labels, probabilities, severities, route)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from irestore.cli.inputs import InputImage, decoded_images
from irestore.cli.messages import err, fail
from irestore.conditioning.classifier import Classification
from irestore.conditioning.routing import route
from irestore.io import DEFAULT_MAX_PIXELS, atomic_write_text
from irestore.labels import LABELS, PRETTY, SEVERITY_SCALES
from irestore.registry import create_classifier, list_classifiers


def classify_command(
    input: Annotated[Path, typer.Argument(help="Image file or folder (walked recursively).")],
    backend: Annotated[str, typer.Option(help=f"Classifier: {' or '.join(list_classifiers())} (CLIP zero-shot).")] = "degnet",
    model: Annotated[str | None, typer.Option(help="Model name or path (default degnet-default; clip: clip-b32 or ARCH:TAG|FILE).")] = None,
    threshold: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="One probability from which every degradation is reported (default: the classifier's calibrated per-label thresholds).")] = None,
    show_route: Annotated[bool, typer.Option("--route", help="Say which restorations each image needs, in order.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per image on stdout; tables on stderr.")] = False,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Also write one row per image to this CSV file.")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    offline: Annotated[bool, typer.Option(help="Never download weights (as HF_HUB_OFFLINE=1).")] = False,
    max_pixels: Annotated[int, typer.Option(min=1, help="Refuse images with more pixels.")] = DEFAULT_MAX_PIXELS,
) -> None:
    """Classify the degradations of an image or a folder of images. Exit code: 0 all classified,
    1 some files could not be read, 2 usage error (bad input, missing model)."""
    if not input.exists():
        fail(f"INPUT {input}: no such file or folder")
    try:
        classifier = create_classifier(backend, model, device, threshold, offline or None)
    except (FileNotFoundError, ValueError, KeyError) as error:
        fail(f"cannot load the {backend} classifier: {error}")
    rows = []
    for item in decoded_images(input, max_pixels):
        result, error = _classify(classifier, item)
        row = _row(item.path, item.relative, result, error)
        rows.append(row)
        if json_output:
            print(json.dumps(row, ensure_ascii=False), flush=True)
        if error is not None:
            err.print(f"[red]failed[/red] {item.path}: {error}")
    if not rows:
        fail(f"no images found in {input}")
    if csv_path is not None:
        atomic_write_text(csv_path, _csv(rows))
    err.print(_table(rows, show_route, classifier.name))
    err.print(_summary(rows))
    raise typer.Exit(1 if any(r["status"] == "failed" for r in rows) else 0)


def _classify(classifier, item: InputImage) -> tuple[Classification | None, str | None]:
    if item.error is not None:
        return None, item.error
    try:
        return classifier.classify(item.pixels), None
    except Exception as error:  # noqa: BLE001 - one image must not end the batch
        return None, f"classification failed: {error}"


def _row(path: Path, relative: str, result: Classification | None, error: str | None) -> dict:
    row = {"input": path.as_posix(), "relative": relative, "status": "failed" if result is None else "done", "error": error}
    if result is not None:
        row |= result.to_dict()
        row["route"] = route(result)
    return row


def _label_text(row: dict, label: str) -> str:
    """``motion blur (0.62)``; a label below its threshold (named because the image is not
    confidently clean) says so: ``motion blur (0.31, uncertain)``; ``clean`` alone."""
    if label == "clean":  # decided from the degradations' absence, not from one probability
        return PRETTY[label]
    note = "" if label in row["found"] else ", uncertain"
    return f"{PRETTY[label]} ({row['probabilities'][label]:.2f}{note})"


def _severity_text(row: dict, label: str) -> str:
    value = row["severity_values"][label]
    return f"{value:.3g} {SEVERITY_SCALES[label][3]}"


def _table(rows: list[dict], show_route: bool, name: str) -> Table:
    table = Table(title=f"irestore classify ({name})")
    for column in ("image", "labels (probability)", "severity", *(["route"] if show_route else [])):
        table.add_column(column, overflow="fold")
    for row in rows:
        if row["status"] == "failed":
            table.add_row(row["relative"], f"[red]failed: {row['error']}[/red]", "", *([""] if show_route else []))
            continue
        labels = ", ".join(_label_text(row, lab) for lab in row["labels"])
        severity = ", ".join(_severity_text(row, lab) for lab in row["labels"] if lab != "clean")
        steps = " -> ".join(row["route"]) or "none (clean)"
        table.add_row(row["relative"], labels, severity, *([steps] if show_route else []))
    return table


def _summary(rows: list[dict]) -> str:
    done = [r for r in rows if r["status"] == "done"]
    counts = {label: sum(label in r["labels"] for r in done) for label in LABELS}
    found = ", ".join(f"{PRETTY[k]} {v}" for k, v in counts.items() if v)
    return f"{len(done)} classified, {len(rows) - len(done)} failed; {found or 'nothing found'}"


def _csv(rows: list[dict]) -> str:
    """One row per image: status, labels, route, then a probability and a severity column per label."""
    columns = ["input", "relative", "status", "error", "labels", "top_label", "route"]
    columns += [f"p_{label}" for label in LABELS] + [f"severity_{label}" for label in LABELS if label != "clean"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        flat = {k: row.get(k) for k in ("input", "relative", "status", "error", "top_label")}
        if row["status"] == "done":
            flat |= {"labels": ";".join(row["labels"]), "route": ";".join(row["route"])}
            flat |= {f"p_{k}": v for k, v in row["probabilities"].items()}
            flat |= {f"severity_{k}": v for k, v in row["severity_values"].items()}
        writer.writerow(flat)
    return buffer.getvalue()


def register(app: typer.Typer) -> None:
    app.command("classify", no_args_is_help=True)(classify_command)
