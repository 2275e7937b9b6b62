"""The degradation classifier: DegNet checkpoints and inference on images of any size.

Checkpoints have the same layout as restorer checkpoints: a folder with `model.safetensors`
and `config.json`, the config also stored in the safetensors header, nothing unpickled on load.

Inference (:class:`DegradationClassifier`) looks at up to ``max_tiles`` native-resolution
crops spread over the image (pixel-level evidence: noise, JPEG blocks, rain streaks) plus one
global view resized to the crop size (scene-level evidence: haze, low light). The embedding
(what a restorer is conditioned on) is the renormalised mean of DegNet's embeddings of the
native tiles: restorer training embeds each native training crop the same way (an image no
larger than a tile is one tile, so there the two are identical).

Labels and severities come from one of two decision paths:

- a checkpoint with a **head** (format 2): one image-level feature vector — DegNet's pooled
  features and logits aggregated over the tiles (mean, max) and the global view, plus the
  classical measurements of :mod:`irestore.conditioning.measures` — goes through a small MLP
  with per-label Platt calibration; per-label decision thresholds chosen on held-out photos
  are stored in the checkpoint's config;
- a DegNet alone (format 1): probabilities are the mean over views, severities the
  probability-weighted mean, one threshold for every label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from irestore import __version__
from irestore.conditioning.classification import (  # noqa: F401  (re-exported)
    DEGRADATIONS,
    MIN_SIDE,
    Classification,
    Classifier,
    at_least,
    tile_origins,
    view_batches,
)
from irestore.conditioning.measures import NUM_MEASURES, measure
from irestore.devices import resolve_device
from irestore.labels import LABELS
from irestore.models.degnet import ClassifierOutput, DegHead, DegHeadConfig, DegNet, DegNetConfig
from irestore.models.files import (
    CheckpointError,
    load_weights_strict,
    read_config,
    weights_file,
    write_checkpoint_folder,
)
from irestore.registry import create_classifier, register_classifier, register_weights
from irestore.weights import WeightSource, file_sha256, resolve_weights

FORMAT = "irestore-classifier"
FORMAT_VERSION = 2


@dataclass(frozen=True)
class ClassifierInfo:
    network: DegNetConfig
    labels: tuple[str, ...] = LABELS
    name: str = "unnamed"
    training: dict = field(default_factory=dict)
    irestore_version: str = __version__
    head: DegHeadConfig | None = None
    thresholds: dict[str, float] | None = None  # per label, chosen on held-out data (head only)
    absent_levels: dict[str, float] | None = None  # per label: below it the label is confidently absent
    clean_level: float | None = None  # p(clean) under which the image is not clean either
    calibration: dict = field(default_factory=dict)  # how the head was calibrated, and its measured ECE

    def to_dict(self) -> dict:
        data = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION if self.head is not None else 1,
            "irestore_version": self.irestore_version,
            "name": self.name,
            "network": {"type": "degnet", "config": self.network.to_dict()},
            "labels": list(self.labels),
            "training": self.training,
        }
        if self.head is not None:
            data["head"] = self.head.to_dict()
            data["thresholds"] = self.thresholds
            data["absent_levels"] = self.absent_levels
            data["clean_level"] = self.clean_level
            data["calibration"] = self.calibration
        return data

    @classmethod
    def from_dict(cls, data: dict, source: Path) -> ClassifierInfo:
        if data.get("format") != FORMAT:
            raise CheckpointError(f"{source}: not an irestore classifier checkpoint (format={data.get('format')!r})")
        if data.get("format_version", 0) > FORMAT_VERSION:
            raise CheckpointError(f"{source}: classifier format {data['format_version']} is newer than this irestore supports")
        try:
            info = cls(
                network=DegNetConfig.from_dict(data["network"]["config"]),
                labels=tuple(data["labels"]),
                name=data.get("name", "unnamed"),
                training=data.get("training", {}),
                irestore_version=data.get("irestore_version", "unknown"),
                head=DegHeadConfig.from_dict(data["head"]) if data.get("head") else None,
                thresholds=_thresholds(data.get("thresholds")),
                absent_levels=_thresholds(data.get("absent_levels")),
                clean_level=None if data.get("clean_level") is None else float(data["clean_level"]),
                calibration=data.get("calibration", {}),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{source}: malformed classifier config ({error})") from error
        if info.labels != LABELS:
            raise CheckpointError(f"{source}: classifier labels {list(info.labels)} differ from this irestore's {list(LABELS)}")
        if info.head is not None and not 0 < info.head.measures <= NUM_MEASURES:
            raise CheckpointError(f"{source}: the head reads {info.head.measures} measurements; this irestore has {NUM_MEASURES}")
        if info.head is not None and info.head.input_dim != head_input_dim(info.network, info.head.measures):
            raise CheckpointError(f"{source}: head input {info.head.input_dim} does not match DegNet's features "
                                  f"({head_input_dim(info.network, info.head.measures)})")
        return info


def _thresholds(data: dict | None) -> dict[str, float] | None:
    if data is None:
        return None
    unknown = set(data) - set(LABELS)
    if unknown:
        raise ValueError(f"thresholds for unknown labels {sorted(unknown)}")
    return {label: float(value) for label, value in data.items()}


def save_classifier(folder: str | Path, network: DegNet, info: ClassifierInfo) -> Path:
    return write_checkpoint_folder(folder, network, info.to_dict())


def read_classifier_info(path: str | Path) -> ClassifierInfo:
    weights, data = read_config(path)
    return ClassifierInfo.from_dict(data, weights)


def load_classifier(path: str | Path, device: torch.device | str = "cpu") -> tuple[DegNet, ClassifierInfo]:
    weights, data = read_config(path)
    info = ClassifierInfo.from_dict(data, weights)
    network = DegNet(info.network)
    if info.head is not None:
        network.head = DegHead(info.head)
    load_weights_strict(network, weights)
    return network.to(device).eval(), info


def head_input_dim(network: DegNetConfig, measures: int = NUM_MEASURES) -> int:
    pooled = 2 * sum(network.channels)
    return 3 * pooled + 3 * network.num_labels + measures


def head_features(tile_out: ClassifierOutput, global_out: ClassifierOutput | None, measures: Tensor) -> Tensor:
    """The head's (1, D) input: DegNet's pooled features and logits over the native tiles (mean
    and max) and of the global view (the tiles' mean when the image is one tile), then the
    classical measurements. Training computes it with this same function."""
    parts = []
    for name in ("pooled", "logits"):
        tiles = getattr(tile_out, name).float()
        whole = tiles.mean(0) if global_out is None else getattr(global_out, name).float()[0]
        parts += [tiles.mean(0), tiles.amax(0), whole]
    return torch.cat([*parts, measures.float()])[None]


# -- inference -------------------------------------------------------------------------------

DEFAULT_CLASSIFIER = "degnet-default"
register_weights(
    WeightSource(
        name=DEFAULT_CLASSIFIER,
        filename="model.safetensors",
        package="irestore",
        package_file=f"assets/{DEFAULT_CLASSIFIER}/model.safetensors",
        kind="classifier",
        description="DegNet degradation classifier (9 labels, severities, 64-d embedding)",
        install_hint="train one with `irestore train --task classifier` and pass --model PATH",
    )
)
class DegradationClassifier:
    """DegNet inference: ``classify(image)`` for a 1x3xHxW image in [0, 1] of any size."""

    backend = "degnet"

    def __init__(
        self,
        network: DegNet,
        info: ClassifierInfo,
        device: str | torch.device = "cpu",
        tile: int = 256,
        max_tiles: int = 8,
        global_view: bool = True,
        threshold: float | None = None,
        fingerprint: str = "",
    ):
        self.device = resolve_device(str(device))
        # channels-last convolutions are ~15% faster on CPU (oneDNN) and no slower on CUDA
        self.network = network.to(self.device, memory_format=torch.channels_last).eval()
        self.info = info
        self.name = info.name
        self.tile, self.max_tiles, self.global_view = tile, max_tiles, global_view
        # an explicit threshold overrides the checkpoint's calibrated per-label thresholds
        self.threshold = 0.5 if threshold is None else threshold
        calibrated = threshold is None and network.head is not None
        self.thresholds = info.thresholds if calibrated else None
        self.absent_levels = info.absent_levels if calibrated else None
        self.clean_level = info.clean_level if calibrated else None
        self.fingerprint = fingerprint

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path = DEFAULT_CLASSIFIER,
        device: str | torch.device = "cpu",
        offline: bool | None = None,
        **options,
    ) -> DegradationClassifier:
        """A classifier checkpoint folder or .safetensors file, or a registered name (model store)."""
        path = resolve_weights(name_or_path, offline=offline)
        network, info = load_classifier(path)
        return cls(network, info, device, fingerprint=file_sha256(weights_file(path))[:16], **options)

    @property
    def embedding_dim(self) -> int:
        return self.info.network.embed_dim

    @torch.inference_mode()
    def classify(self, image: Tensor, head: bool = True) -> Classification:
        """The classification of a 1x3xHxW image; ``head=False`` decides from DegNet's per-view
        probabilities alone (mean over views, one threshold), as a format-1 checkpoint does."""
        views, outputs = self._views(image)
        # the embedding a restorer is conditioned on comes from native-resolution tiles only:
        # restorer training embeds native crops, and a downscaled view looks less degraded
        embedding = F.normalize(outputs[0].embedding.mean(0, keepdim=True), dim=-1).cpu()
        calibrated = self.network.head is not None and head
        if calibrated:  # the measurements are computed only here: the judge and format 1 skip them
            logits, severity = self.network.head(self._features(views, outputs, self.network.head.config.measures))
            probabilities, severity = torch.sigmoid(logits[0]), severity[0]
        else:
            probabilities, severity = self._mean_over_views(outputs)
        return Classification(
            probabilities={label: float(probabilities[i]) for i, label in enumerate(LABELS)},
            severity={label: float(severity[i]) for i, label in enumerate(LABELS) if label != "clean"},
            embedding=embedding,
            threshold=self.threshold,
            backend=self.backend,
            thresholds=self.thresholds if calibrated else None,
            absent_levels=self.absent_levels if calibrated else None,
            clean_level=self.clean_level if calibrated else None,
        )

    @property
    def judge(self):
        """For a checkpoint with a head: DegNet's per-view decision (``classify(head=False)``),
        which the planner judges restored images with; None without a head."""
        if self.network.head is None:
            return None
        return lambda image: self.classify(image, head=False)

    @torch.inference_mode()
    def evidence(self, image: Tensor) -> tuple[list[ClassifierOutput], Tensor]:
        """DegNet's outputs per view batch (tiles, then the global view if any) and the head's
        (1, D) feature vector with every measurement (a head reads the first ``measures`` of
        them): what :meth:`classify` decides from, and what the head is trained on."""
        views, outputs = self._views(image)
        return outputs, self._features(views, outputs)

    def view_crops(self, image: Tensor) -> list[Tensor]:
        """The batches of views it looks at: native tiles, then the whole image if larger."""
        if image.ndim != 4 or image.shape[:2] != (1, 3):
            raise ValueError(f"expected a 1x3xHxW image tensor, got shape {tuple(image.shape)}")
        image = at_least(image.to(self.device, torch.float32), MIN_SIDE)
        return view_batches(image, self.tile, self.max_tiles, self.global_view)

    def _views(self, image: Tensor) -> tuple[list[Tensor], list[ClassifierOutput]]:
        views = self.view_crops(image)
        return views, [self.network(v.contiguous(memory_format=torch.channels_last)) for v in views]

    @staticmethod
    def _features(views: list[Tensor], outputs: list[ClassifierOutput], measures: int = NUM_MEASURES) -> Tensor:
        return head_features(outputs[0], outputs[1] if len(outputs) > 1 else None, measure(views[0], views[-1], measures))

    @staticmethod
    def _mean_over_views(outputs: list[ClassifierOutput]) -> tuple[Tensor, Tensor]:
        probabilities = torch.cat([torch.sigmoid(o.logits) for o in outputs])
        severity = torch.cat([o.severity for o in outputs])
        weights = probabilities + 1e-6
        return probabilities.mean(0), (severity * weights).sum(0) / weights.sum(0)


def _degnet_classifier(model, device, offline, threshold=None) -> Classifier:
    return DegradationClassifier.from_pretrained(model or DEFAULT_CLASSIFIER, device, offline, threshold=threshold)


def _clip_classifier(model, device, offline, threshold=None) -> Classifier:
    from irestore.conditioning.clip_zeroshot import ClipZeroShotClassifier
    from irestore.conditioning.open_clip_models import DEFAULT_CLIP

    return ClipZeroShotClassifier.from_pretrained(model or DEFAULT_CLIP, device, offline, threshold=threshold)


register_classifier("degnet", _degnet_classifier)
register_classifier("clip", _clip_classifier)  # zero-shot, any open_clip CLIP spec


def classifier_from_name(name: str, device: str | torch.device = "cpu") -> Classifier:
    """The classifier a restorer checkpoint names: ``clip:SPEC`` for zero-shot CLIP, anything
    else a DegNet checkpoint path or store name."""
    backend, _, spec = name.partition(":")
    if backend == "clip":
        return create_classifier("clip", spec or None, device)
    return create_classifier("degnet", name, device)
