"""The degraded input itself: the floor every method must clear."""

from __future__ import annotations

import numpy as np

from irestore.restorers.base import ArrayMethod, Card, Condition


class Identity(ArrayMethod):
    card = Card("identity", "the degraded input, unchanged", s_per_mp=0.02, any_input=True)

    def restore_array(self, image: np.ndarray, condition: Condition) -> np.ndarray:
        return image.copy()
