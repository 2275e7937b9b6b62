"""Device and precision selection: the only place that decides where tensors live."""

from __future__ import annotations

import torch

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    """Turn 'auto'|'cpu'|'cuda[:N]'|'mps' into a torch.device, failing clearly if absent."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} requested but Apple MPS is not available on this machine")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {name!r}; choose one of {', '.join(DEVICES)}")
    return device


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """Network compute dtype. Half precision is used only on CUDA; elsewhere fp32."""
    if precision not in _DTYPES:
        raise ValueError(f"unsupported precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if device.type != "cuda":
        return torch.float32
    return _DTYPES[precision]
