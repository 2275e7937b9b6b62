"""Captioners: an image (and its path) -> a caption that can serve as a restoration prompt.

- ``degradation`` (the offline default): a fluent sentence from the degradation classifier,
  e.g. "a photo with heavy rain streaks and mild noise", or "a clean photo".
- ``coca``: an open_clip CoCa caption of the content, followed by the degradation phrase when
  a classifier is given ("a dog on a beach, with heavy rain streaks").
- ``file``: a sidecar ``.txt`` beside the image, or a CSV/JSONL table keyed by relative path
  (the ``--prompt-file`` format).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from irestore.conditioning.classifier import Classification, Classifier
from irestore.conditioning.coca import GenerationSettings, caption_text, generate_tokens
from irestore.conditioning.open_clip_models import DEFAULT_COCA, OpenClipModel, load_open_clip
from irestore.degrade import PRIMARY
from irestore.registry import create_classifier, register_captioner

# label -> (degrade.py type whose severity bands name the adjective, noun phrase)
_WORDING = {
    "noise": ("noise", "noise"),
    "motion_blur": ("motion", "motion blur"),
    "defocus_blur": ("defocus", "defocus blur"),
    "rain": ("rain", "rain streaks"),
    "haze": ("haze", "haze"),
    "lowlight": ("lowlight", "underexposure"),
    "jpeg": ("jpeg", "JPEG artifacts"),
    "lowres": ("lowres", "resolution loss"),
}
_ADJECTIVE = {"light": "mild", "moderate": "moderate", "heavy": "heavy"}
CLEAN_CAPTION = "a clean photo"


class CaptionError(ValueError):
    """No caption for an image; the message names the file and why."""


@dataclass(frozen=True)
class Caption:
    text: str
    source: str  # the captioner (and, for files, where the text came from)
    labels: list[str] | None = None  # degradation labels when a classifier looked at the image
    classification: Classification | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict:
        return {"caption": self.text, "caption_source": self.source, "labels": self.labels}


def degradation_phrase(classification: Classification, labels: list[str] | None = None, mild: bool = False) -> str:
    """'heavy rain streaks and mild noise' for the detected labels (most probable first), or for
    ``labels`` when given; '' for a clean image. ``mild``: every label worded mild, whatever its
    estimated severity (for a degradation the classifier did not detect, only found probable)."""
    labels = [d for d in (classification.labels if labels is None else labels) if d != "clean"]
    values = classification.severities
    parts = []
    for label in labels:
        kind, noun = _WORDING[label]
        parts.append(f"{_ADJECTIVE['light' if mild else PRIMARY[kind].severity(values[label])]} {noun}")
    if not parts:
        return ""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def degradation_caption(classification: Classification, labels: list[str] | None = None, mild: bool = False) -> str:
    """'a photo with heavy rain streaks' (see :func:`degradation_phrase`); 'a clean photo' when none."""
    phrase = degradation_phrase(classification, labels, mild)
    return f"a photo with {phrase}" if phrase else CLEAN_CAPTION


class Captioner(ABC):
    name: str = ""
    needs_pixels: bool = True  # False: the caption comes from files, the image need not be decoded

    @abstractmethod
    def caption(self, image: Tensor | None, path: Path | None = None, relative: str | None = None) -> Caption:
        """Caption one 1x3xHxW image in [0, 1]; ``path``/``relative`` locate it for file lookups."""


class DegradationCaptioner(Captioner):
    name = "degradation"

    def __init__(self, classifier: Classifier):
        self.classifier = classifier

    @classmethod
    def create(
        cls,
        backend: str = "degnet",
        classifier: str | None = None,
        device: str = "cpu",
        threshold: float | None = None,
        offline: bool | None = None,
    ) -> DegradationCaptioner:
        return cls(create_classifier(backend, classifier, device, threshold, offline))

    def caption(self, image: Tensor | None, path: Path | None = None, relative: str | None = None) -> Caption:
        result = self.classifier.classify(image)
        return Caption(degradation_caption(result), self.name, result.labels, result)


class CocaCaptioner(Captioner):
    """CoCa content caption, combined with the degradation phrase when a classifier is given."""

    name = "coca"

    def __init__(
        self, coca: OpenClipModel, classifier: Classifier | None = None, settings: GenerationSettings | None = None, seed: int = 0
    ):
        self.coca = coca
        self.classifier = classifier
        self.settings = settings or GenerationSettings()
        self.seed = seed

    @classmethod
    def create(
        cls,
        model: str | None = None,
        backend: str = "degnet",
        classifier: str | None = None,
        device: str = "cpu",
        threshold: float | None = None,
        strategy: str = "greedy",
        seed: int = 0,
        with_degradation: bool = True,
        offline: bool | None = None,
    ) -> CocaCaptioner:
        coca = load_open_clip(model or DEFAULT_COCA, device, offline)
        judge = create_classifier(backend, classifier, device, threshold, offline) if with_degradation else None
        return cls(coca, judge, GenerationSettings(strategy=strategy), seed)

    def caption(self, image: Tensor | None, path: Path | None = None, relative: str | None = None) -> Caption:
        generator = torch.Generator().manual_seed(self.seed)
        text = caption_text(self.coca, generate_tokens(self.coca, image, self.settings, generator)) or "a photo"
        if self.classifier is None:
            return Caption(text, self.name)
        result = self.classifier.classify(image)
        phrase = degradation_phrase(result)
        return Caption(f"{text}, with {phrase}" if phrase else text, "coca+degradation", result.labels, result)


class FileCaptioner(Captioner):
    """Captions written by people: a table row for the relative path, else a sidecar .txt."""

    name = "file"
    needs_pixels = False

    def __init__(self, table: Path | None = None):
        from irestore.data.prompts import load_prompt_file

        self.table_path = table
        self.table = load_prompt_file(Path(table)) if table else {}

    @classmethod
    def create(cls, table: Path | str | None = None) -> FileCaptioner:
        return cls(Path(table) if table else None)

    def caption(self, image: Tensor | None, path: Path | None = None, relative: str | None = None) -> Caption:
        if relative is not None and relative in self.table:
            return Caption(self.table[relative], f"{self.name}:{self.table_path}")
        sidecar = path.with_suffix(".txt") if path is not None else None
        if sidecar is not None and sidecar.is_file():
            return Caption(sidecar.read_text(encoding="utf-8").strip(), f"{self.name}:sidecar")
        where = f" and no row {relative!r} in {self.table_path}" if self.table_path else ""
        raise CaptionError(f"{path}: no caption: no sidecar {sidecar}{where}")


register_captioner("degradation", DegradationCaptioner.create)
register_captioner("coca", CocaCaptioner.create)
register_captioner("file", FileCaptioner.create)
