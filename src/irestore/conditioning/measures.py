"""Classical image measurements: cheap evidence a small CNN on crops cannot see well.

Blur and resolution live in the spectrum at native resolution, JPEG in an 8-px grid, noise in
the flattest regions, haze and low light in global statistics. :func:`measure` turns the
classifier's views of one image (native-resolution tiles and a downscaled whole-image view)
into a fixed-length vector of such measurements, the second input of the classifier head:

- per tile (then aggregated over tiles as mean, min and max): the radial power spectrum in
  log-spaced bands relative to a low band (fall-off: blur, low resolution, noise floor);
  orientation anisotropy of mid/high frequencies and gradient coherence (motion vs defocus);
  noise level (Immerkaer's operator, finest-scale wavelet MAD); edge sharpness; JPEG
  blockiness at the strongest of the eight 8-px grid offsets, horizontally and vertically;
  high-pass skewness and kurtosis (bright thin streaks: rain);
- on the whole-image view: luminance percentiles and contrast, saturation, dark-channel
  statistics (haze), clipped-dark fraction (low light).

Everything is computed with torch on the views the classifier already made, so a 12 MP photo
costs the same as a small one.
"""

from __future__ import annotations

import functools
import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

SPECTRUM_BANDS = 12  # log-spaced radial bands from 1/128 to 1/2 cycle per pixel
FINE_BANDS = 16  # linear radial bands from 0.1 to 0.5 cycle per pixel (where cut-offs lie)
CEPSTRUM_RINGS = ((2, 4), (4, 7), (7, 11), (11, 16), (16, 23), (23, 32))  # quefrency rings, px
SECTORS = 8
_EPS = 1e-8

TILE_NAMES = (
    [f"spectrum_{i}" for i in range(SPECTRUM_BANDS)]
    + [f"fine_spectrum_{i}" for i in range(FINE_BANDS)]
    + ["anisotropy_max_min", "anisotropy_max_median", "coherence"]
    + [f"cepstrum_min_{lo}_{hi}" for lo, hi in CEPSTRUM_RINGS]
    + [f"cepstrum_peakedness_{lo}_{hi}" for lo, hi in CEPSTRUM_RINGS]
    + ["noise_immerkaer", "noise_wavelet", "edge_sharpness", "laplacian_ratio"]
    + ["blockiness_h", "blockiness_v", "highpass_skew", "highpass_kurtosis"]
)
GLOBAL_NAMES = (
    "luma_mean", "luma_p01", "luma_p50", "luma_p99", "luma_std", "saturation",
    "dark_channel_median", "dark_channel_p90", "dark_fraction", "local_contrast",
)
FIRST_NAMES = tuple(f"{name}_{agg}" for name in TILE_NAMES for agg in ("mean", "min", "max")) + GLOBAL_NAMES
# Added in the second release, after the first set: heads read the first ``measures`` of NAMES,
# so a head trained on the first set keeps its inputs. Haze lifts the dark channel of every
# region (a clean photo keeps dark patches somewhere, however much sky it shows); rain adds
# bright thin streaks of one orientation in every tile.
HAZE_NAMES = ("dark15_p01", "dark15_p05", "dark15_p10", "dark15_p25", "tile_dark15_p05_mean",
              "tile_dark15_p05_min", "tile_dark15_p05_max")
STREAK_NAMES = ("streak_coherence_mean", "streak_coherence_min", "streak_coherence_max", "streak_tile_agreement")
NAMES = FIRST_NAMES + HAZE_NAMES + STREAK_NAMES
NUM_MEASURES = len(NAMES)
FIRST_RELEASE_MEASURES = len(FIRST_NAMES)


def _quantile(rows: Tensor, q: float) -> Tensor:
    """Per-row q-quantile by nearest rank (torch.quantile sorts; a partial top-k is ~10x faster
    for the tail quantiles used here)."""
    n = rows.shape[1]
    k = min(n, max(1, round(q * n)))
    if k <= n // 10:
        return rows.topk(k, dim=1, largest=False).values[:, -1]
    if n - k + 1 <= n // 10:
        return rows.topk(n - k + 1, dim=1).values[:, -1]
    return rows.kthvalue(k, dim=1).values


def _box_mean(image: Tensor, size: int) -> Tensor:
    """size x size mean filter with edge replication, as two running sums (odd size)."""
    pad = size // 2
    x = F.pad(image, (pad + 1, pad, 0, 0), mode="replicate").cumsum(-1)
    x = (x[..., size:] - x[..., :-size]) / size
    x = F.pad(x, (0, 0, pad + 1, pad), mode="replicate").cumsum(-2)
    return (x[..., size:, :] - x[..., :-size, :]) / size


def _luma(rgb: Tensor) -> Tensor:
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return (rgb * weights).sum(1, keepdim=True)


