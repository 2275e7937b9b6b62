"""Colour BM3D (Dabov et al. 2007) from the reference `bm3d` package, given the noise σ."""

from __future__ import annotations

import numpy as np

from irestore.restorers.base import ArrayMethod, Card, Condition, noise_level


class CBM3D(ArrayMethod):
    card = Card(
        "cbm3d", "CBM3D (bm3d package, bm3d_rgb, default profile); true σ when known, else estimated",
        fixes={"noise": (0.0, 75.0)}, parameters="noise σ (true, else estimated)", s_per_mp=133.0,
        licence="bm3d package licence (free for non-commercial use)",
    )

    def __init__(self) -> None:
        try:
            import bm3d  # noqa: F401
        except ImportError as error:
            raise RuntimeError("cbm3d needs the bm3d package: pip install bm3d") from error

    def restore_array(self, image: np.ndarray, condition: Condition) -> np.ndarray:
        import bm3d

        sigma, source = noise_level(image, condition)
        self.last_details = {"sigma": round(sigma, 2), "sigma_from": source}
        out = bm3d.bm3d_rgb(image.astype(np.float64), sigma_psd=max(sigma, 0.1) / 255.0)
        return np.clip(out, 0.0, 1.0).astype(np.float32)
