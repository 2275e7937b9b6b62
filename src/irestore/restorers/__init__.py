"""Restoration methods: one contract (`RestorationMethod`, `Card`, `Condition`) and one registry.

The benchmark compares them and the planner picks from them: classical filters (dcp, gamma,
nlm, cbm3d, wiener, rl, bicubic), pretrained networks (ffdnet-color) and irestore's own diffusion
restorers (allinone-small, ``irestore:MODEL@STEPS``). `create_restorer(spec)` (from :mod:`irestore.registry`, re-exported here) builds one by name.
"""

from irestore.registry import RESTORERS, create_restorer, list_restorers, method_info, register_restorer
from irestore.restorers.base import (
    FAMILIES,
    ArrayMethod,
    Card,
    Condition,
    Degradation,
    MethodSkipped,
    RestorationMethod,
    RunSettings,
)
from irestore.restorers.catalogue import MethodInfo
from irestore.restorers.ffdnet import FFDNetDenoiser, estimate_noise_sigma

__all__ = [
    "FAMILIES",
    "RESTORERS",
    "ArrayMethod",
    "Card",
    "Condition",
    "Degradation",
    "FFDNetDenoiser",
    "MethodInfo",
    "MethodSkipped",
    "RestorationMethod",
    "RunSettings",
    "create_restorer",
    "estimate_noise_sigma",
    "list_restorers",
    "method_info",
    "register_restorer",
]
