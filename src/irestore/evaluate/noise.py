"""Blind Gaussian noise level of an image.

Immerkær's fast Laplacian-difference estimator (CVIU 1996) restricted to the flattest 90 % of
pixels by Sobel gradient (Tai & Yang, 2008), averaged over channels. On real photos with
8-bit-quantised Gaussian noise it tracks the noise actually present (after clipping) to within
about 15 %; see tests/restorers/test_ffdnet.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

_LAPLACE_DIFF = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])
_SOBEL = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
_EDGE_FRACTION = 0.10  # share of highest-gradient pixels left out of the estimate


def estimate_noise_sigma(rgb: Tensor) -> float:
    """Blind Gaussian noise level of an image in [0, 1], in 0–255 units (mean over channels)."""
    x = rgb if rgb.dim() == 4 else rgb[None]
    if x.shape[0] != 1:
        raise ValueError("estimate_noise_sigma takes one image (1xCxHxW)")
    if min(x.shape[-2:]) < 3:
        return 0.0
    planes = x[0].detach().float().mul(255.0)[:, None]  # (C,1,H,W)
    return float(sum(_channel_sigma(p) for p in planes) / len(planes))


def _channel_sigma(plane: Tensor) -> float:
    kernel = _LAPLACE_DIFF.to(plane.device)[None, None]
    sobel = _SOBEL.to(plane.device)
    residual = F.conv2d(plane[None], kernel).abs().flatten()
    grad = (F.conv2d(plane[None], sobel[None, None]).abs() + F.conv2d(plane[None], sobel.T[None, None]).abs()).flatten()
    keep = max(1, int(grad.numel() * (1 - _EDGE_FRACTION)))
    threshold = grad.kthvalue(keep).values
    flat = residual[grad <= threshold]
    return math.sqrt(math.pi / 2) / 6 * float(flat.double().mean())
