"""Training speed: optimiser steps/s and samples/s of the real training step on this machine.

    python benchmarks/train_speed.py [--device cpu] [--models erunet-small,erunet-paper,degnet]
        [--crops 128,256] [--batches 4,8] [--steps 5] [--max-seconds 60] [--precision auto]
        [--threads N] [--settings before,layers,cl,bf16,auto] [--dataset folder:DIR --workers 0,2]
        [--quality-dataset folder:DIR --quality-degradations SPEC --quality-steps 200] [--json FILE]

Each row times `Trainer.train_step` (forward, IR-SDE ML loss or classifier loss, backward,
gradient clipping, AdamW, LR schedule, EMA update) on in-memory random batches, after
untimed warm-up steps that also fill the prompt cache; so the numbers are compute only.
The median step time is reported (robust to other load on a shared machine).
A row stops early after --max-seconds per setting (at least 2 timed steps). With --settings, each row
is timed in several settings side by side ("before" is the step as it was: fp32, NCHW and the
layers' reference forms). With --quality-dataset, real training runs in fp32 and in bf16 check
that bf16 keeps the quality. With --dataset, a last table gives the data pipeline's samples/s
(real files, crops, synthetic degradations) per worker count, to compare with what the model
consumes.
Prints numbers only: no assertions, no thresholds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from irestore.devices import cpu_model, keep_freed_memory_mapped
from irestore.models import layers

PROMPTS = ["remove the noise", "this photo has heavy rain", "dehaze the picture", "sharpen the motion-blurred photo",
           "brighten the dark image", "remove JPEG artifacts", "", "restore this photo"]


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} ({torch.get_num_threads()} threads)"


def synthetic_batch(batch: int, crop: int, step: int) -> dict:
    g = torch.Generator().manual_seed(step)
    gt = torch.rand(batch, 3, crop, crop, generator=g)
    labels = (torch.rand(batch, 9, generator=g) < 0.3).float()
    return {
        "gt": gt, "lq": (gt + 0.1 * torch.randn(gt.shape, generator=g)).clamp(0, 1),
        "prompt": [PROMPTS[(step + i) % len(PROMPTS)] for i in range(batch)],
        "labels": labels, "severity": torch.rand(batch, 9, generator=g) * labels, "severity_mask": labels,
    }


# ---------------------------------------------------------------- the baseline's layers
# The straightforward forms the ERUNet layers had before they were rewritten for speed
# (same parameters, same function to float rounding): `--compare` times them as "before".


def _reference_grn(self, x):
    norms = torch.linalg.vector_norm(x.float(), dim=(2, 3), keepdim=True)
    scaled = norms / (norms.mean(dim=1, keepdim=True) + self.eps)
    return self.gamma * (x * scaled.to(x.dtype)) + self.beta + x


def _reference_erb(self, x, emb):
    h = self.norm(self.dwconv(x))
    scale, shift = self.modulation(emb)[:, :, None, None].chunk(2, dim=1)
    h = h * (1 + scale) + shift
    h = self.pw_project(self.grn(F.gelu(self.pw_expand(h))))
    return x + self.layer_scale * h


def _reference_attention(self, x):
    b, _, h, w = x.shape
    q, k, v = self.to_qkv(self.norm(x)).reshape(b, 3, self.heads, self.head_dim, h * w).unbind(1)
    q = q.softmax(dim=-2) * self.head_dim**-0.5
    k = k.softmax(dim=-1)
    context = torch.einsum("bhdn,bhen->bhde", k, v)
    out = torch.einsum("bhde,bhdn->bhen", context, q)
    return x + self.to_out(out.reshape(b, -1, h, w))


REFERENCE_FORWARDS = {layers.GRN: _reference_grn, layers.EfficientRestorationBlock: _reference_erb,
                      layers.LinearAttention: _reference_attention}


@contextlib.contextmanager
def reference_layers(enabled: bool = True):
    """Swap the reference forwards in for the duration (the modules' parameters are unchanged)."""
    saved = {cls: cls.forward for cls in REFERENCE_FORWARDS}
    try:
        if enabled:
            for cls, forward in REFERENCE_FORWARDS.items():
                cls.forward = forward
        yield
    finally:
        for cls, forward in saved.items():
            cls.forward = forward


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


SETTINGS = {  # name -> (precision, channels_last, reference layers)
    "before": ("fp32", False, True),  # the training step as it was: fp32, NCHW, the reference layers
    "layers": ("fp32", False, False),
    "cl": ("fp32", True, False),
    "bf16": ("bf16", True, False),
}


def time_training(model: str, crop: int, batch: int, args, text_encoder, settings: list[str]) -> list[dict]:
    """One row per setting. The settings' steps are interleaved (one step of each in turn,
    --steps rounds), so a slow spell of a shared machine slows all of them alike."""
    from irestore.training import build_config
    from irestore.training.distributed import DistInfo
    from irestore.training.loop import Trainer, prefers_cpu_bf16, training_dtype
    from irestore.training.tasks import create_task, to_device

    device = torch.device(args.device)
    task = "classifier" if model.startswith("degnet") else "restorer"
    runs = []
    with tempfile.TemporaryDirectory() as out:
        for setting in settings:
            precision, channels_last, reference = SETTINGS.get(setting, (args.precision, args.channels_last, False))
            config = build_config({"dataset": "synthetic", "out": f"{out}/{setting}", "task": task, "model": model, "crop": crop,
                                   "batch_size": batch, "precision": precision, "device": args.device, "warmup_steps": 0,
                                   "channels_last": channels_last})
            dtype = training_dtype(config.precision, device, prefers_cpu_bf16(config))
            torch.manual_seed(0)
            trainer = Trainer(config, create_task(config, device, dtype, text_encoder if task == "restorer" else None), DistInfo(), device, dtype)
            batches = [to_device(synthetic_batch(batch, crop, s), device, trainer.channels_last) for s in range(4)]
            runs.append({"setting": setting, "trainer": trainer, "batches": batches, "reference": reference, "dtype": dtype, "times": []})
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

        def step(run: dict, index: int) -> float:
            with reference_layers(run["reference"]):
                begin = time.perf_counter()
                run["trainer"].train_step([run["batches"][index % len(run["batches"])]])
                synchronize(device)
                return time.perf_counter() - begin

        for s in range(args.warmup):
            for run in runs:
                step(run, s)
        start = time.perf_counter()
        for s in range(args.steps):
            if s >= 2 and time.perf_counter() - start > args.max_seconds * len(runs):
                break
            for run in runs:
                run["times"].append(step(run, s))
    rows = []
    for run in runs:
        seconds = statistics.median(run["times"])  # robust to other load on a shared machine
        trainer = run["trainer"]
        rows.append({
            "device": device_name(device), "setting": run["setting"], "model": model,
            "params_m": sum(p.numel() for p in trainer.network.parameters()) / 1e6, "crop": crop, "batch": batch,
            "precision": str(run["dtype"]).split(".")[-1], "channels_last": trainer.channels_last, "steps": len(run["times"]),
            "s_per_step": seconds, "steps_per_s": 1 / seconds, "samples_per_s": batch / seconds,
            "speedup": statistics.median(runs[0]["times"]) / seconds,
            "peak_gb": torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None,
        })
    return rows


def time_data(dataset: str, crop: int, batch: int, workers: int, seconds_budget: float, degradations: str | None) -> dict:
    from irestore.data import build_dataset
    from irestore.training.data import BatchStream
    from irestore.training.distributed import DistInfo

    train_set = build_dataset(dataset, split="train", crop=crop, degradations=degradations, seed=0)
    stream = BatchStream(train_set, DistInfo(), batch, workers, seed=0, pin_memory=False)
    stream.next()  # start the workers
    start, samples = time.perf_counter(), 0
    while samples < 8 * batch or time.perf_counter() - start < min(seconds_budget, 10):
        samples += len(stream.next()["key"])
        if time.perf_counter() - start > seconds_budget:
            break
    seconds = time.perf_counter() - start
    return {"dataset": dataset, "degradations": train_set.degradations, "crop": crop, "batch": batch, "workers": workers,
            "samples_per_s": samples / seconds}


def quality_run(model: str, precision: str, args, text_encoder) -> dict:
    """A real training run (`irestore.training.train`, data loading included) of
    --quality-steps steps; the validation PSNR it ends with, and its end-to-end samples/s."""
    from irestore.training import build_config, train

    with tempfile.TemporaryDirectory() as out:
        config = build_config({
            "dataset": args.quality_dataset, "degradations": args.quality_degradations, "out": f"{out}/run", "model": model,
            "crop": args.quality_crop, "batch_size": 8, "max_steps": args.quality_steps, "val_every": args.quality_steps,
            "val_samples": 16, "precision": precision, "device": args.device, "workers": 1, "seed": 0,
        })
        begin = time.perf_counter()
        result = train(config, text_encoder=text_encoder)
        seconds = time.perf_counter() - begin
    return {"model": model, "precision": precision, "steps": result.step, "minutes": seconds / 60,
            "samples_per_s": result.step * 8 / seconds, "val_psnr": result.validation.get("psnr"),
            "input_psnr": result.validation.get("input_psnr"), "final_loss": result.final_loss}


def print_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    """A Markdown table (pastes into the README as it is)."""
    cells = [[title for _, title, _ in columns]]
    cells += [["-" if row.get(key) is None else format(row[key], fmt) for key, _, fmt in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for n, line in enumerate(cells):
        print("| " + " | ".join(cell.rjust(width) for cell, width in zip(line, widths)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (width + 1) + ":" for width in widths) + "|")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", default="erunet-small,erunet-paper,degnet")
    parser.add_argument("--crops", default="128,256")
    parser.add_argument("--batches", default="4,8")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per row (fewer if --max-seconds runs out)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                        help="channels_last memory format (default: on CUDA only, as in training)")
    parser.add_argument("--settings", default="auto",
                        help="comma-separated, timed side by side ('' to time none): before (fp32, NCHW, the reference layers), layers "
                             "(fp32, NCHW), cl (fp32, channels_last), bf16 (bf16, channels_last), auto (--precision and "
                             "--channels-last as given: the training defaults)")
    parser.add_argument("--quality-dataset", default=None,
                        help="also train each model for --quality-steps in fp32 and in bf16 on this dataset and compare validation PSNR")
    parser.add_argument("--quality-degradations", default=None)
    parser.add_argument("--quality-steps", type=int, default=200)
    parser.add_argument("--quality-crop", type=int, default=96)
    parser.add_argument("--dataset", default=None, help="also time the data pipeline on this dataset spec")
    parser.add_argument("--degradations", default=None)
    parser.add_argument("--workers", default="0,2")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    keep_freed_memory_mapped()  # as `irestore train` does (the CLI applies it at start)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True

    from irestore.registry import create_text_encoder

    models = [m for m in args.models.split(",") if m]
    text_encoder = create_text_encoder("minilm") if any(m.startswith("erunet") for m in models) else None
    print(f"# irestore train step speed, torch {torch.__version__}, {device_name(torch.device(args.device))}", flush=True)
    rows = []
    settings = [setting for setting in args.settings.split(",") if setting]  # "" = no step timing
    for model in models if settings else []:
        for crop in map(int, args.crops.split(",")):
            for batch in map(int, args.batches.split(",")):
                group = time_training(model, crop, batch, args, text_encoder, settings)
                for row in group:
                    print(json.dumps(row), file=sys.stderr, flush=True)
                rows += group
    if rows:
        print_table(rows, [("setting", "setting", "s"), ("model", "model", "s"), ("params_m", "params (M)", ".2f"), ("crop", "crop", "d"), ("batch", "batch", "d"),
                           ("precision", "precision", "s"), ("channels_last", "ch-last", ""), ("steps", "timed steps", "d"),
                           ("s_per_step", "s/step", ".3f"), ("steps_per_s", "steps/s", ".2f"), ("samples_per_s", "samples/s", ".1f"),
                           ("speedup", "vs first", ".2f"), ("peak_gb", "peak GB", ".2f")])
    quality_rows = []
    if args.quality_dataset:
        print(f"\n# bf16 quality check: {args.quality_steps} steps on {args.quality_dataset} ({args.quality_degradations}), "
              f"crop {args.quality_crop}, batch 8, seed 0, the same data in both runs")
        for model in models:
            if model.startswith("degnet"):
                continue
            for precision in ("fp32", "bf16"):
                quality_rows.append(quality_run(model, precision, args, text_encoder))
                print(json.dumps(quality_rows[-1]), file=sys.stderr, flush=True)
        print_table(quality_rows, [("model", "model", "s"), ("precision", "precision", "s"), ("steps", "steps", "d"),
                                   ("minutes", "minutes", ".1f"), ("samples_per_s", "samples/s (end to end)", ".1f"),
                                   ("input_psnr", "val input PSNR", ".2f"), ("val_psnr", "val PSNR", ".2f"),
                                   ("final_loss", "last loss", ".4f")])
    data_rows = []
    if args.dataset:
        print(f"\n# data pipeline: {args.dataset}, degradations {args.degradations or 'the layout default'}")
        for workers in map(int, args.workers.split(",")):
            for crop in map(int, args.crops.split(",")):
                data_rows.append(time_data(args.dataset, crop, 8, workers, args.max_seconds, args.degradations))
        print_table(data_rows, [("crop", "crop", "d"), ("batch", "batch", "d"), ("workers", "workers", "d"),
                                ("samples_per_s", "samples/s", ".1f")])
    if args.json:
        args.json.write_text(json.dumps({"train_step": rows, "quality": quality_rows, "data": data_rows}, indent=2))


if __name__ == "__main__":
    main()
