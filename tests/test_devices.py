"""Process-level CPU settings: the allocator tuning the CLI and CPU restorers apply."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest
import torch

from irestore.devices import resolve_precision

# the tuning is process-global: run it in fresh interpreters, never in the test process
PROBE = textwrap.dedent(
    """
    import os, resource, sys
    from irestore.devices import keep_freed_memory_mapped
    print(keep_freed_memory_mapped())
    import torch
    torch.set_num_threads(1)
    x, w = torch.rand(1, 16, 1024, 1024), torch.rand(16, 16, 3, 3)
    with torch.inference_mode():
        torch.nn.functional.conv2d(x, w, padding=1)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        # 64 MB activations, allocated and freed like a network's layers. Above glibc's largest
        # dynamic mmap threshold (32 MB), so by default each one is mmapped and unmapped on free
        # (a 16 MB buffer may move to the heap after the first free, which made the count vary)
        for _ in range(10):
            y = torch.nn.functional.conv2d(x, w, padding=1) * 2 + 1
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def _probe(**env: str) -> tuple[str, int]:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                            env={**os.environ, **env}, timeout=120)
    applied, faults = result.stdout.split()
    return applied, int(faults)


@pytest.mark.skipif(platform.system() != "Linux", reason="glibc mallopt exists only on Linux")
def test_freed_buffers_stay_mapped_so_reuse_does_not_page_fault_again():
    applied, faults = _probe()
    default_applied, default_faults = _probe(IRESTORE_SYSTEM_MALLOC="1")
    assert (applied, default_applied) == ("True", "False")
    # glibc default: every freed 64 MB activation is unmapped, so each new one faults its
    # 16384 pages in again (three buffers per iteration; ask for at least one)
    assert default_faults > 10 * 16384, default_faults
    assert faults < default_faults / 3, (faults, default_faults)


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_of_the_shipped_models_follows_the_cpu_measurement(monkeypatch, native):
    """auto: bf16 on the CPU only where it measured faster (M3UNet specialists, FFDNet) and the CPU
    has native bf16; fp32 for the ERUNet all-in-one; bf16 on CUDA; an explicit fp32 is kept."""
    from irestore.pipeline import load_model

    monkeypatch.setattr("irestore.devices.cpu_has_native_bf16", lambda: native)
    fast = torch.bfloat16 if native else torch.float32
    assert load_model("derain", device="cpu", precision="auto").dtype == fast
    assert load_model("ffdnet-color", device="cpu", precision="auto").dtype == fast
    assert load_model("allinone-small", device="cpu", precision="auto").dtype == torch.float32
    assert load_model("derain", device="cpu", precision="fp32").dtype == torch.float32
    assert resolve_precision("auto", torch.device("cuda"), cpu_bf16=False) == torch.bfloat16
    assert resolve_precision("auto", torch.device("mps"), cpu_bf16=True) == torch.float32
