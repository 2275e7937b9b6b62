"""Device and precision selection: the only place that decides where tensors live."""

from __future__ import annotations

import platform
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# auto: bf16 on CUDA (with the fp32 redo of non-finite outputs); on a CPU with native bf16, bf16 for the
# networks that run faster in it (dense convolutions: M3UNet, FFDNet; benchmarks/precision_speed.py and
# train_speed.py, README), fp32 for the others (ERUNet's depthwise convolutions ran slower); MPS: fp32
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


def rank_device(name: str, env: Mapping[str, str]) -> str:
    """Under torchrun (LOCAL_RANK set) each process of a machine takes a GPU of its own: ``cuda``,
    and ``auto`` where CUDA is present, become ``cuda:LOCAL_RANK``; any other device is kept."""
    local = env.get("LOCAL_RANK")
    if local is None or name not in ("auto", "cuda") or (name == "auto" and not torch.cuda.is_available()):
        return name
    if not local.strip().isdigit():
        raise ValueError(f"LOCAL_RANK={local!r} is not a GPU number")
    count = torch.cuda.device_count()
    if count and int(local) >= count:
        raise ValueError(f"LOCAL_RANK {int(local)}, but this machine has {count} CUDA device(s): "
                         f"start at most {count} process(es) per machine (torchrun --nproc-per-node)")
    return f"cuda:{int(local)}"


def resolve_precision(precision: str, device: torch.device, cpu_bf16: bool = False) -> torch.dtype:
    """Network compute dtype for autocast. CUDA takes bf16 and fp16, the CPU bf16;
    anything else falls back to fp32 (with a warning), since it would be slower or unsupported.
    ``auto`` (see PRECISIONS): ``cpu_bf16`` says the network runs faster in bf16 on a CPU that has it."""
    if precision not in PRECISIONS:
        raise ValueError(f"unsupported precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        fast_cpu_bf16 = device.type == "cpu" and cpu_bf16 and cpu_has_native_bf16()
        return torch.bfloat16 if device.type == "cuda" or fast_cpu_bf16 else torch.float32
    if not precision_supported(precision, device):
        warnings.warn(f"{precision} is not supported on {device.type}; using fp32", stacklevel=2)
        return torch.float32
    return _DTYPES[precision]


def precision_supported(precision: str, device: torch.device) -> bool:
    """Whether ``precision`` runs on ``device`` as asked (CUDA: all; the CPU: fp32 and bf16; MPS: fp32)."""
    return precision in ("auto", "fp32") or device.type == "cuda" or (device.type == "cpu" and precision == "bf16")


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

