"""Restorer: a checkpoint's network + SDE + text encoder, run by a sampler over tiles.

    restorer = Restorer.from_pretrained("path/to/checkpoint", device="auto")
    restored = restorer.restore(image, prompt="remove the rain", steps=10)

Images are float32 1x3xHxW tensors in [0, 1] on any device; the result comes back on the CPU.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from irestore.checkpoint import CheckpointInfo, load_checkpoint, weights_file
from irestore.conditioning.embedding import Conditioning
from irestore.conditioning.text import TextEncoder, create_text_encoder
from irestore.devices import keep_freed_memory_mapped, resolve_device, resolve_precision
from irestore.sampling import DEFAULT_STEPS, StepCallback, get_sampler, sample
from irestore.sde import MeanRevertingSDE
from irestore.tiling import TiledDenoiser, choose_tile
from irestore.weights import WeightSource, file_sha256, register_weights, resolve_weights

if TYPE_CHECKING:
    from irestore.conditioning.classifier import Classifier

log = logging.getLogger(__name__)

AUTO = "auto"


class NonFiniteOutputError(RuntimeError):
    """The network produced NaN or Inf (typically a half-precision overflow)."""


def activation_bytes_per_pixel(network: nn.Module, dtype: torch.dtype) -> float:
    """Rough upper bound of live activation memory per input pixel during inference."""
    element = torch.finfo(dtype).bits // 8
    return 2.0 * element * network.activation_elements_per_pixel() + 64  # 2x headroom, plus image-sized fp32 buffers


class Restorer:
    """Text-conditioned diffusion restorer. Stateless between calls except the prompt cache."""

    def __init__(
        self,
        network: nn.Module,
        info: CheckpointInfo,
        text_encoder: TextEncoder,
        device: str | torch.device = "auto",
        precision: str = "fp32",
        fingerprint: str = "",
        classifier: Classifier | None = None,
    ):
        _check_text_encoder(info, text_encoder)
        _check_classifier(info, classifier)
        self.device = resolve_device(str(device))
        self.dtype = resolve_precision(precision, self.device, cpu_bf16=getattr(type(network), "CPU_BF16", False))
        if self.device.type == "cpu":
            keep_freed_memory_mapped()  # about 2x faster CPU inference (see the function)
        self.network = network.to(self.device).eval()
        self.info = info
        self.sde = MeanRevertingSDE.for_device(info.sde, self.device)
        self.text_encoder = text_encoder
        self.name = info.name
        self.fingerprint = fingerprint
        self.classifier = classifier  # gives the degradation embedding when the caller passes none
        self.description = f"{info.name}: text-conditioned IR-SDE restorer ({info.text_encoder} prompts)"

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path, device: str = "auto", precision: str = "fp32", text_encoder: TextEncoder | None = None
    ) -> Restorer:
        """Load a checkpoint folder or .safetensors file (or a registered model name), with the
        text encoder and, when the checkpoint names one, the degradation classifier it was trained with."""
        path = Path(name_or_path)
        if not path.exists():
            path = resolve_weights(str(name_or_path))
        network, info = load_checkpoint(path)
        if text_encoder is None:
            text_encoder = create_text_encoder(info.text_encoder)
        classifier = None
        if info.classifier and info.network.degradation_dim > 0:
            from irestore.conditioning.classifier import classifier_from_name

            classifier = classifier_from_name(info.classifier, resolve_device(device))
        fingerprint = file_sha256(weights_file(path))[:16]
        return cls(network, info, text_encoder, device, precision, fingerprint, classifier)

    def conditioning(self, prompt: str | None, degradation: Tensor | None = None) -> Conditioning:
        """Encode the prompt (cached) and attach the degradation embedding (None when absent:
        the network then uses its learned "no embedding" vector)."""
        text = self.text_encoder.encode(prompt or "")
        return Conditioning(text.tokens, text.mask, text.pooled, degradation).to(self.device)

    def choose_tile(self, image: Tensor, tile: int | str | None, tile_batch: int) -> int | None:
        """'auto' picks the largest tile that fits free memory; None/0 means never tile."""
        return choose_tile(tile, image, activation_bytes_per_pixel(self.network, self.dtype), self.device, tile_batch)

    def sampler_settings(self, sampler: str | None, steps: int | None) -> tuple[str, int]:
        """The sampler and step count a call will use: the checkpoint's defaults fill the gaps."""
        sampler = sampler or self.info.default_sampler
        get_sampler(sampler)  # fail early on a bad name
        default = self.info.default_steps if sampler == self.info.default_sampler else DEFAULT_STEPS[sampler]
        return sampler, steps or default

    def restore(
        self,
        image: Tensor,
        *,
        prompt: str | None = None,
        steps: int | None = None,
        sampler: str | None = None,
        tile: int | str | None = AUTO,
        tile_overlap: int = 32,
        tile_batch: int = 4,
        generator: torch.Generator | None = None,
        degradation: Tensor | None = None,
        callback: StepCallback | None = None,
    ) -> Tensor:
        """Restore one image (1x3xHxW in [0,1]); returns the restored image on the CPU, clamped."""
        if image.ndim != 4 or image.shape[:2] != (1, 3):
            raise ValueError(f"expected a 1x3xHxW image tensor, got shape {tuple(image.shape)}")
        sampler, steps = self.sampler_settings(sampler, steps)
        if degradation is None and self.classifier is not None:
            degradation = self.classifier.classify(image).embedding
        cond = self.conditioning(prompt, degradation)
        lq = image.to(self.device, torch.float32)
        seed_state = generator.get_state() if generator is not None else None
        denoiser = TiledDenoiser(self._predictor(self.dtype), self.choose_tile(lq, tile, tile_batch), tile_overlap, tile_batch)
        try:
            out = sample(denoiser, lq, self.sde, cond, steps, generator, callback, sampler, self.info.prediction)
        except NonFiniteOutputError:
            if self.dtype == torch.float32:
                raise
            log.warning("non-finite values in %s inference; redoing this image in fp32", str(self.dtype).split(".")[-1])
            if generator is not None:
                generator.set_state(seed_state)  # same noise as the failed attempt
            denoiser.network = self._predictor(torch.float32)
            out = sample(denoiser, lq, self.sde, cond, steps, generator, callback, sampler, self.info.prediction)
        return out.clamp(0, 1).cpu()

    def _predictor(self, dtype: torch.dtype) -> Callable[[Tensor, Tensor, Tensor, Conditioning], Tensor]:
        """The network under autocast at `dtype`, with a finiteness check on its output."""

        def predict(x: Tensor, mu: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
            autocast = (
                torch.autocast(self.device.type, dtype=dtype)
                if dtype != torch.float32
                else contextlib.nullcontext()
            )
            with autocast:
                out = self.network(x, mu, t, cond)
            if not torch.isfinite(out).all():
                raise NonFiniteOutputError(f"network output has NaN/Inf at t={int(t[0])}")
            return out.float()

        return predict


def _check_text_encoder(info: CheckpointInfo, text_encoder: TextEncoder) -> None:
    """The prompts must be encoded as in training: same encoder name and dimension."""
    if text_encoder.name != info.text_encoder or text_encoder.dim != info.text_dim or info.network.text_dim != info.text_dim:
        raise ValueError(
            f"model {info.name!r} was trained with text encoder {info.text_encoder!r} ({info.text_dim}-d), "
            f"but was given {text_encoder.name!r} ({text_encoder.dim}-d); pass the encoder named in the "
            f"checkpoint, or none to build it from the checkpoint"
        )


def _check_classifier(info: CheckpointInfo, classifier: Classifier | None) -> None:
    if classifier is not None and classifier.embedding_dim != info.network.degradation_dim:
        raise ValueError(
            f"model {info.name!r} takes a {info.network.degradation_dim}-d degradation embedding, but classifier "
            f"{classifier.name!r} gives {classifier.embedding_dim}-d"
        )


ALLINONE_MODEL = "allinone-small"
DERAIN_MODEL = "derain"
LOWLIGHT_MODEL = "lowlight"
# the diffusion checkpoints shipped in src/irestore/assets (each folder has a model card)
SHIPPED_RESTORERS = {
    ALLINONE_MODEL: "all-in-one text-conditioned IR-SDE restorer (ERUNet-small, MiniLM prompts, DegNet embedding)",
    DERAIN_MODEL: "rain specialist (M3UNet-small direct regressor, one pass, MiniLM prompts)",
    LOWLIGHT_MODEL: "low-light specialist: brightens and denoises (M3UNet-small direct regressor, one pass, MiniLM prompts)",
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
            from irestore.conditioning.classifier import create_classifier

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
    from irestore.checkpoint import read_info

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
