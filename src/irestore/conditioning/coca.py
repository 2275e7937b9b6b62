"""Caption generation with an open_clip CoCa model, without `CoCa.generate()`.

open_clip's `generate()` needs transformers' `BeamSearchScorer`, which transformers 5 removed
(open_clip then disables all generation). This is a plain autoregressive loop over CoCa's own
forward pass: greedy decoding by default, or top-k / top-p sampling from an explicit generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from irestore.conditioning.open_clip_models import OpenClipModel

STRATEGIES = ("greedy", "top_k", "top_p")


@dataclass(frozen=True)
class GenerationSettings:
    strategy: str = "greedy"
    max_tokens: int = 30
    min_tokens: int = 3
    top_k: int = 20
    top_p: float = 0.9
    temperature: float = 1.0
    repetition_penalty: float = 1.2

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown generation strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        if self.max_tokens < 1 or self.min_tokens < 0 or self.temperature <= 0:
            raise ValueError("max_tokens >= 1, min_tokens >= 0 and temperature > 0 are required")


def _penalise_repeats(logits: Tensor, tokens: Tensor, penalty: float) -> Tensor:
    """CTRL-style repetition penalty: tokens already generated become less likely."""
    if penalty == 1.0:
        return logits
    seen = logits.gather(-1, tokens)
    return logits.scatter(-1, tokens, torch.where(seen > 0, seen / penalty, seen * penalty))


def _top_p_filter(logits: Tensor, top_p: float) -> Tensor:
    """Keep the smallest set of tokens whose probabilities sum to at least ``top_p``."""
    ordered, order = logits.sort(dim=-1, descending=True)
    cumulative = ordered.softmax(-1).cumsum(-1)
    drop = cumulative - ordered.softmax(-1) >= top_p  # tokens after the nucleus is full
    return logits.scatter(-1, order, ordered.masked_fill(drop, float("-inf")))


def _next_token(logits: Tensor, settings: GenerationSettings, generator: torch.Generator | None) -> Tensor:
    if settings.strategy == "greedy":
        return logits.argmax(-1, keepdim=True)
    logits = logits / settings.temperature
    if settings.strategy == "top_k":
        kth = logits.topk(min(settings.top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    else:
        logits = _top_p_filter(logits, settings.top_p)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator)


@torch.inference_mode()
def generate_tokens(
    coca: OpenClipModel, image: Tensor, settings: GenerationSettings, generator: torch.Generator | None = None
) -> list[int]:
    """Token ids of one caption for a 1x3xHxW image in [0, 1] (start and end tokens removed)."""
    model, tokenizer = coca.model, coca.tokenizer
    sot, eot = tokenizer.sot_token_id, tokenizer.eot_token_id
    ends = {eot, getattr(model, "pad_id", eot)}  # open_clip also ends a caption at the pad token
    pixels = coca.preprocess(image)
    encoded = model(pixels)  # image latent + image token embeddings, computed once
    tokens = torch.tensor([[sot]], device=pixels.device)
    limit = min(settings.max_tokens, model.context_length - 1)
    for step in range(limit):
        logits = model(
            pixels, tokens, image_latent=encoded["image_features"], image_embs=encoded["image_embs"], output_labels=False
        )["logits"][:, -1].float()
        if step < settings.min_tokens:
            logits[:, list(ends)] = float("-inf")
        logits = _penalise_repeats(logits, tokens[:, 1:], settings.repetition_penalty)
        token = _next_token(logits, settings, generator)
        if int(token) in ends:
            break
        tokens = torch.cat([tokens, token], dim=1)
    return tokens[0, 1:].tolist()


def caption_text(coca: OpenClipModel, ids: list[int]) -> str:
    """Decoded, tidied caption text: lower-case words, no trailing full stop."""
    text = coca.tokenizer.decode(ids) if ids else ""
    text = " ".join(text.replace("<start_of_text>", " ").replace("<end_of_text>", " ").split())
    return text.rstrip(" .").strip()
