"""open_clip models (CLIP, CoCa) from a pretrained tag or a local checkpoint, offline first.

A model is named by a spec:

- ``ARCH:TAG``: an open_clip architecture and pretrained tag, e.g. ``ViT-B-32:laion2b_s34b_b79k``;
- ``ARCH:FILE``: the architecture with a local checkpoint (``.safetensors``, ``.bin``, ``.pt``);
- ``local-dir:FOLDER`` or a folder: ``open_clip_config.json`` + weights (open_clip's layout);
- an alias from :data:`ALIASES` (``clip-b32``, ``coca-b32``).

Tag weights resolve through the model store (:mod:`irestore.weights`): the irestore cache, then
the Hugging Face cache, then a download only when allowed. The lookup runs before open_clip is
imported and never calls hub code offline, so a missing file is one clear error at once.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import posixpath
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from irestore.registry import register_weights, weights_source
from irestore.weights import MissingWeightsError, WeightSource, resolve_weights

LOCAL_DIR = "local-dir:"
SAFE_WEIGHTS = "open_clip_model.safetensors"  # open_clip's names for a hub repo's weights
PICKLE_WEIGHTS = "open_clip_pytorch_model.bin"

# store name -> (architecture, pretrained tag)
ALIASES: dict[str, tuple[str, str]] = {
    "clip-b32": ("ViT-B-32", "laion2b_s34b_b79k"),
    "coca-b32": ("coca_ViT-B-32", "mscoco_finetuned_laion2b_s13b_b90k"),
}
_ALIAS_REPOS = {  # known without reading open_clip's tag table
    "clip-b32": "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
    "coca-b32": "laion/mscoco_finetuned_CoCa-ViT-B-32-laion2B-s13B-b90k",
}
DEFAULT_CLIP = "clip-b32"
DEFAULT_COCA = "coca-b32"


class OpenClipError(ValueError):
    """A spec that names no usable open_clip model; the message says what was expected."""


@dataclass(frozen=True)
class OpenClipSpec:
    arch: str  # open_clip config name, or "local-dir:FOLDER"
    pretrained: str | None = None  # a tag, a checkpoint file, or None (local-dir)

    @property
    def is_tag(self) -> bool:
        return self.pretrained is not None and not _looks_like_file(self.pretrained)

    def __str__(self) -> str:
        return self.arch if self.pretrained is None else f"{self.arch}:{self.pretrained}"


def _looks_like_file(text: str) -> bool:
    return os.sep in text or "/" in text or Path(text).suffix in (".safetensors", ".bin", ".pt", ".pth")


def parse_spec(text: str) -> OpenClipSpec:
    """An alias, ``ARCH:TAG``, ``ARCH:FILE``, ``local-dir:FOLDER`` or a folder -> spec."""
    text = str(text).strip()
    if text in ALIASES:
        return OpenClipSpec(*ALIASES[text])
    if text.startswith(LOCAL_DIR):
        return OpenClipSpec(LOCAL_DIR + str(Path(text[len(LOCAL_DIR) :]).expanduser().resolve()))
    if Path(text).expanduser().is_dir():
        return OpenClipSpec(LOCAL_DIR + str(Path(text).expanduser().resolve()))
    arch, sep, pretrained = text.partition(":")
    if not sep or not arch or not pretrained:
        raise OpenClipError(
            f"open_clip model {text!r}: expected ARCH:TAG (e.g. ViT-B-32:laion2b_s34b_b79k), ARCH:FILE, "
            f"a folder with open_clip_config.json, or one of {', '.join(ALIASES)}"
        )
    if _looks_like_file(pretrained):
        pretrained = str(Path(pretrained).expanduser().resolve())
    return OpenClipSpec(arch, pretrained)


# -- the tag table, without importing open_clip ----------------------------------------------

_TAG_TABLE = "_irestore_open_clip_tags"


def _pretrained_table() -> types.ModuleType:
    """open_clip's ``pretrained`` module. Importing open_clip itself takes seconds (its package
    imports transformers); the tag table needs only two sibling modules, so those are loaded as
    a private package when open_clip is not imported yet."""
    if "open_clip.pretrained" in sys.modules:
        return sys.modules["open_clip.pretrained"]
    if _TAG_TABLE + ".pretrained" in sys.modules:
        return sys.modules[_TAG_TABLE + ".pretrained"]
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise OpenClipError("open_clip models need the open_clip_torch package: pip install open_clip_torch")
    package = types.ModuleType(_TAG_TABLE)
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules[_TAG_TABLE] = package
    try:
        return importlib.import_module(_TAG_TABLE + ".pretrained")
    except Exception:  # noqa: BLE001 - a future open_clip layout: take the slow, sure way
        del sys.modules[_TAG_TABLE]
        return importlib.import_module("open_clip.pretrained")


def tag_config(spec: OpenClipSpec) -> dict:
    """The pretrained-tag entry of open_clip's table (hub repo or URL, preprocessing, quick_gelu)."""
    table = _pretrained_table()
    cfg = table.get_pretrained_cfg(spec.arch, spec.pretrained)
    if not cfg:
        known = table.list_pretrained_tags_by_model(spec.arch)
        hint = f"known tags for {spec.arch}: {', '.join(known)}" if known else f"no pretrained tags for {spec.arch!r}"
        raise OpenClipError(f"open_clip model {spec}: unknown pretrained tag ({hint}); or give ARCH:FILE")
    return cfg


