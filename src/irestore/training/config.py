"""Training settings: one frozen dataclass, filled from defaults < a run's saved config <
a config file (YAML/JSON) < command-line flags, then resolved (task-dependent defaults
made explicit) and saved as RUN_DIR/config.json."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from irestore.diffusion.sampling import PREDICTIONS
from irestore.io import atomic_write_text

TASKS = ("restorer", "classifier")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
CONFIG_NAME = "config.json"
DEFAULT_MODELS = {"restorer": "erunet-small", "classifier": "degnet"}
DEFAULT_LR = {"restorer": 2e-4, "classifier": 1e-3}


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the setting (and file) at fault."""


@dataclass(frozen=True)
class TrainConfig:
    """Every training setting. None means "derive it" (see `resolve`)."""

    dataset: str = ""
    out: str = ""
    task: str = "restorer"
    model: str | None = None
    model_overrides: Mapping[str, Any] = field(default_factory=dict)
    degradations: str | None = None
    crop: int = 256
    batch_size: int = 8
    accumulate: int = 1
    epoch_length: int | None = None  # dataset length per epoch (synthetic datasets), None = natural
    workers: int = 2
    pixel_cache_mb: float = 2048.0  # decoded training photos kept in memory, shared out among the loading processes
    # optimisation
    lr: float | None = None
    min_lr_ratio: float = 0.01
    warmup_steps: int | None = None
    schedule_steps: int | None = None  # length of the cosine schedule; None = max_steps
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    ema: float = 0.999
    # stopping
    max_steps: int = 100_000
    max_minutes: float | None = None
    # validation, checkpoints and logs
    val_every: int = 1000
    val_samples: int = 8
    val_steps: int = 4
    val_crop: int | None = None
    val_dataset: str | None = None  # None = the training dataset
    val_split: str | None = None  # None = 'val', else 'test', else 'train' (whichever the layout has)
    val_fraction: float = 0.1  # share of photos that folder:/pairs: datasets hold out (by photo)
    save_every: int | None = None
    log_every: int = 10
    # conditioning
    text_encoder: str = "minilm"
    classifier: str | None = None
    prompt_dropout: float = 0.1
    degradation_dropout: float = 0.1  # share of samples trained with the "no embedding" vector
    sde: Mapping[str, Any] = field(default_factory=dict)  # SDEConfig overrides
    prediction: str | None = None  # restorer output: "noise" (IR-SDE ML loss), "x0" (L1 on x̂_0) or "direct"
    # (one-pass regressor); None = the network family's DEFAULT_PREDICTION ("x0" for m3unet, "noise" for erunet)
    # execution
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool | None = None  # None = on CUDA and CPU (loop.CHANNELS_LAST_DEVICES)
    threads: int | None = None  # CPU threads of the training process; None = torch's default
    seed: int = 0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["betas"] = list(self.betas)
        data["model_overrides"] = dict(self.model_overrides)
        data["sde"] = dict(self.sde)
        return data

    @property
    def run_dir(self) -> Path:
        return Path(self.out)


FIELD_NAMES = frozenset(f.name for f in fields(TrainConfig))


