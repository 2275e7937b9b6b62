"""The one contract every restoration method meets, whether the benchmark compares it or the planner uses it.

A restoration method restores images, ``restore(image, condition) -> image``: ``image`` is a
float32 ``B x 3 x H x W`` tensor in [0, 1] (any device; the result comes back on the CPU, clamped),
``condition`` says what is known about the degradation (:class:`Condition`). Each method carries a
:class:`Card`: what it fixes (labels of :data:`irestore.labels.LABELS` and the severity range it
was made for), whether it works blind (without the exact synthesis parameters), what it costs
(s/MP, measured by ``benchmarks/pool_speed.py``), whether it changes the image size, and where its
weights and licence come from. Methods that work on NumPy arrays subclass :class:`ArrayMethod`.

A method that does not apply to an input (no true blur kernel for a non-blind deconvolution)
raises :class:`MethodSkipped` with the reason: the benchmark reports it, the planner drops the step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from irestore.labels import LABELS, SEVERITY_SCALES, TYPE_TO_LABEL

__all__ = [
    "FAMILIES",
    "FAMILY_LABELS",
    "ArrayMethod",
    "Card",
    "Condition",
    "Degradation",
    "MethodSkipped",
    "RestorationMethod",
    "RunSettings",
    "as_uint8",
    "from_uint8",
    "noise_level",
]

FAMILIES = ("noise", "blur", "rain", "haze", "lowlight", "jpeg", "lowres", "mix")
"""Degradation families of the benchmark suites; each maps onto classifier labels below."""

FAMILY_LABELS: dict[str, tuple[str, ...]] = {
    "noise": ("noise",),
    "blur": ("motion_blur", "defocus_blur"),
    "rain": ("rain",),
    "haze": ("haze",),
    "lowlight": ("lowlight",),
    "jpeg": ("jpeg",),
    "lowres": ("lowres",),
    "mix": (),  # the labels of a mixture come from its steps
}


class MethodSkipped(Exception):
    """The method does not apply to this input; the message says why (reported, not an error)."""


@dataclass(frozen=True)
class Degradation:
    """What a benchmark suite knows about one degraded input (see :func:`Condition.from_degradation`)."""

    family: str | None  # one of FAMILIES; None when unknown (pairs without --degradations)
    params: dict | None = None  # exact parameters when synthesised by the suite, else None
    description: str = ""  # a text description of the degradation (the prompt for text-guided methods)
    target_size: tuple[int, int] | None = None  # (height, width) the restored image must have

    @property
    def known(self) -> bool:
        return self.params is not None


@dataclass(frozen=True)
class Condition:
    """What a method is told about the image it restores.

    labels/severities come from the classifier (restore, planner) or from the suite (benchmark);
    severities are in each label's physical unit (noise σ on 0-255, JPEG quality, ...). ``params``
    are the exact synthesis parameters, known only on synthetic benchmark suites: a method that
    uses them is non-blind (its card says so). ``reference`` is the ground truth, given only to
    oracle methods in benchmarks.
    """

    labels: tuple[str, ...] = ()
    severities: dict[str, float] = field(default_factory=dict)
    prompt: str = ""
    params: dict | None = None
    target_size: tuple[int, int] | None = None
    seed: int = 0  # every random draw of a method derives from it
    reference: np.ndarray | None = None
    strength: float | None = None  # the user's setting of a method's own control (waifu2x noise level 0-3)
    estimate: dict | None = None  # what the method's estimate() read from the whole image (planner's proxy views)
    view_scale: float = 1.0  # pixel size of the image restored, relative to the image ``estimate`` came from

    @classmethod
    def from_degradation(cls, degradation: Degradation, seed: int = 0, reference: np.ndarray | None = None) -> Condition:
        """The condition a benchmark gives: the true labels and severities of a synthetic input."""
        labels, severities = [], {}
        for step in _steps(degradation.params):
            label = TYPE_TO_LABEL.get(step.get("type", ""))
            if label is None:
                continue
            labels.append(label)
            value = step.get(SEVERITY_SCALES[label][0])
            if isinstance(value, (int, float)):
                severities[label] = float(value)
        if not degradation.params and degradation.family:
            labels = list(FAMILY_LABELS.get(degradation.family, ()))
        return cls(tuple(dict.fromkeys(labels)), severities, degradation.description, degradation.params,
                   degradation.target_size, seed=seed, reference=reference)

    def with_prompt(self, prompt: str) -> Condition:
        return replace(self, prompt=prompt)

    def step_params(self, types: tuple[str, ...]) -> dict | None:
        """The synthesis parameters of the (first) step whose type is in ``types``, if known."""
        return next((s for s in _steps(self.params) if s.get("type") in types), None)


def _steps(params: dict | None) -> list[dict]:
    if not params:
        return []
    return list(params["steps"]) if params.get("type") == "mix" else [params]


@dataclass(frozen=True)
class RunSettings:
    """How to run (not what to restore): sampler settings and tiling, for the methods that have them."""

    steps: int | None = None
    sampler: str | None = None
    tile: int | str | None = "auto"
    tile_overlap: int = 32
    tile_batch: int = 4


@dataclass(frozen=True)
class Card:
    """What a method declares about itself. ``fixes`` maps each label it removes to the severity
    range (physical units) it was made for: the planner offers it for those labels only."""

    name: str
    summary: str
    fixes: dict[str, tuple[float, float]] = field(default_factory=dict)
    blind: bool = True  # False: needs Condition.params (the true kernel, the true size)
    parameters: str = "nothing"  # what it is told about the degradation
    s_per_mp: float | None = None  # CPU seconds per megapixel, one thread (benchmarks/pool_speed.py)
    changes_size: bool = False
    any_input: bool = False  # takes any degradation, including mixtures and inputs of unknown degradation
    generative: bool = False  # GAN-trained: invents plausible detail; not used for fidelity unless asked
    oracle: bool = False  # is given the ground truth (Condition.reference): an upper bound, not a method
    strengths: tuple[float, float] | None = None  # range of Condition.strength it accepts, if it has a control
    reads: tuple[str, ...] = ()  # labels whose estimated severity it uses (run alone, it classifies the image)
    one_pass: bool = False  # removes all its labels at once, whichever it is asked for: a plan applies it once
    ensemble_gain: float | None = None  # measured PSNR gain (dB) of its 8-fold self-ensemble, held-out benchmark
    licence: str = "Apache-2.0 (irestore)"
    weights: str = "none"  # where its weights come from

    def __post_init__(self) -> None:
        unknown = set(self.fixes) - set(LABELS)
        if unknown:
            raise ValueError(f"{self.name}: unknown labels {sorted(unknown)}")

    def covers(self, label: str, severity: float | None = None) -> bool:
        """Whether it fixes ``label`` (at ``severity``, when given, within its declared range)."""
        if label not in self.fixes:
            return False
        if severity is None:
            return True
        lo, hi = sorted(self.fixes[label])
        return lo <= severity <= hi

    def handles_family(self, family: str | None) -> bool:
        """Benchmark families: a specialist handles its families; mixtures and unknown inputs need ``any_input``."""
        if self.any_input:
            return True
        return any(label in self.fixes for label in FAMILY_LABELS.get(family or "", ()))

    def why_not(self, family: str | None) -> str:
        handled = ", ".join(self.fixes)
        if family is None:
            return f"{self.name} handles {handled} only, and this suite does not say which degradation its inputs have"
        return f"{self.name} handles {handled} only, not {family}"

    def to_dict(self) -> dict:
        return {
            "name": self.name, "summary": self.summary, "fixes": {k: list(v) for k, v in self.fixes.items()},
            "blind": self.blind, "parameters": self.parameters, "s_per_mp": self.s_per_mp,
            "strengths": self.strengths, "changes_size": self.changes_size, "any_input": self.any_input, "generative": self.generative, "ensemble_gain": self.ensemble_gain, "oracle": self.oracle, "one_pass": self.one_pass, "licence": self.licence, "weights": self.weights,
        }


class RestorationMethod(ABC):
    """A restoration method: an object with a :class:`Card` and ``restore(image, condition)``."""

    card: Card

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def description(self) -> str:
        return self.card.summary

    @abstractmethod
    def restore(self, image: Tensor, condition: Condition, settings: RunSettings | None = None) -> Tensor:
        """Restore a Bx3xHxW float32 image in [0, 1]; returns float32 on the CPU, clamped to [0, 1]."""

    def estimate(self, image: Tensor, condition: Condition) -> dict | None:
        """What the method reads from a whole 1x3xHxW image before restoring parts of it (None: nothing).

        The planner calls it once per image and member and hands the result to ``restore`` on each
        proxy view (``Condition.estimate``, with the view's ``view_scale``), so a small crop is
        restored as the whole image will be: a blur kernel read from a 128 px crop is far worse than
        one read from the photo. May raise :class:`MethodSkipped`.
        """
        return None

    def settings(self) -> dict:
        """The method's fixed settings, recorded in reports."""
        return {}


class ArrayMethod(RestorationMethod):
    """A method written for one HxWx3 float32 NumPy image; ``restore`` applies it to each image of the batch."""

    @abstractmethod
    def restore_array(self, image: np.ndarray, condition: Condition) -> np.ndarray:
        """Restore an HxWx3 float32 image in [0, 1]."""

    def restore(self, image: Tensor, condition: Condition, settings: RunSettings | None = None) -> Tensor:
        _check_batch(image)
        arrays = image.detach().float().cpu().permute(0, 2, 3, 1).numpy()
        out = [np.clip(self.restore_array(np.ascontiguousarray(a), condition), 0.0, 1.0) for a in arrays]
        return torch.from_numpy(np.stack(out).astype(np.float32)).permute(0, 3, 1, 2).contiguous()


def _check_batch(image: Tensor) -> None:
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"expected a Bx3xHxW image tensor, got shape {tuple(image.shape)}")


def as_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def from_uint8(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 255.0


def noise_level(image: np.ndarray | Tensor, condition: Condition) -> tuple[float, str]:
    """The Gaussian noise σ (0-255 units) of a noisy input and where it came from: "true" (a
    synthetic input's), "stated" (by the user, for real pairs) or "estimated" (from the image)."""
    step = condition.step_params(("noise",))
    if step is not None and step.get("kind", "gaussian") == "gaussian" and condition.params.get("type") == "noise":
        return float(step["sigma"]), "stated" if step.get("stated") else "true"
    from irestore.evaluate.noise import estimate_noise_sigma
    from irestore.io import image_to_tensor

    tensor = image if isinstance(image, Tensor) else image_to_tensor(image)
    return estimate_noise_sigma(tensor), "estimated"
