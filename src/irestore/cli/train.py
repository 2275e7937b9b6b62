"""`irestore train`: train the restorer or the degradation classifier; resumable, distributed
under `torchrun --nproc-per-node N -m irestore train ...`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from irestore.cli.messages import EXIT_FAILURE, EXIT_USAGE, err, fail
from irestore.training.config import PRECISIONS, TASKS

EXIT_INTERRUPTED = 130


def train_command(
    dataset: Annotated[str | None, typer.Option(help="NAME[:ROOT] (gopro, rain100l, ...), pairs:LQ_DIR,GT_DIR or folder:DIR.")] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder: config.json, metrics, best/ and last/ checkpoints, state.pt.")] = None,
    task: Annotated[str | None, typer.Option(help=f"What to train: {' or '.join(TASKS)} (default restorer).")] = None,
    model: Annotated[str | None, typer.Option(help="Network config: erunet-tiny|erunet-small|erunet-paper, or degnet[-small|-tiny].")] = None,
    degradations: Annotated[str | None, typer.Option(help="Synthetic degradations for clean-photo sets, e.g. 'noise:0-50,rain,haze'; 'broad' or 'broad:FAMILY' (rain, haze, lowlight, motion, defocus, noise, jpeg, lowres, clean, mix) draws from the broad training family.")] = None,
    max_steps: Annotated[int | None, typer.Option(min=1, help="Optimiser steps to train for (default 100000).")] = None,
    max_minutes: Annotated[float | None, typer.Option(min=0.001, help="Stop cleanly after this many minutes.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Samples per micro-batch per process (default 8).")] = None,
    crop: Annotated[int | None, typer.Option(min=8, help="Training crop size in px (default 256).")] = None,
    lr: Annotated[float | None, typer.Option(min=0.0, help="Peak learning rate (default 2e-4 restorer, 1e-3 classifier).")] = None,
    warmup_steps: Annotated[int | None, typer.Option(min=0, help="Linear warm-up steps (default max_steps/20, at most 1000).")] = None,
    accumulate: Annotated[int | None, typer.Option(min=1, help="Micro-batches per optimiser step (default 1).")] = None,
    ema: Annotated[float | None, typer.Option(min=0.0, max=0.999999, help="EMA decay of the saved weights (default 0.999).")] = None,
    workers: Annotated[int | None, typer.Option(min=0, help="Data loading worker processes per training process (default 2).")] = None,
    pixel_cache_mb: Annotated[float | None, typer.Option(min=0, help="MB of decoded training photos kept in memory, shared among the workers (default 2048; 0 = decode every crop).")] = None,
    val_every: Annotated[int | None, typer.Option(min=1, help="Validate (and save best/) every N steps (default 1000).")] = None,
    val_samples: Annotated[int | None, typer.Option(min=1, help="Images in the fixed validation set (default 8).")] = None,
    val_fraction: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="Share of a folder:/pairs: dataset's photos held out for validation (default 0.1).")] = None,
    val_steps: Annotated[int | None, typer.Option(min=1, help="Sampler steps of validation, and the checkpoint's default (default 4).")] = None,
    save_every: Annotated[int | None, typer.Option(min=1, help="Save last/ and state.pt every N steps (default: --val-every).")] = None,
    log_every: Annotated[int | None, typer.Option(min=1, help="Log loss, LR and speed every N steps (default 10).")] = None,
    val_dataset: Annotated[str | None, typer.Option(help="Validate on another dataset spec (default: --dataset).")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda (under torchrun: this rank's GPU).")] = None,
    precision: Annotated[str | None, typer.Option(help=f"One of {', '.join(PRECISIONS)}; auto = bf16 autocast on CUDA, fp32 on CPU.")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads for training (default: torch's; 1 per process under torchrun).")] = None,
    channels_last: Annotated[bool | None, typer.Option("--channels-last/--no-channels-last", help="channels_last memory format (default: on CUDA and CPU).")] = None,
    classifier: Annotated[Path | None, typer.Option(help="Frozen DegNet checkpoint for the degradation embedding (default: none; the network uses its learned no-embedding vector).")] = None,
    text_encoder: Annotated[str | None, typer.Option(help="Text encoder for prompts (default minilm).")] = None,
    prompt_dropout: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="Probability of an empty prompt (default 0.1).")] = None,
    degradation_dropout: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="Probability of training a sample without its degradation embedding (default 0.1).")] = None,
    prediction: Annotated[str | None, typer.Option(help="Restorer output: noise (IR-SDE ML loss; default for erunet), x0 (L1 on the clean image, better for few steps; default for m3unet, with its multi-scale L1) or direct (a one-pass regressor of the degraded image).")] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Seed of initialisation, data order, crops and noise (default 0).")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue the run in this folder exactly where it stopped.")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML or JSON file of settings; flags override it.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
) -> None:
    """Train a restorer (IR-SDE maximum-likelihood loss, or x̂_0 L1) or a degradation classifier.

    Settings come from the defaults, then --resume's saved config, then --config, then flags.
    Exit code: 0 finished (max steps or minutes), 1 training failed, 2 bad settings or data, 130 interrupted."""
    flags = {
        "dataset": dataset, "out": str(out) if out else None, "task": task, "model": model, "degradations": degradations,
        "max_steps": max_steps, "max_minutes": max_minutes, "batch_size": batch_size, "crop": crop, "lr": lr,
        "warmup_steps": warmup_steps, "accumulate": accumulate, "ema": ema, "workers": workers, "pixel_cache_mb": pixel_cache_mb, "val_every": val_every,
        "val_samples": val_samples, "val_fraction": val_fraction, "val_steps": val_steps, "save_every": save_every, "log_every": log_every, "val_dataset": val_dataset, "device": device, "precision": precision, "channels_last": channels_last, "threads": threads,
        "classifier": str(classifier) if classifier else None, "text_encoder": text_encoder,
        "prompt_dropout": prompt_dropout, "degradation_dropout": degradation_dropout, "prediction": prediction, "seed": seed,
    }
    result = _run(flags, resume, config)
    _report(result, json_output)
    if result.interrupted:
        err.print(f"[yellow]interrupted: continue with --resume {result.run_dir}[/yellow]")
        raise typer.Exit(EXIT_INTERRUPTED)


def _run(flags: dict, resume: Path | None, config_file: Path | None):
    from irestore.data import DatasetError
    from irestore.diffusion.checkpoint import CheckpointError
    from irestore.training import ConfigError, TrainingError, build_config, load_config_file, load_run_config, train
    from irestore.training.state import StateError

    try:
        layers = []
        if resume is not None:
            layers.append({**load_run_config(resume), "out": str(resume)})
        if config_file is not None:
            layers.append(load_config_file(config_file))
        settings = build_config(*layers, flags)
        return train(settings, resume=resume is not None, console=err)
    except (ConfigError, DatasetError, StateError, CheckpointError) as error:
        fail(str(error), EXIT_USAGE)
    except (ValueError, KeyError, FileNotFoundError) as error:  # bad dataset specs, unknown names, missing weights
        fail(str(error).strip("'\""), EXIT_USAGE)
    except TrainingError as error:
        fail(str(error), EXIT_FAILURE)
    except KeyboardInterrupt:
        fail("interrupted; RUN_DIR/state.pt holds the last saved state (continue with --resume)", EXIT_INTERRUPTED)


def _report(result, as_json: bool) -> None:
    if result.rank != 0:  # under torchrun, one report
        return
    data = {
        "run_dir": str(result.run_dir), "step": result.step, "epoch": result.epoch, "stopped_by": result.stopped_by,
        "final_loss": result.final_loss, "validation": result.validation, "best": result.best,
    }
    if as_json:
        print(json.dumps(data))
        return
    table = Table(title="irestore train")
    for column in ("steps", "epoch", "stopped by", "best", "run folder"):
        table.add_column(column)
    best = f"{result.best['metric']} {result.best['value']:.4f} @ {result.best['step']}" if result.best else "-"
    table.add_row(str(result.step), str(result.epoch), result.stopped_by, best, str(result.run_dir))
    err.print(table)


def register(app: typer.Typer) -> None:
    app.command("train", no_args_is_help=True)(train_command)
