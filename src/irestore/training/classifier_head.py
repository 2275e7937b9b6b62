"""Train the image-level head of the degradation classifier, calibrate it, choose thresholds.

The head sits on a frozen DegNet (so the embedding restorers are conditioned on does not
change) and decides from the whole image's evidence: DegNet over native tiles and a global
view, plus classical measurements (:func:`DegradationClassifier.evidence`, the function
inference uses). Three stages, each resumable:

1. :func:`build_cache` draws seeded samples — a training photo, rescaled, a random crop of
   256-768 px, one draw of the broad degradation family (:mod:`irestore.degrade.broad`) — and
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
    read_classifier_info,
    save_classifier,
)
from irestore.conditioning.measures import FIRST_RELEASE_MEASURES, extra_measures, measure
from irestore.degrade.broad import broad_degradation
from irestore.io import ImageError, image_to_tensor, list_images, read_image
from irestore.labels import LABELS, TYPE_TO_LABEL, targets_from_params
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
    """``fit`` or ``calibrate``, stable per photo (a hash of its relative path). Deliberately not
    :func:`irestore.data.scan.holdout_fraction`: the held-out photos were chosen by that number's
    low end, so the remaining photos would all fall on one side of a split by it."""
    value = int(hashlib.sha256(relative.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "calibrate" if value < calibrate_fraction else "fit"


def photo_paths(folder: Path, exclude: Path | None = None) -> list[Path]:
    """The photos under ``folder`` less those whose relative path also exists under ``exclude``."""
    return [p for p in list_images(folder) if exclude is None or not (exclude / p.relative_to(folder)).exists()]


def load_photos(folder: Path, exclude: Path | None = None) -> list[tuple[str, np.ndarray]]:
    """The photos under ``folder`` as (relative path, RGB), leaving out any whose relative path
    also exists under ``exclude`` (the held-out photos)."""
    photos = []
    for path in photo_paths(folder, exclude):
        try:
            photos.append((str(path.relative_to(folder)), read_image(path).rgb))
        except ImageError as error:
            print(f"skipping {error}")
    if not photos:
        raise SystemExit(f"no readable photos in {folder}")
    return photos


def jitter(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Content variety from few photos: flips, transposition, saturation and tone changes a
    photographer's edit could make (never enough to look hazy or dark)."""
    if rng.random() < 0.5:
        photo = photo[:, ::-1]
    if rng.random() < 0.25:
        photo = photo.transpose(1, 0, 2)
    grey = photo.mean(2, keepdims=True)
    photo = grey + (photo - grey) * float(rng.uniform(0.7, 1.3))
    return np.ascontiguousarray(np.clip(photo, 0, 1) ** float(rng.uniform(0.85, 1.15)), dtype=np.float32)


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


