"""Captioners (degradation, CoCa, file), text encoders (MiniLM, CLIP), `irestore caption` and
`irestore restore --prompt-from-caption`, with real checkpoints written and read back."""

from __future__ import annotations

import hashlib
import json
import socket

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import typer
from PIL import Image as PILImage
from typer.testing import CliRunner

import open_clip_tiny
from classifier_checkpoints import register_missing_classifier, scripted_checkpoint
from irestore.cli.app import app
from irestore.conditioning.captioners import CaptionError, FileCaptioner, degradation_caption
from irestore.conditioning.classifier import Classification
from irestore.labels import LABELS
from irestore.registry import create_captioner, list_captioners

runner = CliRunner()
RAIN_AND_NOISE = ({"rain": 0.9, "noise": 0.7}, {"rain": 0.8, "noise": 0.2})  # rain amount 0.8, noise sigma 15


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def _photo(h: int = 48, w: int = 64) -> np.ndarray:
    from skimage import data

    return data.chelsea()[::4, ::4][:h, :w]


def _image(h: int = 40, w: int = 48, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def rain_and_noise(tmp_path_factory):
    return scripted_checkpoint(tmp_path_factory.mktemp("degnet") / "ck", *RAIN_AND_NOISE)


# -- the degradation captioner ------------------------------------------------------------------

def _classification(probabilities: dict, severity: dict) -> Classification:
    return Classification(
        {label: probabilities.get(label, 0.0) for label in LABELS},
        {label: severity.get(label, 0.5) for label in LABELS[1:]},
        torch.zeros(1, 4),
    )


@pytest.mark.parametrize(
    "probabilities,severity,expected",
    [
        ({"rain": 0.9, "noise": 0.7}, {"rain": 0.8, "noise": 0.2}, "a photo with heavy rain streaks and mild noise"),
        ({"haze": 0.8}, {"haze": (0.1 - 0.02) / 0.18}, "a photo with moderate haze"),  # beta 0.1
        ({"jpeg": 0.9, "lowlight": 0.8, "motion_blur": 0.6}, {"jpeg": (60 - 10) / 55, "lowlight": 0.0, "motion_blur": 0.0},
         "a photo with heavy JPEG artifacts, mild underexposure and mild motion blur"),  # quality 10, brightness .25, 3 px
        ({"clean": 0.97, "noise": 0.1}, {}, "a clean photo"),
    ],
)
def test_degradation_caption_is_fluent_and_follows_the_severity_bands(probabilities, severity, expected):
    assert degradation_caption(_classification(probabilities, severity)) == expected


def test_degradation_captioner_with_a_real_checkpoint(rain_and_noise, tmp_path):
    caption = create_captioner("degradation", classifier=str(rain_and_noise)).caption(_image())
    assert caption.text == "a photo with heavy rain streaks and mild noise"
    assert caption.source == "degradation" and caption.labels == ["rain", "noise"]
    clean = scripted_checkpoint(tmp_path / "clean", {"clean": 0.95}, {})
    assert create_captioner("degradation", classifier=str(clean)).caption(_image()).text == "a clean photo"


def test_registry_lists_and_refuses():
    assert list_captioners() == ["degradation", "coca", "file"]
    with pytest.raises(KeyError, match="degradation, coca, file"):
        create_captioner("blip")


# -- the file captioner ---------------------------------------------------------------------------

def test_file_captioner_prefers_the_table_then_the_sidecar_and_names_what_is_missing(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "a.txt").write_text("from the sidecar\n")
    (tmp_path / "b.png").write_bytes(b"")
    table = tmp_path / "captions.csv"
    table.write_text("path,prompt\nb.png,from the table\n")
    captioner = FileCaptioner.create(table)
    assert captioner.caption(None, tmp_path / "a.png", "a.png").text == "from the sidecar"
    got = captioner.caption(None, tmp_path / "b.png", "b.png")
    assert got.text == "from the table" and str(table) in got.source
    with pytest.raises(CaptionError, match="c.png.*no sidecar"):
        captioner.caption(None, tmp_path / "c.png", "c.png")


# -- CoCa -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_coca(tmp_path_factory):
    from irestore.conditioning.open_clip_models import save_open_clip_weights

    model = open_clip_tiny.random_model(open_clip_tiny.COCA_ARCH, seed=4)
    path = save_open_clip_weights(model, tmp_path_factory.mktemp("coca") / "coca.safetensors")
    return model, f"{open_clip_tiny.COCA_ARCH}:{path}"


def test_coca_loads_back_with_identical_outputs(tiny_coca):
    from irestore.conditioning.open_clip_models import load_open_clip

    model, spec = tiny_coca
    loaded = load_open_clip(spec)
    pixels = loaded.preprocess(_image())
    text = loaded.tokenize(["a cat on a sofa"])[:, :10]
    with torch.inference_mode():
        a = loaded.model(pixels, text, output_labels=False)["logits"]
        b = model(pixels, text, output_labels=False)["logits"]
    assert torch.equal(a, b)


def test_greedy_generation_takes_the_most_likely_token_at_every_step(tiny_coca):
    from irestore.conditioning.coca import GenerationSettings, generate_tokens
    from irestore.conditioning.open_clip_models import load_open_clip

    coca = load_open_clip(tiny_coca[1])
    image = _image(seed=3)
    settings = GenerationSettings(max_tokens=8, min_tokens=8, repetition_penalty=1.0)  # no early end
    ids = generate_tokens(coca, image, settings)
    assert len(ids) == 8
    prefix = torch.tensor([[coca.tokenizer.sot_token_id, *ids]])
    with torch.no_grad():
        logits = coca.model(coca.preprocess(image), prefix, output_labels=False)["logits"][0, :8]
    logits[:, [coca.tokenizer.eot_token_id, 0]] = float("-inf")  # the end and pad tokens are forbidden
    assert logits.argmax(-1).tolist() == ids  # the teacher-forced argmax reproduces each choice


def test_sampled_captions_are_text_and_reproducible_by_seed(tiny_coca):
    from irestore.conditioning.coca import GenerationSettings, caption_text, generate_tokens
    from irestore.conditioning.open_clip_models import load_open_clip

    coca = load_open_clip(tiny_coca[1])
    image = _image(seed=5)
    def run(settings, seed):
        return caption_text(coca, generate_tokens(coca, image, settings, torch.Generator().manual_seed(seed)))

    for strategy in ("top_k", "top_p"):
        settings = GenerationSettings(strategy=strategy, max_tokens=6)
        first = run(settings, 0)
        assert isinstance(first, str) and first and first == run(settings, 0)
    with pytest.raises(ValueError, match="beam"):
        GenerationSettings(strategy="beam")


def test_coca_captioner_adds_the_degradation_phrase(tiny_coca, rain_and_noise):
    alone = create_captioner("coca", model=tiny_coca[1], with_degradation=False).caption(_image())
    combined = create_captioner("coca", model=tiny_coca[1], classifier=str(rain_and_noise)).caption(_image())
    assert alone.source == "coca" and alone.text
    assert combined.text == f"{alone.text}, with heavy rain streaks and mild noise"
    assert combined.source == "coca+degradation" and combined.labels == ["rain", "noise"]


# -- text encoders ----------------------------------------------------------------------------------

def _cos(a, b) -> float:
    return float(F.cosine_similarity(a.pooled, b.pooled))


def test_minilm_is_offline_and_separates_degradations(minilm):
    rain = minilm.encode("remove the rain streaks from this photo")
    rain_again = minilm.encode("take the rain out of this picture")
    dark = minilm.encode("brighten this dark underexposed image")
    noise = minilm.encode("denoise this grainy photo")
    assert minilm.name == "minilm" and rain.pooled.shape == (1, 384)
    assert _cos(rain, rain_again) > 0.6
    assert _cos(rain, rain_again) > _cos(rain, dark) + 0.2 and _cos(rain, rain_again) > _cos(rain, noise) + 0.2
    assert minilm.encode("take the rain out of this picture") is rain_again  # cached


@pytest.fixture(scope="module")
def tiny_clip_file(tmp_path_factory):
    from irestore.conditioning.open_clip_models import save_open_clip_weights

    model = open_clip_tiny.random_model(open_clip_tiny.CLIP_ARCH, seed=2)
    return model, save_open_clip_weights(model, tmp_path_factory.mktemp("clip") / "tiny.safetensors")


def test_clip_text_encoder_keeps_only_the_text_tower_and_matches_open_clip(tiny_clip_file):
    import open_clip

    from irestore.registry import create_text_encoder

    model, path = tiny_clip_file
    name = f"clip:{open_clip_tiny.CLIP_ARCH}:{path}"
    encoder = create_text_encoder(name)
    assert encoder.name == name and encoder.dim == 16
    assert encoder.clip.model.visual is None
    got = encoder.encode("remove the haze")
    ids = open_clip.get_tokenizer(open_clip_tiny.CLIP_ARCH)(["remove the haze"])
    with torch.inference_mode():
        expected = model.encode_text(ids)
    assert torch.allclose(got.pooled, F.normalize(expected, dim=-1), atol=1e-6)
    n = int((ids[0] != 0).sum())  # start, three words, end
    assert got.tokens.shape == (1, n, 16) and got.mask.all()
    assert torch.allclose(got.tokens[:, -1], expected, atol=1e-5)  # CLIP pools the end token


def test_unknown_text_encoder_lists_the_known_ones():
    from irestore.registry import create_text_encoder

    with pytest.raises(KeyError, match="clip, minilm"):
        create_text_encoder("t5")


def test_restorer_checks_the_encoder_name_not_only_its_width(tmp_path, minilm):
    from irestore.conditioning.open_clip_models import save_open_clip_weights
    from irestore.conditioning.text import ClipTextEncoder
    from irestore.diffusion.checkpoint import CheckpointInfo, save_checkpoint
    from irestore.diffusion.sde import SDEConfig
    from irestore.pipeline import Restorer
    from irestore.registry import create_network

    clip384 = open_clip_tiny.random_model(open_clip_tiny.CLIP384_ARCH)
    encoder = ClipTextEncoder(f"{open_clip_tiny.CLIP384_ARCH}:{save_open_clip_weights(clip384, tmp_path / 'c.safetensors')}")
    assert encoder.dim == 384 == minilm.dim
    net = create_network("erunet-tiny", text_dim=384)
    info = CheckpointInfo(network=net.config, sde=SDEConfig(), text_encoder="minilm", text_dim=384, name="t")
    checkpoint = save_checkpoint(tmp_path / "ck", net, info)
    with pytest.raises(ValueError, match="trained with text encoder 'minilm'.*given 'clip:"):
        Restorer.from_pretrained(checkpoint, device="cpu", text_encoder=encoder)
    assert Restorer.from_pretrained(checkpoint, device="cpu", text_encoder=minilm).text_encoder is minilm


# -- `irestore caption` -----------------------------------------------------------------------------

def _app() -> typer.Typer:
    return app


def _folder(root):
    (root / "nested").mkdir(parents=True)
    PILImage.fromarray(_photo()).save(root / "cat.png")
    PILImage.fromarray(_photo(30, 40)).save(root / "nested" / "small.jpg")
    (root / "empty.png").write_bytes(b"")
    return root


def _hashes(root) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def test_caption_cli_json_sidecars_and_a_jsonl_that_restore_can_read(tmp_path, rain_and_noise):
    from irestore.data.prompts import load_prompt_file

    src = _folder(tmp_path / "in")
    images_before = _hashes(src)
    jsonl = tmp_path / "captions.jsonl"
    args = ["caption", str(src), "--classifier", str(rain_and_noise), "--json", "--write-sidecars", "--jsonl", str(jsonl)]
    result = runner.invoke(_app(), args)
    assert result.exit_code == 1, result.output  # empty.png cannot be read; the rest is captioned
    rows = {row["path"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert rows["empty.png"]["status"] == "failed" and "empty" in rows["empty.png"]["error"]
    expected = "a photo with heavy rain streaks and mild noise"
    for name in ("cat.png", "nested/small.jpg"):
        assert rows[name]["caption"] == expected and rows[name]["labels"] == ["rain", "noise"]
    assert (src / "cat.txt").read_text() == expected + "\n"
    assert (src / "nested" / "small.txt").is_file() and not (src / "empty.txt").exists()
    assert {k: v for k, v in _hashes(src).items() if not k.endswith(".txt")} == images_before
    assert load_prompt_file(jsonl) == {"cat.png": expected, "nested/small.jpg": expected}
    assert "empty.png" in result.stderr


def test_caption_cli_keeps_existing_sidecars_unless_overwrite(tmp_path, rain_and_noise):
    PILImage.fromarray(_photo()).save(tmp_path / "cat.png")
    (tmp_path / "cat.txt").write_text("written by a person\n")
    base = ["caption", str(tmp_path / "cat.png"), "--classifier", str(rain_and_noise), "--write-sidecars", "--json"]
    kept = json.loads(runner.invoke(_app(), base).stdout)
    assert "kept existing" in kept["sidecar"] and (tmp_path / "cat.txt").read_text() == "written by a person\n"
    runner.invoke(_app(), [*base, "--overwrite"])
    assert (tmp_path / "cat.txt").read_text().startswith("a photo with heavy rain")


def test_caption_cli_coca_and_file_captioners(tmp_path, tiny_coca):
    PILImage.fromarray(_photo()).save(tmp_path / "cat.png")
    coca = runner.invoke(_app(), ["caption", str(tmp_path), "--captioner", "coca", "--model", tiny_coca[1],
                                  "--classifier", "none", "--json"])
    assert coca.exit_code == 0, coca.output
    row = json.loads(coca.stdout)
    assert row["caption_source"] == "coca" and isinstance(row["caption"], str) and row["caption"]
    (tmp_path / "cat.txt").write_text("a cat, slightly noisy\n")
    from_file = runner.invoke(_app(), ["caption", str(tmp_path), "--captioner", "file", "--json"])
    assert json.loads(from_file.stdout)["caption"] == "a cat, slightly noisy"


def test_caption_cli_missing_classifier_is_a_clear_usage_error(tmp_path):
    PILImage.fromarray(_photo()).save(tmp_path / "cat.png")
    missing = register_missing_classifier()
    result = runner.invoke(_app(), ["caption", str(tmp_path), "--classifier", missing])
    assert result.exit_code == 2
    assert missing in result.stderr and "irestore models import" in result.stderr
    unknown = runner.invoke(_app(), ["caption", str(tmp_path), "--captioner", "blip"])
    assert unknown.exit_code == 2 and "degradation, coca, file" in unknown.stderr


# -- `irestore restore --prompt-from-caption` -------------------------------------------------------

def test_restore_prompt_from_caption_records_the_caption_in_the_manifest(tmp_path, monkeypatch, rain_and_noise):
    from irestore.cli.app import app
    from irestore.weights.store import import_model

    monkeypatch.setenv("IRESTORE_HOME", str(tmp_path / "home"))
    import_model("degnet-default", rain_and_noise)  # the default classifier, supplied through the store
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    PILImage.fromarray(_photo()).save(src / "cat.png")
    PILImage.fromarray(_photo()).save(src / "dog.png")
    (src / "dog.txt").write_text("remove the noise\n")  # a person's prompt wins over the caption
    result = runner.invoke(app, ["restore", str(src), str(out), "--model", "ffdnet-color", "--prompt-from-caption", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["relative"]: row for row in map(json.loads, result.stdout.splitlines())}
    cat, dog = rows["cat.png"], rows["dog.png"]
    assert cat["status"] == "done" and cat["prompt_source"] == "caption"
    assert cat["prompt"] == cat["caption"] == "a photo with heavy rain streaks and mild noise"
    assert cat["caption_source"] == "degradation" and cat["labels"] == ["rain", "noise"]
    assert dog["prompt"] == "remove the noise" and dog["prompt_source"] == "sidecar" and dog["caption"] is None
    manifest = [json.loads(line) for line in (out / "irestore-manifest.jsonl").read_text().splitlines()]
    assert {r["relative"]: r["caption"] for r in manifest}["cat.png"] == cat["caption"]


def test_restore_prompt_and_prompt_from_caption_exclude_each_other(tmp_path):
    from irestore.cli.app import app

    PILImage.fromarray(_photo()).save(tmp_path / "cat.png")
    result = runner.invoke(app, ["restore", str(tmp_path / "cat.png"), str(tmp_path / "o.png"), "--prompt", "x",
                                 "--prompt-from-caption"])
    assert result.exit_code == 2 and "exclude each other" in result.output
