"""DegNet: a small multi-label degradation classifier with severities and an embedding.

Input: RGB crops in [0, 1] at native resolution (B x 3 x H x W, any H, W >= 32). Output:
logits and severities over :data:`irestore.labels.LABELS` and an embedding that the restorer
takes as its degradation embedding (the role DA-CLIP's image controller plays in ETDiffIR).
Global average and standard-deviation pooling make it size-agnostic; the standard deviation
keeps texture statistics (noise, JPEG blocks, rain streaks) that averaging alone washes out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from irestore.labels import NUM_LABELS


@dataclass(frozen=True)
class DegNetConfig:
    """Constructor arguments of DegNet; saved verbatim as the model's config."""

    channels: tuple[int, ...] = (24, 48, 96, 160)
    blocks: tuple[int, ...] = (1, 1, 2, 1)
    embed_dim: int = 64
    num_labels: int = NUM_LABELS

    def __post_init__(self) -> None:
        if len(self.channels) != len(self.blocks):
            raise ValueError("channels and blocks need one entry per stage")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DegNetConfig:
        data = dict(data)
        for key in ("channels", "blocks"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


@dataclass(frozen=True)
class ClassifierOutput:
    logits: Tensor  # (B, num_labels): sigmoid -> per-label probability (multi-label)
    severity: Tensor  # (B, num_labels) in [0, 1]
    embedding: Tensor  # (B, embed_dim), L2-normalised
    pooled: Tensor | None = None  # (B, 2 * sum(channels)): per-stage mean and std, the head's input


class _Block(nn.Module):
    """Depthwise 5x5 + pointwise inverted bottleneck, residual."""

    def __init__(self, channels: int):
        super().__init__()
        self.dw = nn.Conv2d(channels, channels, 5, padding=2, groups=channels)
        self.norm = nn.BatchNorm2d(channels)
        self.pw1 = nn.Conv2d(channels, channels * 2, 1)
        self.pw2 = nn.Conv2d(channels * 2, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.pw2(F.gelu(self.pw1(self.norm(self.dw(x)))))


class DegNet(nn.Module):
    def __init__(self, config: DegNetConfig = DegNetConfig()):
        super().__init__()
        self.config = config
        c0 = config.channels[0]
        # stride-1 first conv: pixel-level statistics (noise, JPEG grid) survive into the features
        self.stem = nn.Sequential(nn.Conv2d(3, c0, 3, padding=1), nn.GELU())
        stages, prev = [], c0
        for c, n in zip(config.channels, config.blocks):
            down = nn.Conv2d(prev, c, 3, stride=2, padding=1)
            stages.append(nn.Sequential(down, *[_Block(c) for _ in range(n)]))
            prev = c
        self.stages = nn.ModuleList(stages)
        pooled = 2 * sum(config.channels)  # mean and std of every stage
        self.project = nn.Sequential(nn.Linear(pooled, 2 * config.embed_dim), nn.GELU(), nn.Linear(2 * config.embed_dim, config.embed_dim))
        self.label_head = nn.Linear(config.embed_dim, config.num_labels)
        self.severity_head = nn.Linear(config.embed_dim, config.num_labels)
        # the image-level DegHead of a format-2 classifier checkpoint (set by the loader); the
        # per-view forward below never uses it
        self.head: nn.Module | None = None

    def forward(self, x: Tensor) -> ClassifierOutput:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected Bx3xHxW images, got shape {tuple(x.shape)}")
        h = self.stem(x * 2 - 1)
        pooled = []
        for stage in self.stages:
            h = stage(h)
            flat = h.flatten(2).float()
            pooled += [flat.mean(-1), flat.std(-1, unbiased=False)]
        feature = self.project(torch.cat(pooled, dim=1).to(h.dtype))
        return ClassifierOutput(
            logits=self.label_head(feature).float(),
            severity=torch.sigmoid(self.severity_head(feature).float()),
            embedding=F.normalize(feature.float(), dim=-1),
            pooled=torch.cat(pooled, dim=1),
        )


@dataclass(frozen=True)
class DegHeadConfig:
    """The image-level head: an MLP over aggregated DegNet views and classical measurements."""

    input_dim: int
    hidden: tuple[int, ...] = (256, 128)
    # how many of irestore.conditioning.measures.NAMES it reads (163: the first release's set,
    # which heads saved before this field existed were trained on)
    measures: int = 163
    dropout: float = 0.1
    num_labels: int = NUM_LABELS

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DegHeadConfig:
        data = dict(data)
        if "hidden" in data:
            data["hidden"] = tuple(data["hidden"])
        return cls(**data)


class DegHead(nn.Module):
    """Standardise the image's feature vector (statistics fitted on training data, stored as
    buffers), an MLP, then label logits, severities and per-label Platt calibration
    (``scale * logit + bias``, fitted on held-out data; identity until fitted)."""

    def __init__(self, config: DegHeadConfig):
        super().__init__()
        self.config = config
        self.register_buffer("feature_mean", torch.zeros(config.input_dim))
        self.register_buffer("feature_std", torch.ones(config.input_dim))
        self.register_buffer("calibration_scale", torch.ones(config.num_labels))
        self.register_buffer("calibration_bias", torch.zeros(config.num_labels))
        layers, prev = [], config.input_dim
        for width in config.hidden:
            layers += [nn.Linear(prev, width), nn.GELU(), nn.Dropout(config.dropout)]
            prev = width
        self.mlp = nn.Sequential(*layers)
        self.label_head = nn.Linear(prev, config.num_labels)
        self.severity_head = nn.Linear(prev, config.num_labels)

    def raw(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Uncalibrated logits and severities of (B, input_dim) features."""
        h = self.mlp((features.float() - self.feature_mean) / self.feature_std)
        return self.label_head(h), torch.sigmoid(self.severity_head(h))

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Calibrated logits and severities."""
        logits, severity = self.raw(features)
        return logits * self.calibration_scale + self.calibration_bias, severity


def classifier_loss(
    output: ClassifierOutput, labels: Tensor, severity: Tensor, severity_mask: Tensor, severity_weight: float = 1.0
) -> Tensor:
    """Multi-label BCE plus an L1 severity loss where the severity is known."""
    bce = F.binary_cross_entropy_with_logits(output.logits, labels)
    mask = severity_mask * labels
    l1 = ((output.severity - severity).abs() * mask).sum() / mask.sum().clamp_min(1.0)
    return bce + severity_weight * l1
