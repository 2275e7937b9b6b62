"""GPU check: the CUDA tests, inference speed and compute floor of every shipped model, training
throughput of each recipe, and a short training burst; one JSON and one Markdown summary.

    OUT=DIR python scripts/gpu_check.py [--dry-run]      (scripts/gpu_check.sh installs first)

Each phase runs in its own process under its own time budget (BUDGETS; within 9 minutes in all
on one H100/H200) and writes its results to OUT/phases/NAME.json as it goes, so a phase that
fails or runs out of time leaves what it measured and an "error"; the next phase still runs.
--dry-run: the same phases and outputs on the CPU, at tiny sizes, in seconds each.

Compute floor: the FLOPs of one network evaluation per megapixel (torch.utils.flop_counter on a
small input, scaled per MP), times the sampler steps, divided by the GPU's dense bf16 peak
(PEAK_BF16 by device name; unknown: null); "floor_ratio" is the measured s/MP over that floor.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("install", "pytest", "inference", "training", "burst")
# seconds; with the wrapper's install (at most 50 s) 9 minutes in all; the burst is 4 minutes of
# training plus start-up, the last validation and checkpoint
BUDGETS = {"pytest": 85, "inference": 70, "training": 50, "burst": 285}
DRY_BUDGETS = {"pytest": 60, "inference": 90, "training": 60, "burst": 90}
PEAK_BF16 = {"H100": 989e12, "H200": 989e12}  # dense bf16 FLOP/s (SXM); matched in the device name
RECIPES = ("allinone-small", "degnet-default", "derain", "lowlight")  # configs/NAME.yaml
# a dry run measures one model and one recipe of each kind (diffusion restorer, peer, port;
# restorer, classifier): the same code paths as the full run, in seconds
DRY_MODELS = ("allinone-small", "ffdnet-color", "realesr-animevideov3")
DRY_RECIPES = ("allinone-small", "degnet-default")
BURST_RECIPE = "allinone-small"
BURST_MINUTES = 4.0


# ---------------------------------------------------------------------------- shared helpers


class PhaseLog:
    """A phase's results, rewritten to OUT/phases/NAME.json after every addition."""

    def __init__(self, out: Path, name: str):
        self.path = out / "phases" / f"{name}.json"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.data: dict = {}

    def put(self, key: str, value) -> None:
        self.data[key] = value
        self.path.write_text(json.dumps(self.data, indent=1, default=str))


def device_facts(dry: bool) -> dict:
    import torch

    if dry or not torch.cuda.is_available():
        return {"device": "cpu", "name": "cpu", "peak_bf16_flops": None}
    name = torch.cuda.get_device_name(0)
    peak = next((value for key, value in PEAK_BF16.items() if key in name), None)
    return {"device": "cuda", "name": name, "peak_bf16_flops": peak}


