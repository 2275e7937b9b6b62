"""Dark channel prior dehazing (He, Sun and Tang, CVPR 2009) with guided-filter refinement.

The transmission map estimated from the dark channel is refined with the guided filter (He,
Sun and Tang, ECCV 2010) of the input's grey image, written here with box filters
(``cv2.ximgproc`` is not part of every OpenCV build). Parameters are those of the papers:
15x15 patches, ω = 0.95, airlight from the brightest 0.1 % of the dark channel, t ≥ 0.1,
guided filter radius 60 and ε = 1e-4.
"""

from __future__ import annotations

import cv2
import numpy as np

from irestore.restorers.base import ArrayMethod, Card, Condition

PATCH = 15
OMEGA = 0.95
TOP_FRACTION = 0.001
T_MIN = 0.1
RADIUS = 60
EPS = 1e-4


def dark_channel(image: np.ndarray, patch: int = PATCH) -> np.ndarray:
    """Minimum over colour channels, then over a patch x patch neighbourhood."""
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (patch, patch))
    return cv2.erode(image.min(axis=2), kernel, borderType=cv2.BORDER_REFLECT)


def airlight(image: np.ndarray, dark: np.ndarray) -> np.ndarray:
    """Among the brightest 0.1 % of dark-channel pixels, the colour of the most intense input pixel."""
    flat_dark, flat = dark.ravel(), image.reshape(-1, 3)
    count = max(1, int(flat_dark.size * TOP_FRACTION))
    candidates = np.argpartition(flat_dark, -count)[-count:]
    brightest = candidates[np.argmax(flat[candidates].sum(axis=1))]
    return np.maximum(flat[brightest], 1e-3)


def _box(x: np.ndarray, radius: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * radius + 1, 2 * radius + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def guided_filter(guide: np.ndarray, source: np.ndarray, radius: int = RADIUS, eps: float = EPS) -> np.ndarray:
    """Edge-preserving smoothing of ``source`` following the grey ``guide`` (both HxW float32)."""
    mean_i, mean_p = _box(guide, radius), _box(source, radius)
    var_i = _box(guide * guide, radius) - mean_i * mean_i
    cov_ip = _box(guide * source, radius) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return _box(a, radius) * guide + _box(b, radius)


def dehaze(image: np.ndarray) -> np.ndarray:
    """Recover J from I = J t + A (1 - t) for an HxWx3 float32 image in [0, 1]."""
    image = image.astype(np.float32)
    light = airlight(image, dark_channel(image)).astype(np.float32)
    raw_t = 1.0 - OMEGA * dark_channel(image / light)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    t = np.maximum(guided_filter(grey, raw_t.astype(np.float32)), T_MIN)
    return np.clip((image - light) / t[..., None] + light, 0.0, 1.0).astype(np.float32)


class DarkChannelPrior(ArrayMethod):
    card = Card(
        "dcp", "dark channel prior dehazing, guided-filter refined transmission (He et al.), blind",
        fixes={"haze": (0.02, 0.2)}, s_per_mp=0.27,
    )

    def restore_array(self, image: np.ndarray, condition: Condition) -> np.ndarray:
        return dehaze(image)

    def settings(self) -> dict:
        return {"patch": PATCH, "omega": OMEGA, "t_min": T_MIN, "gf_radius": RADIUS, "gf_eps": EPS}
