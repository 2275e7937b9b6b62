"""Blind deblurring without training: kernel estimation, the masked HQS deconvolution with the real
pretrained FFDNet as the prior, and the pool member, on real photos (scikit-image)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from skimage import data, restoration

from irestore import degrade as D
from irestore.restorers import Condition, create_restorer, method_info
from irestore.restorers.base import MethodSkipped
from irestore.restorers.blind_kernel import estimate_kernel, fit_defocus, psf_to_otf, smooth_wrap
from irestore.restorers.deconvolution import WIENER_NSR, per_channel
from irestore.restorers.pnp_deblur import (
    FREE_FLOOR,
    LENS_FLOOR,
    blur_kernel,
    hqs_deconvolve,
    kernel_support,
    scaled,
    tiled,
)

torch.set_num_threads(1)


def photo(name: str = "astronaut", side: int = 256, top: int = 0, left: int = 0) -> np.ndarray:
    image = getattr(data, name)()[top : top + side, left : left + side]
    return D.quantize(image.astype(np.float32) / 255)


def psnr(a: np.ndarray, b: np.ndarray, border: int = 0) -> float:
    if border:
        a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    return float(10 * np.log10(1 / np.mean((a.astype(np.float64) - b) ** 2)))


def line_kernel(length: int, angle: float) -> np.ndarray:
    size = length | 1
    k = np.zeros((size, size), np.float32)
    c, dx, dy = size // 2, np.cos(np.deg2rad(angle)) * (length - 1) / 2, np.sin(np.deg2rad(angle)) * (length - 1) / 2
    cv2.line(k, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1, cv2.LINE_AA)
    return k / k.sum()


def best_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation of two kernels at their best relative shift."""
    n = max(a.shape[0], b.shape[0])
    a = np.pad(a, (n - a.shape[0]) // 2).astype(np.float32)
    b = np.pad(b, (n - b.shape[0]) // 2).astype(np.float32)
    return float(cv2.matchTemplate(np.pad(a, n // 2), b, cv2.TM_CCORR_NORMED).max())


@pytest.fixture(scope="module")
def ffdnet():
    method = create_restorer("pnp-deblur")
    return method


def test_otf_is_the_convolution_degrade_applies():
    """psf_to_otf's circular convolution equals degrade.convolve away from the borders, for an
    asymmetric kernel (a flipped kernel would fail)."""
    image = photo(side=96)[..., 0]
    kernel = D.motion_kernel(9, np.random.default_rng(3), shake=0.8)
    assert np.abs(kernel - kernel[::-1, ::-1]).sum() > 0.3  # really asymmetric
    circular = np.fft.irfft2(psf_to_otf(kernel.astype(np.float64), image.shape) * np.fft.rfft2(image), s=image.shape)
    reference = D.convolve(image, kernel)
    assert np.abs(circular - reference)[10:-10, 10:-10].max() < 1e-5


def test_smooth_wrap_has_no_seam():
    image = photo(side=80)
    wrapped = smooth_wrap(image, 12)
    assert wrapped.shape[0] >= 92 and wrapped.shape[1] >= 92
    assert np.array_equal(wrapped[:80, :80], image)
    # the jump across the wrap (last row back to the first) is no larger than a typical step in the image
    seam = np.abs(wrapped[-1] - wrapped[0]).mean()
    assert seam < 2 * np.abs(np.diff(image, axis=0)).mean()


@pytest.mark.parametrize("kind", ["line", "disk"])
def test_kernel_is_recovered_from_a_blurred_photo(kind):
    """The estimate matches the true kernel (correlation >= 0.8) from the blurred photo alone;
    the blurred photo's own autocorrelation does not (the test can fail)."""
    truth = line_kernel(13, 30.0) if kind == "line" else D.disk_kernel(4.0)
    sharp = photo(side=256, top=60, left=150)
    blurred = D.quantize(D.convolve(sharp, truth))
    estimate = estimate_kernel(cv2.cvtColor(blurred, cv2.COLOR_RGB2GRAY), 21)
    assert estimate.shape == (21, 21) and abs(estimate.sum() - 1) < 1e-5 and estimate.min() >= 0
    assert best_correlation(estimate, truth) >= 0.8
    assert best_correlation(estimate, line_kernel(13, 120.0)) < 0.6  # a wrong direction scores low


@pytest.mark.parametrize("name,family,value", [("astronaut", "disk", 2.5), ("coffee", "disk", 6.0),
                                                ("chelsea", "gaussian", 1.5), ("astronaut", "gaussian", 3.0)])
def test_the_lens_blur_is_read_from_the_power_spectrum(name, family, value):
    sharp = photo(name, side=384)
    kernel = D.disk_kernel(value) if family == "disk" else D.gaussian_kernel(value)
    fit = fit_defocus(cv2.cvtColor(D.quantize(D.convolve(sharp, kernel)), cv2.COLOR_RGB2GRAY))
    assert fit.family == family
    assert abs(fit.value - value) <= 0.1 * value + 0.2
    assert best_correlation(fit.kernel(), kernel) > 0.97


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "rocket"])
def test_a_sharp_photo_shows_no_lens_blur(name):
    fit = fit_defocus(cv2.cvtColor(photo(name, side=384), cv2.COLOR_RGB2GRAY))
    assert not fit.blurred, fit


def test_the_kernel_model_follows_the_label():
    blurred = D.quantize(D.convolve(photo(side=256, top=60, left=150), D.disk_kernel(3.0)))
    lens, lens_floor = blur_kernel(blurred, Condition(("defocus_blur",)))
    free, free_floor = blur_kernel(blurred, Condition(("motion_blur",), {"motion_blur": 9.0}))
    assert lens_floor == LENS_FLOOR and free_floor == FREE_FLOOR
    assert lens.shape == D.disk_kernel(3.0).shape  # the parametric disk itself
    assert free.shape == (kernel_support(Condition(("motion_blur",), {"motion_blur": 9.0}), 256, 256),) * 2


def test_a_gaussian_softness_is_not_deconvolved_as_a_lens_blur():
    """An upscaled low-resolution photo fits a Gaussian, and deconvolving it only sharpens its aliasing."""
    sharp = photo("coffee", side=384)
    small = cv2.resize(sharp, (128, 128), interpolation=cv2.INTER_AREA)
    upscaled = D.quantize(cv2.resize(small, (384, 384), interpolation=cv2.INTER_CUBIC))
    with pytest.raises(MethodSkipped, match="Gaussian-like"):
        blur_kernel(upscaled, Condition(("defocus_blur",)))


def test_hqs_with_the_true_kernel_beats_wiener_and_leaves_no_border_stripes(ffdnet):
    """A real (non-circular) blur: the masked data step keeps the borders as good as the centre."""
    sharp = photo(side=192, top=40, left=160)
    kernel = D.motion_kernel(15, np.random.default_rng(5), shake=0.5)
    blurred = D.quantize(D.convolve(sharp, kernel))
    out = hqs_deconvolve(blurred, kernel, ffdnet.denoise, 2.0)
    wiener = per_channel(blurred, kernel, lambda x, k: restoration.wiener(x, k, WIENER_NSR, reg=np.ones((1, 1)), clip=False))
    assert out.shape == sharp.shape
    assert psnr(out, sharp) > psnr(blurred, sharp) + 5
    assert psnr(out, sharp) > psnr(wiener, sharp) + 1
    band = np.ones(sharp.shape[:2], bool)
    band[16:-16, 16:-16] = False
    border_err = np.abs(out - sharp)[band].mean()
    centre_err = np.abs(out - sharp)[~band].mean()
    assert border_err < 2 * centre_err


def test_blind_member_deblurs_a_photo_it_is_only_told_is_blurred(ffdnet):
    sharp = photo("chelsea", side=256, top=20, left=100)
    blurred = D.quantize(D.convolve(sharp, D.disk_kernel(3.5)))
    out = ffdnet.restore_array(blurred, Condition(("defocus_blur",), {"defocus_blur": 3.5}))
    assert psnr(out, sharp) > psnr(blurred, sharp) + 2


def test_member_is_blind_registered_and_refuses_tiny_images(ffdnet):
    card = method_info("pnp-deblur").card
    assert card.blind and set(card.fixes) == {"motion_blur", "defocus_blur"}
    with pytest.raises(MethodSkipped, match="32 px"):
        ffdnet.restore_array(np.zeros((20, 64, 3), np.float32), Condition(("motion_blur",)))


def test_kernel_support_follows_the_severity_and_the_image():
    assert kernel_support(Condition(("motion_blur",), {"motion_blur": 21.0}), 512, 512) == 31
    assert kernel_support(Condition(("defocus_blur",), {"defocus_blur": 4.0}), 512, 512) == 15
    assert kernel_support(Condition(("motion_blur",)), 512, 512) == 31  # no severity: the default
    assert kernel_support(Condition(("motion_blur",), {"motion_blur": 40.0}), 100, 100) == 25  # a quarter of the side
    assert all(kernel_support(Condition(("motion_blur",), {"motion_blur": s}), 999, 999) % 2 == 1 for s in (3, 8, 12.5))


def test_tiles_blend_to_the_whole_image_result_for_a_local_operation():
    image = photo(side=300)
    blur = lambda x: cv2.GaussianBlur(x, (0, 0), 1.5, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    whole = blur(image)
    out = tiled(blur, image, 128, 48)
    assert out.shape == image.shape
    assert np.abs(out - whole)[8:-8, 8:-8].max() < 1e-3  # tiles differ only at their own borders, which are blended out
    assert not np.abs(tiled(blur, image, 128, 4) - whole)[8:-8, 8:-8].max() < 1e-3  # too little overlap shows


def test_the_planner_gets_the_whole_image_lens_disk_and_a_view_gets_it_resampled(ffdnet):
    blurred = D.quantize(D.convolve(photo("coffee", side=384), D.disk_kernel(5.0)))
    estimate = ffdnet.estimate(torch.from_numpy(blurred.transpose(2, 0, 1).copy())[None], Condition(("defocus_blur",)))
    assert estimate["floor"] == LENS_FLOOR and best_correlation(estimate["kernel"], D.disk_kernel(5.0)) > 0.97
    assert ffdnet.estimate(torch.from_numpy(blurred.transpose(2, 0, 1).copy())[None], Condition(("motion_blur",))) is None
    small = scaled(estimate["kernel"], 0.5)
    assert small.shape == ((round(estimate["kernel"].shape[0] * 0.5) | 1),) * 2 and abs(small.sum() - 1) < 1e-5
    assert scaled(estimate["kernel"], 0.1).shape == (1, 1)  # under a pixel: nothing to deconvolve
    view = cv2.resize(blurred, (192, 192), interpolation=cv2.INTER_AREA)
    out = ffdnet.restore_array(view, Condition(("defocus_blur",), estimate=estimate, view_scale=0.5))
    assert out.shape == view.shape and not np.array_equal(out, view)
