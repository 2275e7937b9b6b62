"""The degraded input itself: the floor every method must clear."""

from __future__ import annotations

import numpy as np

from irestore.baselines.base import Degradation, PeerMethod


class Identity(PeerMethod):
    name = "identity"
    description = "the degraded input, unchanged"

    def restore(self, image: np.ndarray, degradation: Degradation) -> np.ndarray:
        return image.copy()
