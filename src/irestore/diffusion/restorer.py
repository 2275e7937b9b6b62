"""The diffusion restorer: a checkpoint, its text encoder and classifier, a sampler over the
mean-reverting SDE, tiles inside each step, autocast and the fp32 fallback."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from irestore.conditioning.text import TextEncoder
from irestore.devices import keep_freed_memory_mapped, resolve_device, resolve_precision
from irestore.diffusion.checkpoint import CheckpointInfo, load_checkpoint
from irestore.diffusion.sampling import StepCallback, sample
from irestore.diffusion.sde import MeanRevertingSDE
from irestore.diffusion.tiling import TiledDenoiser, choose_tile
from irestore.models.conditioning import Conditioning
from irestore.models.files import weights_file
from irestore.registry import create_sampler, create_text_encoder, default_steps
from irestore.weights import file_sha256, resolve_weights

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
        create_sampler(sampler)  # fail early on a bad name
        default = self.info.default_steps if sampler == self.info.default_sampler else default_steps(sampler)
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


