"""CLIP zero-shot degradation classifier: open_clip image and text towers, prompt ensembles.

Each label is a prompt ensemble (open_clip's zero-shot classifier pattern): every phrase of the
label in every template is encoded, the normalised embeddings are averaged and renormalised.

Multi-label decision: a photo can be both rainy and noisy, so the labels are not one softmax.
Each degradation ``d`` is a binary softmax of its ensemble against the ``clean`` ensemble,
``p_d = sigmoid(logit_scale * (s_d - s_clean) + bias_d)`` with ``s`` the cosine similarities
and ``bias_d`` a per-label calibration offset (0 by default; fit it on labelled photos).
``p_clean`` is the probability that no degradation is present, ``prod(1 - p_d)``. Severity is
the expectation over three graded ensembles (slight / moderate / heavy), softmaxed by
similarity. The embedding is CLIP's normalised image embedding.

Views: the whole image at the model's input size, plus a few native-resolution crops of that
size, because noise and JPEG blocks vanish when a photo is shrunk to 224 px.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from irestore.conditioning.classification import DEGRADATIONS, Classification, tile_origins
from irestore.conditioning.open_clip_models import DEFAULT_CLIP, OpenClipModel, load_open_clip
from irestore.devices import resolve_device
from irestore.labels import LABELS

TEMPLATES = (
    "a photo with {}.",
    "an image degraded by {}.",
    "a picture that suffers from {}.",
    "a low quality photo with {}.",
)
PHRASES: dict[str, tuple[str, ...]] = {
    "noise": ("noise", "heavy grain", "sensor noise"),
    "motion_blur": ("motion blur", "camera shake blur", "motion smear"),
    "defocus_blur": ("defocus blur", "out-of-focus blur", "lens blur"),
    "rain": ("rain streaks", "falling rain", "raindrops"),
    "haze": ("haze", "fog", "mist"),
    "lowlight": ("underexposure", "darkness", "low light"),
    "jpeg": ("JPEG compression artifacts", "blocking artifacts", "compression artifacts"),
    "lowres": ("low resolution", "pixelation", "upscaling blur"),
}
CLEAN_PROMPTS = (
    "a clean photo.",
    "a sharp, clear, high quality photo.",
    "a well-exposed photo without noise, blur or artifacts.",
    "a crisp, detailed photograph.",
)
SEVERITY_WORDS = (("slight", "mild"), ("moderate", "noticeable"), ("heavy", "severe"))
SEVERITY_LEVELS = torch.tensor([1 / 6, 1 / 2, 5 / 6])  # the middle of each third of [0, 1]


class ClipZeroShotClassifier:
    """``classify(image)`` with any open_clip CLIP model, no training needed."""

    backend = "clip"

    def __init__(
        self,
        clip: OpenClipModel,
        threshold: float | None = None,
        max_tiles: int = 4,
        calibration: dict[str, float] | None = None,
    ):
        self.clip = clip
        self.name = f"clip:{clip.spec}"
        self.threshold = 0.5 if threshold is None else threshold
        self.max_tiles = max_tiles
        self.bias = torch.tensor([(calibration or {}).get(d, 0.0) for d in DEGRADATIONS])
        self.logit_scale = float(clip.model.logit_scale.detach().exp().clamp(max=100.0))
        self.fingerprint = ""
        with torch.inference_mode():
            self.label_text = torch.stack([self._ensemble(_label_prompts(d)) for d in DEGRADATIONS])
            self.clean_text = self._ensemble(list(CLEAN_PROMPTS))
            self.severity_text = torch.stack(
                [torch.stack([self._ensemble(_graded_prompts(d, words)) for words in SEVERITY_WORDS]) for d in DEGRADATIONS]
            )  # (labels, 3, D)

    @classmethod
    def from_pretrained(
        cls, spec: str | Path = DEFAULT_CLIP, device: str | torch.device = "cpu", offline: bool | None = None, **options
    ) -> ClipZeroShotClassifier:
        """Any open_clip CLIP spec: ``ARCH:TAG``, ``ARCH:FILE``, a folder or an alias."""
        return cls(load_open_clip(str(spec), resolve_device(str(device)), offline), **options)

    @property
    def embedding_dim(self) -> int:
        return int(self.label_text.shape[-1])

    def _ensemble(self, prompts: list[str]) -> Tensor:
        """Averaged normalised text embeddings of a prompt list, renormalised: (D,)."""
        features = F.normalize(self.clip.model.encode_text(self.clip.tokenize(prompts)).float(), dim=-1)
        return F.normalize(features.mean(0), dim=-1).cpu()

    def views(self, image: Tensor) -> Tensor:
        """The whole image plus up to ``max_tiles`` native crops, preprocessed: (N, 3, S, S)."""
        size = self.clip.image_size[0]
        height, width = image.shape[-2:]
        crops = [image]
        if min(height, width) > size and self.max_tiles:
            origins = tile_origins(height, width, size, self.max_tiles)
            crops += [image[..., y : y + size, x : x + size] for y, x in origins]
        return torch.cat([self.clip.preprocess(crop) for crop in crops])

    @torch.inference_mode()
    def classify(self, image: Tensor) -> Classification:
        if image.ndim != 4 or image.shape[:2] != (1, 3):
            raise ValueError(f"expected a 1x3xHxW image tensor, got shape {tuple(image.shape)}")
        features = F.normalize(self.clip.model.encode_image(self.views(image)).float(), dim=-1).cpu()
        label_sim = features @ self.label_text.T  # (views, labels)
        clean_sim = features @ self.clean_text  # (views,)
        p_degraded = torch.sigmoid(self.logit_scale * (label_sim - clean_sim[:, None]) + self.bias).mean(0)
        graded = torch.einsum("vd,lkd->vlk", features, self.severity_text)  # (views, labels, 3)
        severity = (torch.softmax(self.logit_scale * graded, dim=-1) @ SEVERITY_LEVELS).mean(0)
        probabilities = {"clean": float(torch.prod(1 - p_degraded))}
        probabilities |= {d: float(p_degraded[i]) for i, d in enumerate(DEGRADATIONS)}
        return Classification(
            probabilities={label: probabilities[label] for label in LABELS},
            severity={d: float(severity[i]) for i, d in enumerate(DEGRADATIONS)},
            embedding=F.normalize(features.mean(0, keepdim=True), dim=-1),
            threshold=self.threshold,
            backend=self.backend,
        )


def _label_prompts(label: str) -> list[str]:
    return [template.format(phrase) for phrase in PHRASES[label] for template in TEMPLATES]


def _graded_prompts(label: str, words: tuple[str, ...]) -> list[str]:
    return [template.format(f"{word} {phrase}") for word in words for phrase in PHRASES[label] for template in TEMPLATES]
