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

from dataclasses import dataclass

import numpy as np

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


