"""Colour BM3D (Dabov et al. 2007) from the reference `bm3d` package, given the noise σ."""

from __future__ import annotations

import numpy as np

from irestore.baselines.base import Degradation, PeerMethod, noise_level


class CBM3D(PeerMethod):
    name = "cbm3d"
    families = frozenset({"noise"})
    description = "CBM3D (bm3d package, bm3d_rgb, default profile); true σ when known, else estimated"

    def __init__(self) -> None:
        try:
            import bm3d  # noqa: F401
        except ImportError as error:
            raise RuntimeError("cbm3d needs the bm3d package: pip install bm3d") from error

    def restore(self, image: np.ndarray, degradation: Degradation) -> np.ndarray:
        import bm3d

        sigma, _ = noise_level(image, degradation)
        out = bm3d.bm3d_rgb(image.astype(np.float64), sigma_psd=max(sigma, 0.1) / 255.0)
        return np.clip(out, 0.0, 1.0).astype(np.float32)
