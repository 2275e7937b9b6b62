"""Weights: where each named asset comes from (`sources`: explicit path, IRESTORE_HOME, an
installed package, then a download, every file checked against its sha256) and the model
store behind `irestore models` (`store`: list, verify, import, remove)."""

from irestore.weights.sources import (
    MissingWeightsError,
    WeightSource,
    cache_path,
    file_sha256,
    find_local,
    irestore_home,
    is_offline,
    locate,
    resolve_weights,
)

__all__ = [
    "MissingWeightsError",
    "WeightSource",
    "cache_path",
    "file_sha256",
    "find_local",
    "irestore_home",
    "is_offline",
    "locate",
    "resolve_weights",
]
