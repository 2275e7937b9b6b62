"""The small stand-in of an image that the planner tries restorations on.

A downscaled view of the whole image (scene-level degradations: haze, low light, colour) plus a few
crops at native resolution (pixel-level ones: noise, JPEG blocks, rain streaks, blur), the same two
kinds of view the classifier is trained on. Crops are placed where the image has the most detail,
so a crop of flat sky does not hide blur or JPEG ringing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from irestore.conditioning.classifier import tile_origins


@dataclass(frozen=True)
class ProxySettings:
    view_side: int = 192  # long side of the downscaled whole-image view
    crops: int = 2  # native-resolution crops
    crop_side: int = 128
    candidates: int = 8  # evenly spread crop positions the most detailed ones are chosen from


def proxy_views(image: Tensor, settings: ProxySettings = ProxySettings()) -> list[Tensor]:
    """The planner's views of a 1x3xHxW image: [downscaled whole image, native crop, ...]; an image
    no larger than a crop is its own single view."""
    _, _, height, width = image.shape
    if max(height, width) <= max(settings.crop_side, settings.view_side):
        return [image]
    scale = settings.view_side / max(height, width)
    size = (max(16, round(height * scale)), max(16, round(width * scale)))
    views = [F.interpolate(image, size=size, mode="area")]
    side_y, side_x = min(settings.crop_side, height), min(settings.crop_side, width)
    origins = tile_origins(height, width, settings.crop_side, settings.candidates)
    crops = [image[..., y : y + side_y, x : x + side_x] for y, x in origins]
    crops.sort(key=lambda c: -float(_detail(c)))
    return views + [c.contiguous() for c in crops[: settings.crops]]


def _detail(crop: Tensor) -> Tensor:
    """Mean absolute Laplacian of the grey crop: how much texture and edge it holds."""
    grey = crop.mean(1, keepdim=True)
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=grey.dtype, device=grey.device)
    return F.conv2d(grey, kernel[None, None]).abs().mean()


def view_scales(image: Tensor, views: list[Tensor]) -> list[float]:
    """Each view's pixel size relative to the image: the downscaled view's factor, 1 for native crops."""
    if len(views) == 1:
        return [1.0]
    return [views[0].shape[-1] / image.shape[-1]] + [1.0] * (len(views) - 1)
