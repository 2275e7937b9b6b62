"""irestore itself as a benchmark method: ``irestore:MODEL@STEPS[:SAMPLER][:blind]``.

MODEL is a checkpoint path or a registered model name (anything `irestore.pipeline.load_model`
takes); STEPS and SAMPLER default to the checkpoint's. The prompt is the suite's description of
the degradation (empty when unknown); ``:blind`` gives no prompt at all, so the model works
from the image (and its classifier's embedding) alone. Each image gets its own generator, seeded from its pixels,
so a result does not depend on the order images are run in or on --resume.
"""

from __future__ import annotations

import hashlib

import numpy as np

from irestore.baselines.base import Degradation, PeerMethod

PREFIX = "irestore:"


BLIND = "blind"


def parse_irestore_spec(spec: str) -> tuple[str, int | None, str | None, bool]:
    """``irestore:MODEL@STEPS[:SAMPLER][:blind]`` -> (model, steps or None, sampler or None, blind)."""
    if not spec.startswith(PREFIX) or len(spec) == len(PREFIX):
        raise ValueError(f"bad method {spec!r}; expected irestore:MODEL[@STEPS[:SAMPLER][:blind]]")
    body = spec[len(PREFIX) :]
    model, at, tail = body.rpartition("@")
    if not at:
        return body, None, None, False
    steps_text, *options = tail.split(":")
    blind = bool(options) and options[-1] == BLIND
    options = options[:-1] if blind else options
    if not steps_text.isdigit() or int(steps_text) < 1 or not model or len(options) > 1:
        raise ValueError(f"bad method {spec!r}: expected irestore:MODEL@STEPS[:SAMPLER][:blind] with a positive STEPS")
    return model, int(steps_text), (options[0] or None) if options else None, blind


class IRestoreMethod(PeerMethod):
    """A diffusion restorer (or any model `load_model` knows) behind the peer-method contract."""

    families = None

    def __init__(self, spec: str, device: str = "cpu", seed: int = 0) -> None:
        from irestore.pipeline import load_model

        self.name = spec
        self.model, self.steps, self.sampler, self.blind = parse_irestore_spec(spec)
        self.restorer = load_model(self.model, device=device)
        self.seed = seed
        self.description = getattr(self.restorer, "description", self.model)

    def restore(self, image: np.ndarray, degradation: Degradation) -> np.ndarray:
        import torch

        from irestore.io import image_to_tensor, tensor_to_rgb

        digest = hashlib.sha256(np.ascontiguousarray(image).tobytes()).digest()
        generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") ^ self.seed)
        out = self.restorer.restore(
            image_to_tensor(image), prompt=None if self.blind else degradation.description, steps=self.steps, sampler=self.sampler, generator=generator
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
            "prompt": "none (blind)" if self.blind else "degradation description",
            "fingerprint": getattr(self.restorer, "fingerprint", ""),
        }
