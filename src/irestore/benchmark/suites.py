"""Benchmark suites: which datasets, which degradations, and how each test input is made.

A suite is a list of tasks. A task reads its image pairs through `irestore.data.find_pairs`
(the dataset layouts users bring) and makes each degraded input in one of three ways:

* paired datasets (Rain100L, SOTS, GoPro, LOL, ``pairs:``) read the degraded file;
* clean-only sets (CBSD68, ``denoise:DIR``) get Gaussian test noise, seeded and quantised as the
  protocol says;
* ``synthetic:DIR`` degrades clean photos with `irestore.degrade`, seeded per image and
  degradation, so the same folder gives the same inputs on every machine.

``max_side`` keeps CPU runs short: clean photos are downscaled (area) before they are degraded;
paired images are centre-cropped instead, which keeps their degradation at its native scale.
Either way the numbers are no longer those of the full published test sets, and reports say so.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from irestore import degrade
from irestore.evaluate.metrics import Protocol
from irestore.io import read_image
from irestore.restorers.base import FAMILIES, Degradation

__all__ = [
    "DATASET_SOURCES",
    "DEFAULT_SYNTHETIC",
    "SUITES",
    "Prepared",
    "Sample",
    "Suite",
    "SuiteError",
    "TaskSpec",
    "build_suite",
    "find_samples",
    "prepare",
]

DEFAULT_SYNTHETIC = "noise:25,noise:50,rain,haze,blur,jpeg:10,lowlight,mix"

# the mixtures suite: two- and three-degradation combinations, moderate pairs and light triples
MIXTURES = (
    "haze+noise", "rain+noise", "lowlight+noise", "blur+jpeg", "noise+jpeg", "haze+jpeg", "rain+jpeg",
    "lowlight+jpeg", "haze+lowlight", "blur+noise", "haze+rain+noise", "lowlight+noise+jpeg", "haze+noise+jpeg",
)
DEFAULT_MIXTURES = ",".join(f"mix:{m}:{'light' if m.count('+') > 1 else 'moderate'}" for m in MIXTURES)


class SuiteError(ValueError):
    """A suite that cannot be built or read; the message says what is missing and how to supply it."""


@dataclass(frozen=True)
class TaskSpec:
    """One column of a results table."""

    name: str  # id in rows and files, e.g. "cbsd68-s25"
    label: str  # column title, e.g. "CBSD68 σ=25"
    family: str | None  # degradation family methods must handle; None = unknown
    dataset: str  # irestore.data name ("rain100l") or spec ("folder:DIR", "pairs:LQ,GT")
    split: str = "test"
    noise: float | None = None  # σ of test noise added to clean images
    degradation: str | None = None  # one irestore.degrade spec item applied to clean images
    prompt: str = ""  # description of real degraded data (the text prompt for irestore)
    sigma: float | None = None  # Gaussian noise σ stated for real noisy pairs (--degradations noise:25)


@dataclass(frozen=True)
class Suite:
    name: str
    tasks: tuple[TaskSpec, ...]
    protocol: str  # the protocol its published numbers were measured under
    published: bool = False  # published reference numbers exist for it


def _cbsd68(sigma: int, dataset: str = "cbsd68", label: str = "CBSD68", split: str = "test") -> TaskSpec:
    return TaskSpec(f"{label.lower()}-s{sigma}", f"{label} σ={sigma}", "noise", dataset, split, noise=float(sigma))


_RAIN = TaskSpec("rain100l", "Rain100L", "rain", "rain100l", prompt="remove the rain streaks from this photo")
_SOTS = TaskSpec("sots-outdoor", "SOTS-outdoor", "haze", "sots-outdoor", prompt="remove the haze from this photo")
_GOPRO = TaskSpec("gopro", "GoPro", "blur", "gopro", prompt="remove the motion blur from this photo")
_LOL = TaskSpec("lol", "LOL", "lowlight", "lol", prompt="brighten this dark photo")

SUITES: dict[str, Suite] = {
    s.name: s
    for s in (
        Suite("all-in-one", (_cbsd68(15), _cbsd68(25), _cbsd68(50), _RAIN, _SOTS), "promptir", published=True),
        Suite("all-in-one-5", (_RAIN, _SOTS, _cbsd68(25), _GOPRO, _LOL), "promptir", published=True),
        Suite("deblur", (_GOPRO,), "promptir"),
        Suite("denoise", (_cbsd68(15), _cbsd68(25), _cbsd68(50)), "promptir", published=True),
    )
}
SUITE_FORMS = (*SUITES, "denoise:DIR", "synthetic:DIR", "mixtures:DIR", "pairs:LQ_DIR,GT_DIR")


def build_suite(name: str, degradations: str | None = None) -> Suite:
    """A registered suite, or ``denoise:DIR`` / ``synthetic:DIR`` / ``mixtures:DIR`` (13 seeded
    combinations of two or three degradations, :data:`MIXTURES`) / ``pairs:LQ_DIR,GT_DIR``."""
    kind, sep, rest = name.partition(":")
    if not sep:
        if name not in SUITES:
            raise SuiteError(f"unknown suite {name!r}; choose one of {', '.join(SUITE_FORMS)}")
        if degradations:
            raise SuiteError(f"--degradations applies to synthetic: and pairs: suites, not {name}")
        return SUITES[name]
    if not rest.strip():
        raise SuiteError(f"suite {name!r} needs a folder: {kind}:DIR")
    if kind == "denoise":
        folder = f"folder:{rest}"
        return Suite(name, tuple(_cbsd68(s, folder, "denoise", "all") for s in (15, 25, 50)), "irestore")
    if kind == "synthetic":
        return Suite(name, _synthetic_tasks(rest, degradations or DEFAULT_SYNTHETIC), "irestore")
    if kind == "mixtures":
        return Suite(name, _synthetic_tasks(rest, degradations or DEFAULT_MIXTURES), "irestore")
    if kind == "pairs":
        family, sigma = _pairs_degradation(degradations)
        label = "pairs" if sigma is None else f"pairs σ={sigma:g}"
        return Suite(name, (TaskSpec("pairs", label, family, f"pairs:{rest}", "all", sigma=sigma),), "irestore")
    raise SuiteError(f"unknown suite {name!r}; choose one of {', '.join(SUITE_FORMS)}")


def _synthetic_tasks(folder: str, degradations: str) -> tuple[TaskSpec, ...]:
    tasks = []
    for item in (part.strip() for part in degradations.split(",")):
        try:
            (spec,) = degrade.parse_spec(item)
        except ValueError as error:
            raise SuiteError(f"--degradations: {error}") from error
        family = degrade.family_of(spec.name)
        label = "+".join(spec.kinds) if spec.kinds else item
        tasks.append(TaskSpec(_slug(item), label, family, f"folder:{folder}", "all", degradation=item))
    if len({t.name for t in tasks}) != len(tasks):
        raise SuiteError(f"--degradations lists a degradation twice: {degradations}")
    return tuple(tasks)


def _pairs_degradation(degradations: str | None) -> tuple[str | None, float | None]:
    """The pairs' family and, for ``noise:SIGMA``, their stated noise σ (None: methods estimate it)."""
    if degradations is None:
        return None, None
    name, _, value = (part.strip() for part in degradations.lower().partition(":"))
    family = degrade.family_of(name)
    if family not in FAMILIES or "," in degradations:
        raise SuiteError(f"for pairs: suites, --degradations names the one degradation family of the pairs "
                         f"({', '.join(FAMILIES)}), got {degradations!r}")
    if not value:
        return family, None
    try:
        sigma = float(value)
    except ValueError:
        sigma = -1.0
    if family != "noise" or not 0 < sigma <= 255:
        raise SuiteError(f"--degradations {degradations}: for pairs: suites only noise takes a value, "
                         "its σ in 0-255 levels (e.g. noise:25)")
    return family, sigma


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in text.replace(":", "-")).strip("-")


