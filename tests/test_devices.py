"""Process-level CPU settings: the allocator tuning the CLI and CPU restorers apply."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

# the tuning is process-global: run it in fresh interpreters, never in the test process
PROBE = textwrap.dedent(
    """
    import os, resource, sys
    from irestore.devices import keep_freed_memory_mapped
    print(keep_freed_memory_mapped())
    import torch
    torch.set_num_threads(1)
    x, w = torch.rand(1, 16, 512, 512), torch.rand(16, 16, 3, 3)
    with torch.inference_mode():
        torch.nn.functional.conv2d(x, w, padding=1)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(10):  # 16 MB activations, allocated and freed like a network's layers
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
    # glibc default: every freed 16 MB activation is unmapped, so each new one faults its pages in
    assert default_faults > 10 * 4096, default_faults
    assert faults < default_faults / 3, (faults, default_faults)
