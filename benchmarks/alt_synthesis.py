"""A second degradation synthesis, for evaluation only: other implementations and other ranges.

Nothing in the package uses this module; no model is trained or tuned on it. Each family is
written independently of irestore.degrade and irestore.degrade.broad (other kernels, encoders,
noise and rain models, haze geometry) and reaches past their parameter ranges where a range
makes sense (motion to 45 px, defocus to radius 10, low resolution to 6x, JPEG 4:2:2, haze as a
homogeneous tinted fog):

- noise: luminance-heavy camera noise (chroma noise at half sigma, on a 2x2 coarser grid),
  luma sigma 8-65;
- motion: a straight anti-aliased line drawn with OpenCV, 9-45 px, any angle;
- defocus: a drawn disk of radius 2-10 px softened by a 0.5 px Gaussian (lens-like);
- rain: anti-aliased line segments of 15-50 px at -30..30 degrees, additively blended;
- rain-outside: rain past every range of the broad training family (irestore.degrade.broad: within
  40 degrees of vertical, 4-60 px long, 0.6-3 px wide, screen/additive/lighten blends): streaks
  45-65 degrees off vertical, 70-160 px long, 3.5-6 px wide with soft edges, alpha-composited
  (occluding) in a grey-blue drop colour, with a faint wet-lens veil;
- haze: fog thickening linearly towards the top, far transmission 0.35-0.75, tinted airlight;
- haze-outside: haze past the broad training family's airlight (irestore.degrade.broad: grey at
  0.6-1.0, each channel within 10 % of the others): a coloured smog or dusk airlight (warm brown
  or cool blue, channels 25-45 % apart) at 0.45-0.9, with depth rising to a horizon at 35-60 % of
  the height and constant above it (a ground plane under a sky), far transmission 0.15-0.45;
- lowlight: exposure 0.05-0.3 applied in linear light (sRGB gamma), read noise 1-4 levels;
- lowlight-outside: low light past the broad training family's ranges (irestore.degrade.broad: mean
  brightness 0.03-0.22, a cast within 25 % per channel, read noise up to 8 levels): mean brightness
  0.015-0.03, an uncorrected tungsten cast (green 0.62-0.72, blue 0.38-0.5 of red), photon shot
  noise and read noise added in linear light, which the sRGB curve amplifies to 10-25 levels in
  the shadows;
- jpeg: Pillow at quality 3-55 with 4:2:2 chroma;
- lowres: Pillow BOX/HAMMING/LANCZOS down by 2-6x, NEAREST/BILINEAR/BICUBIC back up.

Each function returns ``(image, params)`` with params in irestore.degrade's format (``type``
plus the primary parameter) so irestore.labels.targets_from_params reads the truth.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image


def _u8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def _f32(image: np.ndarray) -> np.ndarray:
    return np.clip(image, 0, 1).astype(np.float32)


def noise(image, rng):
    sigma = float(rng.uniform(8, 65))
    h, w = image.shape[:2]
    luma = rng.standard_normal((h, w, 1)) * sigma / 255
    chroma = rng.standard_normal(((h + 1) // 2, (w + 1) // 2, 3)) * sigma / 2 / 255
    chroma = cv2.resize(chroma.astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
    return _f32(np.round((image + luma + chroma) * 255) / 255), {"type": "noise", "sigma": sigma}


def _line_kernel(length: int, angle: float) -> np.ndarray:
    size = length + 2
    kernel = np.zeros((size, size), np.float32)
    c, dx, dy = size / 2, np.cos(np.deg2rad(angle)) * (length - 1) / 2, np.sin(np.deg2rad(angle)) * (length - 1) / 2
    shift = 4  # sub-pixel endpoints
    p0 = (round((c - dx) * 2**shift), round((c - dy) * 2**shift))
    p1 = (round((c + dx) * 2**shift), round((c + dy) * 2**shift))
    cv2.line(kernel, p0, p1, 1.0, 1, cv2.LINE_AA, shift)
    return kernel / kernel.sum()


def motion(image, rng):
    length = int(rng.integers(9, 46))
    kernel = _line_kernel(length, float(rng.uniform(0, 180)))
    return _f32(cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REPLICATE)), {"type": "motion", "size": length}


def defocus(image, rng):
    radius = float(rng.uniform(2, 10))
    size = 2 * int(np.ceil(radius)) + 3
    kernel = np.zeros((size, size), np.float32)
    cv2.circle(kernel, (size // 2 * 16, size // 2 * 16), round(radius * 16), 1.0, -1, cv2.LINE_AA, 4)
    kernel = cv2.GaussianBlur(kernel, (0, 0), 0.5)
    blurred = cv2.filter2D(image, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REPLICATE)
    return _f32(blurred), {"type": "defocus", "radius": radius}


def rain(image, rng):
    amount = float(rng.uniform(0.1, 1.0))
    h, w = image.shape[:2]
    layer = np.zeros((h, w), np.float32)
    angle = np.deg2rad(rng.uniform(-30, 30))
    count = int(h * w * (0.0004 + 0.0016 * amount))
    for _ in range(count):
        x, y = float(rng.uniform(0, w)), float(rng.uniform(0, h))
        length = float(rng.uniform(15, 50))
        dx, dy = np.sin(angle) * length, np.cos(angle) * length
        cv2.line(layer, (int(x), int(y)), (int(x + dx), int(y + dy)), float(rng.uniform(0.3, 0.7)), 1, cv2.LINE_AA)
    layer = cv2.GaussianBlur(layer, (0, 0), 0.7)
    return _f32(image + layer[..., None] * (0.5 + 0.5 * amount)), {"type": "rain", "amount": amount}


def rain_outside(image, rng):
    amount = float(rng.uniform(0.2, 1.0))
    h, w = image.shape[:2]
    alpha = np.zeros((h, w), np.float32)
    side = 1 if rng.random() < 0.5 else -1
    angle = np.deg2rad(side * rng.uniform(45, 65))
    count = int(h * w * (0.00003 + 0.00012 * amount))
    for _ in range(count):
        x, y = float(rng.uniform(-0.3 * w, 1.3 * w)), float(rng.uniform(-0.3 * h, h))
        length = float(rng.uniform(70, 160))
        dx, dy = np.sin(angle) * length, np.cos(angle) * length
        width = int(rng.integers(4, 7))  # 3.5-6 px after the soft edge
        cv2.line(alpha, (int(x), int(y)), (int(x + dx), int(y + dy)), float(rng.uniform(0.25, 0.6)), width, cv2.LINE_AA)
    alpha = np.clip(cv2.GaussianBlur(alpha, (0, 0), 1.2), 0, 0.8)[..., None]
    colour = np.array([0.78, 0.82, 0.9], np.float32) * float(rng.uniform(0.8, 1.0))
    veil = float(rng.uniform(0.0, 0.08))
    out = image * (1 - alpha) + colour * alpha
    out = out * (1 - veil) + colour * veil
    return _f32(out), {"type": "rain", "amount": amount}


def haze(image, rng):
    h = image.shape[0]
    far = float(rng.uniform(0.35, 0.75))
    ramp = np.linspace(0, 1, h, dtype=np.float32)[::-1, None, None]  # 1 at the top
    transmission = 1 - (1 - far) * (0.3 + 0.7 * ramp)
    tint = np.array([1.0, 1.0, 1.0]) * rng.uniform(0.6, 0.95) + rng.uniform(-0.05, 0.05, 3)
    beta = float(-np.log(far) / 8)  # on irestore's scale: depth 8 at the far end
    return _f32(image * transmission + tint.astype(np.float32) * (1 - transmission)), {"type": "haze", "beta": beta}


def haze_outside(image, rng):
    h = image.shape[0]
    far = float(rng.uniform(0.15, 0.45))
    horizon = float(rng.uniform(0.35, 0.6))  # from the top
    rows = np.linspace(0, 1, h, dtype=np.float32)
    distance = np.clip((1 - rows) / (1 - horizon), 0, 1) ** 2  # the ground plane: far at the horizon and above
    transmission = far ** (0.15 + 0.85 * distance)[:, None, None]
    warm, cool = np.array([1.0, 0.8, 0.58]), np.array([0.62, 0.75, 1.0])
    colour = (warm if rng.random() < 0.5 else cool) * rng.uniform(0.45, 0.9)
    beta = float(-np.log(far) / 8)
    return _f32(image * transmission + colour.astype(np.float32) * (1 - transmission)), {"type": "haze", "beta": beta}


def _to_linear(srgb: np.ndarray) -> np.ndarray:
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def _to_srgb(linear: np.ndarray) -> np.ndarray:
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(np.maximum(linear, 0), 1 / 2.4) - 0.055)


def lowlight(image, rng):
    exposure = float(rng.uniform(0.05, 0.3))
    srgb = _to_srgb(_to_linear(image) * exposure)
    srgb = srgb + rng.standard_normal(image.shape) * float(rng.uniform(1, 4)) / 255
    out = _f32(srgb)
    return out, {"type": "lowlight", "brightness": float(out.mean())}


def _exposure_for(linear: np.ndarray, brightness: float) -> float:
    """The exposure that gives the sRGB image this mean (bisection on a log scale; the mean rises with it)."""
    lo, hi = 1e-5, 1.0
    for _ in range(40):
        mid = float(np.sqrt(lo * hi))
        lo, hi = (mid, hi) if _to_srgb(linear * mid).mean() < brightness else (lo, mid)
    return float(np.sqrt(lo * hi))


def lowlight_outside(image, rng):
    cast = np.array([1.0, rng.uniform(0.62, 0.72), rng.uniform(0.38, 0.5)], np.float32)
    linear = _to_linear(image) * cast
    target = float(rng.uniform(0.015, 0.03))
    signal = linear * _exposure_for(linear, target)
    photons = float(rng.uniform(300, 1500))  # at full scale: the shot noise's strength
    noisy = rng.poisson(np.clip(signal, 0, 1) * photons) / photons + rng.standard_normal(image.shape) * float(rng.uniform(0.0015, 0.004))
    out = np.round(_f32(_to_srgb(noisy)) * 255) / 255
    return out.astype(np.float32), {"type": "lowlight", "brightness": float(out.mean())}


def jpeg(image, rng):
    quality = int(rng.integers(3, 56))
    buffer = io.BytesIO()
    Image.fromarray(_u8(image)).save(buffer, "JPEG", quality=quality, subsampling=1)
    return np.asarray(Image.open(buffer).convert("RGB"), np.float32) / 255, {"type": "jpeg", "quality": quality}


_DOWN = (Image.Resampling.BOX, Image.Resampling.HAMMING, Image.Resampling.LANCZOS)
_UP = (Image.Resampling.NEAREST, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC)


def lowres(image, rng):
    scale = float(rng.uniform(2, 6))
    h, w = image.shape[:2]
    small = Image.fromarray(_u8(image)).resize((max(1, round(w / scale)), max(1, round(h / scale))), _DOWN[rng.integers(3)])
    up = small.resize((w, h), _UP[rng.integers(3)])
    return np.asarray(up, np.float32) / 255, {"type": "lowres", "scale": scale}


FAMILIES = {"noise": noise, "motion": motion, "defocus": defocus, "rain": rain, "haze": haze,
            "lowlight": lowlight, "jpeg": jpeg, "lowres": lowres}
EXTRA_FAMILIES = {"rain-outside": rain_outside, "haze-outside": haze_outside, "lowlight-outside": lowlight_outside}  # for alt_pairs only: not in mixtures or classifier_eval
ORDER = ("haze", "rain", "motion", "defocus", "lowres", "lowlight", "noise", "jpeg")  # scene, optics, sensor, codec


def degrade(image: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """One degradation of ``kind`` (a family name)."""
    return {**FAMILIES, **EXTRA_FAMILIES}[kind](np.asarray(image, np.float32), rng)


def mix(image: np.ndarray, kinds: tuple[str, str], rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Two families applied in camera-pipeline order."""
    steps = []
    for kind in sorted(kinds, key=ORDER.index):
        image, params = degrade(image, kind, rng)
        steps.append(params)
    return image, {"type": "mix", "steps": steps}
