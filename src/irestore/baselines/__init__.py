"""Peer restoration methods to compare with: classical filters, pretrained networks and irestore itself.

`create_method(spec)` builds one by name (see `list_methods()`); each restores an HxWx3 float32
image given what the benchmark suite knows about its degradation (`Degradation`).
"""

from irestore.baselines.base import Degradation, MethodSkipped, PeerMethod
from irestore.baselines.ffdnet import FFDNetDenoiser, estimate_noise_sigma
from irestore.baselines.registry import METHODS, MethodInfo, create_method, list_methods, method_info

__all__ = [
    "METHODS",
    "Degradation",
    "FFDNetDenoiser",
    "MethodInfo",
    "MethodSkipped",
    "PeerMethod",
    "create_method",
    "estimate_noise_sigma",
    "list_methods",
    "method_info",
]
