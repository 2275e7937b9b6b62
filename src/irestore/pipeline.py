"""The Python API's entry point: any restoration model by name or path, with one signature.

    model = load_model("allinone-small")          # or "ffdnet-color", "dcp", a checkpoint folder
    restored = model.restore(image, prompt="remove the rain")

`load_model` gives the diffusion :class:`Restorer` (``irestore.diffusion.restorer``) for a
checkpoint, the pretrained FFDNet peer, or any blind registered method behind the same
``restore()``; the adaptive plan is :class:`irestore.plan.AdaptiveRestorer`. Images are float32
1x3xHxW tensors in [0, 1] on any device; the result comes back on the CPU. The shipped diffusion
checkpoints are registered with the weights store here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from torch import Tensor

from irestore.devices import resolve_device
from irestore.diffusion.restorer import NonFiniteOutputError, Restorer, activation_bytes_per_pixel
from irestore.registry import register_weights
from irestore.weights import WeightSource, resolve_weights

__all__ = ["DEFAULT_MODEL", "MethodModel", "NonFiniteOutputError", "Restorer", "activation_bytes_per_pixel", "check_steps",
           "load_model", "steps_limit"]

ALLINONE_MODEL = "allinone-small"
DERAIN_MODEL = "derain"
LOWLIGHT_MODEL = "lowlight"
DEHAZE_MODEL = "dehaze"
# the diffusion checkpoints shipped in src/irestore/assets (each folder has a model card)
SHIPPED_RESTORERS = {
    ALLINONE_MODEL: "all-in-one text-conditioned IR-SDE restorer (ERUNet-small, MiniLM prompts, DegNet embedding)",
    DERAIN_MODEL: "rain specialist (M3UNet-small direct regressor, one pass, MiniLM prompts)",
    LOWLIGHT_MODEL: "low-light specialist: brightens and denoises (M3UNet-small direct regressor, one pass, MiniLM prompts)",
    DEHAZE_MODEL: "haze specialist (M3UNet-small direct regressor, one pass, MiniLM prompts)",
}
for _name, _description in SHIPPED_RESTORERS.items():
    register_weights(
        WeightSource(
            name=_name,
            filename="model.safetensors",
            package="irestore",
            package_file=f"assets/{_name}/model.safetensors",
            kind="restorer",
            description=_description,
            install_hint="train one with scripts/train_defaults.sh and pass --model PATH",
        )
    )

# The shipped all-in-one diffusion restorer; FFDNet (noise only, blind σ estimate) stays
# available by name as a pretrained peer with the same restore() signature.
DEFAULT_MODEL = ALLINONE_MODEL
PEER_MODELS = ("ffdnet-color",)


def load_model(name_or_path: str | Path = DEFAULT_MODEL, device: str = "auto", precision: str = "fp32"):
    """A restoration model by name or checkpoint path: a Restorer, a pretrained peer model, or any
    other blind registered restoration method (``dcp``, ``gamma``, ``nlm``), all with the same `restore()` signature."""
    name = str(name_or_path)
    if name in PEER_MODELS:
        from irestore.restorers.ffdnet import FFDNetDenoiser

        return FFDNetDenoiser.from_pretrained(name, device=device, precision=precision)
    if name not in SHIPPED_RESTORERS and not Path(name).exists():
        from irestore.restorers import method_info

        try:
            card = method_info(name).card
        except KeyError:
            card = None
        if card is not None and card.blind and not card.oracle and not name.startswith(("irestore:", "plan:")):
            return MethodModel(name, device)
    return Restorer.from_pretrained(name_or_path, device=device, precision=precision)


class MethodModel:
    """A registered restoration method behind the `restore(image, prompt=...)` signature of load_model."""

    def __init__(self, name: str, device: str = "auto") -> None:
        from irestore.restorers import create_restorer

        self.device = resolve_device(device)
        self.method = create_restorer(name, device=str(self.device))
        self.name, self.description = name, self.method.description
        self.changes_size = self.method.card.changes_size
        self.generative = self.method.card.generative
        self.fingerprint = hashlib.sha256(json.dumps(self.method.settings(), sort_keys=True).encode()).hexdigest()[:16]
        self._classifier = None

    def restore(self, image: Tensor, *, prompt: str | None = None, tile: int | str | None = None,
                target_size: tuple[int, int] | None = None, strength: float | None = None, **ignored) -> Tensor:
        """Run the method blind on a 1x3xHxW image (sampler settings do not apply and are ignored).
        A method that reads estimated severities (waifu2x's JPEG quality) gets the default
        classifier's, unless ``strength`` sets its control."""
        from irestore.restorers import Condition, RunSettings

        card = self.method.card
        if strength is not None and card.strengths is None:
            raise ValueError(f"{self.name} has no strength control")
        labels, severities = self.detected(image) if card.reads and strength is None else ((), {})
        condition = Condition(labels, severities, prompt or "", target_size=target_size, strength=strength)
        return self.method.restore(image, condition, RunSettings(tile=tile))

    def detected(self, image: Tensor) -> tuple[tuple[str, ...], dict[str, float]]:
        """The labels the method fixes that the default classifier finds, with their severities."""
        if self._classifier is None:
            from irestore.registry import create_classifier

            self._classifier = create_classifier("degnet", device=self.device)
        found = self._classifier.classify(image)
        labels = tuple(label for label in found.labels if label in self.method.card.fixes)
        return labels, {label: found.severities[label] for label in labels}


# --------------------------------------------------------------------------- sampler steps


def steps_limit(model) -> int | None:
    """The most sampler steps a loaded model can run: the T of its SDE. None where steps do not
    apply (one-pass regressors, FFDNet, classical methods). For a plan (`AdaptiveRestorer`), the
    smallest T of its diffusion members, read from their checkpoints without loading them."""
    if isinstance(model, Restorer):
        return None if model.info.prediction == "direct" else model.sde.T
    for attribute in ("restorer", "method"):  # DiffusionMethod; MethodModel and SelfEnsemble
        inner = getattr(model, attribute, None)
        if inner is not None:
            return steps_limit(inner)
    planner = getattr(model, "planner", None)
    if planner is not None:
        return min(filter(None, map(_checkpoint_steps_limit, planner.names)), default=None)
    return None


def _checkpoint_steps_limit(name: str) -> int | None:
    from irestore.diffusion.checkpoint import read_info

    if name not in SHIPPED_RESTORERS:
        return None
    info = read_info(resolve_weights(name))
    return None if info.prediction == "direct" else info.sde.T


def check_steps(model, steps: int | None) -> None:
    """ValueError when ``steps`` is more than the model's SDE has (see :func:`steps_limit`)."""
    limit = steps_limit(model)
    if steps is not None and limit is not None and steps > limit:
        name = getattr(model, "name", None) or "the model"
        raise ValueError(f"{steps} steps asked, but the SDE of {name} has T = {limit} steps; choose 1 to {limit}")