def step_changes(params: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per label, the visibility of the step that made it (PSNR dB, peak change; 99 and 0 where absent)."""
    db, peak = np.full(len(LABELS), 99.0, np.float32), np.zeros(len(LABELS), np.float32)
    steps = params["steps"] if params["type"] == "mix" else [params] if params["type"] != "clean" else []
    for step in steps:
        j = LABELS.index(TYPE_TO_LABEL[step["type"]])
        db[j], peak[j] = min(db[j], step["change_db"]), max(peak[j], step["change_peak"])
    return db, peak


def visible_labels(data: dict[str, np.ndarray], min_db: float = 42.0, min_peak: float = 8.0) -> np.ndarray:
    """The targets with every step no viewer could see removed (PSNR of at least ``min_db`` and a
    99.9th-percentile change under ``min_peak`` levels); a sample left with none is clean."""
    labels = data["labels"].copy()
    invisible = (data["change_db"] >= min_db) & (data["change_peak"] < min_peak) & (labels > 0)
    invisible[:, 0] = False
    labels[invisible] = 0
    labels[:, 0] = labels[:, 1:].sum(1) == 0
    return labels


def _chunk_path(folder: Path, index: int) -> Path:
    return folder / f"chunk-{index:05d}.npz"


def _samples(photos: list[tuple[str, np.ndarray]], settings: CacheSettings, index: int):
    """The chunk's seeded samples: (photo's relative path, degraded image with its params)."""
    rng = np.random.default_rng([settings.seed, index])
    for _ in range(settings.chunk):
        relative, photo = photos[int(rng.integers(len(photos)))]
        yield relative, broad_degradation(jitter(draw_view(photo, rng, settings.crop), rng), rng)


def _write_chunk(target: Path, rows: dict) -> None:
    partial = target.with_suffix(".partial.npz")
    np.savez(partial, **{k: np.asarray(v) for k, v in rows.items()})
    partial.replace(target)  # atomic: an interrupted chunk is recomputed, never half-read


def _make_chunk(args) -> int:
    folder, photos_dir, photo_list, backbone, settings, index = args
    torch.set_num_threads(1)
    photos = _photos_cached(photos_dir, photo_list)
    classifier = DegradationClassifier.from_pretrained(backbone)
    rows = {"features": [], "labels": [], "severity": [], "group": [], "kind": [], "change_db": [], "change_peak": []}
    for relative, degraded in _samples(photos, settings, index):
        labels, severity, _ = targets_from_params(degraded.params)
        change_db, change_peak = step_changes(degraded.params)
        rows["change_db"].append(change_db)
        rows["change_peak"].append(change_peak)
        _, features = classifier.evidence(image_to_tensor(degraded.image))
        rows["features"].append(features[0].numpy().astype(np.float32))
        rows["labels"].append(labels)
        rows["severity"].append(severity)
        rows["group"].append(photo_group(relative, settings.calibrate_fraction))
        rows["kind"].append(degraded.params["type"])
    _write_chunk(_chunk_path(folder, index), rows)
    return index


def _extend_chunk(args) -> int:
    """Add the measurements a chunk lacks (it was cached before they existed): the same seeded
    samples drawn again, checked against the stored targets, and only the new columns computed
    (DegNet's part and the first measurements are already there)."""
    folder, photos_dir, photo_list, backbone, settings, index = args
    torch.set_num_threads(1)
    photos = _photos_cached(photos_dir, photo_list)
    classifier = DegradationClassifier.from_pretrained(backbone)
    path = _chunk_path(folder, index)
    with np.load(path) as stored:
        rows = {key: stored[key] for key in stored.files}
    have = rows["features"].shape[1] - head_input_dim(classifier.info.network, 0)
    extra = []
    for k, (_, degraded) in enumerate(_samples(photos, settings, index)):
        if not np.array_equal(step_changes(degraded.params)[0], rows["change_db"][k]):
            raise SystemExit(f"{path}: sample {k} drawn again differs from the cached one (the photos under "
                             f"{photos_dir} changed?); rebuild this cache in a new folder")
        views = classifier.view_crops(image_to_tensor(degraded.image))
        if have >= FIRST_RELEASE_MEASURES:  # the usual case: only the later set is computed
            missing = extra_measures(views[0], views[-1])[have - FIRST_RELEASE_MEASURES :]
        else:
            missing = measure(views[0], views[-1])[have:]
        extra.append(missing.numpy().astype(np.float32))
    rows["features"] = np.concatenate([rows["features"], np.stack(extra)], 1)
    _write_chunk(path, rows)
    return index


_PHOTOS: dict[tuple, list] = {}


def _photos_cached(folder: str, photo_list: tuple[str, ...]) -> list[tuple[str, np.ndarray]]:
    """The cache's photos, in its recorded order (photos added to the folder later are not drawn)."""
    if (folder, photo_list) not in _PHOTOS:
        photos = []
        for relative in photo_list:
            try:
                photos.append((relative, read_image(Path(folder) / relative).rgb))
            except ImageError as error:
                raise SystemExit(f"a photo of the cache is unreadable: {error}") from error
        _PHOTOS[folder, photo_list] = photos
    return _PHOTOS[folder, photo_list]


def build_cache(folder: Path, photos: Path, backbone: str, settings: CacheSettings, workers: int = 2,
                exclude: Path | None = None) -> None:
    """Compute every missing chunk of the feature cache (resumable; seeded per chunk), and add to
    chunks cached before the current measurements existed the columns they lack.

    The photo list is recorded in ``cache.json`` when the cache is started: photos added to the
    folder later do not change which photo a seeded sample draws."""
    folder.mkdir(parents=True, exist_ok=True)
    # the sample count may grow between runs (more chunks); everything else fixes the samples
    fixed = {k: v for k, v in settings.__dict__.items() if k != "samples"} | {"crop": list(settings.crop)}
    meta = {"photos": str(photos), "backbone": backbone, "settings": fixed}
    if exclude is not None:
        meta["exclude"] = str(exclude)
    meta_file = folder / "cache.json"
    recorded = json.loads(meta_file.read_text()) if meta_file.exists() else None
    if recorded is not None and {k: v for k, v in recorded.items() if k != "photo_list"} != meta:
        raise SystemExit(f"{folder} holds a cache built with other settings ({meta_file}); use another folder")
    if recorded is not None and "photo_list" in recorded:
        meta["photo_list"] = recorded["photo_list"]
    else:  # a new cache, or one from before the list was recorded (whose photos must not have changed)
        meta["photo_list"] = [str(path.relative_to(photos)) for path in photo_paths(photos, exclude)]
    meta_file.write_text(json.dumps(meta, indent=2))
    photo_list = tuple(meta["photo_list"])
    chunks = range(math.ceil(settings.samples / settings.chunk))
    todo = [i for i in chunks if not _chunk_path(folder, i).exists()]
    full_width = head_input_dim(read_classifier_info(resolve_weights(backbone)).network)
    narrow = [i for i in chunks if i not in todo and _chunk_width(folder, i) < full_width]
    began = time.time()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for work, indices, verb in ((_make_chunk, todo, "done"), (_extend_chunk, narrow, "extended")):
            args = [(folder, str(photos), photo_list, backbone, settings, i) for i in indices]
            for done, index in enumerate(pool.map(work, args), 1):
                rate = done * settings.chunk / (time.time() - began)
                print(f"chunk {index} {verb} ({done}/{len(indices)}, {rate:.1f} samples/s)", flush=True)
            began = time.time()


def _chunk_width(folder: Path, index: int) -> int:
    with np.load(_chunk_path(folder, index)) as chunk:
        return int(chunk["features"].shape[1])


def read_cache(*folders: Path) -> dict[str, np.ndarray]:
    """Every chunk of one or more caches (built from different photo folders, say), concatenated."""
    chunks = sorted(path for folder in folders for path in folder.glob("chunk-*[0-9].npz"))
    if not chunks:
        raise SystemExit(f"no feature chunks in {', '.join(map(str, folders))}")
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


def _platt(logits: torch.Tensor, labels: torch.Tensor, iterations: int = 50, ridge: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-label (scale, bias) minimising the BCE of ``scale * logit + bias``: a two-parameter
    logistic regression per label, solved by damped Newton steps (a tiny ridge keeps it defined
    when a label separates perfectly)."""
    x, y = logits.double(), labels.double()
    params = torch.tensor([[1.0, 0.0]], dtype=torch.float64).repeat(x.shape[1], 1)  # (L, 2)
    design = torch.stack([x, torch.ones_like(x)], -1)  # (N, L, 2)

    def loss(params: torch.Tensor) -> torch.Tensor:  # per label
        z = (design * params).sum(-1)
        return F.binary_cross_entropy_with_logits(z, y, reduction="none").mean(0) + ridge / 2 * params.pow(2).sum(-1)

    for _ in range(iterations):
        p = torch.sigmoid((design * params).sum(-1))
        gradient = ((p - y)[..., None] * design).mean(0) + ridge * params
        weight = (p * (1 - p))[..., None, None]
        hessian = (weight * design[..., :, None] * design[..., None, :]).mean(0) + ridge * torch.eye(2, dtype=torch.float64)
        step = torch.linalg.solve(hessian, gradient[..., None])[..., 0]
        current, size = loss(params), torch.ones(x.shape[1], 1, dtype=torch.float64)
        for _ in range(30):  # backtracking, per label: halve the step until the loss does not rise
            worse = loss(params - size * step) > current
            if not worse.any():
                break
            size[worse] /= 2
        params = params - size * step
        if (size * step).abs().max() < 1e-9:
            break
    return params[:, 0].float(), params[:, 1].float()


GRID = tuple(round(float(g), 4) for g in np.arange(0.05, 0.96, 0.025))


def choose_levels(probabilities: np.ndarray, labels: np.ndarray, clean_budget: float = 0.2,
                  grid: Sequence[float] = GRID) -> tuple[dict[str, float], dict[str, float]]:
    """Per degradation label, on held-out samples: the *absent level*, the lowest probability
    that at most ``clean_budget / 8`` of the clean samples reach (so that clean photos are
    called clean), and the *threshold* at or above it with the best F1 (ties: the lower one;
    a miss costs more than a step the planner rolls back)."""
    clean = labels[:, 0] == 1
    thresholds, absent = {}, {}
    for j, label in enumerate(LABELS):
        if label == "clean":
            continue
        p, y = probabilities[:, j], labels[:, j].astype(bool)
        allowed = [g for g in grid if clean.any() and (p[clean] >= g).mean() <= clean_budget / len(DEGRADATIONS)]
        absent[label] = allowed[0] if allowed else grid[-1]
        candidates = [g for g in grid if g >= absent[label]]
        scores = []
        for t in candidates:
            hit = p >= t
            tp, fp, fn = (hit & y).sum(), (hit & ~y).sum(), (~hit & y).sum()
            scores.append(2 * tp / max(2 * tp + fp + fn, 1))
        thresholds[label] = candidates[int(np.argmax(scores))]
    return thresholds, absent


def choose_clean_level(probabilities: np.ndarray, labels: np.ndarray, clean_budget: float = 0.2) -> float:
    """The clean probability that half the budget (10 % by default) of the held-out clean
    samples fall under: an image under it is not called clean even when every degradation is
    under its absent level (heavily hazed photos, whose haze probability clean landscapes share,
    still get a low clean probability)."""
    clean = labels[:, 0] == 1
    if not clean.any():
        return 0.0
    return round(float(np.quantile(probabilities[clean, 0], clean_budget / 2)), 4)


def calibrate(head: DegHead, data: dict[str, np.ndarray], clean_budget: float = 0.2) -> dict:
    """Fit Platt scaling into ``head`` on the calibrate group; return the ECEs before and after
    and the decision levels (thresholds, absent levels)."""
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
        "clean_budget": clean_budget,
        "levels": choose_levels(calibrated, y.numpy(), clean_budget),
        "clean_level": choose_clean_level(calibrated, y.numpy(), clean_budget),
    }


def train_head(cache: Path | Sequence[Path], backbone: str, out: Path, config: DegHeadConfig | None = None,
               epochs: int = 60, measures: int | None = None) -> Path:
    """Stages 2 and 3 on built caches; writes a classifier checkpoint folder."""
    began = time.time()
    caches = [cache] if isinstance(cache, Path) else list(cache)
    data = read_cache(*caches)
    if "change_db" in data:
        data["labels"] = visible_labels(data)
    network, info = load_classifier(resolve_weights(backbone))
    held = data["features"].shape[1] - head_input_dim(info.network, 0)
    measures = held if measures is None else measures  # default: as many as the cache holds
    if not 0 < measures <= held:
        raise SystemExit(f"the caches hold {held} measurements; cannot train a head on {measures}")
    data["features"] = data["features"][:, : head_input_dim(info.network, measures)]
    config = config or DegHeadConfig(input_dim=head_input_dim(info.network, measures), measures=measures)
    head = fit_head(data, config, epochs)
    report = calibrate(head, data)
    thresholds, absent = report.pop("levels")
    clean_level = report.pop("clean_level")
    network.head = head
    meta = [json.loads((folder / "cache.json").read_text()) for folder in caches]
    training = {
        "head": {"samples": len(data["labels"]), "fit_samples": int((data["group"] == "fit").sum()),
                 "epochs": epochs, "cache": meta, "seconds": round(time.time() - began, 1)},
        "backbone": {"name": backbone, "training": info.training},
    }
    new_info = ClassifierInfo(network=info.network, name=out.name, training=training, head=config,
                              thresholds=thresholds, absent_levels=absent, clean_level=clean_level, calibration=report)
    folder = save_classifier(out, network, new_info)
    print(json.dumps({"calibration": report, "thresholds": thresholds, "absent_levels": absent, "clean_level": clean_level}, indent=2))
    return folder
