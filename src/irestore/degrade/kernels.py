"""Blur kernels (motion paths, disks, Gaussians) and the convolution that applies them."""

from __future__ import annotations

import cv2
import numpy as np


def motion_kernel(
    size: int,
    rng: np.random.Generator,
    *,
    momentum: float = 0.9,
    shake: float | None = None,
    steps: int = 64,
) -> np.ndarray:
    """Camera-shake kernel: a random walk whose heading turns with momentum, with varying
    speed, rasterised (equal time per sample) into ``size x size``, centred, summing to 1."""
    size = int(size)
    if size < 3:
        raise ValueError(f"motion kernel size must be >= 3, got {size}")
    shake = float(rng.uniform(0.1, 0.7)) if shake is None else shake
    heading, omega, speed = rng.uniform(0, 2 * np.pi), 0.0, 1.0
    pts = np.zeros((steps + 1, 2))
    for i in range(steps):
        omega = momentum * omega + (1 - momentum) * shake * rng.standard_normal()
        speed = momentum * speed + (1 - momentum) * rng.uniform(0.2, 1.8)
        heading += omega
        pts[i + 1] = pts[i] + speed * np.array([np.cos(heading), np.sin(heading)])
    return _rasterise(pts, size)


def _rasterise(pts: np.ndarray, size: int) -> np.ndarray:
    """Splat a trajectory (sampled uniformly in time) bilinearly into a centred kernel."""
    pts = pts - pts.mean(axis=0)
    pts = pts * ((size - 1) / 2 / max(np.abs(pts).max(), 1e-9)) + (size - 1) / 2
    sub = int(np.ceil(np.linalg.norm(np.diff(pts, axis=0), axis=1).max() / 0.25)) + 1
    t = np.linspace(0, len(pts) - 1, (len(pts) - 1) * sub + 1)
    xy = np.stack([np.interp(t, np.arange(len(pts)), pts[:, j]) for j in (0, 1)], axis=1)
    x0, y0 = np.floor(xy[:, 0]).astype(int), np.floor(xy[:, 1]).astype(int)
    fx, fy = xy[:, 0] - x0, xy[:, 1] - y0
    k = np.zeros((size + 1, size + 1))
    for dx, dy, w in (
        (0, 0, (1 - fx) * (1 - fy)),
        (1, 0, fx * (1 - fy)),
        (0, 1, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        np.add.at(k, (y0 + dy, x0 + dx), w)
    k = k[:size, :size]
    return (k / k.sum()).astype(np.float32)


def disk_kernel(radius: float) -> np.ndarray:
    """Anti-aliased uniform disk (defocus) kernel, summing to 1."""
    r = int(np.ceil(radius))
    sub = (np.arange(8) + 0.5) / 8 - 0.5
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float64)
    ys = yy[..., None, None] + sub[:, None]
    xs = xx[..., None, None] + sub[None, :]
    k = ((xs**2 + ys**2) <= radius**2).mean(axis=(2, 3))
    return (k / k.sum()).astype(np.float32)


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Isotropic Gaussian kernel of size ``2*ceil(3 sigma)+1``, summing to 1."""
    g = cv2.getGaussianKernel(2 * int(np.ceil(3 * sigma)) + 1, sigma, cv2.CV_64F)
    k = g @ g.T
    return (k / k.sum()).astype(np.float32)


def kernel_from_params(params: dict) -> np.ndarray:
    """Rebuild the exact blur kernel of a ``motion``/``defocus``/``gaussian_blur`` result."""
    kind = params["type"]
    if kind == "motion":
        return motion_kernel(params["size"], np.random.default_rng(params["kernel_seed"]))
    if kind == "defocus":
        return disk_kernel(params["radius"])
    if kind == "gaussian_blur":
        return gaussian_kernel(params["sigma"])
    raise ValueError(f"no blur kernel for degradation type {kind!r}")


def convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """True convolution (flipped kernel for cv2's correlation), reflect borders."""
    return cv2.filter2D(
        image,
        -1,
        np.ascontiguousarray(kernel[::-1, ::-1]),
        borderType=cv2.BORDER_REFLECT,
    )


