"""What every peer method shares: the degradation it is told about and the restore contract.

A peer method restores one image, ``restore(image, degradation) -> image``, with images as
float32 ``H x W x 3`` RGB arrays in [0, 1] (the form `irestore.degrade` produces and the
metrics read). ``degradation`` carries what the benchmark suite knows: the family, and for
synthetic suites the exact parameters (a noise σ, a blur kernel's recipe); for real datasets the
parameters are ``None``, and a method that cannot do without them raises :class:`MethodSkipped`
(or estimates them and says so in its description).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

__all__ = ["FAMILIES", "Degradation", "MethodSkipped", "PeerMethod", "as_uint8", "from_uint8", "noise_level"]

FAMILIES = ("noise", "blur", "rain", "haze", "lowlight", "jpeg", "lowres", "mix")


class MethodSkipped(Exception):
    """The method does not apply to this input; the message says why (reported, not an error)."""


@dataclass(frozen=True)
class Degradation:
    """What a suite knows about one degraded input."""

    family: str | None  # one of FAMILIES; None when unknown (pairs without --degradations)
    params: dict | None = None  # exact parameters when synthesised by the suite, else None
    description: str = ""  # a text description of the degradation (the prompt for text-guided methods)
    target_size: tuple[int, int] | None = None  # (height, width) the restored image must have

    @property
    def known(self) -> bool:
        return self.params is not None


class PeerMethod(ABC):
    """A restoration method to compare with. ``families`` is None for methods that take any input."""

    name: str = ""
    families: frozenset[str] | None = None
    description: str = ""

    def handles(self, family: str | None) -> bool:
        return self.families is None or family in self.families

    def why_not(self, family: str | None) -> str:
        """The reason this method is skipped for ``family`` (call when ``handles`` is False)."""
        handled = ", ".join(sorted(self.families or ()))
        if family is None:
            return f"{self.name} handles {handled} only, and this suite does not say which degradation its inputs have"
        return f"{self.name} handles {handled} only, not {family}"

    @abstractmethod
    def restore(self, image: np.ndarray, degradation: Degradation) -> np.ndarray:
        """Restore an HxWx3 float32 image in [0, 1]; returns HxWx3 float32 in [0, 1]."""

    def settings(self) -> dict:
        """The method's fixed settings, recorded in reports."""
        return {}


def as_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def from_uint8(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 255.0


def noise_level(image: np.ndarray, degradation: Degradation) -> tuple[float, str]:
    """The Gaussian noise σ (0-255 units) of a noisy input and where it came from ("true" or "estimated")."""
    params = degradation.params or {}
    if params.get("type") == "noise" and params.get("kind", "gaussian") == "gaussian":
        return float(params["sigma"]), "true"
    from irestore.baselines.ffdnet import estimate_noise_sigma
    from irestore.io import image_to_tensor

    return estimate_noise_sigma(image_to_tensor(image)), "estimated"
