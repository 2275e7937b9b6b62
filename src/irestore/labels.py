"""The degradation label vocabulary shared by datasets, the classifier, captions and routing.

A training target is a multi-hot vector over :data:`LABELS`, a severity in [0, 1] per
label (0 where the label is absent) and a mask that is 1 where the severity is known
(synthetic degradations) and 0 where it is not (a real dataset named only by its degradation). Severities map the primary parameter of each
synthetic degradation (see :mod:`irestore.degrade`) linearly onto [0, 1]; :func:`severity_value`
maps a predicted severity back to physical units (noise sigma, JPEG quality, ...).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

LABELS: tuple[str, ...] = (
    "clean",
    "noise",
    "motion_blur",
    "defocus_blur",
    "rain",
    "haze",
    "lowlight",
    "jpeg",
    "lowres",
)
LABEL_INDEX = {name: i for i, name in enumerate(LABELS)}
NUM_LABELS = len(LABELS)

UNDO_ORDER: tuple[str, ...] = ("jpeg", "noise", "motion_blur", "defocus_blur", "rain", "lowlight", "haze", "lowres")
"""The order to undo degradations without evaluating: the reverse of a camera pipeline (compression,
sensor noise, optics, the scene's rain, exposure, haze), with resolution last."""

# degradation type (degrade.py params["type"]) -> label
TYPE_TO_LABEL = {
    "noise": "noise",
    "motion": "motion_blur",
    "defocus": "defocus_blur",
    "gaussian_blur": "defocus_blur",  # both are out-of-focus softness to a viewer
    "rain": "rain",
    "haze": "haze",
    "lowlight": "lowlight",
    "jpeg": "jpeg",
    "lowres": "lowres",
}

# label -> (parameter name, value at severity 0, value at severity 1, unit)
SEVERITY_SCALES: dict[str, tuple[str, float, float, str]] = {
    "noise": ("sigma", 0.0, 75.0, "sigma (0-255)"),
    "motion_blur": ("size", 3.0, 35.0, "kernel px"),
    "defocus_blur": ("radius", 0.5, 8.0, "radius px"),
    "rain": ("amount", 0.0, 1.0, "amount"),
    "haze": ("beta", 0.02, 0.2, "beta"),
    "lowlight": ("brightness", 0.25, 0.05, "mean brightness"),
    "jpeg": ("quality", 60.0, 5.0, "JPEG quality"),
    "lowres": ("scale", 1.0, 4.0, "downscale factor"),
}

# gaussian_blur sigma is put on the defocus radius scale (a disk of radius r ~ Gaussian of r/2)
_GAUSSIAN_TO_RADIUS = 2.0

PRETTY = {
    "clean": "clean",
    "noise": "noise",
    "motion_blur": "motion blur",
    "defocus_blur": "defocus blur",
    "rain": "rain",
    "haze": "haze",
    "lowlight": "low light",
    "jpeg": "JPEG artifacts",
    "lowres": "low resolution",
}


def _unit(label: str, value: float) -> float:
    _, lo, hi, _ = SEVERITY_SCALES[label]
    return float(np.clip((value - lo) / (hi - lo), 0.0, 1.0))


def severity_value(label: str, severity: float) -> float:
    """A severity in [0, 1] back in the label's physical unit (e.g. noise sigma)."""
    _, lo, hi, _ = SEVERITY_SCALES[label]
    return lo + (hi - lo) * float(np.clip(severity, 0.0, 1.0))


def _steps(params: dict | None) -> list[dict]:
    if not params or params.get("type") in (None, "clean"):
        return []
    return list(params["steps"]) if params["type"] == "mix" else [params]


def targets_from_params(params: dict | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Multi-hot labels, per-label severities and the severity mask of a degradation's params
    (``None`` = clean)."""
    labels = np.zeros(NUM_LABELS, np.float32)
    severity = np.zeros(NUM_LABELS, np.float32)
    steps = _steps(params)
    if not steps:
        labels[LABEL_INDEX["clean"]] = 1.0
        return labels, severity, labels.copy()
    for step in steps:
        kind = step["type"]
        if kind not in TYPE_TO_LABEL:
            raise ValueError(f"no label for degradation type {kind!r}")
        label = TYPE_TO_LABEL[kind]
        value = step["sigma"] * _GAUSSIAN_TO_RADIUS if kind == "gaussian_blur" else step[SEVERITY_SCALES[label][0]]
        labels[LABEL_INDEX[label]] = 1.0
        severity[LABEL_INDEX[label]] = max(severity[LABEL_INDEX[label]], _unit(label, float(value)))
    return labels, severity, labels.copy()


def targets_from_labels(names: Iterable[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Targets for a dataset whose degradation is known by name only (e.g. GoPro -> motion_blur):
    severities unknown (mask 0) except ``clean``."""
    labels = np.zeros(NUM_LABELS, np.float32)
    names = list(names) or ["clean"]
    for name in names:
        if name not in LABEL_INDEX:
            raise ValueError(f"unknown degradation label {name!r}; known: {', '.join(LABELS)}")
        labels[LABEL_INDEX[name]] = 1.0
    mask = np.zeros(NUM_LABELS, np.float32)
    mask[LABEL_INDEX["clean"]] = labels[LABEL_INDEX["clean"]]
    return labels, np.zeros(NUM_LABELS, np.float32), mask
