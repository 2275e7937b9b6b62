"""Degradation classifier quality on photos with seeded synthetic degradations.

    python benchmarks/classifier_eval.py CHECKPOINT PHOTO_DIR [--per-type 40] [--crop 384]
        [--synthesis standard|alternative] [--mixtures 4] [--seed 0] [--threshold T]
        [--backend degnet|clip] [--json FILE]

For every single-degradation type (and clean photos) it draws --per-type samples: a photo from
PHOTO_DIR (cycled), a random crop of --crop px, one degradation of that type over its full
parameter range, seeded. --synthesis standard draws it with irestore.degrade (the synthesis the
project's models know); --synthesis alternative with benchmarks/alt_synthesis.py (other
implementations, wider ranges; nothing is trained or tuned on it). Then --mixtures samples per
pair of distinct families (motion+defocus excluded) for the multi-label check. Use photos the
classifier was not trained on.

Prints (and writes as JSON): a confusion matrix of the true type against the classifier's
decision (its first label), per-type accuracy, how often motion blur, defocus blur and low
resolution are told apart, how often both labels of a mixture are found, per-label accuracy
of the multi-label decision, the expected calibration error of the probabilities, and the
severity error in physical units. The decision uses the checkpoint's calibrated per-label
thresholds unless --threshold overrides them. Prints numbers only: no assertions.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import alt_synthesis
import numpy as np
from rich.console import Console
from rich.table import Table

from irestore.degrade import degrade, mix
from irestore.io import ImageError, image_to_tensor, list_images, read_image
from irestore.labels import LABELS, SEVERITY_SCALES, TYPE_TO_LABEL, severity_value, targets_from_params
from irestore.registry import create_classifier
from irestore.training.classifier_head import expected_calibration_error

TYPES = ("clean", "noise", "motion", "defocus", "rain", "haze", "lowlight", "jpeg", "lowres")
FAMILIES = TYPES[1:]
BLUR_LIKE = ("motion_blur", "defocus_blur", "lowres")


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


def _single(clean: np.ndarray, kind: str, synthesis: str, rng) -> tuple[np.ndarray, dict | None]:
    if kind == "clean":
        return clean, None
    if synthesis == "alternative":
        return alt_synthesis.degrade(clean, kind, rng)
    degraded = degrade(clean, kind, rng)
    return degraded.image, degraded.params


def _pair(clean: np.ndarray, kinds: tuple[str, str], synthesis: str, rng) -> tuple[np.ndarray, dict]:
    if synthesis == "alternative":
        return alt_synthesis.mix(clean, kinds, rng)
    degraded = mix(clean, rng, kinds=kinds)
    return degraded.image, degraded.params


def pairs() -> list[tuple[str, str]]:
    return [p for p in itertools.combinations(FAMILIES, 2) if set(p) != {"motion", "defocus"}]


def samples(photos: list[np.ndarray], per_type: int, crop: int, seed: int, synthesis: str = "standard", mixtures: int = 0):
    """(name, degraded image, true multi-hot labels, true severities) per sample, seeded: the
    single types first (name = type), then the mixtures (name = "a+b")."""
    rng = np.random.default_rng(seed)
    jobs = [(kind, kind) for kind in TYPES for _ in range(per_type)]
    jobs += [("+".join(p), p) for p in pairs() for _ in range(mixtures)]
    for index, (name, what) in enumerate(jobs):
        clean = random_crop(photos[index % len(photos)], crop, rng)
        image, params = _single(clean, what, synthesis, rng) if isinstance(what, str) else _pair(clean, what, synthesis, rng)
        labels, severity, _ = targets_from_params(params)
        yield name, image, labels, severity


def evaluate(classifier, photos, per_type: int, crop: int, seed: int, synthesis: str = "standard", mixtures: int = 0) -> dict:
    n = len(LABELS)
    confusion = np.zeros((n, n), dtype=int)
    correct, total = np.zeros(n), 0
    blur_hits = blur_count = 0
    mix_hits: dict[str, list[bool]] = {}
    severity_errors: dict[str, list[float]] = {label: [] for label in LABELS[1:]}
    probabilities, truths, seconds = [], [], []
    for name, image, labels, severity in samples(photos, per_type, crop, seed, synthesis, mixtures):
        began = time.perf_counter()
        result = classifier.classify(image_to_tensor(image))
        seconds.append(time.perf_counter() - began)
        probabilities.append([result.probabilities[label] for label in LABELS])
        truths.append(labels)
        decided = set(result.labels)
        predicted = np.array([label in decided for label in LABELS])
        correct += predicted == labels.astype(bool)
        total += 1
        if "+" in name:
            wanted = {LABELS[i] for i in np.flatnonzero(labels)}
            mix_hits.setdefault(name, []).append(wanted <= decided)
            continue
        truth = LABELS.index("clean" if name == "clean" else TYPE_TO_LABEL[name])
        confusion[truth, LABELS.index(result.top_label)] += 1
        label = LABELS[truth]
        if label in BLUR_LIKE:
            blur_count += 1
            blur_hits += max(BLUR_LIKE, key=lambda b: result.probabilities[b]) == label
        if label != "clean" and label in decided:
            true_value = severity_value(label, float(severity[truth]))
            severity_errors[label].append(abs(result.severities[label] - true_value))
    singles = int(confusion.sum())
    rows = confusion.sum(1)
    hits = [h for v in mix_hits.values() for h in v]
    return {
        "samples": total,
        "labels": list(LABELS),
        "confusion": confusion.tolist(),
        "top1_accuracy": float(np.trace(confusion) / max(singles, 1)),
        "per_type_accuracy": {label: float(confusion[i, i] / rows[i]) for i, label in enumerate(LABELS) if rows[i]},
        "blur_separation": float(blur_hits / max(blur_count, 1)),
        "mixtures_both_found": float(np.mean(hits)) if hits else None,
        "mixtures_by_pair": {k: float(np.mean(v)) for k, v in mix_hits.items()},
        "per_label_accuracy": {label: float(correct[i] / total) for i, label in enumerate(LABELS)},
        "ece": expected_calibration_error(np.array(probabilities), np.array(truths)),
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
    per_label = Table(title=f"single types: decision accuracy {report['top1_accuracy']:.3f}")
    for column in ("label", "type accuracy", "multi-label accuracy", "severity MAE", "unit"):
        per_label.add_column(column, justify="right")
    for label in report["labels"]:
        mae = report["severity_mae"].get(label)
        accuracy = report["per_type_accuracy"].get(label)
        per_label.add_row(
            label,
            "-" if accuracy is None else f"{accuracy:.3f}",
            f"{report['per_label_accuracy'][label]:.3f}",
            "-" if mae is None else f"{mae:.3g}",
            report["severity_units"].get(label, ""),
        )
    console.print(per_label)
    both = report["mixtures_both_found"]
    console.print(f"motion / defocus / lowres told apart: {report['blur_separation']:.3f}")
    if both is not None:
        worst = sorted(report["mixtures_by_pair"].items(), key=lambda kv: kv[1])[:5]
        console.print(f"two-degradation mixtures, both labels found: {both:.3f} (weakest: "
                      + ", ".join(f"{k} {v:.2f}" for k, v in worst) + ")")
    console.print(f"expected calibration error (15 bins, mean over labels): {report['ece']:.4f}")
    console.print(f"{report['seconds_per_image'] * 1000:.1f} ms per image")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("photos", type=Path)
    parser.add_argument("--per-type", type=int, default=40)
    parser.add_argument("--crop", type=int, default=384)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=None, help="one threshold for every label (default: the checkpoint's)")
    parser.add_argument("--synthesis", default="standard", choices=("standard", "alternative"))
    parser.add_argument("--mixtures", type=int, default=4, help="samples per pair of families")
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
        "synthesis": args.synthesis,
        **evaluate(classifier, photos, args.per_type, args.crop, args.seed, args.synthesis, args.mixtures),
    }
    render(report, Console())
    print(json.dumps(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
