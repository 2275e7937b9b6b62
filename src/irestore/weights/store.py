"""The model store seen as a whole: what is registered, what is here, and putting files in place.

Built on :mod:`irestore.weights` (which resolves one name). Names are the registered ones
(``irestore models list``) or any open_clip ``ARCH:TAG``. Downloaded and imported files get a
``<file>.sha256`` record beside them, so ``verify`` can tell a damaged file even where the
registry declares no checksum.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from irestore.io import atomic_path, atomic_write_text
from irestore.registry import WEIGHTS, list_weights, weights_source
from irestore.weights import (
    MissingWeightsError,
    WeightSource,
    cache_path,
    file_sha256,
    find_local,
    locate,
    resolve_weights,
)

CHECKSUM_SUFFIX = ".sha256"


class StoreError(ValueError):
    """A store operation that cannot be done; the message names the file and the reason."""


@dataclass(frozen=True)
class ModelStatus:
    name: str
    kind: str
    filename: str
    description: str
    present: bool
    where: str  # cache | package | hf-cache | absent
    path: str | None
    size: int | None
    download: str | None
    sha256: str | None  # the registry's reference checksum, if any

    def to_dict(self) -> dict:
        return asdict(self)


def source_for(name: str) -> WeightSource:
    """The registered source of a name, or of an open_clip ``ARCH:TAG`` (registered on the way)."""
    WEIGHTS.load()
    if name in list_weights():
        return weights_source(name)
    if ":" in name:
        from irestore.conditioning.open_clip_models import parse_spec, weight_source

        spec = parse_spec(name)
        if spec.is_tag:
            return weight_source(spec)
    raise StoreError(f"no model named {name!r}; known: {', '.join(list_weights())} (or an open_clip ARCH:TAG)")


def model_status(name: str) -> ModelStatus:
    source = source_for(name)
    path, where = locate(source) or (None, "absent")
    return ModelStatus(
        name=source.name,
        kind=source.kind,
        filename=source.filename,
        description=source.description,
        present=path is not None,
        where=where,
        path=str(path) if path else None,
        size=sum((path.parent / n).stat().st_size for n in (path.name, *source.companions)) if path else None,
        download=source.download_url(),
        sha256=source.sha256,
    )


def list_models() -> list[ModelStatus]:
    WEIGHTS.load()
    return [model_status(name) for name in list_weights()]


def model_path(name: str, offline: bool | None = True) -> Path:
    """Where a model resolves; MissingWeightsError (saying how to supply it) when absent."""
    return resolve_weights(source_for(name).name, offline=offline)


def download_model(name: str, offline: bool | None = None) -> tuple[Path, bool]:
    """Fetch a model into the cache unless it is already here; returns (path, downloaded)."""
    source = source_for(name)
    local = find_local(source)
    if local is not None:
        return local, False
    path = resolve_weights(source.name, offline=offline)
    _record_checksum(path)
    return path, True


def _record_checksum(path: Path) -> str:
    digest = file_sha256(path)
    atomic_write_text(path.with_name(path.name + CHECKSUM_SUFFIX), f"{digest}  {path.name}\n")
    return digest


def _import_target(source: WeightSource, file: Path) -> str:
    """The store file name for an imported file: the expected name, or the alternate with its suffix."""
    for name in source.filenames:
        if file.suffix.lower() == Path(name).suffix.lower():
            return name
    wanted = " or ".join(sorted({Path(n).suffix for n in source.filenames}))
    raise StoreError(f"{file}: model {source.name!r} expects a {wanted} file ({source.filename})")


def _validate(source: WeightSource, file: Path) -> None:
    """Refuse a file that cannot be what it claims, before it enters the store."""
    if source.sha256 and file_sha256(file) != source.sha256.lower():
        raise StoreError(f"{file}: sha256 differs from the one registered for {source.name!r}; not imported")
    if file.suffix.lower() != ".safetensors":
        return
    from irestore.diffusion.checkpoint import CheckpointError

    try:
        if source.kind == "classifier":
            from irestore.conditioning.classifier import read_classifier_info

            read_classifier_info(file)
        else:
            from safetensors import safe_open

            with safe_open(str(file), framework="pt") as handle:
                handle.keys()
    except (CheckpointError, OSError) as error:
        raise StoreError(f"{file}: not a usable {source.kind} file ({error})") from error
    except Exception as error:  # safetensors raises its own error types for a bad header
        raise StoreError(f"{file}: not a safetensors file ({error})") from error


def import_model(name: str, file: str | Path) -> Path:
    """Copy a local file into the cache under the model's name (atomic; the source is not touched)."""
    source = source_for(name)
    file = Path(file).expanduser()
    if file.is_dir() and (file / "model.safetensors").is_file():
        file = file / "model.safetensors"  # an irestore checkpoint folder
    if source.companions:
        return _import_with_companions(source, file)
    if not file.is_file():
        raise StoreError(f"{file}: no such file")
    target = cache_path(source, _import_target(source, file))
    _validate(source, file)
    _copy_in(file, target)
    return target