# --------------------------------------------------------------------------- samples


@dataclass(frozen=True)
class Sample:
    task: TaskSpec
    key: str
    gt: Path
    lq: Path | None = None


DATASET_SOURCES = {  # where to download the registered datasets the suites read
    "cbsd68": "https://github.com/clausmichele/CBSD68-dataset",
    "rain100l": "https://www.icst.pku.edu.cn/struct/Projects/joint_rain_removal.html (JORDER; "
                "PromptIR's INSTALL.md links a copy)",
    "sots-outdoor": "https://sites.google.com/view/reside-dehaze-datasets (RESIDE, the SOTS test set)",
    "gopro": "https://seungjunnah.github.io/Datasets/gopro.html",
    "lol": "https://daooshee.github.io/BMVC2018website/",
}


def find_samples(
    suite: Suite, data_root: Path | None = None, roots: dict[str, Path] | None = None, limit: int | None = None
) -> dict[str, list[Sample]]:
    """Every task's samples (sorted by key, the first ``limit``); SuiteError names each missing
    dataset once (with the tasks that need it and where to get it)."""
    from irestore.data import DatasetError, find_pairs

    roots = roots or {}
    found, problems, needed_by = {}, {}, {}
    for task in suite.tasks:
        needed_by.setdefault(task.dataset, []).append(task.label)
        if task.dataset in problems:
            continue
        root = roots.get(task.dataset, data_root)
        try:
            pairs = find_pairs(task.dataset, os.fspath(root) if root else None, task.split)
        except (DatasetError, ValueError) as error:
            problems[task.dataset] = _missing(task.dataset, root, error)
            continue
        found[task.name] = [Sample(task, p.key, p.gt, p.lq) for p in pairs[:limit]]
    if problems:
        lines = [f"{', '.join(needed_by[name])}: {text}" for name, text in problems.items()]
        raise SuiteError(f"suite {suite.name} cannot find its data:\n  " + "\n  ".join(lines))
    return found


