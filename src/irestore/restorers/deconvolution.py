"""Non-blind deconvolution given the true blur kernel: Wiener and Richardson–Lucy (scikit-image).

Both work per colour channel on the image padded by symmetric reflection (by the kernel size),
so the circular boundary of the FFT does not ring into the picture. They need the kernel: on
real blurred datasets (GoPro) it is unknown and the methods are skipped.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from irestore.degrade import BLUR_KINDS, kernel_from_params
from irestore.restorers.base import ArrayMethod, Card, Condition, MethodSkipped

WIENER_NSR = 0.02  # constant noise-to-signal ratio: best mean PSNR over motion/defocus/Gaussian blur on astronaut
RL_ITERATIONS = 30


def true_kernel(condition: Condition, method: str) -> np.ndarray:
    params = condition.params
    if params is None or params.get("type") not in BLUR_KINDS:
        raise MethodSkipped(f"{method} needs the true blur kernel, which real blurred images do not come with")
    return kernel_from_params(params)


def per_channel(image: np.ndarray, kernel: np.ndarray, solve: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    pad = max(kernel.shape)
    padded = np.pad(image.astype(np.float64), ((pad, pad), (pad, pad), (0, 0)), mode="symmetric")
    out = np.stack([solve(padded[..., c], kernel.astype(np.float64)) for c in range(3)], axis=-1)
    return np.clip(out[pad:-pad, pad:-pad], 0.0, 1.0).astype(np.float32)


_BLURS = {"motion_blur": (3.0, 35.0), "defocus_blur": (0.5, 8.0)}


class Wiener(ArrayMethod):
    card = Card(
        "wiener", f"Wiener deconvolution (scikit-image), true kernel, constant NSR {WIENER_NSR}",
        fixes=_BLURS, blind=False, parameters="true blur kernel (skipped without)", s_per_mp=0.68,
        licence="BSD-3-Clause (scikit-image)",
    )

    def restore_array(self, image: np.ndarray, condition: Condition) -> np.ndarray:
        from skimage.restoration import wiener

        kernel = true_kernel(condition, self.name)
        identity = np.ones((1, 1))  # regulariser: constant NSR (the classical Wiener filter), not a Laplacian
        return per_channel(image, kernel, lambda x, k: wiener(x, k, WIENER_NSR, reg=identity, clip=False))

    def settings(self) -> dict:
        return {"nsr": WIENER_NSR}


class RichardsonLucy(ArrayMethod):
    card = Card(
        "rl", f"Richardson–Lucy deconvolution (scikit-image), true kernel, {RL_ITERATIONS} iterations",
        fixes=_BLURS, blind=False, parameters="true blur kernel (skipped without)", s_per_mp=11.3,
        licence="BSD-3-Clause (scikit-image)",
    )

    def restore_array(self, image: np.ndarray, condition: Condition) -> np.ndarray:
        from skimage.restoration import richardson_lucy

        kernel = true_kernel(condition, self.name)
        return per_channel(image, kernel, lambda x, k: richardson_lucy(x, k, num_iter=RL_ITERATIONS, clip=True))

    def settings(self) -> dict:
        return {"iterations": RL_ITERATIONS}
