"""`irestore benchmark`: run peer methods over a suite and write the reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from irestore.benchmark.suites import SUITE_FORMS
from irestore.cli.messages import err, fail
from irestore.evaluate.metrics import PROTOCOLS
from irestore.restorers import list_restorers

DATASET_FLAGS = ("cbsd68", "rain100l", "sots-outdoor", "gopro", "lol")


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


def benchmark(
    suite: Annotated[str, typer.Option(help=f"One of {', '.join(SUITE_FORMS)}.")],
    methods: Annotated[str | None, typer.Option(help="Comma-separated (" + ", ".join(m.card.name for m in list_restorers()) + "). Default: identity and the pool members for the suite.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder: rows, images, reports. Default: irestore-benchmark in the current folder.")] = None,
    degradations: Annotated[str | None, typer.Option(help="synthetic: one task per item, e.g. noise:25,haze,blur; pairs: their family (noise:25 also states the noise σ).")] = None,
    data_root: Annotated[Path | None, typer.Option(help="A folder holding the datasets (CBSD68, Rain100L, SOTS, GOPRO_Large, LOLdataset).")] = None,
    cbsd68: Annotated[Path | None, typer.Option("--cbsd68", help="CBSD68 folder (or any folder of clean images).")] = None,
    rain100l: Annotated[Path | None, typer.Option("--rain100l", help="Rain100L folder.")] = None,
    sots_outdoor: Annotated[Path | None, typer.Option("--sots-outdoor", help="SOTS outdoor folder.")] = None,
    gopro: Annotated[Path | None, typer.Option("--gopro", help="GOPRO_Large folder.")] = None,
    lol: Annotated[Path | None, typer.Option("--lol", help="LOLdataset folder.")] = None,
    protocol: Annotated[str | None, typer.Option(help=f"One of {', '.join(PROTOCOLS)} (default: the suite's).")] = None,
    require: Annotated[str | None, typer.Option(help="Fail unless these metrics can be computed: lpips,fid.")] = None,
    resume: Annotated[bool, typer.Option(help="Reuse finished (image, method) results in OUT.")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N images of each task.")] = None,
    max_side: Annotated[int | None, typer.Option(min=16, help="Downscale clean photos / centre-crop pairs to at most N px per side.")] = None,
    device: Annotated[str, typer.Option(help="Device for network methods (cpu, cuda, auto).")] = "cpu",
    seed: Annotated[int, typer.Option(help="Seed of the synthetic degradations and of irestore's sampling.")] = 0,
    json_output: Annotated[bool, typer.Option("--json", help="Print report.json's content on stdout; the table goes to stderr.")] = False,
) -> None:
    """Compare restoration methods on a benchmark suite. Exit code: 0 done, 1 some rows failed, 2 usage error."""
    from irestore.benchmark.report import render_table, write_reports
    from irestore.benchmark.runner import DEFAULT_OUT, BenchmarkConfig, BenchmarkError, run_benchmark

    flags = dict(zip(DATASET_FLAGS, (cbsd68, rain100l, sots_outdoor, gopro, lol), strict=True))
    out = out or DEFAULT_OUT
    config = BenchmarkConfig(
        suite=suite, methods=_split(methods), out=out, degradations=degradations, data_root=data_root,
        roots={name: path for name, path in flags.items() if path is not None}, protocol=protocol,
        require=_split(require), resume=resume, limit=limit, max_side=max_side, device=device, seed=seed,
    )
    console = err if json_output else Console()
    try:
        config = _with_methods(config)
        with _progress() as progress:
            task = progress.add_task("benchmark", total=None, current="")

            def on_row(row, done, total):
                progress.update(task, total=total, completed=done, current=f"{row.method} · {row.task}/{row.key}")

            result = run_benchmark(config, on_row=on_row)
    except BenchmarkError as error:
        fail(str(error))
    paths = write_reports(result, out)
    render_table(result, console)
    console.print(f"reports: {', '.join(str(p) for p in paths.values())}", highlight=False)
    if json_output:
        sys.stdout.write(json.dumps(result.to_dict(), ensure_ascii=False, default=str) + "\n")
    raise typer.Exit(1 if any(r.status == "failed" for r in result.rows) else 0)


def _with_methods(config):
    """The config with its methods resolved; says which when they are the suite's defaults."""
    from irestore.benchmark.runner import resolve_methods

    if config.methods:
        return config
    config = resolve_methods(config)
    err.print(f"methods: {','.join(config.methods)} (the default for this suite; choose with --methods)",
              highlight=False)
    return config


def _progress() -> Progress:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[current]}"))
    return Progress(*columns, console=err, transient=True)


def register(app: typer.Typer) -> None:
    app.command("benchmark", no_args_is_help=True)(benchmark)