def store_name(spec: OpenClipSpec) -> str:
    """The model-store name of a tag: its alias, else ``open_clip-ARCH-TAG``."""
    for alias, (arch, tag) in ALIASES.items():
        if (arch, tag) == (spec.arch, spec.pretrained):
            return alias
    return f"open_clip-{spec.arch}-{spec.pretrained}".lower()


def _source(name: str, spec: OpenClipSpec, cfg: dict) -> WeightSource:
    kind = "coca" if spec.arch.lower().startswith("coca") else "open_clip"
    hint = f"pass a local checkpoint as {spec.arch}:FILE"
    common = {"name": name, "kind": kind, "description": str(spec), "install_hint": hint}
    hub = cfg.get("hf_hub", "")
    if hub:
        repo, filename = posixpath.split(hub)  # "org/repo/" or "org/repo/file.bin", as open_clip reads it
        if not filename:
            return WeightSource(filename=SAFE_WEIGHTS, hf_repo=repo, alternates=(PICKLE_WEIGHTS,), **common)
        if filename.endswith((".bin", ".pth")):  # open_clip tries the safetensors twin first
            return WeightSource(filename=filename[:-4] + ".safetensors", hf_repo=repo, alternates=(filename,), **common)
        return WeightSource(filename=filename, hf_repo=repo, **common)
    if not cfg.get("url"):
        raise OpenClipError(f"open_clip model {spec}: its tag names no hub repository or URL to fetch from")
    return WeightSource(filename=os.path.basename(cfg["url"]), url=cfg["url"], **common)


def weight_source(spec: OpenClipSpec) -> WeightSource:
    """The store entry of a tag spec, registered on first use."""
    name = store_name(spec)
    if name in _ALIAS_REPOS:
        return weights_source(name)
    source = _source(name, spec, tag_config(spec))
    register_weights(source)
    return source


def _register_aliases() -> None:
    for name, (arch, tag) in ALIASES.items():
        spec = OpenClipSpec(arch, tag)
        cfg = {"hf_hub": _ALIAS_REPOS[name] + "/"}
        register_weights(_source(name, spec, cfg))


_register_aliases()


