"""The restoration methods by name, declared in :mod:`irestore.registry` for the benchmark and the
planner's pool, and how a spec resolves to one.

``irestore.registry.create_restorer(spec)`` builds one (loading its weights);
``list_restorers()`` lists them with their cards, which need no weights. ``spec`` is a registered name (``ffdnet-color``, ``dcp``, ...),
``irestore:MODEL@STEPS[:SAMPLER][:blind]`` for any diffusion checkpoint, or a form another module
registers (the planner registers ``plan:auto``, ``plan:fixed``, ``plan:oracle`` and explicit plans).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from irestore.registry import RESTORERS, create_restorer, register_restorer
from irestore.restorers.base import Card, RestorationMethod
from irestore.restorers.diffusion import ALL_LABELS, PREFIX, DiffusionMethod

__all__ = ["ENSEMBLE", "MethodInfo", "split_ensemble"]

Builder = Callable[[str, str, int], RestorationMethod]  # (spec, device, seed) -> method


@dataclass(frozen=True)
class MethodInfo:
    """A registered name (or a ``prefix`` form such as ``irestore:MODEL@STEPS``) and its card."""

    name: str
    card: Card
    build: Builder
    prefix: bool = False  # name is a prefix: any spec starting with it

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(self.card.fixes)

    @property
    def summary(self) -> str:
        return self.card.summary

    @property
    def parameters(self) -> str:
        return self.card.parameters


def _simple(module: str, cls: str) -> Builder:
    def build(spec: str, device: str, seed: int) -> RestorationMethod:
        return getattr(importlib.import_module(f"irestore.restorers.{module}"), cls)()

    return build


def _card(module: str, name: str) -> Card:
    found = getattr(importlib.import_module(f"irestore.restorers.{module}"), name)
    return found if isinstance(found, Card) else found.card


def _ffdnet(spec: str, device: str, seed: int) -> RestorationMethod:
    from irestore.restorers.ffdnet import FFDNetMethod

    return FFDNetMethod(device)


def _waifu2x(spec: str, device: str, seed: int) -> RestorationMethod:
    from irestore.restorers.waifu2x import Waifu2xPhoto

    return Waifu2xPhoto(device)


def _pnp_deblur(spec: str, device: str, seed: int) -> RestorationMethod:
    from irestore.restorers.pnp_deblur import BlindDeblur

    return BlindDeblur(device)


def _realesrgan(spec: str, device: str, seed: int) -> RestorationMethod:
    from irestore.restorers.realesrgan import RealESRGAN

    return RealESRGAN(spec, device)


ALLINONE = "allinone-small"
# What it fixes is what it measurably fixes on held-out photos (README, Results): it was trained on all
# eight labels, but makes motion blur, defocus blur and low resolution slightly worse, so the planner
# does not offer it for those.
ALLINONE_CARD = Card(
    ALLINONE, "shipped all-in-one text-conditioned IR-SDE restorer (ERUNet-small, posterior sampler, 4 steps)",
    fixes={label: ALL_LABELS[label] for label in ("noise", "rain", "haze", "lowlight", "jpeg")}, any_input=True,
    parameters="text prompt", s_per_mp=53.6, weights="shipped in irestore (src/irestore/assets/allinone-small)",
)


def _specialist_card(name: str, kind: str, label: str) -> Card:
    """The card of a shipped one-pass specialist (M3UNet-small direct regressor) for one label."""
    return Card(
        name, f"shipped {kind} specialist (M3UNet-small direct regressor, one pass, text prompt)",
        fixes={label: ALL_LABELS[label]}, parameters="text prompt", s_per_mp=3.3,
        weights=f"shipped in irestore (src/irestore/assets/{name})",
    )


DERAIN = "derain"
# Trained on the broad rain family only (configs/derain.yaml), with clean photos mixed in so it leaves
# rain-free pixels alone; one pass (a direct regressor), so it costs a fraction of the diffusion members.
DERAIN_CARD = _specialist_card(DERAIN, "rain", "rain")
LOWLIGHT = "lowlight"
# Trained on the broad low-light family only (configs/lowlight.yaml): it brightens and removes the sensor
# noise that comes with the exposure, in one pass; clean photos were mixed in so it leaves exposed ones be.
# Registered (--model, --plan lowlight:lowlight, the benchmark) but not in the default pool (plan/pool.py).
LOWLIGHT_CARD = _specialist_card(LOWLIGHT, "low-light", "lowlight")
DEHAZE = "dehaze"
# Trained on the broad haze family only (configs/dehaze.yaml), with clean photos mixed in so it leaves clear
# photos alone; one pass.
DEHAZE_CARD = _specialist_card(DEHAZE, "haze", "haze")
SHIPPED = {ALLINONE: ALLINONE_CARD, DERAIN: DERAIN_CARD, LOWLIGHT: LOWLIGHT_CARD, DEHAZE: DEHAZE_CARD}  # the checkpoints in src/irestore/assets


def _shipped(spec: str, device: str, seed: int) -> RestorationMethod:
    return DiffusionMethod(f"{PREFIX}{spec}", device=device, seed=seed, card=SHIPPED[spec])


def _diffusion(spec: str, device: str, seed: int) -> RestorationMethod:
    return DiffusionMethod(spec, device=device, seed=seed)


_DIFFUSION_CARD = Card(f"{PREFIX}MODEL@STEPS", "irestore diffusion model (any checkpoint)", fixes=ALL_LABELS,
                       any_input=True, parameters="text description as prompt (none with :blind)")

for _info in (
    MethodInfo("identity", _card("identity", "Identity"), _simple("identity", "Identity")),
    MethodInfo("ffdnet-color", _card("ffdnet", "FFDNetMethod"), _ffdnet),
    MethodInfo("nlm", _card("nlm", "NonLocalMeans"), _simple("nlm", "NonLocalMeans")),
    MethodInfo("cbm3d", _card("cbm3d", "CBM3D"), _simple("cbm3d", "CBM3D")),
    MethodInfo("dcp", _card("dcp", "DarkChannelPrior"), _simple("dcp", "DarkChannelPrior")),
    MethodInfo("gamma", _card("exposure", "GammaCorrection"), _simple("exposure", "GammaCorrection")),
    MethodInfo("wiener", _card("deconvolution", "Wiener"), _simple("deconvolution", "Wiener")),
    MethodInfo("rl", _card("deconvolution", "RichardsonLucy"), _simple("deconvolution", "RichardsonLucy")),
    MethodInfo("pnp-deblur", _card("pnp_deblur", "BlindDeblur"), _pnp_deblur),
    MethodInfo("bicubic", _card("resample", "Bicubic"), _simple("resample", "Bicubic")),
    MethodInfo("waifu2x-photo", _card("waifu2x", "Waifu2xPhoto"), _waifu2x),
    MethodInfo("realesrgan-x4plus", _card("realesrgan", "X4PLUS_CARD"), _realesrgan),
    MethodInfo("realesr-animevideov3", _card("realesrgan", "ANIMEVIDEO_CARD"), _realesrgan),
    *(MethodInfo(name, card, _shipped) for name, card in SHIPPED.items()),
    MethodInfo(PREFIX, _DIFFUSION_CARD, _diffusion, prefix=True),
):
    register_restorer(_info)
RESTORERS.alias("ffdnet", "ffdnet-color")  # the benchmark's earlier name


ENSEMBLE = "+ensemble"  # NAME+ensembleN: the method under an N-fold self-ensemble


def split_ensemble(spec: str) -> tuple[str, int]:
    """``NAME+ensembleN`` -> (NAME, N); any other spec -> (spec, 1)."""
    base, sep, count = spec.rpartition(ENSEMBLE)
    if not sep:
        return spec, 1
    if not count.isdigit():
        raise KeyError(f"{spec!r}: write the self-ensemble as NAME{ENSEMBLE}N with N of 2, 4 or 8")
    return base, int(count)


def resolve(spec: str) -> MethodInfo:
    """The entry for a name or spec: a registered name (or alias), a self-ensemble of one
    (``NAME+ensembleN``), or a form registered as a prefix (``irestore:``, ``plan:``)."""
    base, count = split_ensemble(spec)
    if count != 1:
        from irestore.restorers.ensemble import SelfEnsemble, ensemble_card

        card = ensemble_card(resolve(base).card, count)
        return MethodInfo(spec, card, lambda _spec, device, seed: SelfEnsemble(create_restorer(base, device, seed), count))
    spec = RESTORERS.canonical(spec)
    entries = dict(RESTORERS.items())
    if spec in entries and not entries[spec].prefix:
        return entries[spec]
    for info in entries.values():
        if info.prefix and spec.startswith(info.name) and len(spec) > len(info.name):
            return info
    known = ", ".join(i.name + ("…" if i.prefix else "") for i in entries.values())
    raise KeyError(f"unknown method {spec!r}; known: {known}")


RESTORERS.set_resolver(resolve)