def _copy_in(file: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        shutil.copyfile(file, tmp)
    _record_checksum(target)


def _import_with_companions(source: WeightSource, file: Path) -> Path:
    """A model of several files (an ncnn ``.param`` and its ``.bin``): given any one of them, or
    their folder, take them all from that folder, under the store's names."""
    folder = file if file.is_dir() else file.parent
    names = (source.filename, *source.companions)
    if file.is_file():  # the user's own file names: the same stem, the expected suffixes
        picked = [file.with_suffix(Path(name).suffix) for name in names]
    else:
        picked = [folder / name for name in names]
    missing = [str(p) for p in picked if not p.is_file()]
    if missing:
        raise StoreError(f"{file}: model {source.name!r} needs {' and '.join(names)}; missing: {', '.join(missing)}")
    _validate_ncnn(source, picked[0], picked[1])
    for path, name in zip(picked, names):
        _copy_in(path, cache_path(source, name))
    return cache_path(source, source.filename)


def _validate_ncnn(source: WeightSource, param: Path, weights: Path) -> None:
    """The pair must load into the port that runs the model (the right network, weights that fit)."""
    from irestore.models.ncnn import NcnnError, read_ncnn
    from irestore.restorers.ported import PORTED

    try:
        PORTED[source.name].build(read_ncnn(param, weights))
    except NcnnError as error:
        raise StoreError(f"not a usable {source.name!r} model: {error}") from error


@dataclass(frozen=True)
class Verification:
    name: str
    path: str | None
    sha256: str | None
    expected: str | None  # registry checksum, else the one recorded at download/import
    status: str  # ok | mismatch | unchecked (nothing to compare with) | absent

    def to_dict(self) -> dict:
        return asdict(self)


def _recorded_checksum(path: Path) -> str | None:
    record = path.with_name(path.name + CHECKSUM_SUFFIX)
    if not record.is_file():
        return None
    text = record.read_text(encoding="utf-8").split()
    return text[0].lower() if text else None


def verify_model(name: str) -> Verification:
    source = source_for(name)
    path = find_local(source)
    if path is None:
        return Verification(source.name, None, None, source.sha256, "absent")
    digest = file_sha256(path)
    expected = (source.sha256 or "").lower() or _recorded_checksum(path)
    status = "unchecked" if expected is None else ("ok" if digest == expected else "mismatch")
    for companion in (path.parent / name for name in source.companions):  # recorded on import, if imported
        recorded = _recorded_checksum(companion)
        if recorded is not None and file_sha256(companion) != recorded:
            status = "mismatch"
    return Verification(source.name, str(path), digest, expected, status)


def verify_models(names: list[str] | None = None) -> list[Verification]:
    WEIGHTS.load()
    return [verify_model(name) for name in (names or list_weights())]


__all__ = [
    "MissingWeightsError",
    "ModelStatus",
    "StoreError",
    "Verification",
    "download_model",
    "import_model",
    "list_models",
    "model_path",
    "model_status",
    "source_for",
    "verify_model",
    "verify_models",
]
