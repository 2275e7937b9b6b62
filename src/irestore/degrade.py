"""Synthetic degradations with recorded parameters and text descriptions.

Images are float32 ``H x W x 3`` RGB arrays in [0, 1] (uint8 input is accepted and scaled).
Every random draw comes from an explicit :class:`numpy.random.Generator`; the same image,
spec and seed give the same result. Each operation returns a :class:`Degraded` holding the
degraded image, the parameters actually used (JSON-serialisable) and a description.

Outputs are quantised to 8 bits (``round(clip(x) * 255) / 255``), as a saved image would be.

Parameter ranges (severity bands, inclusive; the full range is their union):

=============  ===========  ==================  =====================  ================
degradation    parameter    light               moderate               heavy
=============  ===========  ==================  =====================  ================
clean          (none)       the image itself, quantised to 8 bits
noise          sigma        0-20                20-40                  40-75 (0-255 units)
motion         size         5-11                12-21                  22-35 px (odd)
defocus        radius       1-2.5               2.5-5                  5-8 px
gaussian_blur  sigma        0.5-1.2             1.2-2.4                2.4-4 px
rain           amount       0-0.33              0.33-0.66              0.66-1
haze           beta         0.04-0.08           0.08-0.14              0.14-0.2 (per depth unit)
lowlight       brightness   0.13-0.2            0.09-0.13              0.05-0.09 (mean)
jpeg           quality      30-50               15-29                  5-14
lowres         scale        2                   3                      4
=============  ===========  ==================  =====================  ================

Haze scaling: RESIDE/SOTS draw beta in [0.04, 0.2] and A in [0.8, 1.0] with depth maps in
metres from a monocular estimator. :func:`depth_proxy` returns a depth in the same nominal
units, spanning [1, 10]: beta = 0.04 leaves t ~ 0.67 at the far plane, beta = 0.2 leaves
t ~ 0.14, like the lightest and densest SOTS-outdoor images. A is drawn from [0.7, 1.0].
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "BLUR_KINDS",
    "DEGRADATIONS",
    "HAZE_DEPTH",
    "MIX_ORDER",
    "NOISE_KINDS",
    "PRIMARY",
    "SEVERITIES",
    "Degraded",
    "Param",
    "SpecItem",
    "degrade",
    "depth_proxy",
    "describe",
    "disk_kernel",
    "family_of",
    "gaussian_kernel",
    "convolve",
    "kernel_from_params",
    "motion_kernel",
    "parse_spec",
    "quantize",
]

SEVERITIES = ("light", "moderate", "heavy")
Range = tuple[float, float]


@dataclass(frozen=True)
class Degraded:
    """A degraded image with the parameters used and a text description."""

    image: np.ndarray
    params: dict
    description: str


@dataclass(frozen=True)
class Param:
    """The primary (spec-settable) parameter of a degradation and its severity bands."""

    name: str
    bands: dict[str, Range]
    limits: Range
    integer: bool = False

    @property
    def range(self) -> Range:
        """Default range: the union of the severity bands."""
        return min(b[0] for b in self.bands.values()), max(b[1] for b in self.bands.values())

    def draw(self, rng: np.random.Generator, value=None, severity: str | None = None):
        """A fixed value, a draw from a ``(low, high)`` range, or from the severity's band."""
        if value is not None and not isinstance(value, (tuple, list)):
            return round(value) if self.integer else float(value)
        if value is not None:
            lo, hi = value
        elif severity is not None:
            lo, hi = self.bands[_check_severity(severity)]
        else:
            lo, hi = self.range
        if self.integer:
            return int(rng.integers(int(np.ceil(lo)), int(np.floor(hi)) + 1))
        return float(rng.uniform(lo, hi))

    def severity(self, value: float) -> str:
        """The severity band holding ``value`` (the nearest band when outside all)."""
        for name, (lo, hi) in self.bands.items():
            if lo <= value <= hi:
                return name
        return min(self.bands, key=lambda n: min(abs(value - b) for b in self.bands[n]))