def synchronize(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def write_photos(folder: Path, count: int = 8) -> Path:
    """Real photographs (scikit-image's bundled ones) as PNGs: the training data of the phases."""
    import numpy as np
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    images = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    for n in range(count):
        image = images[n % len(images)]
        image = np.ascontiguousarray(image[:, ::-1] if n >= len(images) else image)
        Image.fromarray(image).save(folder / f"photo{n}.png")
    return folder


def test_photo(size: int):
    """A 1x3xSxS photo tensor with mild noise."""
    import cv2
    import numpy as np
    from skimage import data

    from irestore.io import image_to_tensor

    rgb = cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    noisy = np.clip(rgb + np.random.default_rng(0).normal(0, 0.05, rgb.shape), 0, 1).astype(np.float32)
    return image_to_tensor(noisy)


# ---------------------------------------------------------------------------- phase: pytest


def phase_pytest(out: Path, dry: bool, log: PhaseLog) -> None:
    """`pytest -m cuda`: counts of passed, failed and skipped tests, and the failures' names."""
    report = out / "pytest.xml"
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "tests/test_cuda.py", "-q", "-p", "no:cacheprovider",
               "--timeout=60", f"--junitxml={report}"]
    with (out / "pytest.log").open("w") as log_file:  # written as it goes: kept if the budget runs out
        done = subprocess.run(command, check=False, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)
    suite = ElementTree.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    failed = [case.get("name") for case in suite.iter("testcase") if case.find("failure") is not None or case.find("error") is not None]
    log.put("tests", counts["tests"])
    log.put("passed", counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"])
    log.put("failed", counts["failures"] + counts["errors"])
    log.put("skipped", counts["skipped"])
    log.put("failed_tests", failed)
    log.put("exit_code", done.returncode)


# ---------------------------------------------------------------------------- phase: inference


def count_flops(run) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        run()
    return int(counter.get_total_flops())


def network_flops_per_mp(model, size: int) -> tuple[float, int]:
    """FLOPs of one network evaluation per input megapixel, and the evaluations per restore."""
    import torch

    from irestore.pipeline import Restorer

    x = test_photo(size)
    if isinstance(model, Restorer):
        x = x.to(model.device)
        cond = model.conditioning("remove the noise")  # zeros for the degradation embedding
        t = torch.full((1,), 1, device=model.device)
        flops = count_flops(lambda: model.network(x, x, t, cond))
        steps = 1 if model.info.prediction == "direct" else model.sampler_settings(None, None)[1]
    elif hasattr(model, "run"):  # a ported network
        flops = count_flops(lambda: model.network(x.to(model.device, model.dtype)))
        steps = 1
    else:  # FFDNet
        flops = count_flops(lambda: model.network(x.to(model.device, model.dtype), 25 / 255))
        steps = 1
    return flops / (size * size / 1e6), steps


def megapixels_per_s(run, megapixels: float, device: str, min_seconds: float, repeats: int) -> float:
    """MP/s of `run()` after one untimed warm-up: the median of `repeats` (at least) timed runs,
    more while they total under `min_seconds`."""
    run()
    synchronize(device)
    seconds: list[float] = []
    while len(seconds) < repeats or sum(seconds) < min_seconds:
        began = time.perf_counter()
        run()
        synchronize(device)
        seconds.append(time.perf_counter() - began)
        if len(seconds) >= 20:
            break
    return megapixels / statistics.median(seconds)


def model_names(dry: bool) -> list[str]:
    from irestore.pipeline import PEER_MODELS, SHIPPED_RESTORERS
    from irestore.restorers.ported import PORTED

    return list(DRY_MODELS) if dry else [*SHIPPED_RESTORERS, *PEER_MODELS, *sorted(PORTED)]


def load_for_speed(name: str, device: str, precision: str):
    from irestore.pipeline import load_model
    from irestore.restorers.ported import PORTED, PortedNetwork

    return PortedNetwork(name, device, precision) if name in PORTED else load_model(name, device=device, precision=precision)


def restore_call(model, image, steps: int | None):
    """One restore as `irestore restore --model NAME` runs it (steps: None = the model's default)."""
    import torch

    if hasattr(model, "run"):
        return lambda: model.run(image, tile="auto")
    return lambda: model.restore(image, prompt="remove the noise", tile="auto", steps=steps,
                                 generator=torch.Generator().manual_seed(0))


def default_pipeline_speed(out: Path, device: str, size: int, count: int) -> dict:
    """`irestore restore IN OUT` with its defaults (the adaptive plan) on `count` photos of
    size x size: MP/s from the per-image restore times after the first (warm-up) image."""
    from PIL import Image

    from irestore.io import tensor_to_rgb

    folder = out / "default-pipeline"
    (folder / "in").mkdir(parents=True, exist_ok=True)
    rgb = (tensor_to_rgb(test_photo(size)) * 255).round().astype("uint8")
    for n in range(count):
        Image.fromarray(rgb).save(folder / "in" / f"photo{n}.png")
    command = [sys.executable, "-m", "irestore", "restore", str(folder / "in"), str(folder / "out"), "--device", device,
               "--json", "--overwrite"]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    (folder / "restore.log").write_text(done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"irestore restore exited {done.returncode}: {done.stderr[-800:]}")
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    times = sorted(r["time_restore"] for r in records if r.get("status") == "done")
    if len(times) < 2:
        raise RuntimeError(f"{len(times)} of {count} images restored")
    return {"megapixels": size * size / 1e6, "images": len(times),
            "mp_per_s": size * size / 1e6 / statistics.median(times[:-1] if len(times) > 2 else times)}


def phase_inference(out: Path, dry: bool, log: PhaseLog) -> None:
    """MP/s of the default pipeline and of each shipped model at bf16 and fp32, and the floor."""
    import torch

    facts = device_facts(dry)
    log.put("device", facts)
    device, peak = facts["device"], facts["peak_bf16_flops"]
    size, port_size, flop_size = (32, 16, 32) if dry else (1024, 256, 128)
    min_seconds, repeats = (0.0, 1) if dry else (0.5, 3)
    steps = 1 if dry else None  # a dry run samples one step: bf16 is emulated, slowly, on most CPUs
    try:
        log.put("default_pipeline", default_pipeline_speed(out, device, size, count=2 if dry else 4))
    except Exception as error:  # noqa: BLE001 (recorded; the models are still measured)
        log.put("default_pipeline", {"error": f"{type(error).__name__}: {error}"})
    models: dict[str, dict] = {}
    for name in model_names(dry):
        row: dict = {}
        models[name] = row
        try:
            for precision in ("bf16", "fp32"):
                model = load_for_speed(name, device, precision)
                side = port_size if hasattr(model, "run") else size
                image = test_photo(side)
                row[f"{precision}_mp_per_s"] = megapixels_per_s(restore_call(model, image, steps), side * side / 1e6,
                                                                device, min_seconds, repeats)
                if precision == "fp32":
                    row["flops_per_mp_per_step"], row["steps"] = network_flops_per_mp(model, flop_size)
                    row["measured_steps"] = steps or row["steps"]
                del model
                if device == "cuda":
                    torch.cuda.empty_cache()
            floor = row["flops_per_mp_per_step"] * row["measured_steps"] / peak if peak else None
            row["floor_s_per_mp"] = floor
            row["floor_ratio"] = (1 / row["bf16_mp_per_s"]) / floor if floor else None
        except Exception as error:  # noqa: BLE001 (recorded; the next one is still measured)
            row["error"] = f"{type(error).__name__}: {error}"
        log.put("models", models)


# ---------------------------------------------------------------------------- phase: training


def recipe_config(name: str, photos: Path, out: Path, dry: bool, **extra):
    from irestore.training import build_config, load_config_file
    from irestore.weights import resolve_weights

    settings = load_config_file(ROOT / "configs" / f"{name}.yaml")
    settings.update({"dataset": f"folder:{photos}", "out": str(out), "device": "cpu" if dry else "cuda",
                     "precision": "auto" if dry else "bf16"})
    if settings.get("task", "restorer") == "restorer" and name == BURST_RECIPE:
        settings["classifier"] = str(resolve_weights("degnet-default").parent)  # the shipped classifier
    if dry:
        settings.update({"crop": 32, "val_crop": 32, "val_samples": 2, "epoch_length": 16, "workers": 0})
    settings.update(extra)
    return build_config(settings)


def training_speed(config, batch: int, steps: int, device: str, text_encoder) -> float:
    """Samples/s of `steps` optimiser steps at `batch` (one batch reused: the GPU's rate, not the loader's)."""
    import torch

    from irestore.training.distributed import DistInfo
    from irestore.training.loop import Trainer, build_datasets, training_dtype
    from irestore.training.tasks import create_task, to_device

    torch_device = torch.device(device)
    dtype = training_dtype(config.precision, torch_device)
    train_set, _ = build_datasets(config, DistInfo())
    task = create_task(config, torch_device, dtype, text_encoder if config.task == "restorer" else None)
    trainer = Trainer(config, task, DistInfo(), torch_device, dtype)
    train_set.set_epoch(0)
    items = [train_set[i % len(train_set)] for i in range(batch)]
    batches = [to_device(task.collate(items), torch_device, trainer.channels_last)]
    trainer.train_step(batches)  # warm-up (kernel selection, allocator)
    synchronize(device)
    began = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batches)
    synchronize(device)
    return batch * steps / (time.perf_counter() - began)


