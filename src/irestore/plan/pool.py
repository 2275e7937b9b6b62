"""The planner's pool: which registered methods it may use, and which it prefers for each label.

Members come from the one restorer registry (``irestore.restorers``). Only blind members that keep
the image size take part (a deconvolution that needs the true kernel cannot run on a user's
photo). The preference order per label is the order of :data:`DEFAULT_POOL`, which follows the
held-out benchmark (README, *Results*): FFDNet beats the diffusion restorer on noise by 7 dB; the
diffusion restorer beats the gamma curve on low light on average, and the search measures that per
image. ``pnp-deblur`` (blind kernel estimate + FFDNet-prior deconvolution) is the only member for
motion and defocus blur. The rain specialist ``derain`` comes before the diffusion restorer for
rain: on the held-out photos it is +5.7 dB above it on degrade's rain and +1.4 dB on the second
synthesis, at a quarter of the cost (0.2 dB below it on rain outside its training ranges; README,
*Results*). The haze specialist ``dehaze`` comes before the diffusion restorer for haze: on the held-out
photos it is +2.3 dB above it on degrade's haze and +2.2 dB on the second synthesis, with clearly
higher SSIM, at a fifth of the cost; with it in the pool the plan gained +0.9 and +0.5 dB there
(README, *Results*). The low-light specialist ``lowlight`` is the first low-light member: with
it first and exploration, the plan reached 19.32 dB on the mixtures suite (the previous release,
with neither, 18.53); with the diffusion restorer first, the low-light mixtures fell back to about
the input (lowlight+jpeg 9.98 dB, haze+lowlight 8.48). Once a step got no credit for what it does
not fix (``Planner.hold``: denoising had read as brightening), the mixtures reached 20.21 dB and
single low light 19.91 on the 12 held-out photos (16.06 before; 19.28 without the specialist;
README, *Results*). The dark channel prior is left out: the diffusion restorer dehazed each held-out
photo better, and on a pale, low-contrast photo that the classifier takes for haze the prior did
the worst damage of any member (58.8 -> 12.7 dB); ``--plan haze:dcp`` still runs it. Without the
diffusion restorer as a second member the mixtures averaged 20.71 dB against 20.74: it loses low
light + noise but wins noise + JPEG on every photo (README, *Results*).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from irestore.plan.search import FIXED_ORDER
from irestore.restorers import RestorationMethod, create_restorer, method_info
from irestore.restorers.catalogue import ENSEMBLE

DEFAULT_POOL = ("ffdnet-color", "pnp-deblur", "waifu2x-photo", "derain", "dehaze", "lowlight", "allinone-small", "gamma")
GENERATIVE_POOL = ("realesrgan-x4plus",)  # used only when the prompt asks for detail (see plan.intent)


def pool_loaders(names: Sequence[str] = DEFAULT_POOL, device: str = "cpu", seed: int = 0,
                 ensemble: int = 1) -> dict[str, Callable[[], RestorationMethod]]:
    """Lazy loaders for the members (a member's weights load the first time a plan uses it); with
    ``ensemble`` > 1 every member runs as a self-ensemble of that many flips/rotations."""
    for name in names:
        card = method_info(name).card
        if not card.blind:
            raise ValueError(f"{name} cannot be a pool member: it needs the true degradation parameters")
    suffix = f"{ENSEMBLE}{ensemble}" if ensemble > 1 else ""
    return {name: partial(create_restorer, name + suffix, device, seed) for name in names}


def preferences(names: Sequence[str] = DEFAULT_POOL, generative: bool = False) -> dict[str, tuple[str, ...]]:
    """label -> the members that fix it, in pool order. Generative members are left out, unless
    ``generative`` (the user asked for detail): then they come first for the labels they fix."""
    cards = {name: method_info(name).card for name in names}
    ordered = sorted(names, key=lambda n: not cards[n].generative) if generative else [n for n in names if not cards[n].generative]
    return {label: tuple(n for n in ordered if label in cards[n].fixes) for label in FIXED_ORDER}