PRIMARY: dict[str, Param] = {
    "noise": Param("sigma", {"light": (0, 20), "moderate": (20, 40), "heavy": (40, 75)}, (0, 255)),
    "motion": Param(
        "size",
        {"light": (5, 11), "moderate": (12, 21), "heavy": (22, 35)},
        (3, 101),
        True,
    ),
    "defocus": Param(
        "radius", {"light": (1, 2.5), "moderate": (2.5, 5), "heavy": (5, 8)}, (0.5, 30)
    ),
    "gaussian_blur": Param(
        "sigma",
        {"light": (0.5, 1.2), "moderate": (1.2, 2.4), "heavy": (2.4, 4)},
        (0.1, 20),
    ),
    "rain": Param(
        "amount",
        {"light": (0, 0.33), "moderate": (0.33, 0.66), "heavy": (0.66, 1)},
        (0, 1),
    ),
    "haze": Param(
        "beta",
        {"light": (0.04, 0.08), "moderate": (0.08, 0.14), "heavy": (0.14, 0.2)},
        (0.001, 2),
    ),
    "lowlight": Param(
        "brightness",
        {"light": (0.13, 0.2), "moderate": (0.09, 0.13), "heavy": (0.05, 0.09)},
        (0.01, 0.5),
    ),
    "jpeg": Param(
        "quality",
        {"light": (30, 50), "moderate": (15, 29), "heavy": (5, 14)},
        (1, 100),
        True,
    ),
    "lowres": Param("scale", {"light": (2, 2), "moderate": (3, 3), "heavy": (4, 4)}, (2, 16), True),
}

BLUR_KINDS = ("motion", "defocus", "gaussian_blur")
MIX_ORDER = ("haze", "rain", "blur", "lowres", "lowlight", "noise", "jpeg")
"""Order in which ``mix`` applies its two degradations: scene, optics, sensor, compression."""

HAZE_DEPTH = (1.0, 10.0)
NOISE_KINDS = ("gaussian", "channel", "poisson")


def family_of(kind: str) -> str:
    """Degradation family: ``motion``/``defocus``/``gaussian_blur`` are ``blur``."""
    return "blur" if kind in BLUR_KINDS else kind


def _check_severity(severity: str) -> str:
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}; expected one of {', '.join(SEVERITIES)}")
    return severity


