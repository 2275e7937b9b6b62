"""Restorer: checkpoint -> text conditioning -> sampler -> tiles, with the real MiniLM encoder."""

import logging

import pytest
import torch

from irestore.diffusion.checkpoint import CheckpointInfo, save_checkpoint
from irestore.diffusion.sde import SDEConfig
from irestore.pipeline import Restorer
from irestore.registry import create_network
from network_helpers import _randomise


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    net = _randomise(create_network("erunet-tiny", text_dim=384), seed=11)
    info = CheckpointInfo(network=net.config, sde=SDEConfig(), text_encoder="minilm", text_dim=384, name="tiny-test", default_steps=3)
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "tiny", net, info)


@pytest.fixture(scope="module")
def restorer(checkpoint, minilm):
    return Restorer.from_pretrained(checkpoint, device="cpu", text_encoder=minilm)


def _image(h=40, w=52, seed=0):
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_restore_is_deterministic_under_a_generator_and_depends_on_seed_and_prompt(restorer):
    img = _image()
    run = lambda seed, prompt="remove the noise": restorer.restore(
        img, prompt=prompt, steps=2, generator=torch.Generator().manual_seed(seed)
    )
    a = run(0)
    assert a.shape == img.shape and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, run(0))
    assert not torch.equal(a, run(1))
    assert not torch.allclose(a, run(0, "remove the rain"))


def test_from_pretrained_records_name_fingerprint_and_defaults(restorer, checkpoint):
    assert restorer.name == "tiny-test"
    assert len(restorer.fingerprint) == 16
    calls = []
    restorer.restore(_image(), callback=lambda i, n, t, x: calls.append((i, n, t)))
    assert [c[0] for c in calls] == [0, 1, 2] and calls[0][1] == 3 and calls[0][2] == 100


@pytest.mark.parametrize("sampler,steps", [("euler", 4), ("posterior", 1), ("ddim", 3)])
def test_every_sampler_runs_through_the_restorer(restorer, sampler, steps):
    calls = []
    out = restorer.restore(_image(33, 29), sampler=sampler, steps=steps, callback=lambda *a: calls.append(a))
    assert out.shape == (1, 3, 33, 29) and len(calls) == steps


def test_conditioning_is_computed_once_per_image_not_per_tile(restorer, monkeypatch):
    encoded = []
    real = restorer.text_encoder._encode_one
    monkeypatch.setattr(restorer.text_encoder, "_encode_one", lambda p: encoded.append(p) or real(p))
    conds = []
    real_cond = restorer.conditioning
    monkeypatch.setattr(restorer, "conditioning", lambda *a, **k: conds.append(a) or real_cond(*a, **k))
    restorer.restore(_image(150, 140), prompt="a brand new prompt", steps=2, tile=64, tile_overlap=16)
    assert len(conds) == 1 and encoded == ["a brand new prompt"]
    restorer.restore(_image(150, 140), prompt="a brand new prompt", steps=2, tile=64, tile_overlap=16)
    assert encoded == ["a brand new prompt"]  # cached across images


def test_tile_option_reaches_the_sampler(restorer, monkeypatch):
    img = _image(130, 150, seed=3)
    whole = restorer.restore(img, steps=2, tile=None, generator=torch.Generator().manual_seed(0))
    shapes = []
    real = restorer.network.forward
    monkeypatch.setattr(restorer.network, "forward", lambda x, *a: shapes.append(tuple(x.shape)) or real(x, *a))
    tiled = restorer.restore(img, steps=2, tile=64, tile_overlap=16, tile_batch=4, generator=torch.Generator().manual_seed(0))
    # 130x150 with 64 px tiles overlapping by >= 16: 3 rows x 3 columns = 9 tiles, batches of 4, 4, 1 per step
    assert shapes == [(4, 3, 64, 64), (4, 3, 64, 64), (1, 3, 64, 64)] * 2
    # the tiles' predictions were used (a random network is not local, so they differ from the
    # whole image's; tests/test_tiling.py checks the blend is exact for a local network)
    assert not torch.equal(tiled, whole)
    # a tile larger than the image runs the whole image in one forward per step
    shapes.clear()
    restorer.restore(img, steps=2, tile=512, generator=torch.Generator().manual_seed(0))
    assert shapes == [(1, 3, 130, 150)] * 2


def test_auto_tile_keeps_small_images_whole_and_tiles_large_ones(restorer, monkeypatch):
    assert restorer.choose_tile(_image(64, 64), "auto", 4) is None
    monkeypatch.setattr("irestore.diffusion.tiling.available_memory", lambda device: 200 * 2**20)
    side = restorer.choose_tile(torch.zeros(1, 3, 4000, 3000), "auto", 4)
    assert side is not None and side % 64 == 0 and 64 <= side < 4000
    assert restorer.choose_tile(_image(), 96, 4) == 96
    assert restorer.choose_tile(_image(), None, 4) is None


def test_auto_tile_runs_an_image_that_fits_whole_even_when_a_batch_of_tiles_would_not(restorer, monkeypatch):
    from irestore.pipeline import activation_bytes_per_pixel

    megapixel = 1024 * 1024 * activation_bytes_per_pixel(restorer.network, torch.float32)
    monkeypatch.setattr("irestore.diffusion.tiling.available_memory", lambda device: int(megapixel / 0.4 * 1.5))
    assert restorer.choose_tile(torch.zeros(1, 3, 1024, 1024), "auto", 4) is None
    side = restorer.choose_tile(torch.zeros(1, 3, 2048, 2048), "auto", 4)  # 4x the pixels: tiled
    assert side is not None and side < 2048


