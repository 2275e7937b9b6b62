"""Metrics under named protocols: calibrated against scikit-image; LPIPS/FID through pyiqa with stand-in weights."""

import time

import numpy as np
import pytest
import torch
from skimage import data
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from iqa_standins import write_standins
from irestore.evaluate import metrics
from irestore.evaluate.metrics import PROTOCOLS, FIDMetric, LPIPSMetric, MetricUnavailable, Protocol, measure


def _pairs():
    """Real photo crops (8-bit levels) and three distortions of them (noise, blur-like, brightness shift)."""
    rng = np.random.default_rng(0)
    out = []
    for name, (top, left) in (("astronaut", (60, 140)), ("coffee", (100, 200))):
        clean = getattr(data, name)()[top : top + 48, left : left + 64].astype(np.float32) / 255
        out.append((np.clip(clean + rng.normal(0, 0.06, clean.shape), 0, 1).astype(np.float32), clean))
        out.append((np.clip(0.5 * clean + 0.3 * np.roll(clean, 1, axis=1) + 0.2 * np.roll(clean, 1, axis=0), 0, 1), clean))
        out.append((np.clip(clean * 0.9 + 0.05, 0, 1).astype(np.float32), clean))
    return [(a.astype(np.float64), b.astype(np.float64)) for a, b in out]  # float64: no float32 rounding ties


def _u8(x):
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


@pytest.mark.parametrize("index", range(6))
def test_irestore_protocol_matches_scikit_image_on_8bit_rgb(index):
    restored, reference = _pairs()[index]
    got = measure(restored, reference, PROTOCOLS["irestore"])
    a, b = _u8(restored), _u8(reference)
    assert got["psnr"] == pytest.approx(peak_signal_noise_ratio(b, a, data_range=255), abs=1e-3)  # pyiqa: MSE + 1e-8
    expected = structural_similarity(b, a, channel_axis=-1, data_range=255, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)
    assert got["ssim"] == pytest.approx(expected, abs=2e-3)


@pytest.mark.parametrize("index", range(6))
def test_promptir_protocol_is_scikit_image_defaults_on_float_rgb(index):
    restored, reference = _pairs()[index]
    got = measure(restored, reference, PROTOCOLS["promptir"])
    # pyiqa adds 1e-8 to the MSE: about 2e-4 dB at 35 dB
    assert got["psnr"] == pytest.approx(peak_signal_noise_ratio(reference, restored, data_range=1), abs=1e-3)
    assert got["ssim"] == pytest.approx(structural_similarity(reference, restored, channel_axis=-1, data_range=1), abs=1e-6)


@pytest.mark.parametrize("index", range(6))
def test_y_bt601_protocol_matches_scikit_image_ycbcr_luma(index):
    restored, reference = _pairs()[index]
    got = measure(restored, reference, PROTOCOLS["y-bt601"])
    ya, yb = rgb2ycbcr(_u8(restored))[..., 0], rgb2ycbcr(_u8(reference))[..., 0]
    assert got["psnr"] == pytest.approx(peak_signal_noise_ratio(yb, ya, data_range=255), abs=1e-3)
    expected = structural_similarity(np.round(yb), np.round(ya), data_range=255, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)
    assert got["ssim"] == pytest.approx(expected, abs=2e-3)


def test_y_and_rgb_variants_differ_and_border_crop_is_applied():
    restored, reference = _pairs()[0]
    rgb, yiq = measure(restored, reference, PROTOCOLS["irestore"]), measure(restored, reference, PROTOCOLS["y-yiq"])
    assert abs(rgb["psnr"] - yiq["psnr"]) > 0.5
    bordered = Protocol("b4", "border test", border=4)
    a, b = _u8(restored)[4:-4, 4:-4], _u8(reference)[4:-4, 4:-4]
    assert measure(restored, reference, bordered)["psnr"] == pytest.approx(peak_signal_noise_ratio(b, a, data_range=255), abs=1e-4)


def test_mismatched_shapes_are_a_clear_error():
    with pytest.raises(ValueError, match="restored image is"):
        measure(np.zeros((20, 20, 3)), np.zeros((20, 22, 3)), PROTOCOLS["irestore"])


def test_fingerprint_is_stable_and_changes_with_any_choice():
    base = PROTOCOLS["irestore"]
    assert base.fingerprint == Protocol(**{f: getattr(base, f) for f in base.__dataclass_fields__}).fingerprint
    variants = [{"channels": "y-ycbcr"}, {"border": 1}, {"uint8": False}, {"ssim": "uniform7"},
                {"crop_multiple": 16}, {"noise_quantize": "floor"}, {"noise_seed": 1}]
    prints = {Protocol(**{**base.__dict__, **change}).fingerprint for change in variants}
    assert len(prints) == len(variants) and base.fingerprint not in prints
    text = base.describe()
    assert base.fingerprint in text and "SSIM" in text and "FID" in text


