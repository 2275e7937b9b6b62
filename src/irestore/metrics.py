"""Full-reference quality of a restored image against its ground truth (RGB, [0, 1])."""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def psnr(restored: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB over RGB, after rounding both to 8-bit levels as saved images would be."""
    a, b = _to_uint8(restored), _to_uint8(reference)
    return float(peak_signal_noise_ratio(b, a, data_range=255))


def ssim(restored: np.ndarray, reference: np.ndarray) -> float:
    """SSIM over RGB (Gaussian 11x11, σ = 1.5, as in Wang et al.), on 8-bit levels."""
    a, b = _to_uint8(restored), _to_uint8(reference)
    return float(
        structural_similarity(b, a, channel_axis=-1, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    )


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
