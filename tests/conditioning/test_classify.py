"""Degradation classification: DegNet checkpoints through the real loading path, views on any
image size, CLIP zero-shot with a tiny random open_clip model, routing, the restorer's
degradation embedding, and `irestore classify` through the real CLI."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import typer
from PIL import Image as PILImage
from typer.testing import CliRunner

import open_clip_tiny
from classifier_checkpoints import random_checkpoint, register_missing_classifier, scripted_checkpoint
from irestore.cli.app import app
from irestore.conditioning.classifier import Classification, DegradationClassifier, tile_origins, view_batches
from irestore.conditioning.routing import route
from irestore.labels import LABELS
from irestore.registry import create_classifier
from irestore.weights import MissingWeightsError

runner = CliRunner()


def _image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _photo(h: int = 48, w: int = 64) -> np.ndarray:
    from skimage import data

    return data.astronaut()[::4, ::4][:h, :w]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("degnet") / "ck", seed=3)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)


# -- DegNet through the production loading path ------------------------------------------------

def test_saved_random_degnet_classifies_identically_after_loading(checkpoint):
    folder, network = checkpoint
    image = _image(40, 56)
    result = DegradationClassifier.from_pretrained(folder).classify(image)
    with torch.inference_mode():
        direct = network(image)  # the in-memory network before saving; the image is one view
    assert result.probabilities == pytest.approx(dict(zip(LABELS, torch.sigmoid(direct.logits)[0].tolist())), abs=1e-6)
    assert torch.allclose(result.embedding, direct.embedding, atol=1e-6)
    assert set(result.severity) == set(LABELS) - {"clean"}


def test_lone_safetensors_file_loads_like_the_folder(checkpoint):
    folder, _ = checkpoint
    image = _image(33, 35, seed=4)
    a = DegradationClassifier.from_pretrained(folder).classify(image)
    b = DegradationClassifier.from_pretrained(folder / "model.safetensors").classify(image)
    assert a.probabilities == b.probabilities and torch.equal(a.embedding, b.embedding)


@pytest.mark.parametrize("shape", [(8, 8), (5, 300), (64, 64), (300, 700), (1100, 420)])
def test_any_image_size_gives_a_complete_classification(checkpoint, shape):
    classifier = DegradationClassifier.from_pretrained(checkpoint[0], tile=64, max_tiles=4)
    result = classifier.classify(_image(*shape))
    assert list(result.probabilities) == list(LABELS)
    assert all(0.0 <= p <= 1.0 for p in result.probabilities.values())
    assert all(0.0 <= s <= 1.0 for s in result.severity.values())
    assert result.embedding.shape == (1, 16)
    assert result.embedding.norm().item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("height,width,tile,max_tiles", [(3000, 4000, 256, 8), (4000, 3000, 256, 8), (300, 2000, 256, 8),
                                                         (257, 257, 256, 8), (100, 90, 256, 8), (900, 900, 128, 5)])
def test_tiles_lie_inside_the_image_and_spread_to_its_corners(height, width, tile, max_tiles):
    origins = tile_origins(height, width, tile, max_tiles)
    assert 1 <= len(origins) <= max_tiles and len(set(origins)) == len(origins)
    for y, x in origins:
        assert 0 <= y <= max(height - tile, 0) and 0 <= x <= max(width - tile, 0)
    for positions, free in (({y for y, _ in origins}, height - tile), ({x for _, x in origins}, width - tile)):
        if len(positions) > 1:  # several rows (columns) reach both edges
            assert min(positions) == 0 and max(positions) == free
        else:  # a single row (column) is centred
            assert positions == {max(free, 0) // 2}
    if height * width >= max_tiles * tile * tile * 2:
        assert len(origins) >= max_tiles - 1  # a big photo uses (nearly) all the tiles it may


def test_views_are_native_crops_plus_one_area_resized_whole_image():
    image = _image(300, 520)
    tiles, whole = view_batches(image, tile=128, max_tiles=4)
    assert tiles.shape[1:] == (3, 128, 128) and tiles.shape[0] == 4
    first = image[..., :128, :128]
    assert any(torch.equal(first[0], crop) for crop in tiles)  # native pixels, not resampled
    assert whole.shape[-1] == 128 and whole.shape[-2] == round(300 * 128 / 520)
    expected = F.adaptive_avg_pool2d(image, whole.shape[-2:])
    assert torch.allclose(whole, expected, atol=1e-6)


def test_large_image_aggregates_views_as_documented(checkpoint):
    """A checkpoint without a head: mean probability over views, probability-weighted severity;
    the embedding is the renormalised mean over the native tiles (not the whole view)."""
    folder, network = checkpoint
    image = _image(200, 330, seed=7)
    result = DegradationClassifier.from_pretrained(folder, tile=96, max_tiles=3).classify(image)
    with torch.inference_mode():
        outs = [network(v) for v in view_batches(image, tile=96, max_tiles=3)]
    p = torch.cat([torch.sigmoid(o.logits) for o in outs])
    s = torch.cat([o.severity for o in outs])
    e = outs[0].embedding
    assert p.shape[0] == 4 and e.shape[0] == 3  # three tiles and the whole image
    assert result.probabilities["rain"] == pytest.approx(p[:, LABELS.index("rain")].mean().item(), abs=1e-6)
    rain = LABELS.index("rain")
    weighted = (s[:, rain] * p[:, rain]).sum() / p[:, rain].sum()
    assert result.severity["rain"] == pytest.approx(weighted.item(), abs=1e-4)
    assert torch.allclose(result.embedding, F.normalize(e.mean(0, keepdim=True), dim=-1), atol=1e-6)


def test_scripted_checkpoint_gives_its_labels_and_physical_severities(tmp_path):
    folder = scripted_checkpoint(tmp_path / "ck", {"rain": 0.9, "noise": 0.7}, {"rain": 0.8, "noise": 0.2})
    result = DegradationClassifier.from_pretrained(folder).classify(_image(300, 400))
    assert result.labels == ["rain", "noise"]
    assert result.top_label == "rain"
    assert result.severities["noise"] == pytest.approx(0.2 * 75, abs=1e-3)  # sigma on the 0-75 scale
    assert result.severities["rain"] == pytest.approx(0.8, abs=1e-4)
    assert route(result) == ["denoise", "derain"]


def test_missing_named_classifier_is_one_clear_error_without_network():
    missing = register_missing_classifier()
    with pytest.raises(MissingWeightsError) as info:
        create_classifier("degnet", missing)
    message = str(info.value)
    assert missing in message and "model.safetensors" in message
    assert f"irestore models import {missing} FILE" in message and "--model PATH" in message


# -- Classification semantics and routing ------------------------------------------------------

def _classification(probabilities: dict[str, float], threshold: float = 0.5) -> Classification:
    full = {label: probabilities.get(label, 0.0) for label in LABELS}
    return Classification(full, {label: 0.5 for label in LABELS[1:]}, torch.zeros(1, 4), threshold)


def test_labels_threshold_clean_and_top_label():
    c = _classification({"clean": 0.3, "haze": 0.6, "jpeg": 0.95, "noise": 0.49})
    assert c.labels == ["jpeg", "haze"] and c.top_label == "jpeg" and not c.is_clean
    assert _classification({"clean": 0.9, "noise": 0.2}).labels == ["clean"]
    assert _classification({"noise": 0.2}, threshold=0.1).labels == ["noise"]


def test_route_undoes_degradations_in_reverse_camera_order():
    c = _classification({"haze": 0.9, "rain": 0.8, "noise": 0.7, "jpeg": 0.6, "motion_blur": 0.55, "lowres": 0.53, "lowlight": 0.52})
    assert route(c) == ["jpeg-artifact-removal", "denoise", "motion-deblur", "derain", "low-light-enhancement",
                        "dehaze", "super-resolution"]
    assert route(_classification({"clean": 1.0})) == []


# -- CLIP zero-shot -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from irestore.conditioning.open_clip_models import save_open_clip_weights

    model = open_clip_tiny.random_model(open_clip_tiny.CLIP_ARCH, seed=5)
    path = save_open_clip_weights(model, tmp_path_factory.mktemp("clip") / "tiny.safetensors")
    return model, f"{open_clip_tiny.CLIP_ARCH}:{path}"


def test_clip_zero_shot_runs_end_to_end_and_matches_the_in_memory_model(tiny_clip):
    import open_clip

    from irestore.conditioning.clip_zeroshot import ClipZeroShotClassifier
    from irestore.conditioning.open_clip_models import parse_spec, wrap_model

    model, spec = tiny_clip
    loaded = ClipZeroShotClassifier.from_pretrained(spec)
    in_memory = ClipZeroShotClassifier(wrap_model(model, open_clip.get_tokenizer(open_clip_tiny.CLIP_ARCH), parse_spec(spec)))
    image = _image(100, 150, seed=2)
    a, b = loaded.classify(image), in_memory.classify(image)
    assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)
    assert torch.allclose(a.embedding, b.embedding, atol=1e-6) and a.embedding.shape == (1, 16)
    degradations = [a.probabilities[label] for label in LABELS[1:]]
    assert a.probabilities["clean"] == pytest.approx(math.prod(1 - p for p in degradations), rel=1e-5)
    assert a.backend == "clip"


def test_open_clip_folder_layout_loads_config_and_weights(tmp_path, tiny_clip):
    """open_clip's own local layout: open_clip_config.json (model + preprocess) beside the weights."""
    from irestore.conditioning.clip_zeroshot import ClipZeroShotClassifier

    model, spec = tiny_clip
    folder = tmp_path / "my-clip"
    folder.mkdir()
    config = {"model_cfg": open_clip_tiny.CONFIGS[open_clip_tiny.CLIP_ARCH], "preprocess_cfg": {"mean": [0.5] * 3, "std": [0.5] * 3}}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    (folder / "open_clip_model.safetensors").write_bytes(Path(spec.split(":", 1)[1]).read_bytes())
    loaded = ClipZeroShotClassifier.from_pretrained(folder)
    assert loaded.clip.mean.flatten().tolist() == [0.5] * 3
    text = loaded.clip.tokenize(["haze"])
    with torch.inference_mode():
        assert torch.equal(loaded.clip.model.encode_text(text), model.encode_text(text))


