"""`irestore models list|path|download|verify|import` and the offline-first model store behind
them: real files in a private IRESTORE_HOME, a real Hugging Face cache layout, file:// downloads,
and no network (a socket guard fails any connection attempt)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

import open_clip_tiny
from classifier_checkpoints import random_checkpoint
from irestore.cli.app import app
from irestore.conditioning.open_clip_models import load_open_clip, save_open_clip_weights
from irestore.registry import WEIGHTS, register_weights
from irestore.weights import sources as weights

runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Private cache, offline as in every test, a registry copy tests may extend, no sockets."""
    monkeypatch.setenv("IRESTORE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with WEIGHTS.scoped():  # what a test registers is gone after it
        yield

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def _app() -> typer.Typer:
    return app


def _invoke(*args: str):
    return runner.invoke(_app(), ["models", *args])


def _listing() -> dict:
    result = _invoke("list", "--json")
    assert result.exit_code == 0, result.output
    return {row["name"]: row for row in json.loads(result.stdout)}


def test_list_shows_every_registered_model_with_kind_and_presence():
    rows = _listing()
    assert {"degnet-default", "clip-b32", "coca-b32", "ffdnet-color"} <= set(rows)
    assert rows["ffdnet-color"]["present"] and rows["ffdnet-color"]["where"] == "package"
    assert rows["ffdnet-color"]["size"] > 3_000_000
    assert rows["degnet-default"]["kind"] == "classifier" and rows["degnet-default"]["where"] == "package"
    assert rows["allinone-small"]["kind"] == "restorer" and rows["allinone-small"]["where"] == "package"
    assert rows["clip-b32"]["kind"] == "open_clip" and rows["coca-b32"]["kind"] == "coca"
    assert "laion/CLIP-ViT-B-32-laion2B-s34B-b79K" in rows["clip-b32"]["download"]


def test_import_then_path_list_and_verify_a_classifier(tmp_path):
    folder, _ = random_checkpoint(tmp_path / "ck")
    imported = _invoke("import", "degnet-default", str(folder))
    assert imported.exit_code == 0, imported.output
    target = weights.irestore_home() / "models" / "degnet-default" / "model.safetensors"
    assert imported.stdout.strip() == str(target)
    assert target.read_bytes() == (folder / "model.safetensors").read_bytes()
    assert _invoke("path", "degnet-default").stdout.strip() == str(target)
    row = _listing()["degnet-default"]
    assert row["present"] and row["where"] == "cache" and row["size"] == target.stat().st_size
    verified = _invoke("verify", "degnet-default", "--json")
    assert verified.exit_code == 0 and json.loads(verified.stdout)[0]["status"] == "ok"

    from irestore.conditioning.classifier import DegradationClassifier

    image = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    by_name = DegradationClassifier.from_pretrained().classify(image)  # the default name, from the store
    by_path = DegradationClassifier.from_pretrained(folder).classify(image)
    assert by_name.probabilities == by_path.probabilities

    with open(target, "ab") as handle:  # damage the stored copy
        handle.write(b"\0")
    damaged = _invoke("verify", "--json")
    assert damaged.exit_code == 1
    assert {r["name"]: r["status"] for r in json.loads(damaged.stdout)}["degnet-default"] == "mismatch"


def test_import_refuses_files_that_are_not_what_the_model_needs(tmp_path):
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(other))
    not_classifier = _invoke("import", "degnet-default", str(other))
    assert not_classifier.exit_code == 1 and "not a usable classifier file" in not_classifier.stderr
    pickle = tmp_path / "weights.pth"
    pickle.write_bytes(b"x")
    wrong_kind = _invoke("import", "degnet-default", str(pickle))
    assert wrong_kind.exit_code == 1 and "expects a .safetensors file" in wrong_kind.stderr
    missing = _invoke("import", "degnet-default", str(tmp_path / "nope.safetensors"))
    assert missing.exit_code == 1 and "no such file" in missing.stderr
    assert not (weights.irestore_home() / "models" / "degnet-default").exists()
    unknown = _invoke("import", "no-such-model", str(other))
    assert unknown.exit_code == 1 and "no model named 'no-such-model'" in unknown.stderr


def test_missing_open_clip_weights_offline_say_what_to_do_without_network():
    for command in (("path", "clip-b32"), ("download", "clip-b32"), ("path", "ViT-B-16:openai")):
        result = _invoke(*command)
        assert result.exit_code == 1
        message = result.stderr
        assert "open_clip_model.safetensors" in message and "offline" in message
        assert "irestore models download" in message and "irestore models import" in message
        assert "Traceback" not in result.output


