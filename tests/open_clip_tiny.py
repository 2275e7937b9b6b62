"""Tiny random open_clip CLIP and CoCa architectures, registered with open_clip at test time.

The configs are real open_clip model configs (JSON files added with `open_clip.add_model_config`),
only small: 32 px images, one transformer layer, width 32. The vocabulary is the real 49408-token
BPE one so that the real tokenizer and decoder work.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

CLIP_ARCH = "irestore-tiny-clip"
CLIP384_ARCH = "irestore-tiny-clip-384"  # MiniLM's width: only the encoder name tells them apart
COCA_ARCH = "irestore-tiny-coca"

_VISION = {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16}
_TEXT = {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}
CONFIGS = {
    CLIP_ARCH: {"embed_dim": 16, "vision_cfg": _VISION, "text_cfg": _TEXT},
    CLIP384_ARCH: {"embed_dim": 384, "vision_cfg": _VISION, "text_cfg": _TEXT},
    COCA_ARCH: {
        "embed_dim": 32,
        "vision_cfg": {**_VISION, "attentional_pool": True, "attn_pooler_heads": 2, "attn_pooler_queries": 8, "output_tokens": True},
        "text_cfg": {**_TEXT, "context_length": 24, "embed_cls": True, "output_tokens": True},
        "multimodal_cfg": {**_TEXT, "context_length": 24, "attn_pooler_heads": 2},
        "custom_text": True,
    },
}
_FOLDER = Path(tempfile.mkdtemp(prefix="irestore-open-clip-configs-"))


def register() -> None:
    """Add the tiny configs to open_clip's registry (idempotent)."""
    import open_clip

    if all(name in open_clip.list_models() for name in CONFIGS):
        return
    for name, config in CONFIGS.items():
        (_FOLDER / f"{name}.json").write_text(json.dumps(config))
    open_clip.add_model_config(_FOLDER)


def random_model(arch: str, seed: int = 0, **overrides) -> torch.nn.Module:
    """A randomly initialised model of a tiny architecture (seeded), in eval mode."""
    import open_clip

    register()
    torch.manual_seed(seed)
    model = open_clip.create_model(arch, **overrides).eval()
    decoder = getattr(model, "text_decoder", None)
    if decoder is not None:  # open_clip leaves the CoCa decoder's output projection as torch.empty
        torch.nn.init.normal_(decoder.text_projection, std=decoder.width**-0.5)
    return model