def resolve_checkpoint(spec: OpenClipSpec, offline: bool | None = None) -> Path | None:
    """A local weights file for the spec (None for local-dir, whose folder holds them)."""
    if spec.pretrained is None:
        folder = Path(spec.arch[len(LOCAL_DIR) :])
        if not (folder / "open_clip_config.json").is_file():
            raise MissingWeightsError(f"open_clip folder {folder}: no open_clip_config.json there")
        return None
    if not spec.is_tag:
        path = Path(spec.pretrained)
        if not path.is_file():
            raise MissingWeightsError(f"open_clip checkpoint {path} does not exist; pass an existing file as ARCH:FILE")
        return path
    return resolve_weights(weight_source(spec).name, offline=offline)


# -- loading -------------------------------------------------------------------------------------


@dataclass
class OpenClipModel:
    """A loaded open_clip model with its tokenizer and tensor preprocessing settings."""

    model: nn.Module
    tokenizer: Any
    spec: OpenClipSpec
    image_size: tuple[int, int]
    mean: Tensor  # (1, 3, 1, 1)
    std: Tensor

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def preprocess(self, image: Tensor) -> Tensor:
        """1x3xHxW in [0, 1] -> the model's input: shortest side resized (bicubic), centre crop, normalised."""
        height, width = self.image_size
        scale = max(height / image.shape[-2], width / image.shape[-1])
        size = (max(height, round(image.shape[-2] * scale)), max(width, round(image.shape[-1] * scale)))
        resized = F.interpolate(image.float(), size=size, mode="bicubic", antialias=True, align_corners=False)
        top, left = (size[0] - height) // 2, (size[1] - width) // 2
        crop = resized[..., top : top + height, left : left + width].clamp(0, 1)
        return (crop.to(self.device) - self.mean) / self.std

    def tokenize(self, texts: list[str]) -> Tensor:
        return self.tokenizer(texts).to(self.device)


def load_open_clip(
    spec_text: str | OpenClipSpec, device: str | torch.device = "cpu", offline: bool | None = None
) -> OpenClipModel:
    """Build the architecture and load its weights; MissingWeightsError before any hub call."""
    spec = spec_text if isinstance(spec_text, OpenClipSpec) else parse_spec(spec_text)
    checkpoint = resolve_checkpoint(spec, offline)
    overrides = _tag_overrides(spec) if spec.is_tag else {}
    import open_clip

    if spec.pretrained is None:
        model = open_clip.create_model(spec.arch, device=device)
    else:
        if open_clip.get_model_config(spec.arch) is None:
            raise OpenClipError(f"open_clip model {spec}: unknown architecture {spec.arch!r}")
        model = open_clip.create_model(spec.arch, pretrained=str(checkpoint), device=device, **overrides)
    return wrap_model(model.eval().requires_grad_(False), open_clip.get_tokenizer(spec.arch), spec)


def _tag_overrides(spec: OpenClipSpec) -> dict:
    """What open_clip would take from the tag entry when loading by tag: activation and preprocessing."""
    cfg = tag_config(spec)
    preprocess = {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in cfg}
    return {"force_quick_gelu": bool(cfg.get("quick_gelu", False)), "force_preprocess_cfg": preprocess}


def wrap_model(model: nn.Module, tokenizer: Any, spec: OpenClipSpec) -> OpenClipModel:
    """Pair a built open_clip model with its tokenizer and preprocessing constants."""
    from open_clip import get_model_preprocess_cfg

    cfg = get_model_preprocess_cfg(model)
    size = cfg.get("size", 224)
    size = (size, size) if isinstance(size, int) else tuple(size)
    device = next(model.parameters()).device
    mean = torch.tensor(cfg.get("mean", (0.5, 0.5, 0.5)), device=device).view(1, 3, 1, 1)
    std = torch.tensor(cfg.get("std", (0.5, 0.5, 0.5)), device=device).view(1, 3, 1, 1)
    return OpenClipModel(model, tokenizer, spec, size, mean, std)


def save_open_clip_weights(model: nn.Module, path: str | Path) -> Path:
    """A model's state dict as a safetensors file loadable as ``ARCH:FILE`` (atomic write)."""
    from safetensors.torch import save_file

    from irestore.io import atomic_path

    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))
    return Path(path)