def normalise_keys(values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Accept `max-steps` and `max_steps` alike; reject unknown settings, naming the source."""
    out = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in FIELD_NAMES:
            raise ConfigError(f"{source}: unknown setting {key!r}; known: {', '.join(sorted(FIELD_NAMES))}")
        out[name] = value
    return out


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Settings from a YAML (.yaml/.yml) or JSON file, as a dict of field names."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config file ({error.strerror or error})") from error
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
    except Exception as error:  # YAML and JSON syntax errors alike
        raise ConfigError(f"{path}: not valid {'YAML' if path.suffix.lower() in ('.yaml', '.yml') else 'JSON'} ({error})") from error
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: a config file must hold a mapping of settings, not {type(data).__name__}")
    return normalise_keys(data, str(path))


def build_config(*layers: Mapping[str, Any]) -> TrainConfig:
    """Merge setting layers (later wins) over the defaults, then check and resolve them."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update({k: v for k, v in normalise_keys(layer, "settings").items() if v is not None})
    if "betas" in merged:
        merged["betas"] = tuple(float(b) for b in merged["betas"])
    return resolve(TrainConfig(**merged))


def resolve(config: TrainConfig) -> TrainConfig:
    """Check the settings and fill every derived one, so the saved config is complete."""
    _check(config)
    warmup = config.warmup_steps if config.warmup_steps is not None else min(1000, config.max_steps // 20)
    model = config.model or DEFAULT_MODELS[config.task]
    prediction = config.prediction or default_prediction(config.task, model)
    if config.task == "restorer" and prediction != "direct":  # a one-pass regressor takes no sampler steps
        _check_val_steps(config.val_steps, config.sde)
    return replace(
        config,
        model=model,
        prediction=prediction,
        lr=config.lr if config.lr is not None else DEFAULT_LR[config.task],
        warmup_steps=warmup,
        schedule_steps=config.schedule_steps or config.max_steps,
        save_every=config.save_every or config.val_every,
        val_crop=config.val_crop or config.crop,
    )


def _check_val_steps(val_steps: int, sde: Mapping[str, Any]) -> None:
    """Validation samples in `val_steps` steps (also the checkpoint's default): at most the SDE's T."""
    from irestore.diffusion.sde import SDEConfig

    try:
        T = SDEConfig(**sde).T
    except (TypeError, ValueError) as error:
        raise ConfigError(f"sde {dict(sde)}: {error}") from error
    if val_steps > T:
        raise ConfigError(f"val_steps {val_steps} is more than the SDE's T = {T} steps; choose 1 to {T}")


def default_prediction(task: str, model: str) -> str:
    """What a restorer network outputs unless told: its family's default ("noise" otherwise)."""
    from irestore.registry import network_family

    family = network_family(model) if task == "restorer" else None
    return family.DEFAULT_PREDICTION if family is not None else "noise"


def _check(config: TrainConfig) -> None:
    problems = []
    if not config.dataset:
        problems.append("a dataset is required (--dataset NAME[:ROOT])")
    if not config.out:
        problems.append("a run folder is required (--out RUN_DIR)")
    if config.task not in TASKS:
        problems.append(f"task {config.task!r}: choose one of {', '.join(TASKS)}")
    if config.precision not in PRECISIONS:
        problems.append(f"precision {config.precision!r}: choose one of {', '.join(PRECISIONS)}")
    positive = ("crop", "batch_size", "accumulate", "max_steps", "val_every", "val_samples", "val_steps", "log_every")
    problems += [f"{name} must be at least 1, got {getattr(config, name)}" for name in positive if getattr(config, name) < 1]
    if config.threads is not None and config.threads < 1:
        problems.append(f"threads must be at least 1, got {config.threads}")
    if config.workers < 0:
        problems.append(f"workers must be 0 or more, got {config.workers}")
    if config.pixel_cache_mb < 0:
        problems.append(f"pixel_cache_mb must be 0 (off) or more, got {config.pixel_cache_mb}")
    if not 0 <= config.ema < 1:
        problems.append(f"ema decay must be in [0, 1), got {config.ema}")
    for name in ("prompt_dropout", "degradation_dropout"):
        if not 0 <= getattr(config, name) <= 1:
            problems.append(f"{name} must be in [0, 1], got {getattr(config, name)}")
    if config.prediction is not None and config.prediction not in PREDICTIONS:
        problems.append(f"prediction must be one of {', '.join(PREDICTIONS)}, got {config.prediction!r}")
    if not 0 < config.val_fraction < 1:
        problems.append(f"val_fraction must be in (0, 1), got {config.val_fraction}")
    if config.max_minutes is not None and config.max_minutes <= 0:
        problems.append(f"max_minutes must be positive, got {config.max_minutes}")
    if config.lr is not None and config.lr <= 0:
        problems.append(f"lr must be positive, got {config.lr}")
    if config.task == "classifier" and config.classifier:
        problems.append("--classifier (a frozen degradation classifier) only applies to the restorer task")
    if problems:
        raise ConfigError("; ".join(problems))


def save_config(config: TrainConfig, run_dir: str | Path) -> Path:
    path = Path(run_dir) / CONFIG_NAME
    atomic_write_text(path, json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
    return path


def load_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The saved settings of an earlier run (for --resume)."""
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise ConfigError(f"{run_dir}: not a training run folder (no {CONFIG_NAME})")
    return load_config_file(path)
