"""Full-reference image quality under named evaluation protocols (PSNR, SSIM, LPIPS, FID via pyiqa).

Published restoration numbers disagree as much through how they were measured as through the
methods. A :class:`Protocol` pins every such choice: RGB or Y (BT.601 YCbCr as in the SR papers,
or YIQ, pyiqa's default), the border cropped before measuring, whether images are rounded to
8-bit levels, the SSIM implementation (pyiqa's 11x11 Gaussian, σ = 1.5, after Wang et al.; or
scikit-image's default 7x7 box window with sample covariance, which the AirNet/PromptIR test code
calls), the centre crop to a multiple of 16 applied before restoring, how the test noise is
seeded and quantised, and the FID implementation and image sets. ``Protocol.fingerprint`` is a
hash of all of them; reports print the protocol and stamp the hash.

LPIPS (AlexNet) and FID (InceptionV3) need pretrained backbones that no installable package
ships. They are looked up where torchvision and pyiqa look (``$TORCH_HOME/hub``; the LPIPS linear
heads also come from the ``lpips`` wheel through the model store) and never downloaded from here:
when a file is missing, :class:`MetricUnavailable` names it and where to put it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from irestore.registry import register_weights
from irestore.weights import MissingWeightsError, WeightSource, resolve_weights

__all__ = [
    "DEFAULT_PROTOCOL",
    "PROTOCOLS",
    "FIDMetric",
    "LPIPSMetric",
    "MetricUnavailable",
    "Protocol",
    "check_required",
    "fid_weights",
    "frechet_distance",
    "get_protocol",
    "lpips_weights",
    "measure",
    "psnr",
    "ssim",
]

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # torchvision AlexNet IMAGENET1K_V1
LPIPS_HEADS_FILE = "LPIPS_v0.1_alex-df73285e.pth"  # pyiqa's name for the LPIPS v0.1 linear heads
INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"  # pytorch-fid's port of the TF FID Inception
LPIPS_HEADS = "lpips-alex-v0.1"

register_weights(
    WeightSource(
        name=LPIPS_HEADS,
        filename="alex.pth",
        package="lpips",
        package_file="weights/v0.1/alex.pth",
        install_hint="pip install lpips",
        kind="metric",
        description="LPIPS v0.1 linear heads for AlexNet features (shipped in the lpips wheel)",
    )
)

_CHANNELS = {"rgb": None, "y-ycbcr": "ycbcr", "y-yiq": "yiq"}
_SSIM_KINDS = ("gaussian11", "uniform7")
_QUANTIZE = ("round", "floor")


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed here; the message says what is missing and how to supply it."""


