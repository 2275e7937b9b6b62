"""Degradation classifier checkpoints: DegNet weights (safetensors) + a JSON config.

Same layout as restorer checkpoints: a folder with `model.safetensors` and `config.json`,
the config also stored in the safetensors header, nothing unpickled on load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from irestore import __version__
from irestore.checkpoint import CheckpointError, load_weights_strict, read_config, write_checkpoint_folder
from irestore.labels import LABELS
from irestore.models.degnet import DegNet, DegNetConfig

FORMAT = "irestore-classifier"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ClassifierInfo:
    network: DegNetConfig
    labels: tuple[str, ...] = LABELS
    name: str = "unnamed"
    training: dict = field(default_factory=dict)
    irestore_version: str = __version__

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "irestore_version": self.irestore_version,
            "name": self.name,
            "network": {"type": "degnet", "config": self.network.to_dict()},
            "labels": list(self.labels),
            "training": self.training,
        }

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
            )
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{source}: malformed classifier config ({error})") from error
        if info.labels != LABELS:
            raise CheckpointError(f"{source}: classifier labels {list(info.labels)} differ from this irestore's {list(LABELS)}")
        return info


def save_classifier(folder: str | Path, network: DegNet, info: ClassifierInfo) -> Path:
    return write_checkpoint_folder(folder, network, info.to_dict())


def read_classifier_info(path: str | Path) -> ClassifierInfo:
    weights, data = read_config(path)
    return ClassifierInfo.from_dict(data, weights)


def load_classifier(path: str | Path, device: torch.device | str = "cpu") -> tuple[DegNet, ClassifierInfo]:
    weights, data = read_config(path)
    info = ClassifierInfo.from_dict(data, weights)
    network = DegNet(info.network)
    load_weights_strict(network, weights)
    return network.to(device).eval(), info
