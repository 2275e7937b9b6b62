"""On a CUDA GPU: half-precision parity of every shipped network, the NaN/Inf fallback, the real
out-of-memory retry with smaller tiles, tiled vs untiled peak memory at 12 MP and channels_last
training steps. Skipped without a GPU; run them with `pytest -m cuda` (scripts/gpu_check.sh does)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from irestore.evaluate.metrics import psnr
from irestore.io import image_to_tensor, read_image
from irestore.pipeline import SHIPPED_RESTORERS, Restorer, load_model
from irestore.restorers.ported import PORTED, PortedNetwork
from irestore.training import build_config, train
from irestore.training.distributed import DistInfo
from irestore.training.loop import Trainer
from irestore.training.tasks import create_task
from irestore.weights import MissingWeightsError

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

PHOTO = Path(__file__).parent / "data" / "aitzgorri_crop.png"
# least PSNR of a half-precision output against the fp32 one, same input and seed. On this
# project's CPU, bf16 autocast gave 50-64 dB for every shipped network (allinone-small 57.1,
# derain 64.4, lowlight 57.4, ffdnet-color 51.8, waifu2x 49.8, Real-ESRGAN 52.5-53.0); fp16 has
# 3 more mantissa bits (about 18 dB less rounding noise)
MIN_PSNR = {"bf16": 40.0, "fp16": 45.0}
MIB = 2**20


def _image(size: int = 256) -> torch.Tensor:
    """The held-out photo (tiled to `size` if smaller), with mild noise."""
    rgb = read_image(PHOTO).rgb
    reps = (-(-size // rgb.shape[0]), -(-size // rgb.shape[1]), 1)
    rgb = np.tile(rgb, reps)[:size, :size]
    noisy = np.clip(rgb + np.random.default_rng(0).normal(0, 0.05, rgb.shape), 0, 1).astype(np.float32)
    return image_to_tensor(noisy)


def _rgb(tensor: torch.Tensor) -> np.ndarray:
    return tensor[0].permute(1, 2, 0).float().numpy()


def _restore(model, image: torch.Tensor, **options) -> torch.Tensor:
    return model.restore(image, prompt="remove the noise", generator=torch.Generator().manual_seed(0), **options)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("name", [*SHIPPED_RESTORERS, "ffdnet-color"])
def test_half_precision_restorers_match_fp32(name, precision):
    image = _image()
    half = load_model(name, device="cuda", precision=precision)
    assert half.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    reference = _restore(load_model(name, device="cuda", precision="fp32"), image, tile=None)
    out = _restore(half, image, tile=None)
    assert torch.isfinite(out).all()
    assert psnr(_rgb(out), _rgb(reference)) >= MIN_PSNR[precision]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("name", sorted(PORTED))
def test_half_precision_ported_networks_match_fp32(name, precision):
    try:
        half, full = PortedNetwork(name, "cuda", precision), PortedNetwork(name, "cuda", "fp32")
    except MissingWeightsError as error:
        pytest.skip(f"{name}: {error}")
    image = _image(128)
    out, reference = half.run(image, tile=None), full.run(image, tile=None)
    assert torch.isfinite(out).all()
    assert psnr(_rgb(out), _rgb(reference)) >= MIN_PSNR[precision]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_non_finite_half_precision_output_is_redone_in_fp32_on_cuda(precision, caplog):
    """The overflow is forced (NaN out of the network under CUDA autocast); the redo is the fp32 result."""
    name = next(iter(SHIPPED_RESTORERS))
    restorer = Restorer.from_pretrained(name, device="cuda", precision=precision)
    real_forward = restorer.network.forward

    def overflowing(*args):
        out = real_forward(*args)
        return out * float("nan") if torch.is_autocast_enabled("cuda") else out

    restorer.network.forward = overflowing
    image = _image(128)
    with caplog.at_level(logging.WARNING, logger="irestore.pipeline"):
        out = _restore(restorer, image, steps=2, tile=None)
    expected = _restore(Restorer.from_pretrained(name, device="cuda", precision="fp32"), image, steps=2, tile=None)
    assert "redoing this image in fp32" in caplog.text
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-4)


@contextmanager
def gpu_memory_left(spare: int) -> Iterator[None]:
    """Allocate the GPU's memory until out of memory (32 MiB blocks, then 2 MiB ones), then give
    back about `spare` bytes: any run needing more than that in all fails for real."""
    torch.cuda.empty_cache()
    blocks: list[torch.Tensor] = []
    for size in (32 * MIB, 2 * MIB):
        while True:
            try:
                blocks.append(torch.empty(size, dtype=torch.uint8, device="cuda"))
            except torch.OutOfMemoryError:
                break
    freed = 0
    while blocks and freed < spare:
        freed += blocks.pop().numel()  # the 2 MiB blocks go first, then 32 MiB ones
    try:
        yield
    finally:
        blocks.clear()
        torch.cuda.empty_cache()


def _peak_bytes(run) -> int:
    """Memory `run()` allocates at its peak above what is allocated before it."""
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    run()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def _retry_sizes(caplog) -> list[int]:
    """The tile sizes of each out-of-memory retry warning: [(from, to), ...] flattened to the 'to's."""
    messages = [r.getMessage() for r in caplog.records if r.getMessage().startswith("out of memory with")]
    return [int(m.split("retrying")[1].split("px")[0].split()[-1]) for m in messages]


@pytest.mark.parametrize("name", ["derain", "ffdnet-color"])
def test_real_out_of_memory_is_retried_with_smaller_tiles(name, caplog):
    """A 1024 px image untiled, on a GPU filled until out of memory and then left with a quarter
    of what the untiled run was measured to need: the first pass fails for real and the retries
    with halved tiles (the sampler's TiledDenoiser for derain, apply_with_fallback for FFDNet) finish it."""
    model = load_model(name, device="cuda", precision="fp32")
    image = _image(1024)
    run = lambda: _restore(model, image, tile=None, tile_batch=1, steps=1)
    need = _peak_bytes(run)
    reference = run()
    with caplog.at_level(logging.WARNING), gpu_memory_left(need // 4):
        out = run()
    sizes = _retry_sizes(caplog)
    assert sizes and sizes[0] == 512, caplog.text  # the first retry halves the whole image's 1024 px
    assert all(64 <= size < 1024 for size in sizes)
    assert out.shape == image.shape and torch.isfinite(out).all()
    assert psnr(_rgb(out), _rgb(reference)) > 30  # tiles of a non-local network: close, not equal


def test_tiled_inference_peaks_lower_than_untiled_at_12_mp(caplog):
    """4000x3000: the peak memory above the loaded model with 512 px tiles is well below the
    untiled one (torch.cuda.max_memory_allocated)."""
    model = load_model("derain", device="cuda", precision="bf16")
    image = torch.rand(1, 3, 3000, 4000, generator=torch.Generator().manual_seed(0))

    def peak(tile: int | None) -> int:
        return _peak_bytes(lambda: _restore(model, image, tile=tile, tile_batch=1, steps=1))

    with caplog.at_level(logging.WARNING):
        untiled = peak(None)
    if "out of memory" in caplog.text:
        pytest.skip("this GPU cannot run 12 MP untiled (the comparison needs it)")
    tiled = peak(512)
    assert tiled < untiled / 2, f"tiled {tiled / MIB:.0f} MiB vs untiled {untiled / MIB:.0f} MiB"


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """12 real photo crops (96x96) from scikit-image's bundled photographs."""
    from PIL import Image
    from skimage import data

    root = tmp_path_factory.mktemp("photos")
    for n, image in enumerate((data.astronaut(), data.coffee(), data.chelsea())):
        for k in range(4):
            y, x = 60 * k, 70 * (k % 3)
            Image.fromarray(np.ascontiguousarray(image[y : y + 96, x : x + 96])).save(root / f"photo{n}_{k}.png")
    return root


RECIPES = {  # the network families of the shipped recipes (configs/*.yaml), at their smallest
    "erunet-noise": {"task": "restorer", "model": "erunet-tiny", "prediction": "noise"},
    "erunet-x0": {"task": "restorer", "model": "erunet-tiny", "prediction": "x0"},
    "m3unet-direct": {"task": "restorer", "model": "m3unet-tiny", "prediction": "direct"},
    "degnet": {"task": "classifier", "model": "degnet-tiny"},
}


def _settings(photos: Path, out: Path, recipe: str, precision: str) -> dict:
    return {"dataset": f"folder:{photos}", "out": str(out), **RECIPES[recipe], "degradations": "noise:20-50,rain",
            "crop": 64, "batch_size": 4, "epoch_length": 16, "val_samples": 2, "val_steps": 1, "workers": 0,
            "log_every": 1, "val_every": 3, "max_steps": 3, "device": "cuda", "precision": precision,
            "channels_last": True, "warmup_steps": 0}


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_channels_last_training_steps_run_on_cuda(recipe, precision, photos, tmp_path, minilm):
    config = build_config(_settings(photos, tmp_path / "run", recipe, precision))
    task = create_task(config, torch.device("cuda"), torch.bfloat16 if precision == "bf16" else torch.float16,
                       minilm if config.task == "restorer" else None)
    trainer = Trainer(config, task, DistInfo(), torch.device("cuda"), torch.float32)
    kernels = [p for p in trainer.network.parameters() if p.ndim == 4]
    assert kernels and all(p.is_contiguous(memory_format=torch.channels_last) for p in kernels)
    result = train(config, text_encoder=minilm if config.task == "restorer" else None)
    assert result.step == 3 and all(np.isfinite(result.losses))
    assert (tmp_path / "run" / "last").is_dir()