@dataclass(frozen=True)
class Protocol:
    """Every measurement choice that changes the numbers. Frozen; hashed into reports."""

    name: str
    summary: str
    channels: str = "rgb"  # rgb | y-ycbcr (ITU-R BT.601, as the SR papers) | y-yiq (pyiqa's default Y)
    border: int = 0  # pixels cropped from every side before PSNR/SSIM
    uint8: bool = True  # round restored and reference to 8-bit levels before measuring
    ssim: str = "gaussian11"  # gaussian11: pyiqa (MATLAB-style, 8-bit levels) | uniform7: scikit-image default
    crop_multiple: int = 1  # centre-crop degraded and ground truth to a multiple of this before restoring
    noise_quantize: str = "round"  # round: round(clip(x)); floor: clip(x).astype(uint8), as AirNet/PromptIR
    noise_seed: int = 0  # test noise of image `key` at σ comes from a generator seeded by (noise_seed, key, σ)
    lpips: str = "pyiqa LPIPS v0.1, AlexNet, inputs in [0, 1]"
    fid: str = "pyiqa clean-fid: InceptionV3 pool3 (2048-d); restored set vs ground-truth set, per task and method"

    def __post_init__(self) -> None:
        if self.channels not in _CHANNELS:
            raise ValueError(f"protocol {self.name}: channels must be one of {', '.join(_CHANNELS)}")
        if self.ssim not in _SSIM_KINDS:
            raise ValueError(f"protocol {self.name}: ssim must be one of {', '.join(_SSIM_KINDS)}")
        if self.noise_quantize not in _QUANTIZE:
            raise ValueError(f"protocol {self.name}: noise_quantize must be one of {', '.join(_QUANTIZE)}")
        if self.border < 0 or self.crop_multiple < 1:
            raise ValueError(f"protocol {self.name}: border must be >= 0 and crop_multiple >= 1")

    @property
    def fingerprint(self) -> str:
        """12 hex digits of the SHA-256 of every field: equal hashes, comparable numbers."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def to_dict(self) -> dict:
        return {**asdict(self), "fingerprint": self.fingerprint}

    def describe(self) -> str:
        """Multi-line human-readable statement of the protocol."""
        ssim = {
            "gaussian11": "pyiqa SSIM, 11x11 Gaussian window σ=1.5 (Wang et al.), on 8-bit levels",
            "uniform7": "scikit-image SSIM defaults: 7x7 box window, sample covariance",
        }[self.ssim]
        noise = {"round": "rounded to 8-bit levels", "floor": "truncated to 8 bits (numpy astype(uint8))"}
        lines = [
            f"protocol {self.name} [{self.fingerprint}]: {self.summary}",
            (f"  channels: {self.channels}; border crop: {self.border} px; "
             f"8-bit rounding before metrics: {'yes' if self.uint8 else 'no (float)'}"),
            f"  SSIM: {ssim}",
            f"  inputs centre-cropped to a multiple of {self.crop_multiple}"
            if self.crop_multiple > 1
            else "  no crop before restoring",
            (f"  test noise: Gaussian, generator seeded by ({self.noise_seed}, image key, σ), "
             f"{noise[self.noise_quantize]}"),
            f"  LPIPS: {self.lpips}",
            f"  FID: {self.fid}",
        ]
        return "\n".join(lines)

    def crop(self, image: np.ndarray) -> np.ndarray:
        """Centre crop HxWx3 to a multiple of ``crop_multiple`` (the AirNet/PromptIR ``crop_img``)."""
        m = self.crop_multiple
        h, w = image.shape[:2]
        if m == 1 or (h % m == 0 and w % m == 0):
            return image
        if h < m or w < m:
            raise ValueError(f"image {w}x{h} is smaller than the protocol's crop multiple {m}")
        top, left = (h % m) // 2, (w % m) // 2
        return image[top : top + h - h % m, left : left + w - w % m]

    def noise_generator(self, key: str, sigma: float) -> np.random.Generator:
        """The generator for the test noise of one image at one σ (independent of run order)."""
        digest = hashlib.sha256(f"{self.noise_seed}|{key}|{sigma:g}".encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(
            "irestore",
            "RGB, 8-bit levels, pyiqa PSNR and Gaussian SSIM, whole image",
        ),
        Protocol(
            "promptir",
            "the AirNet/PromptIR all-in-one test code: scikit-image PSNR and SSIM on float RGB, "
            "images centre-cropped to a multiple of 16, noise truncated to uint8",
            uint8=False,
            ssim="uniform7",
            crop_multiple=16,
            noise_quantize="floor",
        ),
        Protocol(
            "y-bt601",
            "Y of ITU-R BT.601 YCbCr (as the SR/Restormer papers), 8-bit levels, pyiqa Gaussian SSIM",
            channels="y-ycbcr",
        ),
        Protocol(
            "y-yiq",
            "Y of YIQ (pyiqa's psnry/ssim defaults), 8-bit levels, pyiqa Gaussian SSIM",
            channels="y-yiq",
        ),
    )
}
DEFAULT_PROTOCOL = "irestore"


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise KeyError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


# --------------------------------------------------------------------------- PSNR / SSIM


def measure(restored: np.ndarray, reference: np.ndarray, protocol: Protocol) -> dict[str, float]:
    """PSNR (dB) and SSIM of HxWx3 float images in [0, 1] under ``protocol``."""
    if restored.shape != reference.shape:
        raise ValueError(f"restored image is {restored.shape[:2]} but the reference is {reference.shape[:2]}")
    a, b = _prepared(restored, protocol), _prepared(reference, protocol)
    if min(a.shape[:2]) < 11:
        raise ValueError(f"image {a.shape[1]}x{a.shape[0]} after the border crop is too small for SSIM (needs 11 px)")
    return {"psnr": _psnr(a, b, protocol), "ssim": _ssim(a, b, protocol)}


def _prepared(image: np.ndarray, protocol: Protocol) -> np.ndarray:
    x = np.clip(image.astype(np.float64), 0.0, 1.0)
    if protocol.uint8:
        x = np.round(x * 255.0) / 255.0
    b = protocol.border
    return x[b:-b, b:-b] if b else x


def _as_batch(image: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]


def _psnr(a: np.ndarray, b: np.ndarray, protocol: Protocol) -> float:
    from pyiqa.archs.psnr_arch import psnr as pyiqa_psnr

    space = _CHANNELS[protocol.channels]
    value = pyiqa_psnr(_as_batch(a), _as_batch(b), test_y_channel=space is not None, color_space=space or "yiq")
    return float(value[0])


def _ssim(a: np.ndarray, b: np.ndarray, protocol: Protocol) -> float:
    space = _CHANNELS[protocol.channels]
    if protocol.ssim == "uniform7":
        if space is not None:
            a, b = _luma(a, space), _luma(b, space)
        return float(structural_similarity(b, a, data_range=1.0, channel_axis=None if space else -1))
    from pyiqa.archs.func_util import preprocess_rgb
    from pyiqa.archs.ssim_arch import ssim as pyiqa_ssim

    # What pyiqa's SSIM module does (8-bit levels, Y rounded as MATLAB does), minus its cast to float64,
    # which is 20x slower on CPU; float32 agrees within 1e-4 (typically 1e-5) on 512 px photos.
    x, y = (preprocess_rgb(_as_batch(img).float(), space is not None, 255, space or "yiq") for img in (a, b))
    return float(pyiqa_ssim(x, y, data_range=255)[0])


def _luma(image: np.ndarray, space: str) -> np.ndarray:
    from pyiqa.utils.color_util import to_y_channel

    return to_y_channel(_as_batch(image), 1.0, space)[0, 0].numpy()


def psnr(restored: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB over RGB, after rounding both to 8-bit levels as saved images would be (scikit-image)."""
    a, b = _to_uint8(restored), _to_uint8(reference)
    return float(peak_signal_noise_ratio(b, a, data_range=255))


