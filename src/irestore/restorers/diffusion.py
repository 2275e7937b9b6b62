"""The text-conditioned IR-SDE restorer as a restoration method: ``irestore:MODEL@STEPS[:SAMPLER][:blind]``.

MODEL is a checkpoint path or a registered model name (anything `irestore.pipeline.load_model`
takes); STEPS and SAMPLER default to the checkpoint's. The prompt is the condition's (the suite's
description of the degradation, or the planner's prompt); ``:blind`` gives no prompt at all, so
the model works from the image (and its classifier's embedding) alone. Each image gets its own
generator, seeded from its pixels, so a result does not depend on the order images are run in
or on --resume. The shipped ``allinone-small`` is registered under its own name.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor

from irestore.labels import SEVERITY_SCALES
from irestore.restorers.base import Card, Condition, RestorationMethod, RunSettings

PREFIX = "irestore:"
BLIND = "blind"

# what the shipped all-in-one model was trained on (configs/allinone-small.yaml): every degradation label
ALL_LABELS = {label: (lo, hi) for label, (_, lo, hi, _) in SEVERITY_SCALES.items()}


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


class DiffusionMethod(RestorationMethod):
    """A diffusion restorer checkpoint behind the restoration-method contract; it gets the condition's prompt."""

    def __init__(self, spec: str, device: str = "cpu", seed: int = 0, precision: str = "fp32",
                 card: Card | None = None) -> None:
        from irestore.diffusion.restorer import Restorer

        self.model, self.steps, self.sampler, self.blind = parse_irestore_spec(spec)
        self.restorer = Restorer.from_pretrained(self.model, device=device, precision=precision)
        self.seed = seed
        self.card = card or Card(
            spec, self.restorer.description, fixes=ALL_LABELS, any_input=True,
            parameters="none (blind)" if self.blind else "text prompt (the degradation's description)",
            weights=f"checkpoint {self.model}",
        )
        self.device, self.dtype = self.restorer.device, self.restorer.dtype

    def restore(self, image: Tensor, condition: Condition, settings: RunSettings | None = None) -> Tensor:
        settings = settings or RunSettings()
        out = []
        for single in image.split(1):
            digest = hashlib.sha256(single.detach().float().cpu().numpy().tobytes()).digest()
            generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") ^ (self.seed + condition.seed))
            out.append(self.restorer.restore(
                single, prompt=None if self.blind else condition.prompt, steps=settings.steps or self.steps,
                sampler=settings.sampler or self.sampler, tile=settings.tile, tile_overlap=settings.tile_overlap,
                tile_batch=settings.tile_batch, generator=generator,
            ))
        return torch.cat(out)

    def effective_steps(self) -> int | None:
        """The sampler steps actually run (the checkpoint's default when the spec gives none)."""
        return self.restorer.sampler_settings(self.sampler, self.steps)[1]

    def settings(self) -> dict:
        return {
            "model": self.model,
            "steps": self.effective_steps(),
            "sampler": self.sampler,
            "prompt": "none (blind)" if self.blind else "degradation description",
            "fingerprint": self.restorer.fingerprint,
        }

