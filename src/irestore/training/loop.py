"""The training loop: optimisation steps, validation, checkpoints, exact resume, stopping.

    result = train(build_config({"dataset": "folder:photos", "out": "runs/a", "max_steps": 1000}))

Randomness that shapes the weights is a function of (seed, step, micro-batch, rank) and of the
dataset's (seed, epoch, index), never of a generator that has to be carried along, so a
resumed run continues exactly as an uninterrupted one would (on the same device and settings).
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from irestore.conditioning.text import TextEncoder
from irestore.devices import resolve_precision
from irestore.training import distributed
from irestore.training.config import ConfigError, TrainConfig, save_config
from irestore.training.data import BatchStream, fixed_subset
from irestore.training.distributed import DistInfo
from irestore.training.optim import EMA, build_optimizer, build_scheduler
from irestore.training.reporting import MetricsLog, TrainProgress
from irestore.training.state import STATE_NAME, capture_rng, load_state, restore_rng, save_state
from irestore.training.tasks import Task, create_task, to_device
from irestore.training.trace import TrainTrace

log = logging.getLogger(__name__)

# where channels_last is the default memory format: on this project's 2-core CPU it made the
# ERUNet-small step 1.6x and the DegNet step 1.7x faster (benchmarks/train_speed.py --settings)
CHANNELS_LAST_DEVICES = ("cuda", "cpu")

LAST, BEST = "last", "best"


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss diverged); the message says what to change."""


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    epoch: int
    stopped_by: str  # "max_steps" | "max_minutes" | "interrupted"
    losses: list[float] = field(default_factory=list)  # mean loss of each step run in this call
    validation: dict[str, float] = field(default_factory=dict)  # the last validation's metrics
    best: dict | None = None  # {"metric", "value", "step"}
    final_loss: float | None = None  # the last logged loss (mean over ranks)
    rank: int = 0

    @property
    def interrupted(self) -> bool:
        return self.stopped_by == "interrupted"


def training_dtype(precision: str, device: torch.device, cpu_bf16: bool = False) -> torch.dtype:
    """'auto' is bf16 autocast on CUDA; on a CPU with native bf16, bf16 for networks that gain
    from it (``cpu_bf16``, see `prefers_cpu_bf16`), else fp32. The rest as `resolve_precision`."""
    return resolve_precision(precision, device, cpu_bf16)


def prefers_cpu_bf16(config: TrainConfig) -> bool:
    """Whether the config's network trains faster in bf16 on a CPU with native bf16: true for
    dense-convolution networks (M3UNet: 2.2x over fp32 channels_last on this project's CPU),
    false for ERUNet and DegNet, whose depthwise convolutions and element-wise layers ran
    slower in bf16 (benchmarks/train_speed.py --settings cl,bf16)."""
    from irestore.registry import network_family

    family = network_family(config.model) if config.task == "restorer" else None
    return family is not None and family.CPU_BF16  # an unknown model fails later with its own message


def step_generator(seed: int, step: int, micro: int, rank: int) -> torch.Generator:
    """The generator for one micro-batch's random draws (diffusion times and noise)."""
    words = np.random.SeedSequence([seed, step, micro, rank]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(words[0]) << 32 | int(words[1]))


