"""`irestore plan INPUT`: the restoration plan per image and the scores that chose it, without restoring."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from irestore.cli.inputs import decoded_images
from irestore.cli.messages import err, fail
from irestore.io import DEFAULT_MAX_PIXELS


def plan_command(
    input: Annotated[Path, typer.Argument(help="Image file or folder (walked recursively).")],
    plan: Annotated[str, typer.Option(help="auto, fixed, or explicit steps (LABEL:METHOD,...), as for restore.")] = "auto",
    prompt: Annotated[str | None, typer.Option(help="A prompt whose intent steers the plan (\"remove the rain\", \"keep the grain\").")] = None,
    refine: Annotated[bool, typer.Option(help="Let the search try the diffusion restorer as a final refinement.")] = False,
    device: Annotated[str, typer.Option(help="cpu, cuda, mps or auto.")] = "cpu",
    seed: Annotated[int, typer.Option(help="Seed of the diffusion members' sampling.")] = 0,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per image on stdout (the plan with every evaluation).")] = False,
    max_pixels: Annotated[int, typer.Option(min=1, help="Refuse images with more pixels.")] = DEFAULT_MAX_PIXELS,
) -> None:
    """Plan the restoration of an image or folder: detected degradations, the steps chosen and the
    evaluations behind them (kept, rolled back). Exit code: 0 all planned, 1 some files failed, 2 usage error."""
    from irestore.devices import resolve_device
    from irestore.plan import AdaptiveRestorer

    if not input.exists():
        fail(f"INPUT {input}: no such file or folder")
    try:
        adaptive = AdaptiveRestorer.create(plan, device=str(resolve_device(device)), seed=seed, refine=refine)
    except (FileNotFoundError, ValueError, KeyError) as error:
        fail(f"--plan {plan}: {error}")
    table = Table(title=f"irestore plan ({plan})")
    for column in ("image", "detected", "plan", "score", "rolled back", "time"):
        table.add_column(column)
    failed = count = 0
    for item in decoded_images(input, max_pixels):
        count += 1
        if item.error is not None:
            failed += 1
            err.print(f"[red]failed[/red] {item.path}: {item.error}")
            if json_output:
                print(json.dumps({"input": str(item.path), "error": item.error}, ensure_ascii=False), flush=True)
            continue
        result, classification, _ = adaptive.plan(item.pixels, prompt or "", "--prompt" if prompt else "none")
        data = result.to_dict()
        if json_output:
            print(json.dumps({"input": str(item.path), "relative": item.relative, "plan": result.spec(), **data}, ensure_ascii=False), flush=True)
        score = "" if result.score_before is None else f"{result.score_before:.3f} → {result.score_after:.3f}"
        table.add_row(item.relative, ", ".join(classification.labels), result.spec() or "(untouched)", score,
                      "; ".join(result.rolled_back), f"{result.seconds:.1f} s")
    if not count:
        fail(f"no images found in {input}")
    err.print(table)
    raise typer.Exit(1 if failed else 0)


def register(app: typer.Typer) -> None:
    app.command("plan", no_args_is_help=True)(plan_command)
