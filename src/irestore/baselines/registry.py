"""Peer methods by name: ``create_method(spec)`` / ``list_methods()``.

``spec`` is a registered name (``nlm``, ``cbm3d``, ...) or ``irestore:MODEL@STEPS[:SAMPLER][:blind]``.
Each entry states the degradation families it handles and whether it needs the true
degradation parameters (known for synthetic suites, unknown for real datasets).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from irestore.baselines.base import PeerMethod
from irestore.baselines.diffusion import PREFIX, IRestoreMethod

__all__ = ["METHODS", "MethodInfo", "create_method", "list_methods", "method_info"]


@dataclass(frozen=True)
class MethodInfo:
    name: str
    families: tuple[str, ...]  # () = any degradation
    parameters: str  # what it is told about the degradation
    summary: str
    build: Callable[[str], PeerMethod]


def _identity(device: str) -> PeerMethod:
    from irestore.baselines.identity import Identity

    return Identity()


def _nlm(device: str) -> PeerMethod:
    from irestore.baselines.nlm import NonLocalMeans

    return NonLocalMeans()


def _cbm3d(device: str) -> PeerMethod:
    from irestore.baselines.cbm3d import CBM3D

    return CBM3D()


def _ffdnet(device: str) -> PeerMethod:
    from irestore.baselines.ffdnet import FFDNetPeer

    return FFDNetPeer(device)


def _dcp(device: str) -> PeerMethod:
    from irestore.baselines.dcp import DarkChannelPrior

    return DarkChannelPrior()


def _wiener(device: str) -> PeerMethod:
    from irestore.baselines.deconvolution import Wiener

    return Wiener()


def _rl(device: str) -> PeerMethod:
    from irestore.baselines.deconvolution import RichardsonLucy

    return RichardsonLucy()


def _bicubic(device: str) -> PeerMethod:
    from irestore.baselines.resample import Bicubic

    return Bicubic()


def _gamma(device: str) -> PeerMethod:
    from irestore.baselines.exposure import GammaCorrection

    return GammaCorrection()


METHODS: dict[str, MethodInfo] = {
    m.name: m
    for m in (
        MethodInfo("identity", (), "nothing", "the degraded input", _identity),
        MethodInfo("nlm", ("noise",), "noise σ (true, else estimated)", "OpenCV non-local means", _nlm),
        MethodInfo("cbm3d", ("noise",), "noise σ (true, else estimated)", "colour BM3D (bm3d package)", _cbm3d),
        MethodInfo("ffdnet", ("noise",), "noise σ (true, else estimated)", "FFDNet colour, pretrained", _ffdnet),
        MethodInfo("dcp", ("haze",), "nothing (blind)", "dark channel prior + guided filter", _dcp),
        MethodInfo("wiener", ("blur",), "true blur kernel (skipped without)", "Wiener deconvolution", _wiener),
        MethodInfo("rl", ("blur",), "true blur kernel (skipped without)", "Richardson–Lucy deconvolution", _rl),
        MethodInfo("bicubic", ("lowres",), "target size", "bicubic upscaling", _bicubic),
        MethodInfo("gamma", ("lowlight",), "nothing (blind)", "global gamma correction", _gamma),
    )
}
_IRESTORE = MethodInfo(
    "irestore:MODEL@STEPS", (), "text description as prompt (none with :blind)", "irestore diffusion model (any checkpoint)", lambda d: None
)


def list_methods() -> list[MethodInfo]:
    """Every registered method, plus the irestore:MODEL@STEPS form."""
    return [*METHODS.values(), _IRESTORE]


def method_info(spec: str) -> MethodInfo:
    if spec.startswith(PREFIX):
        return _IRESTORE
    if spec not in METHODS:
        known = ", ".join([*METHODS, "irestore:MODEL@STEPS"])
        raise KeyError(f"unknown method {spec!r}; known: {known}")
    return METHODS[spec]


def create_method(spec: str, device: str = "cpu", seed: int = 0) -> PeerMethod:
    """Build a method (loads its weights). Raises KeyError for unknown names."""
    if spec.startswith(PREFIX):
        return IRestoreMethod(spec, device=device, seed=seed)
    return method_info(spec).build(device)
