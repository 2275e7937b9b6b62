"""Between image arrays (HxWx3 float32) and tensors (1x3xHxW)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def image_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """HxWx3 float32 -> 1x3xHxW float32, contiguous."""
    import torch

    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 array, got shape {rgb.shape}")
    chw = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)
    return torch.from_numpy(chw).unsqueeze(0)


def tensor_to_rgb(t: torch.Tensor) -> np.ndarray:
    """1x3xHxW or 3xHxW -> HxWx3 float32 clamped to [0, 1].

    NaN stays NaN, so that write_image refuses it instead of writing black pixels.
    """
    import torch

    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3 or t.shape[0] != 3:
        raise ValueError(f"expected a 1x3xHxW or 3xHxW tensor, got shape {tuple(t.shape)}")
    chw = t.detach().to("cpu", torch.float32).clamp(0.0, 1.0)
    return chw.permute(1, 2, 0).contiguous().numpy()


