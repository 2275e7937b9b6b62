"""Train the image-level head of the degradation classifier, calibrate it, choose thresholds.

The head sits on a frozen DegNet (so the embedding restorers are conditioned on does not
change) and decides from the whole image's evidence: DegNet over native tiles and a global
view, plus classical measurements (:func:`DegradationClassifier.evidence`, the function
inference uses). Three stages, each resumable:

1. :func:`build_cache` draws seeded samples — a training photo, rescaled, a random crop of
   256-768 px, one draw of the broad degradation family (:mod:`irestore.data.broad`) — and
   stores their feature vectors and targets in chunk files (a rerun computes only missing
   chunks). Photos are split by a hash of their path into a *fit* group and a *calibrate*
   group; a photo's samples stay in its group.
2. :func:`fit_head` trains the MLP on the fit group (multi-label BCE + severity L1).
3. :func:`calibrate` fits per-label Platt scaling on the calibrate group, reports the expected
   calibration error before and after, and picks each label's decision threshold there.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from irestore.conditioning.classifier import (
    ClassifierInfo,
    DegradationClassifier,
    head_input_dim,
    load_classifier,
    save_classifier,
)
from irestore.data.broad import broad_degradation
from irestore.io import ImageError, image_to_tensor, list_images, read_image
from irestore.labels import LABELS, targets_from_params
from irestore.models.degnet import DegHead, DegHeadConfig
from irestore.weights import resolve_weights

DEGRADATIONS = LABELS[1:]


@dataclass(frozen=True)
class CacheSettings:
    samples: int = 12000
    chunk: int = 200
    seed: int = 0
    crop: tuple[int, int] = (256, 768)
    calibrate_fraction: float = 0.2


def photo_group(relative: str, calibrate_fraction: float) -> str:
    """``fit`` or ``calibrate``, stable per photo (a hash of its relative path)."""
    value = int(hashlib.sha256(relative.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "calibrate" if value < calibrate_fraction else "fit"


def load_photos(folder: Path) -> list[tuple[str, np.ndarray]]:
    photos = []
    for path in list_images(folder):
        try:
            photos.append((str(path.relative_to(folder)), read_image(path).rgb))
        except ImageError as error:
            print(f"skipping {error}")
    if not photos:
        raise SystemExit(f"no readable photos in {folder}")
    return photos


def draw_view(photo: np.ndarray, rng: np.random.Generator, crop: tuple[int, int]) -> np.ndarray:
    """A random rescale (content at other scales than the corpus's) and crop of a photo."""
    if rng.random() < 0.4:
        factor = float(rng.uniform(1.0, 2.5))
        h, w = photo.shape[:2]
        photo = cv2.resize(photo, (max(64, round(w / factor)), max(64, round(h / factor))), interpolation=cv2.INTER_AREA)
    h, w = photo.shape[:2]
    side = int(rng.integers(crop[0], crop[1] + 1))
    aspect = float(np.exp(rng.uniform(-0.4, 0.4)))
    ch, cw = min(h, max(64, round(side / math.sqrt(aspect)))), min(w, max(64, round(side * math.sqrt(aspect))))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return photo[y : y + ch, x : x + cw]


def _chunk_path(folder: Path, index: int) -> Path:
    return folder / f"chunk-{index:05d}.npz"


def _make_chunk(args) -> int:
    folder, photos_dir, backbone, settings, index = args
    torch.set_num_threads(1)
    photos = _photos_cached(photos_dir)
    classifier = DegradationClassifier.from_pretrained(backbone)
    rng = np.random.default_rng([settings.seed, index])
    rows = {"features": [], "labels": [], "severity": [], "group": [], "kind": []}
    for _ in range(settings.chunk):
        relative, photo = photos[int(rng.integers(len(photos)))]
        degraded = broad_degradation(draw_view(photo, rng, settings.crop), rng)
        labels, severity, _ = targets_from_params(degraded.params)
        _, features = classifier.evidence(image_to_tensor(degraded.image))
        rows["features"].append(features[0].numpy().astype(np.float32))
        rows["labels"].append(labels)
        rows["severity"].append(severity)
        rows["group"].append(photo_group(relative, settings.calibrate_fraction))
        rows["kind"].append(degraded.params["type"])
    target = _chunk_path(folder, index)
    partial = target.with_suffix(".partial.npz")
    np.savez(partial, **{k: np.asarray(v) for k, v in rows.items()})
    partial.replace(target)  # atomic: an interrupted chunk is recomputed, never half-read
    return index


_PHOTOS: dict[str, list] = {}


def _photos_cached(folder: str) -> list[tuple[str, np.ndarray]]:
    if folder not in _PHOTOS:
        _PHOTOS[folder] = load_photos(Path(folder))
    return _PHOTOS[folder]


def build_cache(folder: Path, photos: Path, backbone: str, settings: CacheSettings, workers: int = 2) -> None:
    """Compute every missing chunk of the feature cache (resumable; seeded per chunk)."""
    folder.mkdir(parents=True, exist_ok=True)
    # the sample count may grow between runs (more chunks); everything else fixes the samples
    fixed = {k: v for k, v in settings.__dict__.items() if k != "samples"} | {"crop": list(settings.crop)}
    meta = {"photos": str(photos), "backbone": backbone, "settings": fixed}
    meta_file = folder / "cache.json"
    if meta_file.exists() and json.loads(meta_file.read_text()) != meta:
        raise SystemExit(f"{folder} holds a cache built with other settings ({meta_file}); use another folder")
    meta_file.write_text(json.dumps(meta, indent=2))
    todo = [i for i in range(math.ceil(settings.samples / settings.chunk)) if not _chunk_path(folder, i).exists()]
    began = time.time()
    args = [(folder, str(photos), backbone, settings, i) for i in todo]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for done, index in enumerate(pool.map(_make_chunk, args), 1):
            rate = done * settings.chunk / (time.time() - began)
            print(f"chunk {index} done ({done}/{len(todo)}, {rate:.1f} samples/s)", flush=True)


def read_cache(folder: Path) -> dict[str, np.ndarray]:
    chunks = sorted(folder.glob("chunk-*[0-9].npz"))
    if not chunks:
        raise SystemExit(f"no feature chunks in {folder}")
    parts = [np.load(path) for path in chunks]
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0].files}


