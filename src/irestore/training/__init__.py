"""Training the restorer and the degradation classifier (library side of `irestore train`)."""

from irestore.training.config import ConfigError, TrainConfig, build_config, load_config_file, load_run_config
from irestore.training.loop import TrainingError, TrainResult, train

__all__ = [
    "ConfigError",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "build_config",
    "load_config_file",
    "load_run_config",
    "train",
]
