"""A broad family of synthetic degradations for training models that must generalise.

:mod:`irestore.degrade` draws each degradation from one parametrisation. A model trained on
it learns that parametrisation; users bring others. :func:`broad_degradation` widens every
family (and `clean`, which real photos are never quite), keeping the params format of
:mod:`irestore.degrade` so :func:`irestore.labels.targets_from_params` reads the targets:

- noise: Gaussian, per-channel, Poisson-Gaussian, and spatially correlated (demosaiced or
  denoised-then-sharpened look), sigma 3-60, sometimes JPEG-compressed (quality 60-95) after;
- motion: camera-shake trajectories from straight lines to shaky curves, 5-35 px;
- defocus: disk (radius 1.5-8), Gaussian (sigma 0.9-4) or anisotropic Gaussian (sigmas 0.5-4 on
  axes at any angle) point spread functions;
- rain: :mod:`irestore.degrade`'s model, or 1-4 layers of streaks at any angle within 40 degrees
  of vertical, 4-60 px long, 0.6-3 px wide, sparse to dense, faint to bright, sharp or out of
  focus, tinted, screen/additive/lighten blended, with or without a veil;
- haze: scattering through a smooth random transmission field (the depth proxy blended with
  random low-frequency fields), beta 0.03-0.3, grey to coloured atmospheric light;
- low light: exposure scaling and a gamma 0.8-2.2, a colour cast, Poisson-Gaussian sensor
  noise, sometimes with a luminance-correlated part;
- JPEG: OpenCV (4:2:0) or Pillow (4:2:0 or 4:4:4), quality 5-50;
- low resolution: a continuous factor 1.7-4, four downscaling and three upscaling kernels;
- clean: as saved, as a high-quality JPEG (85-97), lightly sharpened or downscaled —
  what a good photo looks like after a camera or an editor;
- mixtures of two (sometimes three) families in :data:`irestore.degrade.MIX_ORDER`.

Every degradation step records how visible it is (:func:`change`), so training can treat a step
that changed nothing a viewer could see (a light blur of a clear sky) as absent rather than
teach a model to see degradations that are not there.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from irestore import degrade as D

FAMILIES = ("noise", "motion", "defocus", "rain", "haze", "lowlight", "jpeg", "lowres")
_MIX_FAMILY = {"motion": "blur", "defocus": "blur"}

_DOWN = (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_NEAREST)
_UP = (cv2.INTER_CUBIC, cv2.INTER_LINEAR, cv2.INTER_LANCZOS4)


def _done(image: np.ndarray, params: dict, rng: np.random.Generator) -> D.Degraded:
    out = D.quantize(np.clip(image, 0, 1).astype(np.float32))
    return D.Degraded(out, params, D.describe(params, rng))


def noise(image, rng):
    sigma = float(rng.uniform(3, 60))
    if rng.random() < 0.15:  # noise that went through a JPEG encoder after the sensor (a phone's output)
        noisy = D.noise(image, rng, sigma=sigma, kind=str(rng.choice(D.NOISE_KINDS)))
        quality = int(rng.integers(60, 96))
        params = {**noisy.params, "compressed": quality}
        return _done(_pillow_jpeg(noisy.image, quality, 2), params, rng)
    if rng.random() < 0.7:
        return D.noise(image, rng, sigma=sigma, kind=str(rng.choice(D.NOISE_KINDS)))
    # correlated: white noise low-passed then rescaled to the same per-pixel sigma
    width = float(rng.uniform(0.5, 1.1))
    field = cv2.GaussianBlur(rng.standard_normal(image.shape).astype(np.float32), (0, 0), width)
    field *= sigma / 255 / max(float(field.std()), 1e-6)
    params = {"type": "noise", "sigma": sigma, "kind": "correlated", "width": width, "severity": D.PRIMARY["noise"].severity(sigma)}
    return _done(image + field, params, rng)


def motion(image, rng):
    size = int(rng.integers(5, 36)) | 1
    shake = float(rng.choice([0.0, rng.uniform(0.0, 0.3), rng.uniform(0.3, 1.0)]))
    kernel = D.motion_kernel(size, rng, shake=shake)
    params = {"type": "motion", "size": size, "shake": shake, "severity": D.PRIMARY["motion"].severity(size)}
    return _done(D.convolve(D.quantize(image), kernel), params, rng)


def anisotropic_kernel(sigma_x: float, sigma_y: float, angle: float) -> np.ndarray:
    """A normalised Gaussian kernel with standard deviations ``sigma_x`` / ``sigma_y`` along
    axes turned by ``angle`` degrees (lens aberrations, a slightly tilted focal plane)."""
    half = int(np.ceil(3 * max(sigma_x, sigma_y)))
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float32)
    th = np.deg2rad(angle)
    u, v = xx * np.cos(th) + yy * np.sin(th), -xx * np.sin(th) + yy * np.cos(th)
    kernel = np.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return (kernel / kernel.sum()).astype(np.float32)


def defocus(image, rng):
    pick = rng.random()
    if pick < 0.5:
        return D.defocus(image, rng, radius=float(rng.uniform(1.5, 8)))
    if pick < 0.75:
        return D.gaussian_blur(image, rng, sigma=float(rng.uniform(0.9, 4)))
    sigma_x, sigma_y = float(rng.uniform(0.9, 4)), float(rng.uniform(0.5, 2.5))
    angle = float(rng.uniform(0, 180))
    params = {"type": "gaussian_blur", "sigma": max(sigma_x, sigma_y), "sigma_minor": min(sigma_x, sigma_y), "angle": angle,
              "anisotropic": True, "severity": D.PRIMARY["gaussian_blur"].severity(max(sigma_x, sigma_y))}
    return _done(D.convolve(D.quantize(image), anisotropic_kernel(sigma_x, sigma_y, angle)), params, rng)


def _log_uniform(rng, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def rain(image, rng):
    if rng.random() < 0.3:
        return D.rain(image, rng, amount=float(rng.uniform(0.05, 1)))
    base, spread = float(rng.uniform(-40, 40)), float(rng.uniform(0, 12))
    streaks, layers = np.zeros(image.shape[:2], np.float32), []
    for _ in range(int(rng.integers(1, 5))):
        lp = {"density": _log_uniform(rng, 0.0008, 0.012), "length": float(rng.uniform(4, 60)),
              "width": float(rng.uniform(0.6, 3.0)), "angle": base + float(rng.normal(0, spread)),
              "intensity": float(rng.uniform(0.25, 0.9))}
        layer = D.rain_layer(image.shape[:2], rng, **lp)
        focus = float(rng.choice([0.0, rng.uniform(0.5, 2.0)]))  # drops near the lens are out of focus
        if focus:
            layer = cv2.GaussianBlur(layer, (0, 0), focus)
        streaks = np.maximum(streaks, layer)
        layers.append({**lp, "defocus": focus})
    tint = (1 - rng.uniform(0, 0.12, 3)).astype(np.float32)
    s = streaks[..., None] * tint
    blend = str(rng.choice(["screen", "screen", "additive", "lighten"]))
    out = 1 - (1 - image) * (1 - s) if blend == "screen" else image + s if blend == "additive" else np.maximum(image, s)
    veil = float(rng.uniform(0, 0.25)) if rng.random() < 0.4 else 0.0
    out = out * (1 - veil) + veil * float(rng.uniform(0.75, 1.0))
    # the amount degrade's model would need for this much streak cover (about cover = 0.4 a^2)
    amount = float(np.clip(np.sqrt(float(np.mean(np.clip(out - image, 0, 1))) / 0.4), 0, 1))
    params = {"type": "rain", "amount": amount, "layers": layers, "veil": veil, "blend": blend,
              "severity": D.PRIMARY["rain"].severity(amount)}
    return _done(out, params, rng)


def _smooth_field(shape, rng) -> np.ndarray:
    """A random low-frequency field in [0, 1] (2-8 control points a side, bicubic)."""
    cells = int(rng.integers(2, 9))
    field = cv2.resize(rng.standard_normal((cells, cells)).astype(np.float32), shape[::-1], interpolation=cv2.INTER_CUBIC)
    return D.unit_range(field)


def haze(image, rng):
    beta = _log_uniform(rng, 0.03, 0.3)
    near, far = D.HAZE_DEPTH
    weight = float(rng.uniform(0, 1))  # 1: the depth proxy alone; 0: a random transmission field
    blend = weight * D.unit_range(D.depth_proxy(image, rng)) + (1 - weight) * _smooth_field(image.shape[:2], rng)
    depth = near + (far - near) * D.unit_range(blend)
    level = float(rng.uniform(0.6, 1.0))
    airlight = np.clip(level * (1 + rng.uniform(-0.1, 0.1, 3)), 0, 1).astype(np.float32)  # grey to tinted
    t = np.exp(-beta * depth)[..., None]
    params = {"type": "haze", "beta": beta, "airlight": [float(a) for a in airlight], "proxy_weight": weight,
              "depth_range": [float(depth.min()), float(depth.max())], "severity": D.PRIMARY["haze"].severity(beta)}
    return _done(image * t + airlight * (1 - t), params, rng)


def lowlight(image, rng):
    target = float(rng.uniform(0.03, 0.22))
    gamma = float(rng.uniform(0.8, 2.2))
    cast = np.clip(1 + rng.normal(0, 0.08, 3), 0.75, 1.25).astype(np.float32)  # white balance off
    dark = image**gamma * cast
    k = float(min(1.0, target / max(float(dark.mean()), 1e-6)))
    dark = dark * k
    read, gain = float(rng.uniform(0.5, 8.0)), _log_uniform(rng, 3e-4, 6e-3)
    sigma = np.sqrt(gain * np.clip(dark, 0, None) + (read / 255) ** 2)
    noise = rng.standard_normal(dark.shape, dtype=np.float32)
    correlated = float(rng.choice([0.0, rng.uniform(0.2, 0.7)]))  # a luminance part shared by the channels
    if correlated:
        noise = np.sqrt(1 - correlated**2) * noise + correlated * rng.standard_normal(dark.shape[:2], dtype=np.float32)[..., None]
    params = {"type": "lowlight", "brightness": target, "gamma": gamma, "exposure": k, "cast": [float(c) for c in cast],
              "read_sigma": read, "shot_gain": gain, "correlated": correlated, "severity": D.PRIMARY["lowlight"].severity(target)}
    return _done(dark + sigma * noise, params, rng)


def _pillow_jpeg(image: np.ndarray, quality: int, subsampling: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(np.round(D.quantize(image) * 255).astype(np.uint8)).save(buffer, "JPEG", quality=quality, subsampling=subsampling)
    return np.asarray(Image.open(buffer).convert("RGB"), np.float32) / 255


def jpeg(image, rng):
    quality = int(rng.integers(5, 51))
    if rng.random() < 0.5:
        return D.jpeg(image, rng, quality=quality)
    subsampling = int(rng.choice([0, 2]))  # Pillow: 0 = 4:4:4, 2 = 4:2:0
    params = {"type": "jpeg", "quality": quality, "encoder": "pillow", "subsampling": subsampling, "severity": D.PRIMARY["jpeg"].severity(quality)}
    return _done(_pillow_jpeg(image, quality, subsampling), params, rng)


def lowres(image, rng):
    scale = float(rng.uniform(1.7, 4.0))
    h, w = image.shape[:2]
    down, up = _DOWN[rng.choice(len(_DOWN), p=[0.4, 0.2, 0.3, 0.1])], _UP[rng.integers(len(_UP))]
    small = cv2.resize(D.quantize(image), (max(1, round(w / scale)), max(1, round(h / scale))), interpolation=down)
    params = {"type": "lowres", "scale": scale, "down": int(down), "up": int(up), "severity": D.PRIMARY["lowres"].severity(scale)}
    return _done(cv2.resize(small, (w, h), interpolation=up), params, rng)


SINGLE = {"noise": noise, "motion": motion, "defocus": defocus, "rain": rain, "haze": haze, "lowlight": lowlight, "jpeg": jpeg, "lowres": lowres}


def clean(image, rng):
    """A clean photo as cameras and editors leave it: none of these is a degradation to restore."""
    image = D.quantize(image)
    pick = rng.random()
    params = {"type": "clean", "severity": "light"}
    if pick < 0.4:
        return _done(image, params, rng)
    if pick < 0.7:
        quality = int(rng.integers(85, 98))
        return _done(_pillow_jpeg(image, quality, int(rng.choice([0, 2]))), {**params, "variant": f"jpeg{quality}"}, rng)
    if pick < 0.85:
        amount = float(rng.uniform(0.2, 0.8))
        soft = cv2.GaussianBlur(image, (0, 0), 1.0)
        return _done(image + amount * (image - soft), {**params, "variant": "sharpened"}, rng)
    factor = float(rng.uniform(1.2, 2.0))
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(32, round(w / factor)), max(32, round(h / factor))), interpolation=cv2.INTER_AREA)
    return _done(small, {**params, "variant": "downscaled"}, rng)


def mix(image, rng, count: int = 2):
    """``count`` degradations of distinct families, applied in camera-pipeline order."""
    families = list(rng.choice(FAMILIES, size=len(FAMILIES), replace=False))
    chosen, seen = [], set()
    for family in families:
        group = _MIX_FAMILY.get(family, family)
        if group not in seen:
            chosen.append(family)
            seen.add(group)
        if len(chosen) == count:
            break
    chosen.sort(key=lambda f: D.MIX_ORDER.index(_MIX_FAMILY.get(f, f)))
    out, steps = image, []
    for family in chosen:
        step = _measured(SINGLE[family], out, rng)
        out, steps = step.image, steps + [step.params]
    worst = max((p["severity"] for p in steps), key=D.SEVERITIES.index)
    params = {"type": "mix", "steps": steps, "severity": worst}
    return D.Degraded(out, params, D.describe(params, rng))


def change(before: np.ndarray, after: np.ndarray) -> dict[str, float]:
    """How visible a step is: PSNR between its input and output (dB) and the 99.9th percentile
    of the absolute change (0-255 levels; sparse rain streaks have a high PSNR but a large peak)."""
    diff = np.abs(D.quantize(after) - D.quantize(before)) * 255
    mse = float(np.mean(diff**2))
    return {"change_db": 99.0 if mse == 0 else float(10 * np.log10(255**2 / mse)), "change_peak": float(np.percentile(diff, 99.9))}


def _measured(step, image, rng):
    degraded = step(image, rng)
    return D.Degraded(degraded.image, {**degraded.params, **change(image, degraded.image)}, degraded.description)


def broad_degradation(image: np.ndarray, rng: np.random.Generator, kind: str | None = None) -> D.Degraded:
    """One degradation of ``kind`` (a family, ``clean``, ``mix`` or ``mix3``), or a random draw:
    14 % clean, 54 % single families, 27 % two-family and 5 % three-family mixtures."""
    if kind is None:
        pick = rng.random()
        kind = "clean" if pick < 0.14 else "mix" if pick < 0.41 else "mix3" if pick < 0.46 else str(rng.choice(FAMILIES))
    if kind == "clean":
        return clean(image, rng)
    if kind in ("mix", "mix3"):
        return mix(image, rng, 3 if kind == "mix3" else 2)
    if kind not in SINGLE:
        raise ValueError(f"unknown degradation family {kind!r}; choose one of clean, mix, mix3, {', '.join(FAMILIES)}")
    return _measured(SINGLE[kind], image, rng)


BROAD_KINDS = ("clean", "mix", "mix3", *FAMILIES)


class Synthesis:
    """The synthetic degradation of a training sample, from a spec of comma-separated
    alternatives (one drawn uniformly per sample, so repeating one weights it): each an
    :mod:`irestore.degrade` spec item (``noise:0-50``, ``rain:heavy``, ``mix``, ...), or
    ``broad`` (a random draw of this module's whole family) or ``broad:KIND`` (one family,
    ``clean``, ``mix`` or ``mix3``). A derain specialist's recipe, for instance:
    ``broad:rain,broad:rain,broad:rain,clean`` (``clean``: the photo unchanged; ``broad:clean``
    also gives the high-quality JPEG, sharpened and downscaled looks of a clean photo)."""

    def __init__(self, spec: str):
        if not isinstance(spec, str) or not spec.strip():
            raise ValueError("empty degradation spec")
        self.spec = spec
        self.items: list[tuple[str, object]] = []
        for part in (p.strip() for p in spec.split(",")):
            name, _, kind = (x.strip() for x in part.partition(":"))
            if name.lower() != "broad":
                self.items.append(("degrade", D.parse_spec(part)))
            elif kind and kind.lower() not in BROAD_KINDS:
                raise ValueError(f"unknown broad family {kind!r} in {part!r}; choose one of {', '.join(BROAD_KINDS)}")
            else:
                self.items.append(("broad", kind.lower() or None))

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> D.Degraded:
        """The degraded image, always the size of ``image`` (a training pair needs both alike)."""
        source, item = self.items[int(rng.integers(len(self.items)))] if len(self.items) > 1 else self.items[0]
        if source != "broad":
            return D.degrade(image, item, rng)
        degraded = broad_degradation(image, rng, item)
        if degraded.image.shape != image.shape:  # the downscaled clean variant: shown at the original size
            h, w = image.shape[:2]
            return D.Degraded(D.quantize(cv2.resize(degraded.image, (w, h), interpolation=cv2.INTER_CUBIC)),
                              degraded.params, degraded.description)
        return degraded

    def __repr__(self) -> str:
        return f"Synthesis({self.spec!r})"