# -- fitting ------------------------------------------------------------------------------------


def fit_head(data: dict[str, np.ndarray], config: DegHeadConfig, epochs: int = 60, lr: float = 2e-3,
             weight_decay: float = 0.05, seed: int = 0) -> DegHead:
    """Train the head on the ``fit`` group (multi-label BCE + L1 on known severities)."""
    torch.manual_seed(seed)
    fit = data["group"] == "fit"
    if not fit.any():
        raise SystemExit("no samples from fitting photos in the cache")
    x = torch.from_numpy(data["features"][fit]).float()
    y = torch.from_numpy(data["labels"][fit]).float()
    s = torch.from_numpy(data["severity"][fit]).float()
    head = DegHead(config)
    head.feature_mean.copy_(x.mean(0))
    head.feature_std.copy_(x.std(0).clamp_min(1e-4))
    optimiser = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    batches = math.ceil(len(x) / 256)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, lr, total_steps=epochs * batches)
    head.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x))
        total = 0.0
        for b in range(batches):
            idx = order[b * 256 : (b + 1) * 256]
            logits, severity = head.raw(x[idx])
            mask = y[idx].clone()
            mask[:, 0] = 0  # clean has no severity
            loss = F.binary_cross_entropy_with_logits(logits, y[idx])
            loss = loss + ((severity - s[idx]).abs() * mask).sum() / mask.sum().clamp_min(1)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        if epoch % 10 == 9 or epoch == epochs - 1:
            print(f"epoch {epoch + 1}: loss {total / len(x):.4f}", flush=True)
    return head.eval()


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Mean over labels of the binned |accuracy - confidence| gap, weighted by bin size."""
    errors = []
    edges = np.linspace(0, 1, bins + 1)
    for j in range(probabilities.shape[1]):
        p, y = probabilities[:, j], labels[:, j]
        which = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
        gap = sum(abs(y[which == b].mean() - p[which == b].mean()) * (which == b).sum() for b in range(bins) if (which == b).any())
        errors.append(gap / len(p))
    return float(np.mean(errors))


def _platt(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-label (scale, bias) minimising BCE of ``scale * logit + bias``."""
    scale = torch.ones(logits.shape[1], requires_grad=True)
    bias = torch.zeros(logits.shape[1], requires_grad=True)
    optimiser = torch.optim.LBFGS([scale, bias], lr=0.5, max_iter=200)

    def closure():
        optimiser.zero_grad()
        loss = F.binary_cross_entropy_with_logits(logits * scale + bias, labels)
        loss.backward()
        return loss

    optimiser.step(closure)
    return scale.detach(), bias.detach()