def ssim(restored: np.ndarray, reference: np.ndarray) -> float:
    """SSIM over RGB (Gaussian 11x11, σ = 1.5, as in Wang et al.), on 8-bit levels (scikit-image)."""
    a, b = _to_uint8(restored), _to_uint8(reference)
    return float(
        structural_similarity(b, a, channel_axis=-1, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    )


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)


# --------------------------------------------------------------------------- backbone weights


def _hub_dir() -> Path:
    import torch

    return Path(torch.hub.get_dir())


def lpips_weights() -> tuple[Path, Path]:
    """(AlexNet backbone, LPIPS linear heads) or MetricUnavailable naming what is missing."""
    backbone = _hub_dir() / "checkpoints" / ALEXNET_FILE
    if not backbone.is_file():
        raise MetricUnavailable(
            f"LPIPS needs the AlexNet ImageNet weights {ALEXNET_FILE}, not found at {backbone}; "
            f"copy the file there (or set TORCH_HOME to a cache that holds hub/checkpoints/{ALEXNET_FILE})"
        )
    heads = _hub_dir() / "pyiqa" / LPIPS_HEADS_FILE
    if heads.is_file():
        return backbone, heads
    try:
        return backbone, resolve_weights(LPIPS_HEADS, offline=True)
    except MissingWeightsError as error:
        raise MetricUnavailable(
            f"LPIPS needs its linear heads: {heads} is absent and {error}".replace("\n", " ")
        ) from error


def fid_weights() -> Path:
    """The FID InceptionV3 weights or MetricUnavailable naming what is missing."""
    path = _hub_dir() / "pyiqa" / INCEPTION_FILE
    if not path.is_file():
        raise MetricUnavailable(
            f"FID needs the InceptionV3 FID weights {INCEPTION_FILE}, not found at {path}; "
            f"copy the file there (or set TORCH_HOME to a cache that holds hub/pyiqa/{INCEPTION_FILE})"
        )
    return path


@contextlib.contextmanager
def _offline_pyiqa() -> Iterator[None]:
    """Point pyiqa's cache at the current TORCH_HOME, forbid downloads and keep stdout clean.

    pyiqa fixes its cache folder when imported, so a TORCH_HOME set later would be ignored; and
    both pyiqa and torchvision fetch a missing file silently (minutes of retries offline). The
    files are checked beforehand; a download attempt here means a file we did not foresee, and
    fails at once. pyiqa prints "Loading pretrained model" on stdout, which must stay clean for --json.
    """
    import torch.hub
    from pyiqa.utils import download_util

    def refuse(url: str, *args, **kwargs):
        raise MetricUnavailable(f"pyiqa/torchvision tried to download {url}; put the file in {_hub_dir()}")

    saved = (download_util.DEFAULT_CACHE_DIR, download_util.download_url_to_file, torch.hub.download_url_to_file)
    download_util.DEFAULT_CACHE_DIR = os.fspath(_hub_dir() / "pyiqa")
    download_util.download_url_to_file = torch.hub.download_url_to_file = refuse
    try:
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torchvision's deprecated `pretrained=` inside pyiqa
            yield
    finally:
        download_util.DEFAULT_CACHE_DIR, download_util.download_url_to_file, torch.hub.download_url_to_file = saved


