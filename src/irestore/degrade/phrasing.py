"""Text descriptions of degradation parameters: the prompts a restorer is trained with."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_ADJ = {
    "light": ("slight", "light", "mild", "faint"),
    "moderate": ("moderate", "noticeable", "medium"),
    "heavy": ("heavy", "strong", "severe", "intense"),
}
_ADV = {
    "light": ("slightly", "a little"),
    "moderate": ("moderately", "fairly", "quite"),
    "heavy": ("very", "extremely"),
}
_NOUNS = {
    "noise": ("noise", "image noise", "grain", "sensor noise"),
    "motion": ("motion blur", "camera-shake blur", "motion smear"),
    "defocus": ("defocus blur", "out-of-focus blur", "lens blur"),
    "gaussian_blur": ("blur", "softness", "Gaussian blur"),
    "rain": ("rain", "rain streaks", "rainfall"),
    "haze": ("haze", "fog", "mist"),
    "lowlight": ("underexposure", "darkness", "low light"),
    "jpeg": ("JPEG artifacts", "compression artifacts", "blocking artifacts"),
    "lowres": (
        "{scale}x downsampling",
        "low resolution ({scale}x)",
        "reduced resolution",
    ),
}
_SENTENCES = {
    "noise": ("denoise this {adv} noisy photo", "the picture is {adv} grainy"),
    "motion": (
        "sharpen the {adv} motion-blurred picture",
        "this shot is {adv} blurred by camera shake",
    ),
    "defocus": (
        "refocus this {adv} out-of-focus photo",
        "the image is {adv} out of focus",
    ),
    "gaussian_blur": (
        "sharpen this {adv} blurry image",
        "the photo is {adv} soft and blurred",
    ),
    "rain": (
        "derain this {adv} rainy photo",
        "take the rain streaks out of this picture",
    ),
    "haze": ("dehaze this {adv} hazy photo", "the scene is {adv} foggy"),
    "lowlight": (
        "brighten this {adv} dark photo",
        "enhance this {adv} underexposed image",
    ),
    "jpeg": (
        "this JPEG is {adv} compressed",
        "remove the compression blocks from this JPEG",
    ),
    "lowres": (
        "upscale this {scale}x downsampled image",
        "super-resolve this low-resolution picture",
    ),
}
_TEMPLATES = (
    "remove the {p}",
    "this photo has {p}",
    "please fix the {p} in this image",
    "clean up the {p}",
    "get rid of the {p} in this picture",
    "an image degraded by {p}",
)
_MIX_TEMPLATES = (
    "remove the {a} and the {b}",
    "this photo has {a} and {b}",
    "fix the {a} and {b} in this picture",
    "this image suffers from {a} plus {b}",
    "clean up both the {a} and the {b}",
)


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _phrase(params: dict, rng: np.random.Generator) -> str:
    """Noun phrase such as 'heavy rain' or '4x downsampling'."""
    kind = params["type"]
    noun = _pick(rng, _NOUNS[kind]).format(scale=params.get("scale"))
    return noun if kind == "lowres" else f"{_pick(rng, _ADJ[params['severity']])} {noun}"


_CLEAN_SENTENCES = (
    "this photo is already clean",
    "a clean photo with no degradation",
    "keep this sharp, clean picture as it is",
    "no degradation: leave the image unchanged",
)


def describe(params: dict, rng: np.random.Generator) -> str:
    """A randomly phrased description naming the degradation(s) and severity."""
    kind = params["type"]
    if kind == "clean":
        return _pick(rng, _CLEAN_SENTENCES)
    if kind == "mix":
        phrases = [_phrase(p, rng) for p in params["steps"]]
        return _pick(rng, _MIX_TEMPLATES).format(a=", ".join(phrases[:-1]), b=phrases[-1])
    if kind not in _NOUNS:
        raise ValueError(f"cannot describe degradation type {kind!r}")
    if rng.random() < 0.3:
        adv = _pick(rng, _ADV[params["severity"]])
        return _pick(rng, _SENTENCES[kind]).format(adv=adv, scale=params.get("scale"))
    return _pick(rng, _TEMPLATES).format(p=_phrase(params, rng))


