"""Device and precision selection: the only place that decides where tensors live."""

from __future__ import annotations

import platform
import warnings
from pathlib import Path

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
    """Network compute dtype for autocast. CUDA takes bf16 and fp16, the CPU bf16;
    anything else falls back to fp32 (with a warning), since it would be slower or unsupported."""
    if precision not in _DTYPES:
        raise ValueError(f"unsupported precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    dtype = _DTYPES[precision]
    supported = device.type == "cuda" or (device.type == "cpu" and dtype == torch.bfloat16)
    if dtype != torch.float32 and not supported:
        warnings.warn(f"{precision} is not supported on {device.type}; using fp32", stacklevel=2)
        return torch.float32
    return dtype


def cpu_has_native_bf16() -> bool:
    """Whether the CPU computes bf16 matrix products natively (AMX or AVX-512 BF16), where
    oneDNN runs bf16 convolutions several times faster than fp32."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return bool({"amx_bf16", "avx512_bf16"} & set(line.split()))
    except OSError:
        pass
    return False


def cpu_model() -> str:
    """The CPU's model name, for benchmark reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def keep_freed_memory_mapped() -> bool:
    """Stop glibc from unmapping large freed buffers (same as MALLOC_MMAP_MAX_=0 and a huge
    MALLOC_TRIM_THRESHOLD_). CPU inference and training allocate and free activation buffers
    of tens of MB every layer; unmapping them makes every reuse page-fault afresh, which took
    about half the CPU time at 1 MP. Freed memory stays with the process (measured at 1 MP:
    half the time for about 0.8 GB more peak RSS).
    Returns False where the C library is not glibc; IRESTORE_SYSTEM_MALLOC=1 opts out."""
    import ctypes
    import os

    if os.environ.get("IRESTORE_SYSTEM_MALLOC") == "1" or platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**30))
    except (OSError, AttributeError):
        return False

