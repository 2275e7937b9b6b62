"""Bicubic upscaling: the classical answer to low resolution."""

from __future__ import annotations

import cv2
import numpy as np

from irestore.restorers.base import ArrayMethod, Card, Condition


class Bicubic(ArrayMethod):
    card = Card(
        "bicubic", "bicubic interpolation (OpenCV) to the target size; unchanged when the input already has it",
        fixes={"lowres": (1.0, 16.0)}, blind=False, parameters="target size", s_per_mp=0.07, changes_size=True,
        licence="Apache-2.0 (OpenCV)",
    )

    def restore_array(self, image: np.ndarray, condition: Condition) -> np.ndarray:
        target = condition.target_size or image.shape[:2]
        if tuple(target) == image.shape[:2]:
            return image.copy()
        height, width = target
        return np.clip(cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)
