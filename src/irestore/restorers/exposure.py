"""Global gamma correction for under-exposed photos: one curve for the whole image, blind."""

from __future__ import annotations

import numpy as np

from irestore.restorers.base import ArrayMethod, Card, Condition

TARGET_MEAN = 0.45  # mean luminance after correction (LOL's normal-light images average about 0.4-0.5)
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def gamma_for(image: np.ndarray, target: float = TARGET_MEAN) -> float:
    """The exponent that maps the image's mean luminance to ``target`` (never darkens)."""
    mean = float(np.clip((image @ LUMA).mean(), 1e-4, 0.999))
    return float(np.clip(np.log(target) / np.log(mean), 0.05, 1.0))


class GammaCorrection(ArrayMethod):
    card = Card(
        "gamma", f"global gamma curve x**g with g chosen so the mean luminance becomes {TARGET_MEAN}",
        fixes={"lowlight": (0.25, 0.02)}, s_per_mp=0.03,
    )

    def restore_array(self, image: np.ndarray, condition: Condition) -> np.ndarray:
        return np.clip(image, 0.0, 1.0) ** gamma_for(image)

    def settings(self) -> dict:
        return {"target_mean": TARGET_MEAN}
