"""The conditioning that travels with an image through the sampler: computed once per image."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Conditioning:
    """Text and degradation embeddings for one image (batch dimension 1) or a batch.

    text_tokens: (B, L, D) token features for cross-attention (L = 1 for pooled-only encoders)
    text_mask:   (B, L) bool, True for real tokens
    text_pooled: (B, D) sentence embedding for the fusion block
    degradation: (B, K) degradation embedding, or None when there is none for this batch (the
                 network then uses its learned "no embedding" vector)
    degradation_present: (B,) bool, False where a row's embedding is to be treated as absent
                 (training drops embeddings like prompts); None: every given row is present
    """

    text_tokens: Tensor
    text_mask: Tensor
    text_pooled: Tensor
    degradation: Tensor | None = None
    degradation_present: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.text_pooled.shape[0]

    def to(self, device: torch.device | str) -> Conditioning:
        move = lambda v: None if v is None else v.to(device)
        return Conditioning(move(self.text_tokens), move(self.text_mask), move(self.text_pooled), move(self.degradation),
                            move(self.degradation_present))

    def repeat(self, n: int) -> Conditioning:
        """Repeat a batch-1 conditioning n times (for a batch of tiles of one image)."""
        if self.batch_size == n:
            return self
        if self.batch_size != 1:
            raise ValueError(f"cannot repeat a conditioning of batch {self.batch_size} to {n}")
        rep = lambda v: None if v is None else v.expand(n, *v.shape[1:])
        return Conditioning(rep(self.text_tokens), rep(self.text_mask), rep(self.text_pooled), rep(self.degradation),
                            rep(self.degradation_present))
