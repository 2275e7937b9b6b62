"""Weights: where each named asset comes from (`sources`: explicit path, IRESTORE_HOME, an
installed package, then a download, every file checked against its sha256) and the model
store behind `irestore models` (`store`: list, verify, import, remove)."""

from irestore.weights.sources import (
    CATALOGUE,
    MissingWeightsError,
    WeightSource,
    cache_path,
    file_sha256,
    find_local,
    get_source,
    irestore_home,
    is_offline,
    list_weights,
    load_catalogue,
    locate,
    register_weights,
    resolve_weights,
)

__all__ = [
    "CATALOGUE",
    "MissingWeightsError",
    "WeightSource",
    "cache_path",
    "file_sha256",
    "find_local",
    "get_source",
    "irestore_home",
    "is_offline",
    "list_weights",
    "load_catalogue",
    "locate",
    "register_weights",
    "resolve_weights",
]
