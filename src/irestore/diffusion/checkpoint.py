"""Restorer checkpoints: safetensors weights + a JSON config that rebuilds the model.

A checkpoint folder holds `model.safetensors` and `config.json`; the same JSON is also
stored in the safetensors header, so a lone `.safetensors` file is self-describing.
Nothing is unpickled on load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from irestore import __version__
from irestore.diffusion.sampling import check_prediction
from irestore.diffusion.sde import SDEConfig
from irestore.io import atomic_path, atomic_write_text
from irestore.registry import NETWORK_TYPES, NetworkConfig, build_network, network_type

FORMAT = "irestore-restorer"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
_METADATA_KEY = "irestore_config"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


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
        if kind not in NETWORK_TYPES:
            raise CheckpointError(f"{source}: unknown network type {kind!r}; this irestore builds {', '.join(NETWORK_TYPES)}")
        try:
            return cls(
                network=NETWORK_TYPES[kind][0].from_dict(data["network"]["config"]),
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


def write_checkpoint_folder(folder: str | Path, network: torch.nn.Module, config: dict) -> Path:
    """Write model.safetensors (config in its header) + config.json into `folder`, file by file atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config_json = json.dumps(config, indent=2, sort_keys=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in network.state_dict().items()}
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={_METADATA_KEY: config_json})
    atomic_write_text(folder / CONFIG_FILE, config_json + "\n")
    return folder


def save_checkpoint(folder: str | Path, network: torch.nn.Module, info: CheckpointInfo) -> Path:
    """Write a restorer checkpoint folder."""
    return write_checkpoint_folder(folder, network, info.to_dict())


def weights_file(path: str | Path) -> Path:
    """The safetensors file of a checkpoint given as a folder or as the file itself."""
    path = Path(path)
    weights = path / WEIGHTS_FILE if path.is_dir() else path
    if not weights.is_file():
        raise CheckpointError(f"{path}: no {WEIGHTS_FILE} found")
    return weights


def read_config(path: str | Path) -> tuple[Path, dict]:
    """A checkpoint's weights file and config: config.json beside the weights, else the safetensors header."""
    weights = weights_file(path)
    config_path = weights.parent / CONFIG_FILE
    try:
        if weights.name == WEIGHTS_FILE and config_path.is_file():
            data = json.loads(config_path.read_text(encoding="utf-8"))
        else:
            with safe_open(str(weights), framework="pt") as handle:
                data = json.loads((handle.metadata() or {})[_METADATA_KEY])
    except KeyError as error:
        raise CheckpointError(f"{weights}: safetensors file carries no irestore config") from error
    except Exception as error:  # JSON, OS and safetensors header errors alike
        raise CheckpointError(f"{weights}: unreadable checkpoint ({error})") from error
    return weights, data


def load_weights_strict(network: torch.nn.Module, weights: Path) -> None:
    try:
        network.load_state_dict(load_file(str(weights), device="cpu"), strict=True)
    except (RuntimeError, OSError) as error:
        raise CheckpointError(f"{weights}: weights do not match the saved config ({error})") from error


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