def is_oom(error: BaseException) -> bool:
    from irestore.diffusion.tiling import is_out_of_memory

    return is_out_of_memory(error)


def phase_training(out: Path, dry: bool, log: PhaseLog) -> None:
    """Each recipe's samples/s at the largest batch that fits: batch sizes doubled until out of
    memory or the recipe's share of the time budget is spent."""
    import torch

    from irestore.registry import create_text_encoder

    device = "cpu" if dry else "cuda"
    photos = write_photos(out / "photos")
    text_encoder = create_text_encoder("minilm")
    recipe_names = DRY_RECIPES if dry else RECIPES
    share = (DRY_BUDGETS if dry else BUDGETS)["training"] * 0.8 / len(recipe_names)
    first, largest, steps = (1, 2, 1) if dry else (8, 4096, 5)
    recipes: dict[str, dict] = {}
    for name in recipe_names:
        row: dict = {"tried": []}
        recipes[name] = row
        began = time.monotonic()
        batch = first
        try:
            config = recipe_config(name, photos, out / "train-search" / name, dry)
            row["model"], row["crop"], row["precision"] = config.model, config.crop, config.precision
            while batch <= largest and time.monotonic() - began < share:
                try:
                    rate = training_speed(config, batch, steps, device, text_encoder)
                except Exception as error:
                    if not is_oom(error):
                        raise
                    row["tried"].append({"batch": batch, "out_of_memory": True})
                    row["stopped_by"] = "out_of_memory"
                    break
                finally:
                    if device == "cuda":
                        torch.cuda.empty_cache()
                row["tried"].append({"batch": batch, "samples_per_s": rate})
                row["largest_batch"], row["samples_per_s"] = batch, rate
                log.put("recipes", recipes)
                batch *= 2
            row.setdefault("stopped_by", "max_batch" if batch > largest else "time")  # the batch search's end
            row["best_samples_per_s"] = max(t.get("samples_per_s", 0.0) for t in row["tried"])
        except Exception as error:  # noqa: BLE001 (recorded; the next one is still measured)
            row["error"] = f"{type(error).__name__}: {error}"
        log.put("recipes", recipes)


