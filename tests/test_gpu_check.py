"""scripts/gpu_check.sh end to end in its --dry-run (CPU, tiny sizes): every phase runs, records
numbers and no error, and the JSON and Markdown summaries are written."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _driver():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("gpu-check")
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dry-run"], check=False, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, json.loads((out / "gpu_check.json").read_text())


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and value > 0


def test_every_phase_runs_without_error_and_records_numbers(dry_run):
    out, summary = dry_run
    driver = _driver()
    phases = summary["phases"]
    assert list(phases) == list(driver.PHASES) and summary["dry_run"] is True
    assert {name: phase["error"] for name, phase in phases.items()} == dict.fromkeys(driver.PHASES)
    assert all(isinstance(phase["seconds"], (int, float)) for phase in phases.values())

    tests = phases["pytest"]
    assert tests["tests"] >= 30 and tests["failed"] == 0  # the CUDA tests are collected (and skipped here)
    assert tests["passed"] + tests["skipped"] == tests["tests"]

    inference = phases["inference"]
    assert _positive(inference["default_pipeline"]["mp_per_s"])
    assert list(inference["models"]) == list(driver.DRY_MODELS)
    for name, row in inference["models"].items():
        assert "error" not in row, (name, row)
        assert _positive(row["bf16_mp_per_s"]) and _positive(row["fp32_mp_per_s"]), name
        assert _positive(row["flops_per_mp_per_step"]) and row["steps"] >= 1, name
        assert row["floor_s_per_mp"] is None and row["floor_ratio"] is None  # no known peak for a CPU
    assert inference["models"]["allinone-small"]["steps"] > 1  # a diffusion model's floor counts its steps

    for name, row in phases["training"]["recipes"].items():
        assert "error" not in row, (name, row)
        assert row["largest_batch"] >= 2 and _positive(row["samples_per_s"]), name  # the doubling ran
        assert row["stopped_by"] in ("max_batch", "time", "out_of_memory"), name
    assert list(phases["training"]["recipes"]) == list(driver.DRY_RECIPES)

    burst = phases["burst"]
    assert burst["steps"] >= 1 and _positive(burst["samples_per_s"]) and burst["final_loss"] is not None
    assert (Path(burst["checkpoint"]) / "model.safetensors").is_file()
    assert (out / "burst" / "train.log").is_file()


def test_the_markdown_summary_names_every_phase_and_model(dry_run):
    out, summary = dry_run
    text = (out / "gpu_check.md").read_text()
    assert all(f"| {name} |" in text for name in summary["phases"])
    assert all(f"| {name} |" in text for name in summary["phases"]["inference"]["models"])


def test_flops_are_counted_per_megapixel():
    """FFDNet is convolutional: its FLOPs per megapixel do not depend on the image size."""
    from irestore.pipeline import load_model

    driver = _driver()
    model = load_model("ffdnet-color", device="cpu", precision="fp32")
    small, steps = driver.network_flops_per_mp(model, 32)
    large, _ = driver.network_flops_per_mp(model, 64)
    assert steps == 1 and small == pytest.approx(large, rel=0.02)
    assert 1e10 < small < 1e13  # 12 layers of 96-channel 3x3 convolutions on a half-size grid
