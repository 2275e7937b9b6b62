"""`irestore restore --plan ...` and `irestore plan`: the plan in the manifest, explicit plans, one model alone."""

import json
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from typer.testing import CliRunner

from irestore import degrade
from irestore.cli.app import app
from irestore.evaluate.metrics import psnr
from irestore.io import read_image
from paths import TEST_DATA

runner = CliRunner()
CROP = TEST_DATA / "aitzgorri_crop.png"


def _folder(tmp_path: Path) -> tuple[Path, np.ndarray]:
    src = tmp_path / "in"
    src.mkdir()
    clean = read_image(CROP).rgb
    noisy = degrade.noise(clean, np.random.default_rng(0), sigma=25).image
    PILImage.fromarray(np.round(noisy * 255).astype(np.uint8)).save(src / "noisy.png")
    PILImage.fromarray(np.round(clean * 255).astype(np.uint8)).save(src / "clean.png")
    return src, clean


def _manifest(out: Path) -> dict[str, dict]:
    return {r["relative"]: r for r in map(json.loads, (out / "irestore-manifest.jsonl").read_text().splitlines())}


def test_the_default_restore_plans_per_image_and_records_the_plan(tmp_path):
    src, clean = _folder(tmp_path)
    out = tmp_path / "out"
    result = runner.invoke(app, ["restore", str(src), str(out), "--prompt-from-caption"])
    assert result.exit_code == 0, result.output
    records = _manifest(out)
    noisy = records["noisy.png"]
    assert noisy["model"] == "plan:auto" and noisy["plan"].startswith("noise:ffdnet-color")
    assert noisy["labels"] == ["noise"] and noisy["plan_mode"] == "auto" and noisy["time_plan"] > 0
    details = noisy["plan_details"]
    assert details["score_after"] < details["score_before"]
    assert all({"step", "score_before", "score_after", "seconds", "outcome"} <= set(e) for e in details["evaluations"])
    assert all(e["kept"] for e in noisy["plan_run"]) or noisy["plan_rolled_back"]
    assert psnr(read_image(out / "noisy.png").rgb, clean) > psnr(read_image(src / "noisy.png").rgb, clean) + 6
    untouched = records["clean.png"]
    assert untouched["plan"] == "" and untouched["plan_run"] == []
    assert np.array_equal(read_image(out / "clean.png").rgb, read_image(src / "clean.png").rgb)


def test_an_explicit_plan_runs_its_steps_in_order_and_plan_none_runs_one_model(tmp_path):
    src, _ = _folder(tmp_path)
    explicit = runner.invoke(app, ["restore", str(src / "clean.png"), str(tmp_path / "a"), "--plan", "lowlight:gamma,noise:ffdnet-color"])
    assert explicit.exit_code == 0, explicit.output
    record = _manifest(tmp_path / "a")["clean.png"]
    assert record["plan"] == "lowlight:gamma,noise:ffdnet-color" and [e["step"] for e in record["plan_run"]] == ["lowlight:gamma", "noise:ffdnet-color"]
    alone = runner.invoke(app, ["restore", str(src / "noisy.png"), str(tmp_path / "b"), "--model", "ffdnet-color"])
    assert alone.exit_code == 0, alone.output
    record = _manifest(tmp_path / "b")["noisy.png"]
    assert record["model"] == "ffdnet-color" and "plan" not in record
    classical = runner.invoke(app, ["restore", str(src / "noisy.png"), str(tmp_path / "c"), "--model", "nlm"])
    assert classical.exit_code == 0, classical.output
    assert _manifest(tmp_path / "c")["noisy.png"]["model"] == "nlm"


def test_plan_usage_errors_are_clear(tmp_path):
    src, _ = _folder(tmp_path)
    for args, message in ((["--model", "ffdnet-color", "--plan", "fixed"], "cannot be combined"),
                          (["--plan", "noise:magic"], "unknown method"),
                          (["--plan", "sharpen:dcp"], "unknown label"),
                          (["--precision", "bf16"], "--precision applies to one model")):
        result = runner.invoke(app, ["restore", str(src), str(tmp_path / "out"), *args])
        assert result.exit_code == 2 and message in result.output, (args, result.output)
        assert not (tmp_path / "out").exists()


def test_irestore_plan_prints_the_plan_and_its_scores_without_restoring(tmp_path):
    src, _ = _folder(tmp_path)
    result = runner.invoke(app, ["plan", str(src), "--json"])
    assert result.exit_code == 0, result.output
    rows = {Path(r["input"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert rows["noisy.png"]["plan"].startswith("noise:ffdnet-color") and rows["noisy.png"]["evaluations"]
    assert rows["clean.png"]["plan"] == "" and rows["clean.png"]["detected"] == ["clean"]
    assert sorted(p.name for p in src.iterdir()) == ["clean.png", "noisy.png"]  # nothing written
    forbidden = runner.invoke(app, ["plan", str(src / "noisy.png"), "--prompt", "keep the grain", "--json"])
    assert json.loads(forbidden.stdout)["plan"] == "" and json.loads(forbidden.stdout)["intent"]["forbid"] == ["noise"]
    missing = runner.invoke(app, ["plan", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no such file" in missing.output