def test_clip_prompt_ensembles_are_unit_vectors_one_per_label(tiny_clip):
    from irestore.conditioning.clip_zeroshot import ClipZeroShotClassifier

    classifier = ClipZeroShotClassifier.from_pretrained(tiny_clip[1])
    assert classifier.label_text.shape == (len(LABELS) - 1, 16)
    assert torch.allclose(classifier.label_text.norm(dim=-1), torch.ones(len(LABELS) - 1), atol=1e-5)
    assert classifier.severity_text.shape == (len(LABELS) - 1, 3, 16)


def test_clip_calibration_bias_moves_one_label():
    """A calibration offset of +20 logits makes that label certain and leaves the others alone."""
    import open_clip

    from irestore.conditioning.clip_zeroshot import ClipZeroShotClassifier
    from irestore.conditioning.open_clip_models import OpenClipSpec, wrap_model

    model = open_clip_tiny.random_model(open_clip_tiny.CLIP_ARCH, seed=6)
    clip = wrap_model(model, open_clip.get_tokenizer(open_clip_tiny.CLIP_ARCH), OpenClipSpec(open_clip_tiny.CLIP_ARCH, "x.pt"))
    image = _image(64, 64, seed=1)
    base = ClipZeroShotClassifier(clip).classify(image)
    haze = ClipZeroShotClassifier(clip, calibration={"haze": 20.0}).classify(image)
    assert haze.probabilities["haze"] > 0.999
    assert haze.probabilities["rain"] == pytest.approx(base.probabilities["rain"], abs=1e-6)


