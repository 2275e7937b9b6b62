"""irestore itself as a benchmark method: ``irestore:MODEL@STEPS[:SAMPLER]``.

MODEL is a checkpoint path or a registered model name (anything `irestore.pipeline.load_model`
takes); STEPS and SAMPLER default to the checkpoint's. The prompt is the suite's description of
the degradation (empty when unknown). Each image gets its own generator, seeded from its pixels,
so a result does not depend on the order images are run in or on --resume.
"""

from __future__ import annotations

import hashlib

import numpy as np

from irestore.baselines.base import Degradation, PeerMethod

PREFIX = "irestore:"


def parse_irestore_spec(spec: str) -> tuple[str, int | None, str | None]:
    """``irestore:MODEL@STEPS[:SAMPLER]`` -> (model, steps or None, sampler or None)."""
    if not spec.startswith(PREFIX) or len(spec) == len(PREFIX):
        raise ValueError(f"bad method {spec!r}; expected irestore:MODEL[@STEPS[:SAMPLER]]")
    body = spec[len(PREFIX) :]
    model, at, tail = body.rpartition("@")
    if not at:
        return body, None, None
    steps_text, _, sampler = tail.partition(":")
    if not steps_text.isdigit() or int(steps_text) < 1 or not model:
        raise ValueError(f"bad method {spec!r}: STEPS after '@' must be a positive integer (irestore:MODEL@STEPS)")
    return model, int(steps_text), sampler or None


class IRestoreMethod(PeerMethod):
    """A diffusion restorer (or any model `load_model` knows) behind the peer-method contract."""

    families = None

    def __init__(self, spec: str, device: str = "cpu", seed: int = 0) -> None:
        from irestore.pipeline import load_model

        self.name = spec
        self.model, self.steps, self.sampler = parse_irestore_spec(spec)
        self.restorer = load_model(self.model, device=device)
        self.seed = seed
        self.description = getattr(self.restorer, "description", self.model)

    def restore(self, image: np.ndarray, degradation: Degradation) -> np.ndarray:
        import torch

        from irestore.io import image_to_tensor, tensor_to_rgb

        digest = hashlib.sha256(np.ascontiguousarray(image).tobytes()).digest()
        generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") ^ self.seed)
        out = self.restorer.restore(
            image_to_tensor(image), prompt=degradation.description, steps=self.steps, sampler=self.sampler, generator=generator
        )
        return tensor_to_rgb(out)

    def effective_steps(self) -> int | None:
        """The sampler steps actually run (the checkpoint's default when the spec gives none)."""
        settings = getattr(self.restorer, "sampler_settings", None)
        return settings(self.sampler, self.steps)[1] if settings else self.steps

    def settings(self) -> dict:
        return {
            "model": self.model,
            "steps": self.effective_steps(),
            "sampler": self.sampler,
            "fingerprint": getattr(self.restorer, "fingerprint", ""),
        }