def test_crop_to_multiple_is_centred_like_the_promptir_loader():
    image = np.arange(37 * 50 * 3, dtype=np.float32).reshape(37, 50, 3)
    cropped = PROTOCOLS["promptir"].crop(image)
    # crop_img(base=16): drop h % 16 = 5 rows (2 on top) and w % 16 = 2 columns (1 on the left)
    assert cropped.shape == (32, 48, 3)
    assert np.array_equal(cropped, image[2:34, 1:49])


def test_test_noise_generator_depends_on_key_and_sigma_only():
    p = PROTOCOLS["irestore"]
    a = p.noise_generator("img/1.png", 25).standard_normal(4)
    assert np.array_equal(a, p.noise_generator("img/1.png", 25).standard_normal(4))
    assert not np.array_equal(a, p.noise_generator("img/2.png", 25).standard_normal(4))
    assert not np.array_equal(a, p.noise_generator("img/1.png", 50).standard_normal(4))


def test_unknown_protocol_and_bad_fields_are_rejected():
    with pytest.raises(KeyError, match="known: irestore"):
        metrics.get_protocol("nope")
    with pytest.raises(ValueError, match="ssim must be"):
        Protocol("x", "y", ssim="box")


# --------------------------------------------------------------------------- LPIPS / FID


def test_lpips_and_fid_say_what_is_missing_and_fail_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    start = time.perf_counter()
    with pytest.raises(MetricUnavailable, match="alexnet-owt-7be5be79.pth"):
        LPIPSMetric()
    with pytest.raises(MetricUnavailable, match="pt_inception-2015-12-05-6726825d.pth"):
        FIDMetric()
    status = metrics.check_required(["lpips", "fid"])
    assert "AlexNet" in status["lpips"] and "InceptionV3" in status["fid"]
    assert time.perf_counter() - start < 10


def test_an_unforeseen_download_is_refused_immediately(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    start = time.perf_counter()
    with pytest.raises(MetricUnavailable, match="tried to download"), metrics._offline_pyiqa():
        torch.hub.load_state_dict_from_url("https://download.example.invalid/weights.pth")
    assert time.perf_counter() - start < 2


@pytest.fixture(scope="module")
def standin_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("torch-standins")
    write_standins(home)
    return home


def test_lpips_runs_through_pyiqa_with_standin_weights(standin_home, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(standin_home))
    lpips = LPIPSMetric()
    restored, reference = _pairs()[0]
    assert lpips(reference, reference) == pytest.approx(0.0, abs=1e-6)
    assert lpips(restored, reference) > 0
    # the heads in the cache are really the ones used: zero heads make every distance zero
    zero_home = tmp_path / "zero"
    write_standins(zero_home, heads_scale=0.0)
    monkeypatch.setenv("TORCH_HOME", str(zero_home))
    assert LPIPSMetric()(restored, reference) == 0.0


def _write_set(folder, images):
    from irestore.io import Image, write_image

    folder.mkdir(parents=True)
    paths = []
    for i, img in enumerate(images):
        paths.append(write_image(folder / f"{i}.png", Image(rgb=img.astype(np.float32)), format="PNG"))
    return paths


def test_fid_runs_through_pyiqa_with_standin_weights(standin_home, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(standin_home))
    fid = FIDMetric()
    pairs = _pairs()
    clean = _write_set(tmp_path / "clean", [p[1] for p in pairs[:4]])
    noisy = _write_set(tmp_path / "noisy", [p[0] for p in pairs[:4]])
    assert fid.features(clean).shape == (4, 2048)
    assert fid(clean, clean) == pytest.approx(0.0, abs=1e-6)
    assert fid(noisy, clean) >= 0
    with pytest.raises(MetricUnavailable, match="at least 2 images"):
        fid(clean[:1], clean)


@pytest.mark.parametrize("n_a,n_b,dim", [(300, 250, 16), (12, 9, 40), (40, 40, 40)])
def test_frechet_distance_matches_pyiqas_sqrtm_version(n_a, n_b, dim):
    from pyiqa.archs.fid_arch import frechet_distance as pyiqa_frechet

    rng = np.random.default_rng(n_a)
    a = rng.normal(size=(n_a, dim))
    b = rng.normal(0.2, 1.0, size=(n_b, dim)) @ rng.normal(size=(dim, dim)) * 0.5
    expected = pyiqa_frechet(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert metrics.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_legacy_psnr_ssim_used_by_the_restore_command_still_agree():
    restored, reference = _pairs()[1]
    assert metrics.psnr(restored, reference) == pytest.approx(measure(restored, reference, PROTOCOLS["irestore"])["psnr"], abs=1e-4)
    assert metrics.ssim(restored, reference) == pytest.approx(measure(restored, reference, PROTOCOLS["irestore"])["ssim"], abs=2e-3)
