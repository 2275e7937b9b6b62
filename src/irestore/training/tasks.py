"""What is trained: the diffusion restorer (IR-SDE maximum-likelihood loss) or the
degradation classifier. A task builds its network, turns a batch into a loss, validates a
network on fixed batches and writes the engine's checkpoint format."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import default_collate

from irestore.conditioning.classifier import ClassifierInfo, load_classifier, save_classifier
from irestore.conditioning.text import TextEncoder
from irestore.diffusion.checkpoint import CheckpointInfo, save_checkpoint
from irestore.diffusion.sampling import sample, x0_from_output
from irestore.diffusion.sde import MeanRevertingSDE, SDEConfig
from irestore.evaluate.metrics import psnr, ssim
from irestore.labels import LABELS
from irestore.models.catalogue import NetworkConfig
from irestore.models.conditioning import Conditioning
from irestore.models.degnet import DegNet, DegNetConfig, classifier_loss
from irestore.models.m3unet import M3UNetConfig
from irestore.registry import (
    build_network,
    classifier_network_config,
    create_text_encoder,
    list_classifier_networks,
    network_config,
)
from irestore.training.config import ConfigError, TrainConfig

Autocast = Callable[[], AbstractContextManager]

VALIDATION_SEED = 1234  # the same sampler noise at every validation, so scores are comparable


def autocast_factory(device: torch.device, dtype: torch.dtype) -> Autocast:
    if dtype == torch.float32:
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=dtype)


def to_device(batch: dict, device: torch.device, channels_last: bool) -> dict:
    """Move a batch's tensors to the device (asynchronously from pinned memory)."""
    moved = {}
    for key, value in batch.items():
        if isinstance(value, Tensor):
            value = value.to(device, non_blocking=True)
            if channels_last and value.ndim == 4:
                value = value.contiguous(memory_format=torch.channels_last)
        moved[key] = value
    return moved


def batch_text(encoder: TextEncoder, prompts: list[str]) -> tuple[Tensor, Tensor, Tensor]:
    """Token features (B, L, D) padded to the longest prompt, their mask (B, L) and the
    pooled embeddings (B, D). Each distinct prompt is encoded once (the encoder caches)."""
    embeddings = [encoder.encode(prompt) for prompt in prompts]
    length = max(e.tokens.shape[1] for e in embeddings)
    tokens = torch.zeros(len(prompts), length, encoder.dim)
    mask = torch.zeros(len(prompts), length, dtype=torch.bool)
    for i, embedding in enumerate(embeddings):
        n = embedding.tokens.shape[1]
        tokens[i, :n] = embedding.tokens[0]
        mask[i, :n] = embedding.mask[0]
    pooled = torch.cat([e.pooled for e in embeddings])
    return tokens, mask, pooled


class PromptCollate:
    """Batch items and encode their prompts: run by the DataLoader's worker processes, so the
    text encoder works in parallel with training instead of in the training loop (mixed
    degradations give hundreds of distinct prompts, too many for any cache to absorb).
    With a (frozen, CPU) ``classifier``, the degradation embedding of each degraded image is
    computed there too."""

    def __init__(self, encoder: TextEncoder, classifier: nn.Module | None = None):
        self.encoder = encoder
        self.classifier = classifier

    def __call__(self, items: list[dict]) -> dict:
        batch = default_collate(items)
        batch["text_tokens"], batch["text_mask"], batch["text_pooled"] = batch_text(self.encoder, batch["prompt"])
        if self.classifier is not None:
            with torch.no_grad():
                batch["degradation"] = self.classifier(batch["lq"]).embedding.float()
        return batch