def choose_thresholds(probabilities: np.ndarray, labels: np.ndarray, grid: Sequence[float] = tuple(np.arange(0.1, 0.91, 0.025))) -> dict[str, float]:
    """Per degradation label, the threshold with the best F1 on held-out samples (ties: the
    lower threshold, as a miss costs more than a step the planner rolls back)."""
    thresholds = {}
    for j, label in enumerate(LABELS):
        if label == "clean":
            continue
        p, y = probabilities[:, j], labels[:, j].astype(bool)
        scores = []
        for t in grid:
            hit = p >= t
            tp, fp, fn = (hit & y).sum(), (hit & ~y).sum(), (~hit & y).sum()
            scores.append(2 * tp / max(2 * tp + fp + fn, 1))
        thresholds[label] = round(float(grid[int(np.argmax(scores))]), 4)
    return thresholds


def calibrate(head: DegHead, data: dict[str, np.ndarray]) -> dict:
    """Fit Platt scaling into ``head`` on the calibrate group; return thresholds and ECEs."""
    held = data["group"] == "calibrate"
    if not held.any():
        raise SystemExit("no samples from calibration photos in the cache: use more photos or a larger calibrate_fraction")
    x = torch.from_numpy(data["features"][held]).float()
    y = torch.from_numpy(data["labels"][held]).float()
    with torch.no_grad():
        logits, _ = head.raw(x)
    before = expected_calibration_error(torch.sigmoid(logits).numpy(), y.numpy())
    scale, bias = _platt(logits, y)
    head.calibration_scale.copy_(scale)
    head.calibration_bias.copy_(bias)
    with torch.no_grad():
        calibrated = torch.sigmoid(head(x)[0]).numpy()
    return {
        "method": "per-label Platt scaling on held-out photos",
        "samples": int(held.sum()),
        "ece_before": round(before, 4),
        "ece_after": round(expected_calibration_error(calibrated, y.numpy()), 4),
        "thresholds": choose_thresholds(calibrated, y.numpy()),
    }


def train_head(cache: Path, backbone: str, out: Path, config: DegHeadConfig | None = None, epochs: int = 60) -> Path:
    """Stages 2 and 3 on a built cache; writes a classifier checkpoint folder."""
    began = time.time()
    data = read_cache(cache)
    network, info = load_classifier(resolve_weights(backbone))
    config = config or DegHeadConfig(input_dim=head_input_dim(info.network))
    head = fit_head(data, config, epochs)
    report = calibrate(head, data)
    thresholds = report.pop("thresholds")
    network.head = head
    meta = json.loads((cache / "cache.json").read_text())
    training = {
        "head": {"samples": int(len(data["labels"])), "fit_samples": int((data["group"] == "fit").sum()),
                 "epochs": epochs, "cache": meta, "seconds": round(time.time() - began, 1)},
        "backbone": {"name": backbone, "training": info.training},
    }
    new_info = ClassifierInfo(network=info.network, name=out.name, training=training, head=config,
                              thresholds=thresholds, calibration=report)
    folder = save_classifier(out, network, new_info)
    print(json.dumps({"calibration": report, "thresholds": thresholds}, indent=2))
    return folder