class Trainer:
    """Owns the trained network, its optimiser, LR schedule, EMA and loss scaler; one call
    of `train_step` is one optimiser step over `accumulate` micro-batches."""

    def __init__(self, config: TrainConfig, task: Task, info: DistInfo, device: torch.device, dtype: torch.dtype):
        self.config, self.task, self.info, self.device = config, task, info, device
        self.network = task.network
        self.channels_last = config.channels_last if config.channels_last is not None else device.type in CHANNELS_LAST_DEVICES
        if self.channels_last:
            self.network.to(memory_format=torch.channels_last)
        self.model = self.network
        if info.enabled:
            device_ids = [device.index] if device.type == "cuda" else None
            self.model = DistributedDataParallel(self.network, device_ids=device_ids, gradient_as_bucket_view=True)
        self.optimizer = build_optimizer(self.network, config.lr, config.betas, config.weight_decay)
        self.scheduler = build_scheduler(self.optimizer, config.warmup_steps, config.schedule_steps, config.min_lr_ratio)
        self.scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
        self.ema = EMA(self.network, config.ema)
        self.step = 0

    def train_step(self, batches: list[dict]) -> tuple[Tensor, Tensor]:
        """One optimiser step; returns the mean loss and the gradient norm (before clipping)
        as device tensors, so the caller decides when to synchronise."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        for micro, batch in enumerate(batches):
            last = micro == len(batches) - 1
            sync = contextlib.nullcontext() if last or not self.info.enabled else self.model.no_sync()
            with sync:
                loss = self.task.loss(self.model, batch, step_generator(self.config.seed, self.step, micro, self.info.rank))
                self.scaler.scale(loss / len(batches)).backward()
            total += loss.detach()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.ema.update(self.network)
        self.step += 1
        return total / len(batches), grad_norm

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict:
        return {
            "network": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict(),
            "step": self.step,
        }

    def load_state_dict(self, state: dict) -> None:
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.ema.load_state_dict(state["ema"])
        self.step = int(state["step"])


# ---------------------------------------------------------------------------- datasets


def build_datasets(config: TrainConfig, info: DistInfo) -> tuple[Dataset, Dataset]:
    """The training and validation sets named by the config (built on every rank, so a bad
    dataset stops all ranks alike; only rank 0 reads the validation images)."""
    from irestore.data import build_dataset

    common = {"degradations": config.degradations, "seed": config.seed, "val_fraction": config.val_fraction}
    train_set = build_dataset(config.dataset, split="train", crop=config.crop, prompt_dropout=config.prompt_dropout,
                              length=config.epoch_length, cache_mb=config.pixel_cache_mb / max(config.workers, 1), **common)
    val_spec = config.val_dataset or config.dataset
    split = config.val_split or validation_split(val_spec)
    if split == "train" and val_spec == config.dataset and info.is_main:
        log.warning("%s has no validation or test split: validating on (unaugmented) training images", val_spec)
    val_set = build_dataset(val_spec, split=split, crop=config.val_crop, augment=False, **common)
    if val_set.degradations and len(val_set) < config.val_samples:
        # few held-out photos: give each several (fixed) synthetic degradations
        val_set = build_dataset(val_spec, split=split, crop=config.val_crop, augment=False, length=config.val_samples, **common)
    return train_set, val_set


def validation_split(spec: str) -> str:
    """'val' where the layout has one, else 'test', else 'train'."""
    from irestore.data.layouts import resolve

    layout = resolve(spec).layout
    accepted = (*layout.splits, *layout.extra_splits)
    return next((split for split in ("val", "test") if split in accepted), "train")


def validation_batches(val_set: Dataset, task: Task, config: TrainConfig, device: torch.device, channels_last: bool) -> list[dict]:
    items = fixed_subset(val_set, config.val_samples)
    size = config.batch_size
    return [to_device(task.collate(items[i : i + size]), device, channels_last) for i in range(0, len(items), size)]


# ---------------------------------------------------------------------------- run folder


def prepare_run_dir(config: TrainConfig, resume: bool) -> Path:
    run_dir = config.run_dir
    if resume and not (run_dir / STATE_NAME).is_file():
        raise ConfigError(f"{run_dir}: nothing to resume (no {STATE_NAME}); start a new run with --out")
    if not resume and (run_dir / STATE_NAME).exists():
        raise ConfigError(f"{run_dir} already holds a training run; continue it with --resume {run_dir} or choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def replace_folder(target: Path, write) -> None:
    """Write a checkpoint folder beside `target`, then swap it in, so `target` is always a
    complete checkpoint (the old one or the new one)."""
    staging = target.with_name(f".{target.name}.new")
    retired = target.with_name(f".{target.name}.old")
    for leftover in (staging, retired):
        shutil.rmtree(leftover, ignore_errors=True)
    write(staging)
    if target.exists():
        target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)


# ---------------------------------------------------------------------------- stopping


@contextlib.contextmanager
def interrupt_flag(stop: threading.Event, allow_abort: bool) -> Iterator[None]:
    """Ctrl-C (SIGINT) or SIGTERM sets `stop`, so the loop saves and exits. A second Ctrl-C
    aborts at once when `allow_abort`; not under torchrun, whose agent forwards the user's
    Ctrl-C to workers that the terminal already signalled (a second signal within moments)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if stop.is_set() and signum == signal.SIGINT and allow_abort:
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# ---------------------------------------------------------------------------- the run


@dataclass
class Window:
    """Training steps since the last log row (validation and saving are not counted)."""

    losses: list[Tensor] = field(default_factory=list)
    norms: list[Tensor] = field(default_factory=list)
    seconds: float = 0.0
    data_seconds: float = 0.0  # waiting for batches: a data pipeline that cannot keep up shows here

    def add(self, loss: Tensor, grad_norm: Tensor, data_seconds: float, seconds: float) -> None:
        self.losses.append(loss)
        self.norms.append(grad_norm)
        self.data_seconds += data_seconds
        self.seconds += seconds


