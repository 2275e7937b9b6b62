"""Blind blur-kernel estimation: a parametric fit of the power spectrum for defocus
(:func:`fit_defocus`), and for any other kernel (camera shake) a coarse-to-fine MAP with an L0 gradient prior (after Xu, Zheng and
Jia, CVPR 2013, and Pan et al.'s L0 deblurring), written here with NumPy FFTs.

The blur is taken as one kernel for the whole image (camera shake, defocus). At each level of an
image pyramid the estimate alternates two steps:

- latent image: ``min_x |k * x - y|^2 + lam |grad x|_0``, by half-quadratic splitting (the L0 term
  keeps only strong edges, which is what makes the kernel identifiable);
- kernel: ``min_k |grad x * k - grad y|^2 + gamma |k|^2`` on the kernel's support, by conjugate
  gradients through FFTs; negatives are cut, small entries (below 1/20 of the peak) dropped, and
  the kernel is renormalised to sum 1.

FFTs are circular, so the image is first extended to a size whose wrap-around is smooth
(:func:`smooth_wrap`): a real photo's opposite edges do not match, and a circular model would read
the mismatch as a strong edge everywhere along the border.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.fft

__all__ = ["DefocusFit", "conjugate_gradients", "estimate_kernel", "fit_defocus", "psf_to_otf", "smooth_wrap", "texture_window"]

MIN_LEVEL_SIZE = 5  # kernel support at the coarsest pyramid level
LEVEL_ITERATIONS = 5  # latent/kernel alternations per level
KERNEL_WEIGHT = 0.05  # gamma: Tikhonov weight on the kernel, relative to the gradient energy
DROP_BELOW = 1 / 20  # kernel entries below this share of the peak are set to zero


def rfft2(x: np.ndarray) -> np.ndarray:
    return scipy.fft.rfft2(x, workers=-1)


def irfft2(x: np.ndarray, s: tuple[int, int]) -> np.ndarray:
    return scipy.fft.irfft2(x, s=s, workers=-1)


def psf_to_otf(kernel: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The (real-FFT) transfer function of ``kernel`` for circular convolution on ``shape``, centred."""
    padded = np.zeros(shape, np.float32 if kernel.dtype == np.float32 else np.float64)
    kh, kw = kernel.shape
    padded[:kh, :kw] = kernel
    padded = np.roll(padded, (-(kh // 2), -(kw // 2)), axis=(0, 1))
    return rfft2(padded)


def smooth_wrap(image: np.ndarray, margin: int) -> np.ndarray:
    """``image`` (HxW or HxWxC) extended by at least ``margin`` pixels at the bottom and right (to a
    size the FFT is fast on) so that it wraps smoothly: the added band blends each border into the
    opposite one with a cosine ramp, then is blurred. Crop ``[:H, :W]`` after working circularly."""
    h, w = image.shape[:2]
    out = image
    for axis, length in ((0, h), (1, w)):
        extra = scipy.fft.next_fast_len(length + margin, real=True) - length
        first = np.take(out, [0], axis=axis)
        last = np.take(out, [length - 1], axis=axis)
        shape = [1] * out.ndim
        shape[axis] = extra
        ramp = ((1 - np.cos(np.linspace(0, np.pi, extra + 2)[1:-1])) / 2).reshape(shape)
        out = np.concatenate([out, last * (1 - ramp) + first * ramp], axis=axis)
    sigma = max(margin / 6, 1.0)
    reach = int(np.ceil(3 * sigma))
    wrapped = np.pad(out, [(reach, reach), (reach, reach)] + [(0, 0)] * (out.ndim - 2), mode="wrap")
    blurred = cv2.GaussianBlur(wrapped.astype(np.float32), (0, 0), sigma)[reach:-reach, reach:-reach]
    mask = np.zeros(out.shape[:2], bool)
    mask[h:, :] = True
    mask[:, w:] = True
    if out.ndim == 3:
        mask = mask[..., None]
    return np.where(mask, blurred, out)


def texture_window(gray: np.ndarray, size: int) -> tuple[slice, slice]:
    """The ``size`` x ``size`` window with the most gradient energy: a kernel is estimated from
    edges, and a sky or a wall has none."""
    h, w = gray.shape
    if h <= size and w <= size:
        return slice(0, h), slice(0, w)
    gx, gy = cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1)
    energy = cv2.boxFilter(np.sqrt(gx * gx + gy * gy), -1, (min(size, w), min(size, h)), normalize=True)
    half_h, half_w = min(size, h) // 2, min(size, w) // 2
    inner = energy[half_h : h - (min(size, h) - half_h) + 1, half_w : w - (min(size, w) - half_w) + 1]
    y, x = np.unravel_index(int(np.argmax(inner)), inner.shape)
    return slice(y, y + min(size, h)), slice(x, x + min(size, w))


def _gradients(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Circular forward differences."""
    return np.roll(x, -1, axis=1) - x, np.roll(x, -1, axis=0) - x


def l0_latent(blurred: np.ndarray, kernel: np.ndarray, lam: float, beta_max: float = 1e5) -> np.ndarray:
    """``argmin_x |k * x - y|^2 + lam |grad x|_0`` on a circular domain (half-quadratic splitting)."""
    shape = blurred.shape
    otf = psf_to_otf(kernel, shape)
    fx = psf_to_otf(np.array([[1.0, -1.0, 0.0]]), shape)  # x[i+1] - x[i], the kernel centred on i
    fy = psf_to_otf(np.array([[1.0], [-1.0], [0.0]]), shape)
    data_num, data_den = np.conj(otf) * rfft2(blurred), np.abs(otf) ** 2
    grad_den = np.abs(fx) ** 2 + np.abs(fy) ** 2
    x, beta = blurred.copy(), 2 * lam
    while beta < beta_max:
        h, v = _gradients(x)
        weak = h * h + v * v < lam / beta
        h[weak], v[weak] = 0.0, 0.0
        num = data_num + beta * (np.conj(fx) * rfft2(h) + np.conj(fy) * rfft2(v))
        x = irfft2(num / (data_den + beta * grad_den), s=shape)
        beta *= 2.0
    return x


def _kernel_step(latent: np.ndarray, blurred: np.ndarray, previous: np.ndarray, iterations: int = 20) -> np.ndarray:
    """``argmin_k |grad x * k - grad y|^2 + gamma |k|^2`` over the kernel's support, by conjugate
    gradients started from the previous estimate, then projected (non-negative, pruned, sum 1)."""
    shape, size = blurred.shape, previous.shape[0]
    lx, ly = (rfft2(g) for g in _gradients(latent))
    bx, by = (rfft2(g) for g in _gradients(blurred))
    power = np.abs(lx) ** 2 + np.abs(ly) ** 2
    gamma = KERNEL_WEIGHT * float(power.mean())
    rhs = _crop_kernel(irfft2(np.conj(lx) * bx + np.conj(ly) * by, s=shape), size)

    def apply(k: np.ndarray) -> np.ndarray:
        return _crop_kernel(irfft2(power * psf_to_otf(k, shape), s=shape), size) + gamma * k

    return _project(conjugate_gradients(apply, rhs, previous.copy(), iterations, tolerance=1e-12))


def conjugate_gradients(apply: Callable[[np.ndarray], np.ndarray], rhs: np.ndarray, x: np.ndarray, iterations: int,
                        tolerance: float, precondition: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Solve ``apply(x) = rhs`` (symmetric positive definite) by (preconditioned) conjugate gradients
    from ``x`` (updated in place): at most ``iterations`` steps, stopping once the squared residual is
    under ``tolerance`` times that of ``rhs``."""
    precondition = precondition or (lambda r: r)
    stop = tolerance * max(float(np.sum(rhs * rhs)), 1e-30)
    residual = rhs - apply(x)
    preconditioned = precondition(residual)
    direction = preconditioned.copy()
    rz = float(np.sum(residual * preconditioned))
    for _ in range(iterations):
        if float(np.sum(residual * residual)) < stop:
            break
        ad = apply(direction)
        alpha = rz / max(float(np.sum(direction * ad)), 1e-30)
        x += alpha * direction
        residual -= alpha * ad
        preconditioned = precondition(residual)
        new_rz = float(np.sum(residual * preconditioned))
        direction = preconditioned + (new_rz / rz) * direction
        rz = new_rz
    return x


def _crop_kernel(circular: np.ndarray, size: int) -> np.ndarray:
    """The centred ``size`` x ``size`` window of a circular correlation result (offset 0 at [0, 0])."""
    half = size // 2
    rows = np.arange(-half, size - half) % circular.shape[0]
    cols = np.arange(-half, size - half) % circular.shape[1]
    return circular[np.ix_(rows, cols)]


def _project(kernel: np.ndarray) -> np.ndarray:
    k = np.maximum(kernel, 0.0)
    if k.max() <= 0:
        return _delta(kernel.shape[0])
    k[k < DROP_BELOW * k.max()] = 0.0
    k = _largest_component(k)
    return k / k.sum()


def _largest_component(kernel: np.ndarray) -> np.ndarray:
    """Keep the connected part of the support with the most mass: isolated specks are noise."""
    count, labels = cv2.connectedComponents((kernel > 0).astype(np.uint8), connectivity=8)
    if count <= 2:
        return kernel
    mass = np.bincount(labels.ravel(), weights=kernel.ravel(), minlength=count)
    mass[0] = 0
    return np.where(labels == int(np.argmax(mass)), kernel, 0.0)


def _delta(size: int) -> np.ndarray:
    k = np.zeros((size, size))
    k[size // 2, size // 2] = 1.0
    return k


def _centre(kernel: np.ndarray) -> np.ndarray:
    """Shift the kernel by whole pixels so its centre of mass sits on the middle pixel (a shift of
    the whole image is not blur, and a kernel drifting off-centre loses its tail at the support's
    edge). Whole pixels: an interpolated shift would blur the kernel at every iteration."""
    size = kernel.shape[0]
    ys, xs = np.mgrid[:size, :size]
    dy = size // 2 - int(round(float((ys * kernel).sum())))
    dx = size // 2 - int(round(float((xs * kernel).sum())))
    if dy == 0 and dx == 0:
        return kernel
    moved = np.zeros_like(kernel)
    src = kernel[max(0, -dy) : size - max(0, dy), max(0, -dx) : size - max(0, dx)]
    moved[max(0, dy) : max(0, dy) + src.shape[0], max(0, dx) : max(0, dx) + src.shape[1]] = src
    return moved / moved.sum() if moved.sum() > 0 else _delta(size)


def _resize_kernel(kernel: np.ndarray, size: int) -> np.ndarray:
    k = cv2.resize(kernel.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float64)
    return _project(k)


def estimate_kernel(gray: np.ndarray, size: int, lam: float = 2e-3, window: int = 384) -> np.ndarray:
    """The blur kernel (``size`` x ``size``, odd, sums to 1) of a grey image in [0, 1].

    Works on the most textured ``window`` x ``window`` crop, coarse to fine over levels whose kernel
    support grows by about sqrt(2) from :data:`MIN_LEVEL_SIZE` to ``size``.
    """
    if size % 2 == 0 or size < 3:
        raise ValueError(f"kernel size must be odd and >= 3, got {size}")
    rows, cols = texture_window(gray.astype(np.float32), window)
    crop = gray[rows, cols].astype(np.float64)
    sizes = [size]
    while sizes[-1] > MIN_LEVEL_SIZE:
        sizes.append(max(MIN_LEVEL_SIZE, int(round(sizes[-1] / np.sqrt(2))) | 1))
    sizes.reverse()
    kernel = _delta(sizes[0])
    for level, level_size in enumerate(sizes):
        scale = level_size / size
        shape = (max(16, round(crop.shape[1] * scale)), max(16, round(crop.shape[0] * scale)))
        blurred = cv2.resize(crop, shape, interpolation=cv2.INTER_AREA) if scale < 1 else crop
        blurred = smooth_wrap(blurred, level_size + 2)
        kernel = _resize_kernel(kernel, level_size) if kernel.shape[0] != level_size else kernel
        level_lam = lam
        for _ in range(LEVEL_ITERATIONS):
            latent = l0_latent(blurred, kernel, level_lam)
            kernel = _centre(_kernel_step(latent, blurred, kernel))
            level_lam = max(level_lam * 0.9, 1e-4)
    return kernel.astype(np.float32)


# --------------------------------------------------------------------------- defocus from the spectrum

SPECTRUM_BINS = 64
SPECTRUM_BAND = (0.01, 0.45)  # cycles/px fitted: below, the picture's own layout; above, aliasing
SPECTRUM_FLOOR = 1e-4  # the transfer function's floor in the model (noise, 8-bit rounding)
DISK_RADII = np.arange(0.5, 12.01, 0.1)
GAUSSIAN_SIGMAS = np.arange(0.3, 5.01, 0.05)
MIN_BLUR = {"disk": 0.9, "gaussian": 0.6}  # below these the fit describes a sharp photo (px)


@dataclass(frozen=True)
class DefocusFit:
    """The lens blur that best explains an image's radial power spectrum."""

    family: str  # "disk", "gaussian" or "none"
    value: float  # disk radius or Gaussian sigma (px); 0 for "none"
    residual: float  # mean squared log-power misfit

    @property
    def blurred(self) -> bool:
        """Whether the fit found a blur worth undoing (a 0.5 px disk is a sharp photo's own softness)."""
        return self.value >= MIN_BLUR[self.family] if self.family in MIN_BLUR else False

    def kernel(self) -> np.ndarray:
        from irestore.degrade import disk_kernel, gaussian_kernel

        if self.family == "disk":
            return disk_kernel(self.value)
        if self.family == "gaussian":
            return gaussian_kernel(self.value)
        return _delta(1).astype(np.float32)


def radial_log_power(gray: np.ndarray, bins: int = SPECTRUM_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Mean log power per radial frequency bin (cycles/px, bin centres) of a Hann-windowed grey image."""
    h, w = gray.shape
    windowed = (gray - gray.mean()) * np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(scipy.fft.fft2(windowed, workers=-1)) ** 2
    rho = np.hypot(*np.meshgrid(scipy.fft.fftfreq(h), scipy.fft.fftfreq(w), indexing="ij"))
    edges = np.linspace(0.0, 0.5, bins + 1)
    index = np.digitize(rho.ravel(), edges) - 1
    inside = (index >= 0) & (index < bins)
    sums = np.bincount(index[inside], weights=np.log(power.ravel()[inside] + 1e-12), minlength=bins)
    counts = np.maximum(np.bincount(index[inside], minlength=bins), 1)
    return (edges[:-1] + edges[1:]) / 2, sums / counts


def _disk_otf(rho: np.ndarray, radius: float) -> np.ndarray:
    from scipy.special import j1

    a = 2 * np.pi * rho * radius
    return np.where(a < 1e-6, 1.0, 2 * j1(a) / np.maximum(a, 1e-6))


def fit_defocus(gray: np.ndarray, window: int = 512) -> DefocusFit:
    """Disk radius or Gaussian sigma from the radial power spectrum of the most textured window.

    A natural image's log power falls about linearly in log frequency; a lens blur multiplies it by
    its transfer function, whose zeros (a disk's rings) or fall-off (a Gaussian's) are what the fit
    finds. Each candidate is scored by the least-squares misfit of ``a + b log rho + log(|H|^2 +
    floor)`` to the measured profile; ``none`` (no blur term) competes too.
    """
    rows, cols = texture_window(gray.astype(np.float32), window)
    rho, profile = radial_log_power(gray[rows, cols].astype(np.float64))
    band = (rho > SPECTRUM_BAND[0]) & (rho < SPECTRUM_BAND[1])
    rho, profile = rho[band], profile[band]
    trend = np.stack([np.ones_like(rho), np.log(rho)], axis=1)

    def misfit(log_transfer: np.ndarray) -> float:
        target = profile - log_transfer
        coef, *_ = np.linalg.lstsq(trend, target, rcond=None)
        return float(np.mean((trend @ coef - target) ** 2))

    best = DefocusFit("none", 0.0, misfit(np.zeros_like(rho)))
    for family, values, transfer in (
        ("disk", DISK_RADII, lambda r: _disk_otf(rho, r)),
        ("gaussian", GAUSSIAN_SIGMAS, lambda s: np.exp(-2 * np.pi**2 * s**2 * rho**2)),
    ):
        for value in values:
            score = misfit(np.log(transfer(value) ** 2 + SPECTRUM_FLOOR))
            if score < best.residual:
                best = DefocusFit(family, float(round(value, 2)), score)
    return best
