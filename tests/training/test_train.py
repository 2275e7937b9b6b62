"""`irestore train` end to end: real photos through the real datasets and degradations, the real
MiniLM text encoder, checkpoints read back by the engine, torchrun and signals in subprocesses."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from irestore.cli.app import app
from irestore.conditioning.classifier import load_classifier
from irestore.diffusion.checkpoint import load_checkpoint, read_info
from irestore.evaluate.metrics import psnr
from irestore.io import image_to_tensor
from irestore.pipeline import Restorer
from irestore.training import ConfigError, build_config, load_config_file, load_run_config, train
from irestore.training.data import fixed_subset
from irestore.training.distributed import DistInfo
from irestore.training.loop import build_datasets, step_generator
from irestore.training.optim import EMA, WarmupCosine
from irestore.training.state import load_state
from irestore.training.tasks import average_precision, create_task
from network_helpers import _randomise
from process_group import run_killing_the_group

runner = CliRunner()
TEXT_DIM = 384  # MiniLM; erunet-tiny's own text_dim (32) is replaced by the encoder's


def _cli() -> typer.Typer:
    return app


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """24 real photo crops (64x64) from scikit-image's bundled photographs."""
    from skimage import data

    root = tmp_path_factory.mktemp("photos")
    for n, image in enumerate(np.array(img[:384, :384]) for img in (data.astronaut(), data.coffee(), data.chelsea(), data.rocket())):
        for k in range(6):
            y, x = 40 * k, 50 * (k % 3)
            Image.fromarray(image[y : y + 128 : 2, x : x + 128 : 2]).save(root / f"photo{n}_{k}.png")
    return root


def _settings(photos: Path, out: Path, **extra) -> dict:
    return {"dataset": f"folder:{photos}", "out": str(out), "model": "erunet-tiny", "degradations": "noise:20-50",
            "crop": 32, "batch_size": 4, "epoch_length": 16, "val_samples": 2, "val_steps": 2, "workers": 0,
            "log_every": 1, "lr": 3e-3, "warmup_steps": 0, **extra}


@pytest.fixture(scope="module")
def smoke_run(photos, tmp_path_factory, minilm):
    out = tmp_path_factory.mktemp("runs") / "smoke"
    config = build_config(_settings(photos, out, max_steps=60, val_every=30, ema=0.9))
    return config, train(config, text_encoder=minilm)


def _fixed_loss(task, network, batch) -> float:
    with torch.no_grad():
        return float(np.mean([float(task.loss(network, batch, step_generator(99, 0, i, 0))) for i in range(6)]))


