"""Restorer checkpoints: safetensors weights + a JSON config that rebuilds the model.

A checkpoint folder holds `model.safetensors` and `config.json`; the same JSON is also
stored in the safetensors header, so a lone `.safetensors` file is self-describing.
Nothing is unpickled on load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from irestore import __version__
from irestore.diffusion.sampling import check_prediction
from irestore.diffusion.sde import SDEConfig
from irestore.models.catalogue import NetworkConfig
from irestore.models.files import CheckpointError, load_weights_strict, read_config, write_checkpoint_folder
from irestore.registry import NETWORK_FAMILIES, build_network, network_type

FORMAT = "irestore-restorer"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class CheckpointInfo:
    """Everything besides the weights that a restorer needs (and what it was trained on)."""

    network: NetworkConfig
    sde: SDEConfig
    text_encoder: str
    text_dim: int
    classifier: str | None = None
    name: str = "unnamed"
    default_sampler: str = "posterior"
    default_steps: int = 10
    prediction: str = "noise"  # what the network outputs: "noise" (ε) or "x0" (see sampling.PREDICTIONS)
    training: dict = field(default_factory=dict)
    irestore_version: str = __version__

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "irestore_version": self.irestore_version,
            "name": self.name,
            "network": {"type": network_type(self.network), "config": self.network.to_dict()},
            "sde": self.sde.to_dict(),
            "text_encoder": {"name": self.text_encoder, "dim": self.text_dim},
            "classifier": self.classifier,
            "defaults": {"sampler": self.default_sampler, "steps": self.default_steps},
            "prediction": self.prediction,
            "training": self.training,
        }

    @classmethod
    def from_dict(cls, data: dict, source: Path) -> CheckpointInfo:
        if data.get("format") != FORMAT:
            raise CheckpointError(f"{source}: not an irestore restorer checkpoint (format={data.get('format')!r})")
        if data.get("format_version", 0) > FORMAT_VERSION:
            raise CheckpointError(
                f"{source}: checkpoint format {data['format_version']} is newer than this irestore "
                f"supports ({FORMAT_VERSION}); upgrade irestore"
            )
        network = data.get("network")
        kind = network.get("type", "erunet") if isinstance(network, dict) else None  # v1 files before m3unet: erunet
        if kind not in NETWORK_FAMILIES:
            raise CheckpointError(f"{source}: unknown network type {kind!r}; this irestore builds {', '.join(NETWORK_FAMILIES.names())}")
        try:
            return cls(
                network=NETWORK_FAMILIES.get(kind)[0].from_dict(data["network"]["config"]),
                sde=SDEConfig(**data["sde"]),
                text_encoder=data["text_encoder"]["name"],
                text_dim=int(data["text_encoder"]["dim"]),
                classifier=data.get("classifier"),
                name=data.get("name", "unnamed"),
                default_sampler=data.get("defaults", {}).get("sampler", "posterior"),
                default_steps=int(data.get("defaults", {}).get("steps", 10)),
                prediction=check_prediction(data.get("prediction", "noise")),
                training=data.get("training", {}),
                irestore_version=data.get("irestore_version", "unknown"),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{source}: malformed checkpoint config ({error})") from error


def save_checkpoint(folder: str | Path, network: torch.nn.Module, info: CheckpointInfo) -> Path:
    """Write a restorer checkpoint folder."""
    return write_checkpoint_folder(folder, network, info.to_dict())


def read_info(path: str | Path) -> CheckpointInfo:
    """Read a restorer checkpoint's config."""
    weights, data = read_config(path)
    return CheckpointInfo.from_dict(data, weights)


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, CheckpointInfo]:
    """Rebuild the network from the config and load its weights strictly."""
    weights, data = read_config(path)
    info = CheckpointInfo.from_dict(data, weights)
    network = build_network(info.network)
    load_weights_strict(network, weights)
    return network.to(device).eval(), info