def _as_image(image: np.ndarray) -> np.ndarray:
    """Validate an HxWx3 image; uint8 is scaled to [0, 1]; returns float32."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)


def quantize(image: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] and round to 8-bit levels, as saving a PNG would."""
    return (np.round(np.clip(image, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def _result(image: np.ndarray, params: dict, rng: np.random.Generator) -> Degraded:
    return Degraded(quantize(image), params, describe(params, rng))


def _lerp(a: float, lo: float, hi: float) -> float:
    return lo + (hi - lo) * a


# --------------------------------------------------------------------------- noise


def noise(image, rng, *, sigma=None, kind: str = "gaussian", severity=None) -> Degraded:
    """Additive noise: ``gaussian`` (sigma in 0-255 units), ``channel`` (per-channel sigma
    around ``sigma``), ``poisson`` (Poisson-Gaussian whose std at mid-grey is ``sigma``),
    or ``random`` (one of these)."""
    image = _as_image(image)
    if kind == "random":
        kind = str(rng.choice(NOISE_KINDS))
    if kind not in NOISE_KINDS:
        raise ValueError(f"unknown noise kind {kind!r}; expected {NOISE_KINDS} or 'random'")
    sigma = PRIMARY["noise"].draw(rng, sigma, severity)
    params = {
        "type": "noise",
        "kind": kind,
        "sigma": sigma,
        "severity": PRIMARY["noise"].severity(sigma),
    }
    s = sigma / 255.0
    if kind == "gaussian":
        out = image + s * rng.standard_normal(image.shape, dtype=np.float32)
    elif kind == "channel":
        sigmas = sigma * rng.uniform(0.5, 1.5, 3)
        params["sigmas"] = [float(v) for v in sigmas]
        out = image + rng.standard_normal(image.shape, dtype=np.float32) * (sigmas / 255.0).astype(
            np.float32
        )
    else:
        out, extra = _poisson_gaussian(image, rng, s)
        params.update(extra)
    return _result(out, params, rng)


def _poisson_gaussian(image, rng, s: float) -> tuple[np.ndarray, dict]:
    """Signal-dependent noise with variance ``gain * x + read**2``, equal to s**2 at x=0.5."""
    shot = float(rng.uniform(0.5, 0.9))
    gain, read = shot * s * s / 0.5, float(np.sqrt((1 - shot) * s * s))
    out = image
    if gain > 0:
        out = (rng.poisson(image.astype(np.float64) / gain) * gain).astype(np.float32)
    out = out + read * rng.standard_normal(image.shape, dtype=np.float32)
    return out, {"shot_gain": gain, "read_sigma": read * 255.0}


# --------------------------------------------------------------------------- blur kernels


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


# --------------------------------------------------------------------------- blur ops


def motion(image, rng, *, size=None, severity=None) -> Degraded:
    """Camera-shake blur; ``size`` is the kernel extent in pixels (rounded up to odd)."""
    image = _as_image(image)
    size = PRIMARY["motion"].draw(rng, size, severity) | 1
    params = {
        "type": "motion",
        "size": size,
        "kernel_seed": int(rng.integers(2**63 - 1)),
        "severity": PRIMARY["motion"].severity(size),
    }
    return _result(convolve(image, kernel_from_params(params)), params, rng)


def defocus(image, rng, *, radius=None, severity=None) -> Degraded:
    """Out-of-focus blur with a disk kernel of ``radius`` pixels."""
    image = _as_image(image)
    radius = PRIMARY["defocus"].draw(rng, radius, severity)
    params = {
        "type": "defocus",
        "radius": radius,
        "severity": PRIMARY["defocus"].severity(radius),
    }
    return _result(convolve(image, disk_kernel(radius)), params, rng)


def gaussian_blur(image, rng, *, sigma=None, severity=None) -> Degraded:
    """Isotropic Gaussian blur with standard deviation ``sigma`` pixels."""
    image = _as_image(image)
    sigma = PRIMARY["gaussian_blur"].draw(rng, sigma, severity)
    params = {
        "type": "gaussian_blur",
        "sigma": sigma,
        "severity": PRIMARY["gaussian_blur"].severity(sigma),
    }
    return _result(convolve(image, gaussian_kernel(sigma)), params, rng)


def blur(image, rng, *, kind: str | None = None, severity=None) -> Degraded:
    """One blur chosen at random (or by ``kind``) from motion, defocus and Gaussian."""
    kind = str(rng.choice(BLUR_KINDS)) if kind is None else kind
    if kind not in BLUR_KINDS:
        raise ValueError(f"unknown blur kind {kind!r}; expected one of {BLUR_KINDS}")
    return DEGRADATIONS[kind](image, rng, severity=severity)


# --------------------------------------------------------------------------- rain


def _streak_kernel(length: float, angle: float, width: float) -> np.ndarray:
    """Anti-aliased line, ``angle`` degrees from vertical, tapered towards its ends."""
    size = int(np.ceil(length + 2 * width)) | 1
    yy, xx = np.mgrid[:size, :size] - size // 2
    th = np.deg2rad(angle)
    along = xx * np.sin(th) + yy * np.cos(th)
    across = xx * np.cos(th) - yy * np.sin(th)
    cover = np.clip(width / 2 + 0.5 - np.abs(across), 0, 1)
    taper = np.clip(1 - (np.abs(along) / (length / 2)) ** 2, 0, 1)
    return (cover * np.sqrt(taper)).astype(np.float32)


def rain_layer(shape, rng, density, length, width, angle, intensity) -> np.ndarray:
    """Sparse random seeds smeared along the streak direction."""
    seeds = (rng.random(shape) < density) * rng.uniform(0.5, 1.0, shape)
    layer = cv2.filter2D(
        seeds.astype(np.float32),
        -1,
        _streak_kernel(length, angle, width),
        borderType=cv2.BORDER_REFLECT,
    )
    return np.clip(cv2.GaussianBlur(layer, (0, 0), 0.6) * intensity, 0, 1)


def rain(image, rng, *, amount=None, severity=None) -> Degraded:
    """Rain streaks: 1-3 layers of screen-blended streaks; ``amount`` 0 (sparse, thin, short,
    Rain100L-like) to 1 (dense, long, wide, varied directions, veiled, Rain100H-like)."""
    image = _as_image(image)
    a = PRIMARY["rain"].draw(rng, amount, severity)
    n_layers = int(np.clip(np.floor(1 + 2.5 * a + rng.uniform(-0.5, 0.5)), 1, 3))
    base = rng.uniform(-25, 25)
    streaks = np.zeros(image.shape[:2], np.float32)
    layers = []
    for _ in range(n_layers):
        lp = {
            "density": _lerp(a, 0.002, 0.005) * rng.uniform(0.6, 1.4),
            "length": _lerp(a, 10, 30) * rng.uniform(0.7, 1.3),
            "width": _lerp(a, 1.0, 1.8) * rng.uniform(0.8, 1.2),
            "angle": base + rng.normal(0, _lerp(a, 2, 10)),
            "intensity": min(1.0, _lerp(a, 0.45, 0.65) * rng.uniform(0.85, 1.15)),
        }
        lp = {k: float(v) for k, v in lp.items()}
        layers.append(lp)
        streaks = np.maximum(streaks, rain_layer(image.shape[:2], rng, **lp))
    veil = float(max(0.0, a - 0.5) * 0.3)
    out = 1 - (1 - image) * (1 - streaks[..., None])
    out = out * (1 - veil) + veil * 0.9
    params = {
        "type": "rain",
        "amount": a,
        "layers": layers,
        "veil": veil,
        "blend": "screen",
        "severity": PRIMARY["rain"].severity(a),
    }
    return _result(out, params, rng)


# --------------------------------------------------------------------------- haze


def depth_proxy(image, rng, near: float = HAZE_DEPTH[0], far: float = HAZE_DEPTH[1]) -> np.ndarray:
    """Plausible scene depth in [near, far]: farther towards the top, in bright unsaturated
    (sky-like) regions, plus smooth low-frequency variation."""
    image = _as_image(image)
    h, w = image.shape[:2]
    vertical = np.broadcast_to(np.linspace(1, 0, h, dtype=np.float32)[:, None], (h, w))
    low = cv2.resize(
        rng.standard_normal((4, 4)).astype(np.float32),
        (w, h),
        interpolation=cv2.INTER_CUBIC,
    )
    vmax, vmin = image.max(axis=2), image.min(axis=2)
    sky = cv2.GaussianBlur(vmax * (1 - (vmax - vmin) / (vmax + 1e-6)), (0, 0), 2)
    p = 0.55 * vertical + 0.2 * unit_range(low) + 0.25 * unit_range(sky)
    return (near + (far - near) * unit_range(p)).astype(np.float32)


def unit_range(x: np.ndarray) -> np.ndarray:
    """x rescaled to [0, 1] (zeros when x is constant)."""
    span = float(x.max() - x.min())
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def haze(image, rng, *, beta=None, airlight=None, depth=None, severity=None) -> Degraded:
    """Atmospheric scattering ``I = J t + A (1 - t)``, ``t = exp(-beta d)``; ``depth`` (HxW)
    defaults to :func:`depth_proxy`; ``airlight`` A is drawn from [0.7, 1.0]."""
    image = _as_image(image)
    beta = PRIMARY["haze"].draw(rng, beta, severity)
    A = float(rng.uniform(0.7, 1.0)) if airlight is None else float(airlight)
    d = (
        depth_proxy(image, rng)
        if depth is None
        else np.broadcast_to(np.asarray(depth, np.float32), image.shape[:2])
    )
    t = np.exp(-beta * d)[..., None]
    params = {
        "type": "haze",
        "beta": beta,
        "airlight": A,
        "depth_range": [float(d.min()), float(d.max())],
        "severity": PRIMARY["haze"].severity(beta),
    }
    return _result(image * t + A * (1 - t), params, rng)


# --------------------------------------------------------------------------- low light


def lowlight(image, rng, *, brightness=None, severity=None) -> Degraded:
    """LOL-like under-exposure: ``k * x**gamma`` with k setting the mean to ``brightness``
    (never brightening), then Poisson-Gaussian sensor noise."""
    image = _as_image(image)
    target = PRIMARY["lowlight"].draw(rng, brightness, severity)
    gamma = float(rng.uniform(1.0, 1.6))
    dark = image**gamma
    k = float(min(1.0, target / max(float(dark.mean()), 1e-6)))
    read, gain = float(rng.uniform(1.0, 5.0)), float(rng.uniform(0.5e-3, 3e-3))
    dark = dark * k
    noisy = dark + np.sqrt(gain * dark + (read / 255) ** 2) * rng.standard_normal(
        dark.shape, dtype=np.float32
    )
    params = {
        "type": "lowlight",
        "brightness": target,
        "gamma": gamma,
        "exposure": k,
        "read_sigma": read,
        "shot_gain": gain,
        "severity": PRIMARY["lowlight"].severity(target),
    }
    return _result(noisy, params, rng)


# --------------------------------------------------------------------------- jpeg, lowres


def jpeg(image, rng, *, quality=None, severity=None) -> Degraded:
    """JPEG round trip through OpenCV (4:2:0 chroma) at ``quality``."""
    image = _as_image(image)
    q = PRIMARY["jpeg"].draw(rng, quality, severity)
    bgr = cv2.cvtColor(np.round(quantize(image) * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, q])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    out = (
        cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32)
        / 255
    )
    params = {"type": "jpeg", "quality": q, "severity": PRIMARY["jpeg"].severity(q)}
    return _result(out, params, rng)


def lowres(image, rng, *, scale=None, keep_size: bool = True, severity=None) -> Degraded:
    """Area downscale by ``scale``; bicubic back to the input size unless ``keep_size=False``."""
    image = _as_image(image)
    s = PRIMARY["lowres"].draw(rng, scale, severity)
    h, w = image.shape[:2]
    lh, lw = max(1, round(h / s)), max(1, round(w / s))
    out = cv2.resize(image, (lw, lh), interpolation=cv2.INTER_AREA)
    if keep_size:
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_CUBIC)
    params = {
        "type": "lowres",
        "scale": s,
        "low_size": [lh, lw],
        "keep_size": keep_size,
        "severity": PRIMARY["lowres"].severity(s),
    }
    return _result(out, params, rng)


# --------------------------------------------------------------------------- mixture


def mix(image, rng, *, kinds: Sequence[str] | None = None, severity=None) -> Degraded:
    """Two distinct degradation families (random, or ``kinds``) applied in :data:`MIX_ORDER`."""
    if kinds is None:
        kinds = [MIX_ORDER[i] for i in rng.choice(len(MIX_ORDER), 2, replace=False)]
    families = [family_of(k) for k in kinds]
    if len(set(families)) != len(families) or any(f not in MIX_ORDER for f in families):
        raise ValueError(f"mix needs distinct kinds from {MIX_ORDER}, got {list(kinds)}")
    out, steps = _as_image(image), []
    for kind in sorted(kinds, key=lambda k: MIX_ORDER.index(family_of(k))):
        d = DEGRADATIONS[kind](out, rng, severity=severity)
        out = d.image
        steps.append(d.params)
    worst = max((p["severity"] for p in steps), key=SEVERITIES.index)
    params = {"type": "mix", "steps": steps, "severity": worst}
    return Degraded(out, params, describe(params, rng))


# --------------------------------------------------------------------------- no degradation


def clean(image, rng, *, severity=None) -> Degraded:
    """No degradation (the image as saved in 8 bits): the ``clean`` class of the classifier and
    the identity examples that keep a blind restorer from altering clean photos."""
    return _result(_as_image(image), {"type": "clean", "severity": "light"}, rng)


DEGRADATIONS: dict[str, Callable[..., Degraded]] = {
    "clean": clean,
    "noise": noise,
    "blur": blur,
    "motion": motion,
    "defocus": defocus,
    "gaussian_blur": gaussian_blur,
    "rain": rain,
    "haze": haze,
    "lowlight": lowlight,
    "jpeg": jpeg,
    "lowres": lowres,
    "mix": mix,
}


# --------------------------------------------------------------------------- descriptions

_ADJ = {
    "light": ("slight", "light", "mild", "faint"),
    "moderate": ("moderate", "noticeable", "medium"),
    "heavy": ("heavy", "strong", "severe", "intense"),
}
_ADV = {
    "light": ("slightly", "a little"),
    "moderate": ("moderately", "fairly", "quite"),
    "heavy": ("very", "extremely"),
}
_NOUNS = {
    "noise": ("noise", "image noise", "grain", "sensor noise"),
    "motion": ("motion blur", "camera-shake blur", "motion smear"),
    "defocus": ("defocus blur", "out-of-focus blur", "lens blur"),
    "gaussian_blur": ("blur", "softness", "Gaussian blur"),
    "rain": ("rain", "rain streaks", "rainfall"),
    "haze": ("haze", "fog", "mist"),
    "lowlight": ("underexposure", "darkness", "low light"),
    "jpeg": ("JPEG artifacts", "compression artifacts", "blocking artifacts"),
    "lowres": (
        "{scale}x downsampling",
        "low resolution ({scale}x)",
        "reduced resolution",
    ),
}
_SENTENCES = {
    "noise": ("denoise this {adv} noisy photo", "the picture is {adv} grainy"),
    "motion": (
        "sharpen the {adv} motion-blurred picture",
        "this shot is {adv} blurred by camera shake",
    ),
    "defocus": (
        "refocus this {adv} out-of-focus photo",
        "the image is {adv} out of focus",
    ),
    "gaussian_blur": (
        "sharpen this {adv} blurry image",
        "the photo is {adv} soft and blurred",
    ),
    "rain": (
        "derain this {adv} rainy photo",
        "take the rain streaks out of this picture",
    ),
    "haze": ("dehaze this {adv} hazy photo", "the scene is {adv} foggy"),
    "lowlight": (
        "brighten this {adv} dark photo",
        "enhance this {adv} underexposed image",
    ),
    "jpeg": (
        "this JPEG is {adv} compressed",
        "remove the compression blocks from this JPEG",
    ),
    "lowres": (
        "upscale this {scale}x downsampled image",
        "super-resolve this low-resolution picture",
    ),
}
_TEMPLATES = (
    "remove the {p}",
    "this photo has {p}",
    "please fix the {p} in this image",
    "clean up the {p}",
    "get rid of the {p} in this picture",
    "an image degraded by {p}",
)
_MIX_TEMPLATES = (
    "remove the {a} and the {b}",
    "this photo has {a} and {b}",
    "fix the {a} and {b} in this picture",
    "this image suffers from {a} plus {b}",
    "clean up both the {a} and the {b}",
)


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _phrase(params: dict, rng: np.random.Generator) -> str:
    """Noun phrase such as 'heavy rain' or '4x downsampling'."""
    kind = params["type"]
    noun = _pick(rng, _NOUNS[kind]).format(scale=params.get("scale"))
    return noun if kind == "lowres" else f"{_pick(rng, _ADJ[params['severity']])} {noun}"


_CLEAN_SENTENCES = (
    "this photo is already clean",
    "a clean photo with no degradation",
    "keep this sharp, clean picture as it is",
    "no degradation: leave the image unchanged",
)


def describe(params: dict, rng: np.random.Generator) -> str:
    """A randomly phrased description naming the degradation(s) and severity."""
    kind = params["type"]
    if kind == "clean":
        return _pick(rng, _CLEAN_SENTENCES)
    if kind == "mix":
        phrases = [_phrase(p, rng) for p in params["steps"]]
        return _pick(rng, _MIX_TEMPLATES).format(a=", ".join(phrases[:-1]), b=phrases[-1])
    if kind not in _NOUNS:
        raise ValueError(f"cannot describe degradation type {kind!r}")
    if rng.random() < 0.3:
        adv = _pick(rng, _ADV[params["severity"]])
        return _pick(rng, _SENTENCES[kind]).format(adv=adv, scale=params.get("scale"))
    return _pick(rng, _TEMPLATES).format(p=_phrase(params, rng))


# --------------------------------------------------------------------------- spec language

_NUM = r"(\d+(?:\.\d*)?|\.\d+)"
_ARG = re.compile(rf"^{_NUM}(?:-{_NUM})?$")


@dataclass(frozen=True)
class SpecItem:
    """One alternative of a spec: a degradation name and its primary value, range or severity."""

    name: str
    value: float | Range | None = None
    severity: str | None = None
    kinds: tuple[str, ...] | None = None  # mix only: the kinds to combine (``mix:haze+noise``)

    def kwargs(self) -> dict:
        """Keyword arguments for ``DEGRADATIONS[name]``."""
        out: dict = {} if self.severity is None else {"severity": self.severity}
        if self.value is not None:
            out[PRIMARY[self.name].name] = self.value
        if self.kinds is not None:
            out["kinds"] = list(self.kinds)
        return out


def parse_spec(spec: str) -> tuple[SpecItem, ...]:
    """Parse ``"noise:0-50,rain:heavy,jpeg:10,mix"``: comma-separated alternatives, each
    ``name``, ``name:value``, ``name:low-high`` or ``name:light|moderate|heavy``; a mixture of
    chosen kinds is ``mix:haze+noise`` or ``mix:haze+rain+noise:moderate``."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("empty degradation spec")
    return tuple(_parse_item(part.strip()) for part in spec.split(","))


def _parse_item(text: str) -> SpecItem:
    name, _, arg = (s.strip() for s in text.partition(":"))
    name = name.lower()
    if name not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {name!r} in spec; known: {', '.join(DEGRADATIONS)}")
    if not arg:
        if ":" in text:
            raise ValueError(f"empty argument after {name!r}")
        return SpecItem(name)
    if name == "mix" and "+" in arg:
        return _parse_mix(arg)
    if arg.lower() in SEVERITIES:
        return SpecItem(name, severity=arg.lower())
    if name not in PRIMARY:
        raise ValueError(
            f"{name!r} takes only a severity word ({'/'.join(SEVERITIES)}), got {arg!r}"
        )
    return SpecItem(name, value=_parse_value(name, arg))


def _parse_mix(arg: str) -> SpecItem:
    kinds_text, _, severity = arg.partition(":")
    kinds = tuple(k.strip().lower() for k in kinds_text.split("+"))
    families = [family_of(k) for k in kinds]
    if any(k not in DEGRADATIONS or family_of(k) not in MIX_ORDER for k in kinds) or len(set(families)) != len(families):
        raise ValueError(f"mix:{arg}: expected distinct kinds from {', '.join(MIX_ORDER)} joined by '+'")
    if severity and severity.lower() not in SEVERITIES:
        raise ValueError(f"mix:{arg}: unknown severity {severity!r}; expected one of {', '.join(SEVERITIES)}")
    return SpecItem("mix", severity=severity.lower() or None, kinds=kinds)


def _parse_value(name: str, arg: str) -> float | Range:
    p = PRIMARY[name]
    m = _ARG.match(arg)
    if not m:
        raise ValueError(
            f"bad argument {arg!r} for {name!r}: expected a number, 'low-high' or a severity word"
        )
    nums = [float(g) for g in m.groups() if g is not None]
    for v in nums:
        if not p.limits[0] <= v <= p.limits[1]:
            raise ValueError(
                f"{name} {p.name} {v:g} outside allowed range {p.limits[0]:g}-{p.limits[1]:g}"
            )
        if p.integer and v != int(v):
            raise ValueError(f"{name} {p.name} must be an integer, got {v:g}")
    if len(nums) == 2 and nums[0] > nums[1]:
        raise ValueError(f"bad range {arg!r} for {name!r}: low > high")
    return nums[0] if len(nums) == 1 else (nums[0], nums[1])


def degrade(
    image: np.ndarray, spec: str | Sequence[SpecItem], rng: np.random.Generator
) -> Degraded:
    """Apply one degradation drawn from ``spec`` (see :func:`parse_spec`)."""
    items = parse_spec(spec) if isinstance(spec, str) else tuple(spec)
    item = items[int(rng.integers(len(items)))] if len(items) > 1 else items[0]
    return DEGRADATIONS[item.name](image, rng, **item.kwargs())