def test_smoke_run_of_16_samples_lowers_the_loss(smoke_run, minilm):
    config, result = smoke_run
    assert result.step == 60 and result.stopped_by == "max_steps"
    assert result.epoch == 60 * 4 // 16 - 1  # 4 batches of 4 per 16-sample epoch
    # the same batch, times and noise: a fresh network against the trained (EMA) weights
    task = create_task(config, torch.device("cpu"), torch.float32, minilm)
    train_set, _ = build_datasets(config, DistInfo())
    batch = task.collate(fixed_subset(train_set, 16))
    trained, info = load_checkpoint(config.run_dir / "last")
    untrained_loss, trained_loss = _fixed_loss(task, task.network, batch), _fixed_loss(task, trained, batch)
    assert trained_loss < 0.85 * untrained_loss, (untrained_loss, trained_loss)
    rows = [json.loads(line) for line in (config.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == list(range(1, 61))
    assert [r["step"] for r in rows if r["kind"] == "val"] == [30, 60]
    assert all(math.isfinite(r["loss"]) for r in rows if r["kind"] == "train")
    csv_lines = (config.run_dir / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("kind,step,epoch") and len(csv_lines) == len(rows) + 1
    assert any((config.run_dir / "tensorboard").iterdir())
    saved = json.loads((config.run_dir / "config.json").read_text())
    assert saved["max_steps"] == 60 and saved["model"] == "erunet-tiny" and saved["lr"] == 3e-3
    assert info.training["step"] == 60 and info.text_dim == TEXT_DIM and info.classifier is None


def test_a_noise_prediction_checkpoint_loads_and_samples_through_the_engine(smoke_run, photos, minilm):
    config, result = smoke_run
    best = config.run_dir / "best"
    assert read_info(best).training["best"]["step"] == result.best["step"]
    restorer = Restorer.from_pretrained(best, device="cpu", text_encoder=minilm)
    clean = image_to_tensor(np.asarray(Image.open(next(photos.glob("*.png"))), dtype=np.float32) / 255)
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    restored = restorer.restore(noisy, prompt="remove the noise", steps=3, tile=None, generator=torch.Generator().manual_seed(1))
    assert restored.shape == noisy.shape and torch.isfinite(restored).all()
    assert 0 <= float(restored.min()) and float(restored.max()) <= 1


def _engine_psnr(restorer: Restorer, items: list[dict]) -> tuple[float, float]:
    """Mean PSNR of the engine's one-step restoration of each degraded item, and of its input."""
    restored, inputs = [], []
    for item in items:
        if torch.equal(item["lq"], item["gt"]):
            continue
        out = restorer.restore(item["lq"][None], prompt=item["prompt"], steps=1, tile=None)
        gt = item["gt"].permute(1, 2, 0).numpy()
        restored.append(psnr(out[0].permute(1, 2, 0).numpy(), gt))
        inputs.append(psnr(item["lq"].permute(1, 2, 0).numpy(), gt))
    return float(np.mean(restored)), float(np.mean(inputs))


def test_x0_prediction_run_lowers_the_loss_and_its_checkpoint_samples_in_few_steps(photos, tmp_path, minilm):
    config = build_config(_settings(photos, tmp_path / "x0", prediction="x0", max_steps=40, val_every=40, ema=0.9, val_steps=1))
    train(config, text_encoder=minilm)
    task = create_task(config, torch.device("cpu"), torch.float32, minilm)
    batch = task.collate(fixed_subset(build_datasets(config, DistInfo())[0], 16))
    trained, info = load_checkpoint(config.run_dir / "last")
    assert info.prediction == "x0" and info.default_steps == 1
    assert _fixed_loss(task, trained, batch) < 0.85 * _fixed_loss(task, task.network, batch)
    # one posterior step of an x̂_0 network is its clean-image estimate: it must beat the noisy input
    val = [json.loads(line) for line in (config.run_dir / "metrics.jsonl").read_text().splitlines() if '"val"' in line][-1]
    assert val["psnr"] > val["input_psnr"] + 1, val
    restorer = Restorer.from_pretrained(config.run_dir / "best", device="cpu", text_encoder=minilm)
    assert restorer.info.prediction == "x0"
    # the best checkpoint, read back by the engine, restores the held-out images as well as
    # training measured (so what is saved and loaded is the network that was validated)
    best = read_info(config.run_dir / "best").training["best"]
    engine, inputs = _engine_psnr(restorer, fixed_subset(build_datasets(config, DistInfo())[1], config.val_samples))
    assert engine == pytest.approx(best["value"], abs=0.05) and inputs == pytest.approx(val["input_psnr"], abs=1e-6)
    assert engine > inputs + 1


@pytest.mark.parametrize("prediction", ["x0", "direct"])
def test_m3unet_trains_with_its_multiscale_loss_and_restores_through_its_checkpoint(prediction, photos, tmp_path, minilm):
    settings = _settings(photos, tmp_path / prediction, model="m3unet-tiny", max_steps=40, val_every=40, ema=0.9, val_steps=1)
    if prediction == "direct":
        settings["prediction"] = "direct"
    config = build_config(settings)
    assert config.prediction == prediction  # x0 is the m3unet default
    train(config, text_encoder=minilm)
    task = create_task(config, torch.device("cpu"), torch.float32, minilm)
    batch = task.collate(fixed_subset(build_datasets(config, DistInfo())[0], 16))
    trained, info = load_checkpoint(config.run_dir / "last")
    assert type(trained).__name__ == "M3UNet" and info.prediction == prediction
    assert info.network.uses_state is (prediction == "x0")
    assert _fixed_loss(task, trained, batch) < 0.85 * _fixed_loss(task, task.network, batch)
    val = [json.loads(line) for line in (config.run_dir / "metrics.jsonl").read_text().splitlines() if '"val"' in line][-1]
    assert val["psnr"] > val["input_psnr"] + 1, val
    restorer = Restorer.from_pretrained(config.run_dir / "best", device="cpu", text_encoder=minilm)
    clean = image_to_tensor(np.asarray(Image.open(next(photos.glob("*.png"))), dtype=np.float32) / 255)
    noisy = (clean + 0.12 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    restored = restorer.restore(noisy, prompt="remove the noise", steps=1, tile=None, generator=torch.Generator().manual_seed(1))
    assert restored.shape == noisy.shape
    assert float((restored - clean).abs().mean()) < float((noisy - clean).abs().mean())


def test_resume_after_2_steps_equals_an_uninterrupted_4_step_run(photos, tmp_path, minilm):
    # workers and accumulation on, an epoch boundary inside the run: 12 samples = 3 batches per epoch
    common = {"epoch_length": 12, "accumulate": 2, "workers": 1, "val_every": 3, "warmup_steps": 1}
    split = tmp_path / "split"
    train(build_config(_settings(photos, split, max_steps=2, schedule_steps=4, **common)), text_encoder=minilm)
    resumed = train(build_config(load_run_config(split), {"max_steps": 4}), resume=True, text_encoder=minilm)
    whole = train(build_config(_settings(photos, tmp_path / "whole", max_steps=4, **common)), text_encoder=minilm)
    assert resumed.step == whole.step == 4 and resumed.epoch == whole.epoch == 2
    a, b = load_state(split / "state.pt"), load_state(tmp_path / "whole" / "state.pt")
    for key in ("network", "ema"):
        left = a["trainer"][key] if key == "network" else a["trainer"][key]["weights"]
        right = b["trainer"][key] if key == "network" else b["trainer"][key]["weights"]
        for name in left:
            torch.testing.assert_close(left[name], right[name], rtol=0, atol=1e-6, msg=f"{key}.{name}")
    torch.testing.assert_close(a["trainer"]["optimizer"]["state"][0]["exp_avg"], b["trainer"]["optimizer"]["state"][0]["exp_avg"])
    last_a, last_b = load_file(split / "last" / "model.safetensors"), load_file(tmp_path / "whole" / "last" / "model.safetensors")
    assert all(torch.allclose(last_a[k], last_b[k], atol=1e-6) for k in last_a)
    losses = lambda run: [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "train"]
    assert losses(split) == pytest.approx(losses(tmp_path / "whole"), abs=1e-7)


def test_resume_drops_log_rows_written_after_the_saved_state(photos, tmp_path, minilm):
    run = tmp_path / "run"
    train(build_config(_settings(photos, run, max_steps=2, val_every=10)), text_encoder=minilm)
    with (run / "metrics.jsonl").open("a") as handle:  # as if the process died after logging step 3
        handle.write(json.dumps({"kind": "train", "step": 3, "loss": 9.0}) + "\n")
    train(build_config(load_run_config(run), {"max_steps": 3}), resume=True, text_encoder=minilm)
    steps = [r["step"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "train"]
    assert steps == [1, 2, 3]


def test_resume_with_another_batch_size_continues_at_the_next_epoch(photos, tmp_path, minilm, caplog):
    run = tmp_path / "run"
    train(build_config(_settings(photos, run, max_steps=1)), text_encoder=minilm)
    with caplog.at_level("WARNING"):
        result = train(build_config(load_run_config(run), {"max_steps": 2, "batch_size": 2}), resume=True, text_encoder=minilm)
    assert "not exact" in caplog.text and result.step == 2
    assert load_state(run / "state.pt")["position"] == 1 and result.epoch == 1  # one batch of 2 into epoch 1


def test_a_run_folder_is_never_started_over_and_resume_needs_a_state(photos, tmp_path, minilm):
    run = tmp_path / "run"
    train(build_config(_settings(photos, run, max_steps=1)), text_encoder=minilm)
    with pytest.raises(ConfigError, match="already holds a training run"):
        train(build_config(_settings(photos, run, max_steps=1)), text_encoder=minilm)
    with pytest.raises(ConfigError, match="nothing to resume"):
        train(build_config(_settings(photos, tmp_path / "empty", max_steps=1)), resume=True, text_encoder=minilm)


def test_max_minutes_stops_cleanly_and_saves_last(photos, tmp_path, minilm):
    result = train(build_config(_settings(photos, tmp_path / "run", max_steps=1000, max_minutes=0.0001)), text_encoder=minilm)
    assert result.stopped_by == "max_minutes" and result.step == 1
    assert (tmp_path / "run" / "last" / "model.safetensors").is_file()
    assert load_state(tmp_path / "run" / "state.pt")["trainer"]["step"] == 1


def test_classifier_task_trains_and_its_checkpoint_drives_the_restorer(photos, tmp_path, minilm):
    settings = _settings(photos, tmp_path / "classifier", task="classifier", model="degnet-tiny", degradations="noise:30-50,haze",
                         max_steps=8, val_every=8, val_samples=4)
    settings.pop("lr")
    result = train(build_config(settings))
    for name in ("accuracy", "map", "exact_match"):
        assert 0 <= result.validation[name] <= 1
    network, info = load_classifier(tmp_path / "classifier" / "best")
    assert info.training["task"] == "classifier" and info.training["step"] == 8
    assert network(torch.rand(2, 3, 32, 32)).embedding.shape == (2, 16)
    # a restorer conditioned on this frozen classifier's embedding records it in its checkpoint
    restorer_run = tmp_path / "restorer"
    train(build_config(_settings(photos, restorer_run, max_steps=1, classifier=str(tmp_path / "classifier" / "best"))), text_encoder=minilm)
    restorer_info = read_info(restorer_run / "last")
    assert restorer_info.classifier == str((tmp_path / "classifier" / "best").resolve())
    assert restorer_info.network.degradation_dim == 16
    # on a CPU the data workers compute the embedding: the same the training process would
    config = build_config(_settings(photos, tmp_path / "unused", classifier=str(tmp_path / "classifier" / "best")))
    task = create_task(config, torch.device("cpu"), torch.float32, minilm)
    batch = task.collate(fixed_subset(build_datasets(config, DistInfo())[0], 4))
    assert batch["degradation"].shape == (4, 16)
    torch.testing.assert_close(batch["degradation"], task._degradation_embedding(batch["lq"]))
    assert task.conditioning(batch).degradation is batch["degradation"]
    _check_degradation_dropout(photos, tmp_path, str(tmp_path / "classifier" / "best"), batch, minilm)
    restorer = Restorer.from_pretrained(restorer_run / "last", device="cpu", text_encoder=minilm)
    assert restorer.classifier is not None  # the engine loads the classifier the checkpoint names
    assert restorer.restore(torch.rand(1, 3, 40, 40), prompt="remove the haze", steps=2, tile=None).shape == (1, 3, 40, 40)


def _check_degradation_dropout(photos, tmp_path, classifier: str, batch: dict, minilm) -> None:
    """Training drops the embedding of a `degradation_dropout` share of samples (the network
    learns its "no embedding" vector on them); the loss of a dropped sample ignores it."""
    def task_with(dropout):
        config = build_config(_settings(photos, tmp_path / f"drop{dropout}", classifier=classifier, degradation_dropout=dropout))
        return create_task(config, torch.device("cpu"), torch.float32, minilm)

    quarter, every, none = task_with(0.25), task_with(1.0), task_with(0.0)
    many = {**batch, "degradation": torch.randn(4000, 16)}
    present = quarter.conditioning(many, torch.Generator().manual_seed(0)).degradation_present
    assert 0.22 < 1 - present.float().mean() < 0.28
    assert quarter.conditioning(many).degradation_present is None  # validation keeps every embedding
    assert bool(none.conditioning(many, torch.Generator().manual_seed(0)).degradation_present.all())
    other = {**batch, "degradation": torch.randn_like(batch["degradation"])}
    loss = lambda task, b: float(task.loss(task.network, b, torch.Generator().manual_seed(3)).detach())
    _randomise(every.network)  # zero-initialised layers would hide the embedding
    none.network.load_state_dict(every.network.state_dict())
    assert loss(every, batch) == loss(every, other)
    assert loss(none, batch) != loss(none, other)


def test_config_file_values_are_overridden_by_flags(photos, tmp_path):
    config_file = tmp_path / "train.yaml"
    config_file.write_text(
        f"dataset: folder:{photos}\nmodel: erunet-tiny\ndegradations: noise:10-20\ncrop: 24\nbatch-size: 2\nmax_steps: 50\n"
        "val_samples: 1\nval_steps: 1\nworkers: 0\nmodel_overrides: {width: 4}\n"
    )
    out = tmp_path / "run"
    result = runner.invoke(_cli(), ["train", "--config", str(config_file), "--max-steps", "1", "--crop", "16", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "config.json").read_text())
    assert (saved["max_steps"], saved["crop"]) == (1, 16)  # flags win
    assert (saved["batch_size"], saved["degradations"], saved["model_overrides"]) == (2, "noise:10-20", {"width": 4})  # from the file
    assert saved["lr"] == 2e-4 and saved["warmup_steps"] == 0  # derived defaults are written out
    assert read_info(out / "last").network.width == 4
    assert json.loads(result.stdout.strip().splitlines()[-1])["step"] == 1


def test_config_file_errors_name_the_file_and_setting(tmp_path):
    bad_key = tmp_path / "bad.json"
    bad_key.write_text(json.dumps({"dataset": "gopro", "max_stepz": 3}))
    with pytest.raises(ConfigError, match=r"bad\.json: unknown setting 'max_stepz'"):
        load_config_file(bad_key)
    broken = tmp_path / "broken.yaml"
    broken.write_text("dataset: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML"):
        load_config_file(broken)
    with pytest.raises(ConfigError, match="batch_size must be at least 1"):
        build_config({"dataset": "gopro", "out": "x", "batch_size": 0})


def test_cli_reports_a_bad_dataset_root_without_a_traceback(tmp_path):
    result = runner.invoke(_cli(), ["train", "--dataset", f"gopro:{tmp_path / 'nowhere'}", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "gopro" in result.output and "nowhere" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run" / "state.pt").exists()


def test_torchrun_two_gloo_processes_train_and_rank_0_alone_writes(photos, tmp_path):
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "irestore", "train", "--dataset", f"folder:{photos}", "--out", str(out), "--model", "erunet-tiny",
               "--degradations", "noise:20-50", "--crop", "32", "--batch-size", "2", "--max-steps", "3", "--val-every", "3",
               "--val-samples", "1", "--workers", "0", "--device", "cpu", "--log-every", "1", "--json"]
    done = run_killing_the_group(command, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["best", "config.json", "last", "metrics.csv", "metrics.jsonl", "state.pt", "tensorboard"]
    assert len(list((out / "tensorboard").iterdir())) == 1
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2, 3]  # one writer, no duplicated steps
    assert rows[0]["samples_per_s"] == pytest.approx(rows[0]["steps_per_s"] * 2 * 2)  # 2 ranks x batch 2
    assert len([line for line in done.stdout.splitlines() if line.startswith("{")]) == 1  # one report
    assert read_info(out / "last").training["step"] == 3


def test_cli_trains_m3unet_on_a_gopro_folder(photos, tmp_path):
    """The usage line `irestore train --dataset gopro --model m3unet`, on a GoPro-layout folder of
    real photo crops with real motion blur (blur/ beside sharp/, train and test sequences)."""
    from irestore.degrade import convolve, motion_kernel

    sources = sorted(photos.glob("*.png"))
    for n, source in enumerate(sources[:6]):
        split, sequence = ("test", "GOPR0384_11_00") if n >= 4 else ("train", f"GOPR037{n // 2}_07_00")
        sharp = np.asarray(Image.open(source), dtype=np.float32) / 255
        blurred = convolve(sharp, motion_kernel(9, np.random.default_rng(n)))
        for folder, image in (("sharp", sharp), ("blur", blurred)):
            path = tmp_path / "GOPRO_Large" / split / sequence / folder / f"{n:06d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)).save(path)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "irestore", "train", "--dataset", "gopro", "--model", "m3unet",
               "--out", str(out), "--crop", "32", "--batch-size", "2", "--max-steps", "3", "--val-every", "3",
               "--val-samples", "2", "--workers", "0", "--log-every", "1", "--json"]
    done = run_killing_the_group(command, timeout=180, env={**os.environ, "IRESTORE_DATA": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["step"] == 3
    info = read_info(out / "last")
    assert type(info.network).__name__ == "M3UNetConfig" and info.prediction == "x0" and info.network.width == 16
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"] == "m3unet" and saved["prediction"] == "x0"
    val = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"val"' in line]
    assert val and math.isfinite(val[-1]["psnr"])  # validated on the GoPro test sequence


def test_ctrl_c_saves_last_and_exits_130(photos, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "irestore", "train", "--dataset", f"folder:{photos}", "--out", str(out), "--model", "erunet-tiny",
               "--degradations", "noise:20-50", "--crop", "32", "--batch-size", "2", "--max-steps", "100000", "--val-samples", "1",
               "--workers", "0", "--log-every", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "metrics.jsonl").is_file() or not (out / "metrics.jsonl").read_text().strip():
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-2000:]
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, stderr[-2000:]
    step = load_state(out / "state.pt")["trainer"]["step"]
    assert 1 <= step < 100000 and read_info(out / "last").training["step"] == step
    assert "--resume" in stderr


def test_warmup_cosine_schedule():
    schedule = WarmupCosine(warmup=2, total=10, min_ratio=0.1)
    expected = [1 / 3, 2 / 3, 1.0, 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 8)), 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4))]
    assert [schedule(s) for s in range(5)] == pytest.approx(expected)
    assert schedule(6) == pytest.approx(0.55) and schedule(10) == pytest.approx(0.1) and schedule(50) == pytest.approx(0.1)


def test_ema_trails_the_weights_with_a_ramped_decay():
    network = torch.nn.Linear(2, 2)
    ema = EMA(network, decay=0.999)
    start = network.weight.detach().clone()
    with torch.no_grad():
        network.weight.add_(1.0)
    ema.update(network)  # decay min(0.999, 1/10) = 0.1
    torch.testing.assert_close(ema.module.weight, 0.1 * start + 0.9 * (start + 1))


def test_average_precision_matches_scikit_learn():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    scores, truth = rng.random(50), rng.random(50) < 0.3
    assert average_precision(torch.from_numpy(scores), torch.from_numpy(truth)) == pytest.approx(average_precision_score(truth, scores))
    assert average_precision(torch.rand(5), torch.zeros(5, dtype=torch.bool)) is None


def test_workers_see_the_epoch_and_encode_the_prompts(photos, tmp_path, minilm):
    """Persistent workers hold their own dataset copies: epochs must still change the crops;
    and the restorer's prompts are encoded there, as the encoder does it here."""
    from irestore.training.data import BatchStream

    config = build_config(_settings(photos, tmp_path / "x", epoch_length=8, degradations="noise:0-50,haze,rain"))
    train_set, _ = build_datasets(config, DistInfo())
    task = create_task(config, torch.device("cpu"), torch.float32, minilm)
    stream = BatchStream(train_set, DistInfo(), batch_size=4, workers=1, seed=0, pin_memory=False, collate=task.collate)
    epochs = [[stream.next() for _ in range(2)] for _ in range(2)]
    assert sorted(k for b in epochs[0] for k in b["key"]) == sorted(k for b in epochs[1] for k in b["key"])  # same 8 indices...
    train_set.set_epoch(1)  # ...but the items are epoch 1's draws, as read in this process
    by_key = {item["key"]: item for item in (train_set[i] for i in range(8))}
    for batch in epochs[1]:
        for i, (key, prompt) in enumerate(zip(batch["key"], batch["prompt"])):
            assert torch.equal(batch["lq"][i], by_key[key]["lq"]) and prompt == by_key[key]["prompt"]
            expected = minilm.encode(prompt)
            torch.testing.assert_close(batch["text_pooled"][i], expected.pooled[0])
            length = expected.tokens.shape[1]
            torch.testing.assert_close(batch["text_tokens"][i, :length], expected.tokens[0])
            assert batch["text_mask"][i].sum() == length and batch["text_mask"][i, :length].all()


def test_auto_precision_is_bf16_on_cpu_only_for_networks_that_gain_and_cpus_that_have_it(monkeypatch, tmp_path):
    from irestore.training import loop

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    configs = {m: build_config({"dataset": "synthetic", "out": str(tmp_path), "model": m}) for m in ("m3unet-small", "erunet-small")}
    classifier = build_config({"dataset": "synthetic", "out": str(tmp_path), "task": "classifier"})
    assert loop.prefers_cpu_bf16(configs["m3unet-small"]) and not loop.prefers_cpu_bf16(configs["erunet-small"])
    assert not loop.prefers_cpu_bf16(classifier)
    for native in (True, False):
        monkeypatch.setattr("irestore.devices.cpu_has_native_bf16", lambda native=native: native)
        assert loop.training_dtype("auto", cpu, True) == (torch.bfloat16 if native else torch.float32)
        assert loop.training_dtype("auto", cpu, False) == torch.float32
        assert loop.training_dtype("auto", cuda, False) == torch.bfloat16
        assert loop.training_dtype("fp32", cpu, True) == torch.float32


@pytest.fixture
def small_folder(tmp_path) -> Path:
    """Five real photo crops: at the default val_fraction 0.1 none is held out (p4's hash is 0.108)."""
    from skimage import data

    folder = tmp_path / "small"
    folder.mkdir()
    for i, name in enumerate(("astronaut", "coffee", "chelsea", "rocket", "camera")):
        Image.fromarray(getattr(data, name)()[:128:2, :128:2]).convert("RGB").save(folder / f"p{i}.png")
    return folder


def test_small_folder_trains_with_val_fraction_and_recipe_flags_without_nan(small_folder, tmp_path):
    refused = runner.invoke(_cli(), ["train", "--dataset", f"folder:{small_folder}", "--out", str(tmp_path / "r0")])
    assert refused.exit_code == 2 and "val_fraction 0.11 holds one out" in refused.output
    out = tmp_path / "run"
    command = [sys.executable, "-m", "irestore", "train", "--dataset", f"folder:{small_folder}", "--out", str(out),
               "--val-fraction", "0.5", "--val-steps", "2", "--save-every", "1", "--model", "erunet-tiny",
               "--degradations", "noise:20-50", "--crop", "32", "--batch-size", "2", "--max-steps", "2",
               "--val-every", "2", "--val-samples", "2", "--workers", "0", "--json"]
    done = run_killing_the_group(command, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    saved = json.loads((out / "config.json").read_text())
    assert (saved["val_fraction"], saved["val_steps"], saved["save_every"]) == (0.5, 2, 1)
    assert read_info(out / "last").default_steps == 2
    assert "step 2: psnr" in done.stderr and "nan" not in done.stderr and "clean_psnr" not in done.stderr
    rows = [json.loads(line, parse_constant=pytest.fail) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [set(r) >= {"psnr", "ssim", "input_psnr"} and "clean_psnr" not in r for r in rows if r["kind"] == "val"] == [True]
    json.loads(done.stdout.strip().splitlines()[-1], parse_constant=pytest.fail)  # the --json report: no NaN


def test_clean_validation_samples_give_clean_psnr_and_no_degraded_metrics(photos, tmp_path, minilm):
    result = train(build_config(_settings(photos, tmp_path / "clean", degradations="clean", max_steps=1, val_every=1)),
                   text_encoder=minilm)
    assert set(result.validation) == {"clean_psnr"} and math.isfinite(result.validation["clean_psnr"])


def test_more_validation_steps_than_the_sde_has_is_a_usage_error(photos, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(_cli(), ["train", "--dataset", f"folder:{photos}", "--out", str(out), "--val-steps", "101",
                                    "--model", "erunet-tiny", "--crop", "32", "--max-steps", "1", "--workers", "0"])
    assert result.exit_code == 2
    assert "val_steps 101 is more than the SDE's T = 100 steps" in result.output
    assert not out.exists()
    direct = build_config({"dataset": "gopro", "out": "x", "model": "m3unet", "prediction": "direct", "val_steps": 500})
    assert direct.val_steps == 500  # a one-pass regressor takes no sampler steps