def test_offline_open_clip_tag_fails_at_once_without_importing_open_clip(tmp_path):
    """In a fresh process: the missing-weights error comes before open_clip (and its hub code) is imported."""
    code = (
        "import sys\n"
        "from irestore.conditioning.classifier import create_classifier\n"
        "from irestore.weights import MissingWeightsError\n"
        "try:\n"
        "    create_classifier('clip', 'ViT-B-32:laion2b_s34b_b79k')\n"
        "except MissingWeightsError as error:\n"
        "    print(error)\n"
        "print('open_clip imported:', 'open_clip' in sys.modules)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "IRESTORE_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True)
    out = done.stdout
    assert "open_clip imported: False" in out
    assert "clip-b32" in out and "open_clip_model.safetensors" in out
    assert "irestore models download clip-b32" in out and "irestore models import clip-b32 FILE" in out
    assert "offline" in out


# -- the restorer's degradation embedding --------------------------------------------------------

def test_restorer_takes_its_degradation_embedding_from_the_named_classifier(tmp_path, minilm):
    from irestore.diffusion.checkpoint import CheckpointInfo, save_checkpoint
    from irestore.diffusion.sde import SDEConfig
    from irestore.pipeline import Restorer
    from irestore.registry import create_network
    from network_helpers import _randomise

    classifier_folder, _ = random_checkpoint(tmp_path / "degnet", seed=8)
    net = _randomise(create_network("erunet-tiny", text_dim=384, degradation_dim=16), seed=2)
    info = CheckpointInfo(network=net.config, sde=SDEConfig(), text_encoder="minilm", text_dim=384,
                          classifier=str(classifier_folder), name="tiny-deg")
    restorer = Restorer.from_pretrained(save_checkpoint(tmp_path / "ck", net, info), device="cpu", text_encoder=minilm)
    assert restorer.classifier is not None
    image = _image(24, 32, seed=3)
    run = lambda **kw: restorer.restore(image, prompt="x", steps=2, generator=torch.Generator().manual_seed(0), **kw)
    embedding = DegradationClassifier.from_pretrained(classifier_folder).classify(image).embedding
    assert torch.equal(run(), run(degradation=embedding))
    assert not torch.allclose(run(), run(degradation=torch.zeros(1, 16)))