@pytest.fixture
def tiny_tag(monkeypatch, request):
    """A pretrained tag for the tiny CLIP architecture, added to open_clip's real tag table; its
    hub repository is named after the test (the Hugging Face cache lives for the whole session)."""
    import open_clip.pretrained

    open_clip_tiny.register()
    repo = f"irestore-tests/{request.node.name[:60]}"
    tag = {"tiny": {"hf_hub": f"{repo}/", "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}}
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, open_clip_tiny.CLIP_ARCH, tag)
    return f"{open_clip_tiny.CLIP_ARCH}:tiny", repo


def test_imported_open_clip_tag_loads_offline_with_identical_outputs(tmp_path, tiny_tag):
    tiny_tag, _ = tiny_tag
    model = open_clip_tiny.random_model(open_clip_tiny.CLIP_ARCH, seed=9)
    file = save_open_clip_weights(model, tmp_path / "anything.safetensors")
    assert _invoke("import", tiny_tag, str(file)).exit_code == 0
    loaded = load_open_clip(tiny_tag, offline=True)
    assert loaded.mean.flatten().tolist() == [0.5] * 3 and loaded.std.flatten().tolist() == [0.25] * 3  # the tag's
    text = loaded.tokenize(["rain"])
    with torch.inference_mode():
        assert torch.equal(loaded.model.encode_text(text), model.encode_text(text))
    row = json.loads(_invoke("list", "--json").stdout)
    assert any(r["description"] == tiny_tag and r["present"] for r in row)


def test_weights_already_in_the_hugging_face_cache_are_used_offline(tmp_path, tiny_tag):
    """open_clip (through huggingface_hub) may have downloaded a tag before: found by a local lookup."""
    from huggingface_hub import constants

    model = open_clip_tiny.random_model(open_clip_tiny.CLIP_ARCH, seed=10)
    tiny_tag, hub_repo = tiny_tag
    repo = Path(constants.HF_HUB_CACHE) / ("models--" + hub_repo.replace("/", "--"))
    snapshot = repo / "snapshots" / "0123456789abcdef"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123456789abcdef")
    cached = snapshot / "open_clip_pytorch_model.bin"  # the pickle twin of the safetensors name
    torch.save(model.state_dict(), cached)
    assert _invoke("path", tiny_tag).stdout.strip() == str(cached)
    status = json.loads(_invoke("list", "--json").stdout)
    assert any(r["description"] == tiny_tag and r["where"] == "hf-cache" for r in status)
    loaded = load_open_clip(tiny_tag, offline=True)
    text = loaded.tokenize(["haze"])
    with torch.inference_mode():
        assert torch.equal(loaded.model.encode_text(text), model.encode_text(text))


def test_download_from_a_declared_url_records_a_checksum(tmp_path, monkeypatch):
    remote = tmp_path / "remote.bin"
    remote.write_bytes(b"weights" * 1000)
    register_weights(weights.WeightSource(name="test-asset", filename="asset.bin", url=remote.as_uri()))
    offline = _invoke("download", "test-asset")
    assert offline.exit_code == 1 and "offline" in offline.stderr
    monkeypatch.delenv("HF_HUB_OFFLINE")
    fetched = _invoke("download", "test-asset")
    assert fetched.exit_code == 0, fetched.output
    target = weights.irestore_home() / "models" / "test-asset" / "asset.bin"
    assert fetched.stdout.strip() == str(target) and target.read_bytes() == remote.read_bytes()
    assert "downloaded" in fetched.stderr
    assert "already present" in _invoke("download", "test-asset").stderr
    verified = json.loads(_invoke("verify", "test-asset", "--json").stdout)[0]
    assert verified["status"] == "ok" and (target.parent / "asset.bin.sha256").is_file()


def test_offline_flag_forbids_the_download_that_the_environment_would_allow(tmp_path, monkeypatch, tiny_tag):
    from PIL import Image as PILImage

    monkeypatch.delenv("HF_HUB_OFFLINE")
    PILImage.new("RGB", (40, 40)).save(tmp_path / "a.png")
    result = runner.invoke(app, ["classify", str(tmp_path / "a.png"), "--backend", "clip", "--model", tiny_tag[0], "--offline"])
    assert result.exit_code == 2  # and no connection was attempted (the socket guard would have failed the test)
    assert "skipped (offline" in result.stderr and "irestore models import" in result.stderr


def test_top_level_help_lists_every_subcommand_without_importing_them():
    """`irestore --help` must not import the subcommand modules (and torch with them); the
    listed one-line helps are those of the real commands."""
    code = ("import sys; from irestore.cli.app import app; sys.argv = ['irestore', '--help']\n"
            "try:\n    app()\nexcept SystemExit:\n    pass\n"
            "print('IMPORTED', sorted(m for m in sys.modules if m == 'torch' or m.startswith('irestore.cli.')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "IMPORTED ['irestore.cli.app']" in result.stdout
    from irestore.cli.app import SUBCOMMANDS, load_subcommand

    for name, (_, listed) in SUBCOMMANDS.items():
        assert name in result.stdout
        assert load_subcommand(name).get_short_help_str(limit=300) == listed


@pytest.mark.parametrize("command", [["restore"], ["benchmark"], ["train"], ["models", "list"]])
def test_help_reads_at_80_columns_with_every_option_name_whole(command):
    args = [*command, "--help"] if command != ["models", "list"] else ["models", "list"]
    result = subprocess.run([sys.executable, "-m", "irestore.cli", *args], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "COLUMNS": "80", "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    text = result.stdout + result.stderr
    boxed = [line for line in text.splitlines() if not line.startswith("  ") or command != ["models", "list"]]
    assert max(len(line) for line in boxed) <= 80  # the model list's path lines are whole instead
    if command == ["restore"]:
        for option in ("--prompt-from-caption", "--max-memory", "--tile-overlap", "--precision", "--dry-run"):
            assert option in text
    if command == ["models", "list"]:  # URLs and paths are never broken across lines
        assert "https://huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K/resolve/main/open_clip_model.safetensors" in text