class Task(ABC):
    """One kind of training. `network` is the trained module (on `device`)."""

    name: str
    best_metric: str  # the validation metric (higher is better) that picks RUN_DIR/best
    metric_names: tuple[str, ...]  # what `validate` returns, in log column order
    network: nn.Module

    def __init__(self, config: TrainConfig, device: torch.device, autocast: Autocast):
        self.config = config
        self.device = device
        self.autocast = autocast

    def collate(self, items: list[dict]) -> dict:
        """Dataset items -> a batch (runs in the data-loading workers)."""
        return default_collate(items)

    @abstractmethod
    def loss(self, network: nn.Module, batch: dict, generator: torch.Generator) -> Tensor:
        """Scalar training loss of one (device-resident) batch; random draws from `generator`."""

    @abstractmethod
    def validate(self, network: nn.Module, batches: list[dict]) -> dict[str, float]:
        """Metrics of `network` on fixed, device-resident validation batches."""

    @abstractmethod
    def save(self, folder: Path, network: nn.Module, training: dict) -> None:
        """Write `network` as a checkpoint the engine loads."""


class RestorerTask(Task):
    """ERUNet noise predictor trained with the IR-SDE maximum-likelihood loss, conditioned on
    the prompt (text encoder) and a degradation embedding (frozen DegNet, or zeros)."""

    name = "restorer"
    best_metric = "psnr"
    metric_names = ("psnr", "ssim", "input_psnr", "clean_psnr")  # the first three over degraded samples only;
    # clean_psnr: output vs input on clean samples (how little the model changes a clean photo)

    def __init__(self, config: TrainConfig, device: torch.device, autocast: Autocast, text_encoder: TextEncoder | None = None):
        super().__init__(config, device, autocast)
        self.text_encoder = text_encoder or create_text_encoder(config.text_encoder)
        if self.text_encoder.name != config.text_encoder:
            raise ConfigError(f"text encoder {self.text_encoder.name!r} given, but the config names {config.text_encoder!r}")
        self.classifier, self.classifier_path = self._load_classifier(config.classifier)
        self.sde = MeanRevertingSDE.for_device(SDEConfig(**config.sde), device)
        self.network_config = self._network_config()
        self.network = build_network(self.network_config).to(device)
        if config.prediction != "noise":  # start as the identity x̂_0 = μ
            self.network.zero_output()
        # on a CPU the frozen classifier runs in the data workers (in fp32, as CPU autocast
        # leaves DegNet); on a GPU it stays there, in the training process
        self.collate = PromptCollate(self.text_encoder, self.classifier if device.type == "cpu" else None)

    def _load_classifier(self, path: str | None) -> tuple[DegNet | None, str | None]:
        if not path:
            return None, None
        classifier, _ = load_classifier(path, self.device)
        return classifier.requires_grad_(False), str(Path(path).resolve())

    def _network_config(self) -> NetworkConfig:
        overrides = dict(self.config.model_overrides)
        try:
            family = network_config(self.config.model)
        except KeyError as error:
            raise ConfigError(f"model {self.config.model!r}: {error}") from error
        wanted = {"text_dim": self.text_encoder.dim}
        if isinstance(family, M3UNetConfig):
            wanted["uses_state"] = self.config.prediction != "direct"  # a direct regressor sees μ alone
        if self.classifier is not None:
            wanted["degradation_dim"] = self.classifier.config.embed_dim
        for key, value in wanted.items():
            if key in overrides and overrides[key] != value:
                raise ConfigError(f"model_overrides sets {key}={overrides[key]}, but the conditioning gives {value}")
        try:
            return network_config(self.config.model, **{**overrides, **wanted})
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigError(f"model {self.config.model!r}: {error}") from error

    def conditioning(self, batch: dict, generator: torch.Generator | None = None) -> Conditioning:
        """The batch's text (encoded by `PromptCollate`, else here) and degradation embeddings;
        with a `generator` (training), each embedding is dropped with `degradation_dropout` so
        the network learns its "no embedding" vector for images that come without one."""
        if "text_pooled" in batch:
            tokens, mask, pooled = batch["text_tokens"], batch["text_mask"], batch["text_pooled"]
        else:
            tokens, mask, pooled = batch_text(self.text_encoder, batch["prompt"])
        if "degradation" in batch:
            degradation = batch["degradation"].to(self.device)
        else:
            degradation = self._degradation_embedding(batch["lq"])
        present = None
        if degradation is not None and generator is not None:  # a mask even at p = 0: DDP needs every parameter used
            present = (torch.rand(degradation.shape[0], generator=generator) >= self.config.degradation_dropout).to(self.device)
        return Conditioning(tokens.to(self.device), mask.to(self.device), pooled.to(self.device), degradation, present)

    @torch.no_grad()
    def _degradation_embedding(self, lq: Tensor) -> Tensor | None:
        if self.classifier is None or self.network_config.degradation_dim == 0:
            return None
        with self.autocast():
            return self.classifier(lq).embedding.float()

    def loss(self, network: nn.Module, batch: dict, generator: torch.Generator) -> Tensor:
        lq, gt = batch["lq"], batch["gt"]
        cond = self.conditioning(batch, generator)
        if self.config.prediction == "direct":
            t, xt = torch.zeros(gt.shape[0], device=self.device), lq
        else:
            t = torch.randint(1, self.sde.T + 1, (gt.shape[0],), generator=generator).to(self.device)
            noise = torch.randn(gt.shape, generator=generator).to(self.device)
            xt = self.sde.forward_sample(gt, lq, t, noise)
        multi_scale = self.config.prediction != "noise" and self.network.MULTI_SCALE
        with self.autocast():
            predicted = network(xt, lq, t, cond, scales=True) if multi_scale else network(xt, lq, t, cond)
        if multi_scale:
            return multiscale_l1([p.float() for p in predicted], lq, gt)
        if self.config.prediction == "x0":
            return self.sde.x0_loss(x0_from_output(predicted.float(), lq), gt)
        return self.sde.ml_loss(predicted.float(), xt, gt, lq, t)

    @torch.no_grad()
    def validate(self, network: nn.Module, batches: list[dict]) -> dict[str, float]:
        """PSNR/SSIM of a few-step posterior sample, and of the degraded input for reference."""
        generator = torch.Generator().manual_seed(VALIDATION_SEED)

        def predict(x: Tensor, mu: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
            with self.autocast():
                return network(x, mu, t, cond).float()

        scores: dict[str, list[float]] = {name: [] for name in self.metric_names}
        for batch in batches:
            cond = self.conditioning(batch)
            restored = sample(predict, batch["lq"], self.sde, cond, self.config.val_steps, generator,
                              sampler="posterior", prediction=self.config.prediction)
            for out, gt, lq in zip(_images(restored.clamp(0, 1)), _images(batch["gt"]), _images(batch["lq"])):
                if np.array_equal(lq, gt):  # a clean sample: how much the model changes it
                    scores["clean_psnr"].append(min(psnr(out, gt), 100.0))
                    continue
                scores["psnr"].append(psnr(out, gt))
                scores["ssim"].append(ssim(out, gt))
                scores["input_psnr"].append(psnr(lq, gt))
        # a metric without samples (clean_psnr when no validation sample is clean) is left out, not NaN
        return {name: float(np.mean(values)) for name, values in scores.items() if values}

    def save(self, folder: Path, network: nn.Module, training: dict) -> None:
        info = CheckpointInfo(
            network=self.network_config,
            sde=self.sde.config,
            text_encoder=self.text_encoder.name,
            text_dim=self.text_encoder.dim,
            classifier=self.classifier_path,
            name=Path(self.config.out).name,
            default_sampler="posterior",
            default_steps=self.config.val_steps,
            prediction=self.config.prediction,
            training=training,
        )
        save_checkpoint(folder, network, info)


def multiscale_l1(residuals: list[Tensor], mu: Tensor, gt: Tensor) -> Tensor:
    """M3UNET's multi-scale L1: each output (a residual on μ at 1, 1/2, 1/4, ... of the size)
    against the target average-pooled to its scale; a coarser scale weighs half as much."""
    total, weights = torch.zeros((), device=gt.device), 0.0
    for level, residual in enumerate(residuals):
        factor = 2**level
        mu_s = F.avg_pool2d(mu, factor, ceil_mode=True) if level else mu
        gt_s = F.avg_pool2d(gt, factor, ceil_mode=True) if level else gt
        total = total + 0.5**level * (mu_s + residual - gt_s).abs().mean()
        weights += 0.5**level
    return total / weights


class ClassifierTask(Task):
    """DegNet multi-label degradation classifier with severities."""

    name = "classifier"
    best_metric = "map"
    metric_names = ("accuracy", "exact_match", "map", "severity_mae", *(f"accuracy_{label}" for label in LABELS))

    def __init__(self, config: TrainConfig, device: torch.device, autocast: Autocast):
        super().__init__(config, device, autocast)
        if config.model not in list_classifier_networks():
            raise ConfigError(f"unknown classifier model {config.model!r}; choose one of {', '.join(list_classifier_networks())}")
        try:
            self.network_config = DegNetConfig.from_dict({**classifier_network_config(config.model).to_dict(), **config.model_overrides})
        except (TypeError, ValueError) as error:
            raise ConfigError(f"model_overrides for {config.model!r}: {error}") from error
        self.network = DegNet(self.network_config).to(device)

    def loss(self, network: nn.Module, batch: dict, generator: torch.Generator) -> Tensor:
        with self.autocast():
            output = network(batch["lq"])
        return classifier_loss(output, batch["labels"], batch["severity"], batch["severity_mask"])

    @torch.no_grad()
    def validate(self, network: nn.Module, batches: list[dict]) -> dict[str, float]:
        """Per-label accuracy at p = 0.5, their mean, exact-match accuracy, mean average
        precision over labels that occur, and the severity error where it is known."""
        outputs: dict[str, list[Tensor]] = {"probability": [], "predicted": [], "labels": [], "severity": [], "mask": []}
        for batch in batches:
            with self.autocast():
                output = network(batch["lq"])
            outputs["probability"].append(torch.sigmoid(output.logits))
            outputs["predicted"].append(output.severity)
            outputs["labels"].append(batch["labels"])
            outputs["severity"].append(batch["severity"])
            outputs["mask"].append(batch["severity_mask"] * batch["labels"])
        joined = {name: torch.cat(values).float().cpu() for name, values in outputs.items()}
        return classification_metrics(**joined)

    def save(self, folder: Path, network: nn.Module, training: dict) -> None:
        save_classifier(folder, network, ClassifierInfo(network=self.network_config, name=Path(self.config.out).name, training=training))


def classification_metrics(probability: Tensor, predicted: Tensor, labels: Tensor, severity: Tensor, mask: Tensor) -> dict[str, float]:
    """Multi-label metrics from per-label probabilities and predicted severities (N x labels)."""
    decided = probability >= 0.5
    truth = labels >= 0.5
    per_label = (decided == truth).float().mean(0)
    metrics = {f"accuracy_{name}": float(value) for name, value in zip(LABELS, per_label)}
    metrics["accuracy"] = float(per_label.mean())
    metrics["exact_match"] = float((decided == truth).all(1).float().mean())
    precisions = [average_precision(probability[:, j], truth[:, j]) for j in range(labels.shape[1])]
    known = [p for p in precisions if p is not None]
    metrics["map"] = float(np.mean(known)) if known else float("nan")
    weight = mask.sum()
    metrics["severity_mae"] = float(((predicted - severity).abs() * mask).sum() / weight) if weight > 0 else float("nan")
    return metrics


def average_precision(scores: Tensor, positives: Tensor) -> float | None:
    """Mean of the precision at each positive, ranked by score (None without positives)."""
    if not bool(positives.any()):
        return None
    ranked = positives[torch.argsort(scores, descending=True, stable=True)].float()
    precision_at = ranked.cumsum(0) / torch.arange(1, len(ranked) + 1)
    return float((precision_at * ranked).sum() / ranked.sum())


def _images(batch: Tensor) -> list[np.ndarray]:
    return list(batch.float().permute(0, 2, 3, 1).cpu().numpy())


def create_task(config: TrainConfig, device: torch.device, dtype: torch.dtype, text_encoder: TextEncoder | None = None) -> Task:
    autocast = autocast_factory(device, dtype)
    if config.task == "restorer":
        return RestorerTask(config, device, autocast, text_encoder)
    return ClassifierTask(config, device, autocast)
