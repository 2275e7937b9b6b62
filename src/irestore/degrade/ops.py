"""The degradation operations: each draws its parameters, degrades, and returns a :class:`Degraded`
with the parameters used and a description."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from irestore.degrade.kernels import convolve, disk_kernel, gaussian_kernel, kernel_from_params
from irestore.degrade.params import (
    BLUR_KINDS,
    HAZE_DEPTH,
    MIX_ORDER,
    NOISE_KINDS,
    PRIMARY,
    SEVERITIES,
    Degraded,
    family_of,
)
from irestore.degrade.phrasing import describe


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