# ---------------------------------------------------------------------------- phase: burst


def phase_burst(out: Path, dry: bool, log: PhaseLog) -> None:
    """`irestore train` of the all-in-one recipe at bf16 for BURST_MINUTES; run folder and logs in OUT/burst."""
    folder = out / "burst"
    folder.mkdir(parents=True, exist_ok=True)
    photos = write_photos(out / "photos")
    extra = {"max_minutes": 0.05, "batch_size": 2, "val_every": 10**6} if dry else {"max_minutes": BURST_MINUTES, "workers": 8}
    config = recipe_config(BURST_RECIPE, photos, folder / "run", dry, **extra)
    settings = folder / "settings.json"
    settings.write_text(json.dumps(config.to_dict(), indent=1))
    command = [sys.executable, "-m", "irestore", "train", "--config", str(settings), "--json"]
    with (folder / "train.log").open("w") as stderr:
        done = subprocess.run(command, check=False, stdout=subprocess.PIPE, stderr=stderr, text=True)
    (folder / "result.json").write_text(done.stdout)
    log.put("exit_code", done.returncode)
    if done.returncode != 0:
        raise RuntimeError(f"irestore train exited {done.returncode}; see {folder / 'train.log'}")
    rows = [json.loads(line) for line in (folder / "run" / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["kind"] == "train"]
    last = train_rows[-1]
    log.put("recipe", BURST_RECIPE)
    log.put("precision", config.precision)
    log.put("steps", last["step"])
    log.put("elapsed_s", last["elapsed_s"])
    log.put("final_loss", last["loss"])
    log.put("samples_per_s", statistics.median(r["samples_per_s"] for r in train_rows))
    log.put("validation", next((r for r in reversed(rows) if r["kind"] == "val"), None))
    log.put("checkpoint", str(folder / "run" / "last"))


PHASE_FUNCTIONS = {"pytest": phase_pytest, "inference": phase_inference, "training": phase_training, "burst": phase_burst}


# ---------------------------------------------------------------------------- the driver


def run_phase(name: str, out: Path, dry: bool) -> dict:
    """Run one phase in its own process under its budget; its results, with "seconds" and "error"."""
    budget = (DRY_BUDGETS if dry else BUDGETS)[name]
    command = [sys.executable, __file__, "--phase", name, "--out", str(out), *(["--dry-run"] if dry else [])]
    began = time.monotonic()
    error = None
    try:
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=budget, cwd=ROOT)
        (out / "phases" / f"{name}.log").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            error = f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ''}"
    except subprocess.TimeoutExpired:
        error = f"timed out after {budget} s"
    path = out / "phases" / f"{name}.json"
    result = json.loads(path.read_text()) if path.is_file() else {}
    return {**result, "seconds": round(time.monotonic() - began, 1), "budget_s": budget, "error": error}