def _missing(dataset: str, root: Path | None, error: Exception) -> str:
    """Why a dataset was not found, how to point at it and where to download it (indented lines)."""
    if ":" in dataset:
        return str(error)
    from irestore.data.layouts import DATA_ENV, get_layout

    lines = [str(error)]
    if root is None and not os.environ.get(DATA_ENV):
        lines = [f"no {dataset} folder given", f"expected layout: {get_layout(dataset).description}"]
    lines.append(f"pass --{dataset} DIR, or --data-root DIR holding it")
    if dataset in DATASET_SOURCES:
        lines.append(f"download: {DATASET_SOURCES[dataset]}")
    return "\n    ".join(lines)


@dataclass
class Prepared:
    """A test input, its ground truth (both HxWx3 float32) and what the suite knows about it."""

    lq: np.ndarray
    gt: np.ndarray
    degradation: Degradation
    notes: list[str] = field(default_factory=list)


def prepare(sample: Sample, protocol: Protocol, max_side: int | None = None, seed: int = 0) -> Prepared:
    """Read (and, for clean-only sets, degrade) one sample as the protocol prescribes."""
    task = sample.task
    gt = read_image(sample.gt).rgb
    if sample.lq is not None:
        return _paired(sample, gt, read_image(sample.lq).rgb, protocol, max_side)
    gt = protocol.crop(_shrink(gt, max_side))
    if task.noise is not None:
        made = _test_noise(gt, task.noise, sample.key, protocol)
    elif task.degradation is not None:
        rng = np.random.default_rng(_seed(seed, sample.key, task.degradation))
        made = degrade.degrade(gt, task.degradation, rng)
    else:
        raise SuiteError(f"{task.label}: {sample.gt} has no degraded counterpart and the task adds no degradation")
    family = "mix" if made.params["type"] == "mix" else degrade.family_of(made.params["type"])
    return Prepared(made.image, gt, Degradation(family, made.params, made.description, gt.shape[:2]))


def _paired(sample: Sample, gt: np.ndarray, lq: np.ndarray, protocol: Protocol, max_side: int | None) -> Prepared:
    task = sample.task
    if lq.shape != gt.shape and task.family != "lowres":
        raise ValueError(f"degraded {sample.lq} is {lq.shape[1]}x{lq.shape[0]} but its ground truth "
                         f"{sample.gt} is {gt.shape[1]}x{gt.shape[0]}")
    if lq.shape == gt.shape:
        lq, gt = (protocol.crop(_centre_crop(x, max_side)) for x in (lq, gt))
    stated = None if task.sigma is None else {"type": "noise", "kind": "gaussian", "sigma": task.sigma, "stated": True}
    return Prepared(lq, gt, Degradation(task.family, stated, task.prompt, gt.shape[:2]))


def _test_noise(gt: np.ndarray, sigma: float, key: str, protocol: Protocol) -> degrade.Degraded:
    """Gaussian test noise from the protocol's per-image generator, quantised as the protocol says."""
    rng = protocol.noise_generator(key, sigma)
    if protocol.noise_quantize == "round":
        return degrade.noise(gt, rng, sigma=sigma)
    clean = np.round(gt.astype(np.float64) * 255.0)  # the uint8 image, as the papers' loaders hold it
    noisy = np.clip(clean + sigma * rng.standard_normal(gt.shape), 0, 255).astype(np.uint8)  # astype truncates
    params = {"type": "noise", "kind": "gaussian", "sigma": sigma, "quantize": "floor",
              "severity": degrade.PRIMARY["noise"].severity(sigma)}
    return degrade.Degraded(noisy.astype(np.float32) / 255.0, params, degrade.describe(params, rng))


def _seed(seed: int, key: str, degradation: str) -> int:
    digest = hashlib.sha256(f"{seed}|{key}|{degradation}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _shrink(image: np.ndarray, max_side: int | None) -> np.ndarray:
    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.clip(cv2.resize(image, size, interpolation=cv2.INTER_AREA), 0.0, 1.0)


def _centre_crop(image: np.ndarray, max_side: int | None) -> np.ndarray:
    h, w = image.shape[:2]
    if not max_side:
        return image
    ch, cw = min(h, max_side), min(w, max_side)
    top, left = (h - ch) // 2, (w - cw) // 2
    return image[top : top + ch, left : left + cw]
