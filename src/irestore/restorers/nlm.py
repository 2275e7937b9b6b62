"""OpenCV non-local means (Buades et al. 2005), colour version, with h set from the noise σ."""

from __future__ import annotations

import cv2
import numpy as np

from irestore.restorers.base import ArrayMethod, Card, Condition, as_uint8, from_uint8, noise_level

H_PER_SIGMA = 0.6  # h = hColor = 0.6 σ: best PSNR on scikit-image's astronaut for σ 15, 25 and 50
TEMPLATE, SEARCH = 7, 21  # OpenCV's defaults


class NonLocalMeans(ArrayMethod):
    card = Card(
        "nlm", "OpenCV fastNlMeansDenoisingColored, h = hColor = 0.6 σ (true σ when known, else estimated)",
        fixes={"noise": (0.0, 75.0)}, parameters="noise σ (true, else estimated)", s_per_mp=2.5,
        licence="Apache-2.0 (OpenCV)",
    )

    def restore_array(self, image: np.ndarray, condition: Condition) -> np.ndarray:
        sigma, source = noise_level(image, condition)
        self.last_details = {"sigma": round(sigma, 2), "sigma_from": source}
        h = max(H_PER_SIGMA * sigma, 0.1)
        bgr = cv2.cvtColor(as_uint8(image), cv2.COLOR_RGB2BGR)
        out = cv2.fastNlMeansDenoisingColored(bgr, None, h, h, TEMPLATE, SEARCH)
        return from_uint8(cv2.cvtColor(out, cv2.COLOR_BGR2RGB))

    def settings(self) -> dict:
        return {"h_per_sigma": H_PER_SIGMA, "template_window": TEMPLATE, "search_window": SEARCH}
