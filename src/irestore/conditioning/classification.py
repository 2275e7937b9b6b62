"""What a degradation classifier returns (:class:`Classification`: labels, probabilities,
severities, embedding, the decision rule), the protocol every backend meets, and the views
(native tiles plus a whole-image view) it looks at. Shared by DegNet and CLIP zero-shot."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from irestore.labels import LABELS, severity_value

DEGRADATIONS = tuple(label for label in LABELS if label != "clean")



@dataclass(frozen=True)
class Classification:
    """What a classifier sees in one image.

    probabilities: every label of :data:`LABELS` -> probability (multi-label, independent)
    severity: every degradation label -> severity in [0, 1] (meaningful where it is present)
    embedding: (1, K) L2-normalised degradation embedding
    """

    probabilities: dict[str, float]
    severity: dict[str, float]
    embedding: Tensor
    threshold: float = 0.5
    backend: str = "degnet"
    thresholds: dict[str, float] | None = None  # per label; ``threshold`` for labels not in it
    absent_levels: dict[str, float] | None = None  # per label; half the threshold for labels not in it
    clean_level: float | None = None  # the head's own p(clean) must reach it for "clean"; None: not used

    def threshold_of(self, label: str) -> float:
        return (self.thresholds or {}).get(label, self.threshold)

    def absent_level(self, label: str) -> float:
        """Below this probability the label is confidently absent (at most its threshold)."""
        return min((self.absent_levels or {}).get(label, self.threshold_of(label) / 2), self.threshold_of(label))

    @property
    def severities(self) -> dict[str, float]:
        """Severities in each label's physical unit (noise sigma, JPEG quality, ...)."""
        return {label: severity_value(label, s) for label, s in self.severity.items()}

    @property
    def found(self) -> list[str]:
        """Degradations at or above their thresholds, most probable first."""
        found = [d for d in DEGRADATIONS if self.probabilities.get(d, 0.0) >= self.threshold_of(d)]
        return sorted(found, key=lambda d: -self.probabilities[d])

    @property
    def uncertain(self) -> list[str]:
        """Degradations not found but not confidently absent either: at or above their absent level
        (calibrated so that few clean photos reach it; half the threshold by default). When none
        is, but the classifier's own clean probability is under its calibrated clean level, the
        most probable degradation: the image is not clean by either measure."""
        band = sorted(
            (d for d in DEGRADATIONS if self.absent_level(d) <= self.probabilities.get(d, 0.0) < self.threshold_of(d)),
            key=lambda d: -self.probabilities[d],
        )
        if band or self.found or not self.doubts_clean:
            return band
        return [max(DEGRADATIONS, key=lambda d: self.probabilities.get(d, 0.0))]

    @property
    def doubts_clean(self) -> bool:
        """The clean probability is under the calibrated clean level."""
        return self.clean_level is not None and self.probabilities.get("clean", 1.0) < self.clean_level

    @property
    def labels(self) -> list[str]:
        """The decision: the degradations found; when none is found but one is uncertain, the most
        probable of those (a photo is called clean only when every degradation is confidently
        absent and, with a calibrated clean level, its clean probability reaches that level: a
        missed degradation costs the user more than a step the planner rolls back); ``["clean"]``
        otherwise."""
        return self.found or self.uncertain[:1] or ["clean"]

    @property
    def top_label(self) -> str:
        """The first label of the decision."""
        return self.labels[0]

    @property
    def is_clean(self) -> bool:
        return self.labels == ["clean"]

    def to_dict(self) -> dict:
        """JSON-ready summary (the embedding as its dimension only)."""
        return {
            "backend": self.backend,
            "labels": self.labels,
            "top_label": self.top_label,
            "found": self.found,
            "uncertain": self.uncertain,
            "threshold": self.threshold,
            "thresholds": {d: round(self.threshold_of(d), 4) for d in DEGRADATIONS},
            "absent_levels": {d: round(self.absent_level(d), 4) for d in DEGRADATIONS},
            "clean_level": self.clean_level,
            "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
            "severity": {k: round(v, 4) for k, v in self.severity.items()},
            "severity_values": {k: round(v, 4) for k, v in self.severities.items()},
            "embedding_dim": int(self.embedding.shape[-1]),
        }


class Classifier(Protocol):
    """What the CLI, captioners and the restorer need from a classifier backend."""

    name: str
    backend: str
    threshold: float | None

    @property
    def embedding_dim(self) -> int: ...

    def classify(self, image: Tensor) -> Classification: ...


def tile_origins(height: int, width: int, tile: int, max_tiles: int) -> list[tuple[int, int]]:
    """Top-left corners of up to ``max_tiles`` tile x tile crops spread evenly over the image:
    the largest rows x cols grid that fits, shaped most like the image; one centred crop when
    the image is no larger than a tile."""
    rows_fit, cols_fit = math.ceil(height / tile), math.ceil(width / tile)
    grids = [(r, c) for r in range(1, rows_fit + 1) for c in range(1, cols_fit + 1) if r * c <= max_tiles]
    aspect = math.log(width / height)
    rows, cols = max(grids, key=lambda rc: (rc[0] * rc[1], -abs(math.log(rc[1] / rc[0]) - aspect)))
    spread = lambda n, free: [round(i * free / (n - 1)) for i in range(n)] if n > 1 else [free // 2]
    return [(y, x) for y in spread(rows, max(height - tile, 0)) for x in spread(cols, max(width - tile, 0))]


def view_batches(image: Tensor, tile: int = 256, max_tiles: int = 8, global_view: bool = True) -> list[Tensor]:
    """The crops one image is classified from, as batches of equal-sized views: the
    native-resolution tiles, then (for an image larger than a tile) the whole image
    area-resized so that its long side is one tile."""
    _, _, height, width = image.shape
    size_y, size_x = min(tile, height), min(tile, width)
    origins = tile_origins(height, width, tile, max_tiles)
    batches = [torch.cat([image[..., y : y + size_y, x : x + size_x] for y, x in origins])]
    if global_view and max(height, width) > tile:
        scale = tile / max(height, width)
        size = (max(MIN_SIDE, round(height * scale)), max(MIN_SIDE, round(width * scale)))
        batches.append(F.interpolate(image, size=size, mode="area"))
    return batches


MIN_SIDE = 32  # DegNet downsamples four times; smaller images are padded up to this


def at_least(image: Tensor, side: int) -> Tensor:
    """Pad (edge replicate) an image smaller than ``side`` in either dimension."""
    pad_y, pad_x = max(0, side - image.shape[-2]), max(0, side - image.shape[-1])
    if not pad_y and not pad_x:
        return image
    return F.pad(image, (pad_x // 2, pad_x - pad_x // 2, pad_y // 2, pad_y - pad_y // 2), mode="replicate")
