"""The file format of every trained network: a folder with ``model.safetensors`` and
``config.json``, the same JSON also stored in the safetensors header so that a lone
``.safetensors`` file is self-describing. Nothing is unpickled on load. Restorer checkpoints
(:mod:`irestore.diffusion.checkpoint`) and classifier checkpoints both use it."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from irestore.io import atomic_path, atomic_write_text

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
_METADATA_KEY = "irestore_config"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


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