def test_restorer_refuses_a_classifier_of_the_wrong_width(tmp_path, minilm):
    from irestore.diffusion.checkpoint import CheckpointInfo, save_checkpoint
    from irestore.diffusion.sde import SDEConfig
    from irestore.pipeline import Restorer
    from irestore.registry import create_network

    classifier_folder, _ = random_checkpoint(tmp_path / "degnet")  # 16-d embedding
    net = create_network("erunet-tiny", text_dim=384, degradation_dim=8)
    info = CheckpointInfo(network=net.config, sde=SDEConfig(), text_encoder="minilm", text_dim=384,
                          classifier=str(classifier_folder), name="tiny-8")
    with pytest.raises(ValueError, match="8-d degradation embedding.*16-d"):
        Restorer.from_pretrained(save_checkpoint(tmp_path / "ck", net, info), device="cpu", text_encoder=minilm)


# -- the CLI --------------------------------------------------------------------------------------

def _app() -> typer.Typer:
    return app


def _folder(root):
    (root / "sub").mkdir(parents=True)
    PILImage.fromarray(_photo()).save(root / "a.png")
    PILImage.fromarray(_photo(40, 30)).save(root / "sub" / "b.jpg", quality=90)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


def test_classify_cli_json_csv_route_and_bad_files(tmp_path):
    folder = scripted_checkpoint(tmp_path / "ck", {"rain": 0.9, "noise": 0.7}, {"rain": 0.8, "noise": 0.2})
    src = _folder(tmp_path / "in")
    csv_path = tmp_path / "out.csv"
    args = ["classify", str(src), "--model", str(folder), "--json", "--csv", str(csv_path), "--route"]
    result = runner.invoke(_app(), args)
    assert result.exit_code == 1, result.output  # one file is broken, the others are classified
    rows = {row["relative"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert set(rows) == {"a.png", "sub/b.jpg", "broken.png"}
    assert rows["broken.png"]["status"] == "failed" and rows["broken.png"]["error"]
    for name in ("a.png", "sub/b.jpg"):
        row = rows[name]
        assert row["labels"] == ["rain", "noise"] and row["route"] == ["denoise", "derain"]
        assert row["probabilities"]["rain"] == pytest.approx(0.9, abs=1e-3)
        assert row["severity_values"]["noise"] == pytest.approx(15.0, abs=0.01)
    assert "broken.png" in result.stderr and "derain" in result.stderr
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("input,relative,status") and len(lines) == 4
    assert any("rain;noise" in line for line in lines)


def test_classify_cli_clip_backend_with_a_local_checkpoint(tmp_path, tiny_clip):
    PILImage.fromarray(_photo()).save(tmp_path / "a.png")
    result = runner.invoke(_app(), ["classify", str(tmp_path / "a.png"), "--backend", "clip", "--model", tiny_clip[1], "--json"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert row["backend"] == "clip" and set(row["probabilities"]) == set(LABELS) and row["embedding_dim"] == 16


def test_classify_cli_missing_model_is_a_usage_error_naming_the_fix(tmp_path):
    PILImage.fromarray(_photo()).save(tmp_path / "a.png")
    missing = register_missing_classifier()
    result = runner.invoke(_app(), ["classify", str(tmp_path / "a.png"), "--model", missing])
    assert result.exit_code == 2
    assert missing in result.stderr and "irestore models import" in result.stderr
    assert "Traceback" not in result.output
