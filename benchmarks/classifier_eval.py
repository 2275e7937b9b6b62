"""Degradation classifier quality on photos with seeded synthetic degradations.

    python benchmarks/classifier_eval.py CHECKPOINT PHOTO_DIR [--per-type 20] [--crop 384]
        [--seed 0] [--threshold 0.5] [--backend degnet|clip] [--json FILE]

For every single-degradation type (and clean photos) it draws --per-type samples: a photo from
PHOTO_DIR (cycled), a random crop of --crop px, one degradation of that type over its full
parameter range (irestore.degrade, seeded). Use photos the classifier was not trained on.

Prints (and writes as JSON) a confusion matrix of the true type's label against the top-1
predicted label, per-label accuracy of the multi-label decision at --threshold, recall of
the true label, and the severity error in physical units where the label was detected.
CHECKPOINT is a DegNet checkpoint or store name (--backend degnet) or an open_clip spec
(--backend clip). Prints numbers only: no assertions, no thresholds on quality.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from irestore.conditioning.classifier import create_classifier
from irestore.degrade import degrade
from irestore.io import ImageError, image_to_tensor, list_images, read_image
from irestore.labels import LABELS, SEVERITY_SCALES, TYPE_TO_LABEL, severity_value, targets_from_params

TYPES = ("clean", "noise", "motion", "defocus", "rain", "haze", "lowlight", "jpeg", "lowres")


def load_photos(folder: Path, limit: int) -> list[np.ndarray]:
    photos = []
    for path in list_images(folder)[:limit]:
        try:
            photos.append(read_image(path).rgb)
        except ImageError as error:
            print(f"skipping {error}")
    if not photos:
        raise SystemExit(f"no readable photos in {folder}")
    return photos


def random_crop(photo: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    h, w = photo.shape[:2]
    y, x = int(rng.integers(0, max(h - size, 0) + 1)), int(rng.integers(0, max(w - size, 0) + 1))
    return photo[y : y + size, x : x + size]


def samples(photos: list[np.ndarray], per_type: int, crop: int, seed: int):
    """(type, degraded image, true multi-hot labels, true severities) per sample, seeded."""
    rng = np.random.default_rng(seed)
    index = 0
    for kind in TYPES:
        for _ in range(per_type):
            clean = random_crop(photos[index % len(photos)], crop, rng)
            index += 1
            degraded = None if kind == "clean" else degrade(clean, kind, rng)
            image, params = (clean, None) if degraded is None else (degraded.image, degraded.params)
            labels, severity, _ = targets_from_params(params)
            yield kind, image, labels, severity


def evaluate(classifier, photos, per_type: int, crop: int, seed: int, threshold: float) -> dict:
    n = len(LABELS)
    confusion = np.zeros((n, n), dtype=int)
    correct = np.zeros(n)
    recall_hits, count = np.zeros(n), np.zeros(n)
    severity_errors: dict[str, list[float]] = {label: [] for label in LABELS[1:]}
    seconds = []
    for kind, image, labels, severity in samples(photos, per_type, crop, seed):
        began = time.perf_counter()
        result = classifier.classify(image_to_tensor(image))
        seconds.append(time.perf_counter() - began)
        truth = LABELS.index("clean" if kind == "clean" else TYPE_TO_LABEL[kind])
        confusion[truth, LABELS.index(result.top_label)] += 1
        predicted = np.array([result.probabilities[label] >= threshold for label in LABELS])
        correct += predicted == labels.astype(bool)
        count[truth] += 1
        recall_hits[truth] += predicted[truth]
        label = LABELS[truth]
        if label != "clean" and predicted[truth]:
            true_value = severity_value(label, float(severity[truth]))
            severity_errors[label].append(abs(result.severities[label] - true_value))
    total = int(confusion.sum())
    return {
        "samples": total,
        "labels": list(LABELS),
        "confusion": confusion.tolist(),
        "top1_accuracy": float(np.trace(confusion) / total),
        "per_label_accuracy": {label: float(correct[i] / total) for i, label in enumerate(LABELS)},
        "recall": {label: float(recall_hits[i] / count[i]) for i, label in enumerate(LABELS) if count[i]},
        "severity_mae": {k: float(np.mean(v)) for k, v in severity_errors.items() if v},
        "severity_units": {k: SEVERITY_SCALES[k][3] for k in LABELS[1:]},
        "seconds_per_image": float(np.mean(seconds)),
    }


def render(report: dict, console: Console) -> None:
    short = {"clean": "clean", "noise": "noise", "motion_blur": "motion", "defocus_blur": "defocus", "rain": "rain",
             "haze": "haze", "lowlight": "lowlight", "jpeg": "jpeg", "lowres": "lowres"}
    matrix = Table(title=f"confusion: true type (rows) x top-1 prediction, {report['samples']} samples")
    matrix.add_column("true \\ predicted")
    for label in report["labels"]:
        matrix.add_column(short[label], justify="right")
    for label, row in zip(report["labels"], report["confusion"]):
        matrix.add_row(short[label], *(str(v) for v in row))
    console.print(matrix)
    per_label = Table(title=f"top-1 accuracy {report['top1_accuracy']:.3f}; per label at the threshold")
    for column in ("label", "accuracy", "recall of true type", "severity MAE", "unit"):
        per_label.add_column(column, justify="right")
    for label in report["labels"]:
        mae = report["severity_mae"].get(label)
        per_label.add_row(
            label,
            f"{report['per_label_accuracy'][label]:.3f}",
            f"{report['recall'].get(label, float('nan')):.3f}",
            "-" if mae is None else f"{mae:.3g}",
            report["severity_units"].get(label, ""),
        )
    console.print(per_label)
    console.print(f"{report['seconds_per_image'] * 1000:.1f} ms per image")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("photos", type=Path)
    parser.add_argument("--per-type", type=int, default=20)
    parser.add_argument("--crop", type=int, default=384)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--backend", default="degnet", choices=("degnet", "clip"))
    parser.add_argument("--max-photos", type=int, default=200)
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()
    classifier = create_classifier(args.backend, args.checkpoint, "cpu", args.threshold)
    photos = load_photos(args.photos, args.max_photos)
    report = {
        "checkpoint": args.checkpoint,
        "backend": args.backend,
        "photos": len(photos),
        "per_type": args.per_type,
        "crop": args.crop,
        "seed": args.seed,
        "threshold": args.threshold,
        **evaluate(classifier, photos, args.per_type, args.crop, args.seed, args.threshold),
    }
    render(report, Console())
    print(json.dumps(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
