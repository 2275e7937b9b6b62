"""Run a command (e.g. torchrun and its workers) in its own process group, killed whole on timeout."""

import os
import signal
import subprocess

import pytest


def run_killing_the_group(command: list[str], timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command in its own process group; on timeout kill the group (torchrun's workers too)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, env=env)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"timed out after {timeout} s: {stderr[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