class LPIPSMetric:
    """LPIPS v0.1 (AlexNet) through pyiqa; lower is closer. Raises MetricUnavailable when weights are absent."""

    def __init__(self, device: str = "cpu") -> None:
        _, heads = lpips_weights()
        from pyiqa.archs.lpips_arch import LPIPS

        with _offline_pyiqa():
            self.network = LPIPS(net="alex", version="0.1", pretrained_model_path=os.fspath(heads)).to(device).eval()
        self.device = device

    def __call__(self, restored: np.ndarray, reference: np.ndarray) -> float:
        import torch

        with torch.inference_mode():
            a = _as_batch(np.clip(restored, 0, 1)).float().to(self.device)
            b = _as_batch(np.clip(reference, 0, 1)).float().to(self.device)
            return float(self.network(a, b).flatten()[0])


class FIDMetric:
    """Fréchet Inception distance between two sets of image files (pyiqa's InceptionV3, clean-fid resizing).

    Features are cached per file list, so a ground-truth set is encoded once per run.
    """

    def __init__(self, device: str = "cpu", batch_size: int = 8) -> None:
        fid_weights()
        from pyiqa.archs.fid_arch import FID

        with _offline_pyiqa():
            self.network = FID(dims=2048).eval()
        self.device = device
        self.batch_size = batch_size
        self._features: dict[tuple[str, ...], np.ndarray] = {}

    def features(self, files: Sequence[str | os.PathLike]) -> np.ndarray:
        """N x 2048 pool features, computed as pyiqa's ``get_folder_features`` does in clean mode."""
        import torch
        from pyiqa.archs.fid_arch import ResizeDataset

        key = tuple(os.fspath(Path(f).resolve()) for f in files)
        if key not in self._features:
            model = self.network.model.to(self.device)
            dataset = ResizeDataset(list(key), mode="clean", size=self.network.test_img_size)
            loader = torch.utils.data.DataLoader(dataset, batch_size=self.batch_size, shuffle=False, num_workers=0)
            chunks = []
            with torch.inference_mode():
                for batch in loader:
                    out = model(((batch - 128) / 128).to(self.device), False, False)[0]
                    chunks.append(out.reshape(out.shape[0], -1).cpu().numpy())
            self._features[key] = np.concatenate(chunks) if chunks else np.zeros((0, 2048))
        return self._features[key]

    def __call__(self, files_a: Sequence[str | os.PathLike], files_b: Sequence[str | os.PathLike]) -> float:
        return frechet_distance(self.features(files_a), self.features(files_b))


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N x D each).

    ``|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))``, where the last trace is the
    nuclear norm of ``F_a^T F_b`` for any factors ``F F^T = S``: the centred features scaled by
    1/sqrt(N-1) when N <= D, else the symmetric square root of S. The same quantity as pyiqa's
    ``frechet_distance`` (scipy ``sqrtm`` of a D x D product), exact also when the covariances
    are singular (fewer images than dimensions), and seconds faster per pair at D = 2048.
    """
    counts = (len(features_a), len(features_b))
    if min(counts) < 2:
        raise MetricUnavailable(f"FID needs at least 2 images in each set (got {counts[0]} and {counts[1]})")
    a, b = (np.asarray(f, np.float64) for f in (features_a, features_b))
    mean_gap = float(np.sum((a.mean(axis=0) - b.mean(axis=0)) ** 2))
    fa, fb = _covariance_factor(a), _covariance_factor(b)
    trace_a, trace_b = float(np.sum(fa**2)), float(np.sum(fb**2))
    cross = float(np.linalg.svd(fa.T @ fb, compute_uv=False).sum())
    return mean_gap + trace_a + trace_b - 2.0 * cross


def _covariance_factor(features: np.ndarray) -> np.ndarray:
    """F (D x k) with F F^T equal to the sample covariance of ``features`` (N x D)."""
    centred = (features - features.mean(axis=0)).T / np.sqrt(len(features) - 1)
    if centred.shape[1] <= centred.shape[0]:
        return centred
    values, vectors = np.linalg.eigh(centred @ centred.T)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def check_required(required: Sequence[str]) -> dict[str, str]:
    """For each of ``lpips``/``fid``: '' when its weights are present, else why it is unavailable."""
    checks = {"lpips": lpips_weights, "fid": fid_weights}
    unknown = sorted(set(required) - set(checks))
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; --require takes lpips and/or fid")
    status = {}
    for name in required:
        try:
            checks[name]()
            status[name] = ""
        except MetricUnavailable as error:
            status[name] = str(error)
    return status