class Run:
    """One invocation of training on one process: the loop and its bookkeeping."""

    def __init__(self, config: TrainConfig, trainer: Trainer, stream: BatchStream, val_batches: list[dict],
                 info: DistInfo, progress: TrainProgress, metrics: MetricsLog | None):
        self.config, self.trainer, self.stream, self.val_batches = config, trainer, stream, val_batches
        self.info, self.progress, self.metrics = info, progress, metrics
        self.device = trainer.device
        self.elapsed_before = 0.0
        self.best: dict | None = None
        self.validation: dict[str, float] = {}
        self.losses: list[float] = []
        self.logged_loss: float | None = None
        self.trace = TrainTrace.from_env(info.rank)  # IRESTORE_TRAIN_TRACE: per-rank batch and weight hashes

    # -- resume ----------------------------------------------------------------
    def load(self, state: dict) -> None:
        self.trainer.load_state_dict(state["trainer"])
        epoch, position = int(state["epoch"]), int(state["position"])
        layout = (int(state["world_size"]), int(state["batch_size"]))
        if layout != (self.info.world_size, self.config.batch_size):
            # a position counts batches of one shard layout; with another, start the next epoch afresh
            log.warning("resuming with %d process(es) x batch %d instead of %d x %d: continuing at the start of epoch %d "
                        "(the resume is not exact)", self.info.world_size, self.config.batch_size, *layout, epoch + 1)
            epoch, position = epoch + 1, 0
        self.stream.seek(epoch, position)
        self.elapsed_before = float(state["elapsed_s"])
        self.best = state["best"] or None
        restore_rng(state["rng"])

    def state(self) -> dict:
        return {
            "trainer": self.trainer.state_dict(),
            "epoch": self.stream.epoch,
            "position": self.stream.position,
            "world_size": self.info.world_size,
            "batch_size": self.config.batch_size,
            "elapsed_s": self.elapsed(),
            "best": self.best or {},
            "rng": capture_rng(),
            "config": self.config.to_dict(),
        }

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started

    # -- the loop --------------------------------------------------------------
    def run(self, stop: threading.Event) -> str:
        self.started = time.monotonic()
        window = Window()
        saved_at = -1
        stopped_by = "max_steps"
        while self.trainer.step < self.config.max_steps:
            interrupted, out_of_time = self.one_step(window, stop)
            step = self.trainer.step
            if step % self.config.log_every == 0 or interrupted or out_of_time or step == self.config.max_steps:
                self.log_window(window)
                window = Window()
            if interrupted:
                stopped_by = "interrupted"
                break
            if step % self.config.val_every == 0 or out_of_time or step == self.config.max_steps:
                self.validate()
            if step % self.config.save_every == 0:
                self.save()
                saved_at = step
            if out_of_time:
                stopped_by = "max_minutes"
                break
        if self.trainer.step != saved_at:
            self.save()
        return stopped_by

    def one_step(self, window: Window, stop: threading.Event) -> tuple[bool, bool]:
        """Fetch the micro-batches, take one optimiser step; then all ranks agree whether to stop."""
        begin = time.monotonic()
        batches = [to_device(self.stream.next(), self.device, self.trainer.channels_last) for _ in range(self.config.accumulate)]
        fetched = time.monotonic()
        loss, grad_norm = self.trainer.train_step(batches)
        if self.trace is not None:
            self.trace.record(self.trainer.step, batches, grad_norm, self.trainer.network)
        window.add(loss, grad_norm, data_seconds=fetched - begin, seconds=time.monotonic() - begin)
        out_of_time = self.config.max_minutes is not None and time.monotonic() - self.started > self.config.max_minutes * 60
        return distributed.agree_to_stop(stop.is_set(), out_of_time, self.info, self.device)

    def log_window(self, window: Window) -> None:
        """One log row for the steps since the last one (loss averaged over them and the ranks)."""
        if not window.losses:
            return
        values = torch.stack(window.losses).float().cpu().tolist()  # the only host sync for the loss
        self.losses += values
        loss = distributed.mean_over_ranks(float(np.mean(values)), self.info, self.device)
        self.logged_loss = loss
        if not math.isfinite(loss):
            raise TrainingError(f"the loss is {loss} at step {self.trainer.step}; lower --lr, or train in fp32 (--precision fp32)")
        steps_per_s = len(values) / max(window.seconds, 1e-9)
        samples = self.config.batch_size * self.config.accumulate * self.info.world_size
        row = {"kind": "train", "step": self.trainer.step, "epoch": self.stream.epoch, "elapsed_s": round(self.elapsed(), 3),
               "loss": loss, "lr": self.trainer.lr, "grad_norm": float(torch.stack(window.norms).float().mean()),
               "steps_per_s": steps_per_s, "samples_per_s": steps_per_s * samples,
               "data_fraction": window.data_seconds / max(window.seconds, 1e-9)}
        self.progress.update(self.trainer.step, loss, steps_per_s)
        if self.metrics is not None:
            self.metrics.write(row)

    def validate(self) -> None:
        """Rank 0 scores the EMA weights on the fixed validation batches; keeps the best."""
        if self.info.is_main:
            metrics = self.trainer.task.validate(self.trainer.ema.module, self.val_batches)
            self.validation = metrics
            name = self.trainer.task.best_metric
            value = metrics.get(name, float("nan"))
            shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if not k.startswith("accuracy_"))
            self.progress.print(f"step {self.trainer.step}: {shown}")
            self.metrics.write({"kind": "val", "step": self.trainer.step, "epoch": self.stream.epoch,
                                "elapsed_s": round(self.elapsed(), 3), **metrics})
            if math.isfinite(value) and (self.best is None or value > self.best["value"]):
                self.best = {"metric": name, "value": value, "step": self.trainer.step}
                self.write_checkpoint(BEST)
        distributed.barrier(self.info)

    def save(self) -> None:
        """RUN_DIR/last (EMA weights, engine format) and RUN_DIR/state.pt (exact resume)."""
        if self.info.is_main:
            self.write_checkpoint(LAST)
            save_state(self.config.run_dir / STATE_NAME, self.state())
        distributed.barrier(self.info)

    def write_checkpoint(self, name: str) -> None:
        summary = {
            "task": self.config.task,
            "dataset": self.config.dataset,
            "step": self.trainer.step,
            "epoch": self.stream.epoch,
            "samples_seen": self.trainer.step * self.config.batch_size * self.config.accumulate * self.info.world_size,
            "validation": self.validation,
            "best": self.best,
            "config": self.config.to_dict(),
        }
        replace_folder(self.config.run_dir / name, lambda folder: self.trainer.task.save(folder, self.trainer.ema.module, summary))


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    text_encoder: TextEncoder | None = None,
    stop: threading.Event | None = None,
    console: Console | None = None,
) -> TrainResult:
    """Train as `config` says (resuming RUN_DIR's state when `resume`); under torchrun every
    rank calls this. Returns when max_steps or max_minutes is reached or `stop` is set
    (Ctrl-C sets it); RUN_DIR/last and state.pt are written in every case."""
    info, device = distributed.setup(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    stop = stop or threading.Event()
    metrics = None
    try:
        dtype = training_dtype(config.precision, device, prefers_cpu_bf16(config))
        prepare_run_dir(config, resume)  # every rank checks, so a refusal stops all of them
        distributed.barrier(info)
        state = load_state(config.run_dir / STATE_NAME) if resume else None
        start_step = int(state["trainer"]["step"]) if state else 0
        train_set, val_set = build_datasets(config, info)  # first: bad data fails before models load
        torch.manual_seed(config.seed)
        task = create_task(config, device, dtype, text_encoder)
        trainer = Trainer(config, task, info, device, dtype)
        stream = BatchStream(train_set, info, config.batch_size, config.workers, config.seed, pin_memory=device.type == "cuda",
                             collate=task.collate)
        val_batches = validation_batches(val_set, task, config, device, trainer.channels_last) if info.is_main else []
        if info.is_main:
            save_config(config, config.run_dir)
            metrics = MetricsLog(config.run_dir, task.metric_names, resume_step=start_step if state else None)
        progress = TrainProgress(config.max_steps, start_step, info.is_main, console)
        run = Run(config, trainer, stream, val_batches, info, progress, metrics)
        if state is not None:
            run.load(state)
        with interrupt_flag(stop, allow_abort=not info.enabled), progress:
            stopped_by = run.run(stop)
        return TrainResult(config.run_dir, trainer.step, stream.epoch, stopped_by, run.losses, run.validation, run.best,
                           run.logged_loss, info.rank)
    finally:
        if metrics is not None:
            metrics.close()
        distributed.teardown(info)