@functools.lru_cache(maxsize=16)
def _band_means(height: int, width: int) -> Tensor:
    """For an rfft2 grid, a (frequencies, groups) matrix whose product with the flattened power
    gives the mean power of each group: the log bands, the fine bands, the orientation sectors."""
    fy = torch.fft.fftfreq(height).view(-1, 1).expand(-1, width // 2 + 1)
    fx = torch.fft.rfftfreq(width).view(1, -1).expand(height, -1)
    radius, angle = (torch.sqrt(fy**2 + fx**2)).flatten(), (torch.atan2(fy, fx) % math.pi).flatten()
    edges = torch.logspace(math.log10(1 / 128), math.log10(0.5), SPECTRUM_BANDS + 2)
    fine = torch.linspace(0.1, 0.5, FINE_BANDS + 1)
    masks = [(radius >= lo) & (radius < hi) for lo, hi in itertools.pairwise(edges.tolist())]
    masks += [(radius >= lo) & (radius < hi) for lo, hi in itertools.pairwise(fine.tolist())]
    mid = (radius >= 0.06) & (radius < 0.35)
    step = math.pi / SECTORS
    masks += [mid & (angle >= k * step) & (angle < (k + 1) * step) for k in range(SECTORS)]
    matrix = torch.stack(masks, 1).float()
    return matrix / matrix.sum(0).clamp_min(1)


@functools.lru_cache(maxsize=16)
def _quefrency_rings(height: int, width: int) -> tuple[Tensor, Tensor]:
    """Flat indices of the cepstrum inside the outermost ring, and each one's ring (-1: none)."""
    qy = torch.fft.fftfreq(height, 1 / height).view(-1, 1)
    qx = torch.fft.fftfreq(width, 1 / width).view(1, -1)
    quefrency = torch.sqrt(qy**2 + qx**2).flatten()
    inside = torch.nonzero((quefrency >= CEPSTRUM_RINGS[0][0]) & (quefrency < CEPSTRUM_RINGS[-1][1])).flatten()
    ring = torch.full((inside.numel(),), -1)
    for k, (lo, hi) in enumerate(CEPSTRUM_RINGS):
        ring[(quefrency[inside] >= lo) & (quefrency[inside] < hi)] = k
    return inside, ring


def spectral_measures(luma: Tensor) -> tuple[Tensor, Tensor]:
    """(N, 1, H, W) luminance -> the spectrum's measures (N, SPECTRUM_BANDS - 1 + FINE_BANDS + 2)
    and the cepstrum's (N, 2 * rings): band log-powers relative to the lowest band; a finer
    linear profile of the upper half of the spectrum (the shape of a cut-off: low resolution is
    a wall, defocus ripples, Gaussian blur rolls off); the orientation anisotropy of frequencies
    0.06-0.35 cycles/px; and the power cepstrum in rings of quefrency. A blur kernel's spectral
    zeros repeat every 1/length along the motion, or in rings for a disk, which shows as a
    strong negative cepstral peak at the blur's length or diameter: a point for motion, a ring
    for defocus (``peakedness``: the ring's minimum against its mean)."""
    _, _, h, w = luma.shape
    window = torch.hann_window(h, periodic=False).view(-1, 1) * torch.hann_window(w, periodic=False).view(1, -1)
    centred = (luma.cpu() - luma.cpu().mean((-2, -1), keepdim=True)) * window
    power = torch.fft.rfft2(centred[:, 0]).abs().pow(2)  # (N, H, W//2+1)
    means = torch.log10(power.flatten(1) @ _band_means(h, w) + _EPS)
    log_bands, fine, sectors = means.split([SPECTRUM_BANDS + 1, FINE_BANDS, SECTORS], 1)
    relative = log_bands[:, 1:] - log_bands[:, :1]
    fine = fine - log_bands[:, :1]
    anisotropy = torch.stack([sectors.amax(1) - sectors.amin(1), sectors.amax(1) - sectors.median(1).values], 1)
    return torch.cat([relative, fine, anisotropy], 1).to(luma.device), _cepstrum(power, h, w).to(luma.device)


def _cepstrum(power: Tensor, h: int, w: int) -> Tensor:
    """Ring minima and peakedness of the standardised power cepstrum, (N, 2 * rings)."""
    cepstrum = torch.fft.irfft2(torch.log(power + 1e-6), s=(h, w)).flatten(1)  # real and even
    inside, ring = _quefrency_rings(h, w)
    values = cepstrum[:, inside]
    values = values / (values.std(-1, keepdim=True) + _EPS)
    minima, means = torch.zeros(values.shape[0], len(CEPSTRUM_RINGS)), torch.zeros(values.shape[0], len(CEPSTRUM_RINGS))
    for k in range(len(CEPSTRUM_RINGS)):
        if (ring == k).any():  # a tile smaller than the ring has none of it: 0
            minima[:, k], means[:, k] = values[:, ring == k].amin(-1), values[:, ring == k].mean(-1)
    return torch.cat([minima, minima - means], 1)


def _gradients(luma: Tensor) -> tuple[Tensor, Tensor]:
    gx = luma[..., :, 1:] - luma[..., :, :-1]
    gy = luma[..., 1:, :] - luma[..., :-1, :]
    return gx[..., :-1, :], gy[..., :, :-1]


def coherence(luma: Tensor) -> Tensor:
    """Gradient structure-tensor coherence over the tile, (lambda1 - lambda2) / (lambda1 + lambda2):
    near 0 for isotropic content and blur, higher for a dominant direction (linear motion)."""
    gx, gy = _gradients(luma)
    jxx, jyy, jxy = (gx * gx).mean((1, 2, 3)), (gy * gy).mean((1, 2, 3)), (gx * gy).mean((1, 2, 3))
    root = torch.sqrt((jxx - jyy) ** 2 + 4 * jxy**2)
    return root / (jxx + jyy + _EPS)


def noise_immerkaer(luma: Tensor) -> Tensor:
    """Immerkaer (1996) fast noise sigma, in 0-255 units: mean |I * N| over the tile, where N is
    the difference of two Laplacians that cancels locally linear structure."""
    x = luma * 255  # the operator is separable: a second difference along x, then along y
    d2x = x[..., :, :-2] - 2 * x[..., :, 1:-1] + x[..., :, 2:]
    response = (d2x[..., :-2, :] - 2 * d2x[..., 1:-1, :] + d2x[..., 2:, :]).abs()
    return response.mean((1, 2, 3)) * math.sqrt(math.pi / 2) / 6


def noise_wavelet(luma: Tensor) -> Tensor:
    """Donoho's robust sigma, median(|HH|) / 0.6745 of the finest Haar diagonal band, 0-255 units."""
    x = luma[..., : luma.shape[-2] // 2 * 2, : luma.shape[-1] // 2 * 2] * 255
    hh = (x[..., 0::2, 0::2] - x[..., 0::2, 1::2] - x[..., 1::2, 0::2] + x[..., 1::2, 1::2]) / 2
    return hh.abs().flatten(1).median(1).values / 0.6745


def sharpness(luma: Tensor) -> Tensor:
    """(N, 2): the 99th-percentile gradient over the tile's 1-99 % luminance range (how steep the
    steepest edges are for the contrast there), and Laplacian energy over gradient energy."""
    gx, gy = _gradients(luma)
    energy = (gx**2 + gy**2).flatten(1)
    coarse = luma[..., ::3, ::3].flatten(1)  # the range from a 1-in-9 sample: close enough, 9x less work
    spread = _quantile(coarse, 0.99) - _quantile(coarse, 0.01)
    edge = _quantile(energy, 0.99).sqrt() / (spread + 1e-3)
    core = luma[..., 1:-1, 1:-1]
    lap = luma[..., :-2, 1:-1] + luma[..., 2:, 1:-1] + luma[..., 1:-1, :-2] + luma[..., 1:-1, 2:] - 4 * core
    ratio = lap.pow(2).mean((1, 2, 3)) / (energy.mean(1) + _EPS)
    return torch.stack([edge, ratio], 1)


def blockiness(luma: Tensor) -> Tensor:
    """(N, 2): JPEG blocking horizontally and vertically: the mean absolute step across columns
    (rows) at the strongest of the 8 grid offsets over the mean at the other seven (log). A crop
    of a JPEG keeps its grid at an unknown offset, hence the maximum over offsets."""
    out = []
    for diff, dim in ((luma[..., :, 1:] - luma[..., :, :-1], -1), (luma[..., 1:, :] - luma[..., :-1, :], -2)):
        profile = diff.abs().mean(dim=(1, -2 if dim == -1 else -1))  # (N, L)
        length = profile.shape[1] // 8 * 8
        phases = profile[:, :length].reshape(profile.shape[0], -1, 8).mean(1)  # (N, 8)
        strongest = phases.amax(1)
        others = (phases.sum(1) - strongest) / 7
        out.append(torch.log((strongest + 1e-4) / (others + 1e-4)))
    return torch.stack(out, 1)


def highpass_moments(luma: Tensor) -> Tensor:
    """(N, 2): skewness and log kurtosis of the luminance minus its 5x5 box mean; bright thin
    streaks (rain) skew it positive and make it heavy-tailed."""
    high = (luma - _box_mean(luma, 5)).flatten(1)
    centred = high - high.mean(1, keepdim=True)
    var = centred.pow(2).mean(1) + _EPS
    skew = centred.pow(3).mean(1) / var.pow(1.5)
    kurt = torch.log(centred.pow(4).mean(1) / var.pow(2) + _EPS)
    return torch.stack([skew, kurt], 1)


def tile_measures(tiles: Tensor) -> Tensor:
    """(N, 3, H, W) native-resolution crops -> (N, len(TILE_NAMES))."""
    luma = _luma(tiles.float())
    noise = torch.stack([noise_immerkaer(luma), noise_wavelet(luma)], 1)
    spectrum, cepstrum = spectral_measures(luma)
    return torch.cat(
        [spectrum, coherence(luma)[:, None], cepstrum, torch.log1p(noise), sharpness(luma), blockiness(luma), highpass_moments(luma)],
        1,
    )


def global_measures(view: Tensor) -> Tensor:
    """(1, 3, h, w) whole-image view -> (len(GLOBAL_NAMES),): exposure, colour and haze statistics."""
    view = view.float()
    luma = _luma(view).flatten()
    p01, p50, p99 = (_quantile(luma[None], q)[0] for q in (0.01, 0.5, 0.99))
    high, low = view.amax(1), view.amin(1)
    saturation = ((high - low) / (high + 1e-3)).mean()
    dark = -F.max_pool2d(-low[:, None], 7, stride=1, padding=3).flatten()
    dark_median, dark_p90 = (_quantile(dark[None], q)[0] for q in (0.5, 0.9))
    dark_fraction = (luma < 0.03).float().mean()
    luma_image = _luma(view)
    local_mean = _box_mean(luma_image, 9)
    local_contrast = (luma_image - local_mean).abs().mean() / (luma.mean() + 1e-3)
    return torch.stack([luma.mean(), p01, p50, p99, luma.std(), saturation, dark_median, dark_p90, dark_fraction, local_contrast])


def _dark_channel(rgb: Tensor, patch: int = 15) -> Tensor:
    """(N, 3, H, W) -> (N, H*W): the minimum over colour channels and a patch x patch window."""
    low = rgb.float().amin(1, keepdim=True)
    return (-F.max_pool2d(-low, patch, stride=1, padding=patch // 2)).flatten(1)


def haze_measures(tiles: Tensor, view: Tensor) -> Tensor:
    """(len(HAZE_NAMES),): low percentiles of the whole view's dark channel (15 px patches, as in
    the dark-channel prior), and each native tile's 5th percentile, aggregated over the tiles."""
    dark = _dark_channel(view)
    whole = [_quantile(dark, q)[0] for q in (0.01, 0.05, 0.1, 0.25)]
    per_tile = _quantile(_dark_channel(tiles), 0.05)
    return torch.stack([*whole, per_tile.mean(), per_tile.amin(), per_tile.amax()])


def streak_measures(tiles: Tensor) -> Tensor:
    """(len(STREAK_NAMES),): how much the bright thin structure of each tile (luminance above its
    7 px mean) runs in one direction (structure-tensor coherence of its gradients), over the
    tiles, and how well the tiles' directions agree (1: all the same)."""
    luma = _luma(tiles.float())
    bright = (luma - _box_mean(luma, 7)).clamp_min(0)
    gy, gx = torch.gradient(bright, dim=(2, 3))
    sxx, syy, sxy = (gx * gx).mean((1, 2, 3)), (gy * gy).mean((1, 2, 3)), (gx * gy).mean((1, 2, 3))
    coherence_ = torch.sqrt(((sxx - syy) ** 2 + 4 * sxy**2).clamp_min(0)) / (sxx + syy + _EPS)
    doubled = torch.atan2(2 * sxy, sxx - syy)  # twice the dominant orientation
    resultant = torch.stack([(coherence_ * doubled.cos()).mean(), (coherence_ * doubled.sin()).mean()]).norm()
    agreement = resultant / (coherence_.mean() + _EPS)
    return torch.stack([coherence_.mean(), coherence_.amin(), coherence_.amax(), agreement])


def extra_measures(tiles: Tensor, view: Tensor) -> Tensor:
    """The measurements after the first release's (NAMES[FIRST_RELEASE_MEASURES:])."""
    return torch.cat([haze_measures(tiles, view), streak_measures(tiles)]).nan_to_num(0.0)


def measure(tiles: Tensor, view: Tensor, count: int = NUM_MEASURES) -> Tensor:
    """The first ``count`` measurements (all by default) of one image from its classifier views:
    the native tiles and the whole image (downscaled if large; the image itself if it is one tile)."""
    per_tile = tile_measures(tiles)
    aggregated = torch.stack([per_tile.mean(0), per_tile.amin(0), per_tile.amax(0)], 1).flatten()
    first = torch.cat([aggregated, global_measures(view)]).nan_to_num(0.0)
    if count <= FIRST_RELEASE_MEASURES:
        return first[:count]
    return torch.cat([first, extra_measures(tiles, view)])[:count]