def install_result() -> dict:
    """What the wrapper did: GPU_CHECK_INSTALL is 'present', 'installed' or 'failed: ...'."""
    state = os.environ.get("GPU_CHECK_INSTALL", "present")
    seconds = float(os.environ.get("GPU_CHECK_INSTALL_S", "0"))
    return {"state": state, "seconds": seconds, "budget_s": 50, "error": state if state.startswith("failed") else None}


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def markdown(summary: dict) -> str:
    phases = summary["phases"]
    device = phases["inference"].get("device", {})
    lines = [f"# GPU check ({'dry run, CPU' if summary['dry_run'] else device.get('name', '?')})", "",
             f"Total {summary['total_s']} s. Command: `{summary['command']}`", "",
             "| phase | seconds | budget s | error |", "|---|---|---|---|"]
    lines += [f"| {name} | {fmt(p.get('seconds'))} | {p.get('budget_s')} | {p.get('error') or ''} |" for name, p in phases.items()]
    tests = phases["pytest"]
    lines += ["", (f"CUDA tests: {fmt(tests.get('passed'))} passed, {fmt(tests.get('failed'))} failed, "
                   f"{fmt(tests.get('skipped'))} skipped {tests.get('failed_tests') or ''}"), ""]
    pipeline = phases["inference"].get("default_pipeline", {})
    lines += [(f"Default pipeline (`irestore restore`): {fmt(pipeline.get('mp_per_s'))} MP/s "
               f"at {fmt(pipeline.get('megapixels'))} MP {pipeline.get('error') or ''}"), "",
              "| model | bf16 MP/s | fp32 MP/s | GFLOP/MP/step | steps | floor s/MP | measured/floor |",
              "|---|---|---|---|---|---|---|"]
    for name, row in phases["inference"].get("models", {}).items():
        flops = row.get("flops_per_mp_per_step")
        lines.append(f"| {name} | {fmt(row.get('bf16_mp_per_s'))} | {fmt(row.get('fp32_mp_per_s'))} | "
                     f"{fmt(flops / 1e9 if flops else None)} | {fmt(row.get('steps'))} | {fmt(row.get('floor_s_per_mp'))} | "
                     f"{fmt(row.get('floor_ratio'))} {row.get('error') or ''} |")
    lines += ["", "| recipe | model | precision | largest batch | search ended by | samples/s |", "|---|---|---|---|---|---|"]
    for name, row in phases["training"].get("recipes", {}).items():
        lines.append(f"| {name} | {row.get('model', '')} | {row.get('precision', '')} | {fmt(row.get('largest_batch'))} | "
                     f"{row.get('stopped_by', '')} | {fmt(row.get('samples_per_s'))} {row.get('error') or ''} |")
    burst = phases["burst"]
    lines += ["", (f"Training burst ({burst.get('recipe', BURST_RECIPE)}, {burst.get('precision', '')}): "
                   f"{fmt(burst.get('steps'))} steps in {fmt(burst.get('elapsed_s'))} s, "
                   f"{fmt(burst.get('samples_per_s'))} samples/s, final loss {fmt(burst.get('final_loss'))}; "
                   f"checkpoint {burst.get('checkpoint', '—')}"), ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU, seconds per phase")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu-check-out"))
    parser.add_argument("--phase", choices=sorted(PHASE_FUNCTIONS), help=argparse.SUPPRESS)  # one phase, in this process
    args = parser.parse_args()
    out = args.out.resolve()
    if args.phase:
        PHASE_FUNCTIONS[args.phase](out, args.dry_run, PhaseLog(out, args.phase))
        return 0
    out.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    phases = {"install": install_result()}
    for name in PHASE_FUNCTIONS:
        print(f"gpu_check: {name} ...", file=sys.stderr, flush=True)
        phases[name] = run_phase(name, out, args.dry_run)
        print(f"gpu_check: {name} {phases[name]['seconds']} s {phases[name]['error'] or 'ok'}", file=sys.stderr, flush=True)
    summary = {"dry_run": args.dry_run, "command": " ".join(["scripts/gpu_check.sh", *sys.argv[1:]]),
               "total_s": round(time.monotonic() - began + phases["install"]["seconds"], 1), "phases": phases}
    (out / "gpu_check.json").write_text(json.dumps(summary, indent=1, default=str))
    (out / "gpu_check.md").write_text(markdown(summary))
    print(f"gpu_check: {out / 'gpu_check.json'}, {out / 'gpu_check.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