def test_memory_limit_counts_what_the_process_holds_and_sizes_tiles_under_it(restorer, monkeypatch):
    from irestore.diffusion.tiling import memory_in_use, memory_limit
    from irestore.pipeline import activation_bytes_per_pixel

    per_pixel = activation_bytes_per_pixel(restorer.network, torch.float32)
    monkeypatch.setattr("irestore.diffusion.tiling.available_memory", lambda device: 64 * 2**30)  # plenty free
    big = torch.zeros(1, 3, 2048, 2048)
    with memory_limit(None):  # the CPU default: 4 GiB for the whole process
        default = restorer.choose_tile(big, "auto", 4)
    held = memory_in_use(torch.device("cpu"))
    with memory_limit(held + 2048 * 2048 * int(per_pixel) * 2):  # room for the whole image
        assert restorer.choose_tile(big, "auto", 4) is None
    with memory_limit(held + 4 * 288 * 288 * int(per_pixel)):  # room for four 288 px tiles: 256 (64-px steps)
        assert restorer.choose_tile(big, "auto", 4) == 256
    assert default is not None and 4 * default**2 * per_pixel <= 4 * 2**30 - held


def test_non_finite_half_precision_output_is_redone_in_fp32(checkpoint, minilm, caplog):
    restorer = Restorer.from_pretrained(checkpoint, device="cpu", precision="bf16", text_encoder=minilm)
    assert restorer.dtype == torch.bfloat16
    reference = Restorer.from_pretrained(checkpoint, device="cpu", precision="fp32", text_encoder=minilm)
    real_forward = restorer.network.forward

    def overflowing(*args):
        out = real_forward(*args)
        return out * float("nan") if torch.is_autocast_enabled("cpu") else out

    restorer.network.forward = overflowing
    img = _image()
    with caplog.at_level(logging.WARNING, logger="irestore.diffusion.restorer"):
        out = restorer.restore(img, steps=2, generator=torch.Generator().manual_seed(4))
    expected = reference.restore(img, steps=2, generator=torch.Generator().manual_seed(4))
    assert torch.isfinite(out).all()
    assert torch.equal(out, expected)
    assert "redoing this image in fp32" in caplog.text


def test_nan_in_fp32_is_an_error(checkpoint, minilm):
    restorer = Restorer.from_pretrained(checkpoint, device="cpu", text_encoder=minilm)
    restorer.network.forward = lambda *a: torch.full_like(a[0], float("nan"))
    with pytest.raises(RuntimeError, match="NaN/Inf"):
        restorer.restore(_image(), steps=1)


def test_text_encoder_mismatch_is_refused(checkpoint):
    from irestore.conditioning.text import TextEmbedding, TextEncoder

    class Tiny(TextEncoder):
        name, dim = "tiny", 8

        def _encode_one(self, prompt):
            return TextEmbedding(torch.zeros(1, 1, 8), torch.ones(1, 1, dtype=torch.bool), torch.zeros(1, 8))

    with pytest.raises(ValueError, match="trained with text encoder 'minilm'"):
        Restorer.from_pretrained(checkpoint, device="cpu", text_encoder=Tiny())


def test_bad_image_shape_and_sampler_are_rejected(restorer):
    with pytest.raises(ValueError, match="1x3xHxW"):
        restorer.restore(torch.zeros(3, 10, 10))
    with pytest.raises(ValueError, match="unknown sampler"):
        restorer.restore(_image(), sampler="heun")


@pytest.fixture(scope="module")
def short_sde_restorer(tmp_path_factory, minilm):
    net = _randomise(create_network("erunet-tiny", text_dim=384), seed=12)
    info = CheckpointInfo(network=net.config, sde=SDEConfig(T=20), text_encoder="minilm", text_dim=384, name="t20", default_steps=2)
    return Restorer.from_pretrained(save_checkpoint(tmp_path_factory.mktemp("ck20") / "t20", net, info), device="cpu", text_encoder=minilm)


def test_check_steps_refuses_more_steps_than_the_models_sde_has(short_sde_restorer):
    from irestore.pipeline import check_steps, steps_limit

    assert steps_limit(short_sde_restorer) == 20
    check_steps(short_sde_restorer, 20)
    check_steps(short_sde_restorer, None)  # the model's default
    with pytest.raises(ValueError, match=r"21 steps asked, but the SDE of t20 has T = 20 steps; choose 1 to 20"):
        check_steps(short_sde_restorer, 21)
    with pytest.raises(ValueError, match="between 1 and 20"):  # what the check saves a run from, on every image
        short_sde_restorer.restore(_image(), steps=21)


def test_steps_limit_of_shipped_models_one_pass_models_and_the_plan():
    from irestore.pipeline import check_steps, load_model, steps_limit
    from irestore.plan import AdaptiveRestorer

    assert steps_limit(load_model("allinone-small", device="cpu")) == 100
    assert steps_limit(load_model("derain", device="cpu")) is None  # a one-pass regressor: steps do not apply
    assert steps_limit(load_model("ffdnet-color", device="cpu")) is None
    check_steps(load_model("nlm", device="cpu"), 5000)
    plan = AdaptiveRestorer.create("auto", device="cpu")
    assert steps_limit(plan) == 100  # allinone-small, the plan's diffusion member
    with pytest.raises(ValueError, match="T = 100"):
        check_steps(plan, 101)


def test_without_a_classifier_the_model_gets_its_learned_no_embedding_vector_not_zeros(checkpoint, minilm):
    restorer = Restorer.from_pretrained(checkpoint, device="cpu", text_encoder=minilm)
    assert restorer.classifier is None and restorer.info.network.degradation_dim > 0
    assert restorer.conditioning("remove the noise").degradation is None
    image = _image()
    before = restorer.restore(image, steps=2, tile=None, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        restorer.network.fusion.absent_degradation.add_(0.5)
    after = restorer.restore(image, steps=2, tile=None, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(before, after, atol=1e-5)
