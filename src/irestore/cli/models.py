"""`irestore models list|path|download|verify|import`: the model store from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from irestore.cli.messages import EXIT_FAILURE, EXIT_USAGE, err, fail
from irestore.weights import MissingWeightsError
from irestore.weights.store import (
    StoreError,
    download_model,
    import_model,
    list_models,
    model_path,
    verify_models,
)

models_app = typer.Typer(
    name="models",
    help="The model store: which weights exist, where they resolve, fetching, importing and checking them.",
    no_args_is_help=True,
)


def _size(size: int | None) -> str:
    if size is None:
        return "-"
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.1f} KiB"


@models_app.command("list")
def list_command(json_output: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False) -> None:
    """Every registered model: name, kind, size, where it resolves and whether it is present."""
    statuses = list_models()
    if json_output:
        print(json.dumps([s.to_dict() for s in statuses], indent=2))
        return
    table = Table(title="irestore models")
    for column in ("name", "kind", "present", "size", "where"):
        table.add_column(column, no_wrap=column == "name")
    for s in statuses:
        present = "[green]yes[/green]" if s.present else "[red]no[/red]"
        table.add_row(s.name, s.kind, present, _size(s.size), s.where)
    err.print(table)
    # paths and URLs below the table, one line each, never broken by rich (so they can be copied)
    width = max(len(s.name) for s in statuses) if statuses else 0
    err.print("path, or where it comes from:")
    for s in statuses:
        place = s.path or s.download or f"supply it: irestore models import {s.name} FILE"
        err.print(f"  {s.name:<{width}}  {place}", soft_wrap=True, highlight=False, markup=False)


@models_app.command("path", no_args_is_help=True)
def path_command(name: Annotated[str, typer.Argument(help="Registered model name or open_clip ARCH:TAG.")]) -> None:
    """Print where NAME resolves on this machine (never downloads). Exit 1 when it is absent."""
    try:
        print(model_path(name))
    except (MissingWeightsError, StoreError) as error:
        fail(str(error), EXIT_FAILURE)


@models_app.command("download", no_args_is_help=True)
def download_command(name: Annotated[str, typer.Argument(help="Registered model name or open_clip ARCH:TAG.")]) -> None:
    """Fetch NAME into the cache (IRESTORE_HOME) unless it is already here; honours HF_HUB_OFFLINE."""
    try:
        path, fetched = download_model(name)
    except (MissingWeightsError, StoreError) as error:
        fail(str(error), EXIT_FAILURE)
    err.print(f"{'downloaded' if fetched else 'already present'}: {name}")
    print(path)


@models_app.command("import", no_args_is_help=True)
def import_command(
    name: Annotated[str, typer.Argument(help="Registered model name or open_clip ARCH:TAG.")],
    file: Annotated[Path, typer.Argument(help="The weights file (or irestore checkpoint folder) to copy in.")],
) -> None:
    """Copy a local weights file into the cache as NAME, after checking it (the file itself is not moved)."""
    try:
        target = import_model(name, file)
    except (StoreError, OSError) as error:
        fail(str(error), EXIT_FAILURE)
    err.print(f"imported {file} as {name}")
    print(target)


@models_app.command("verify")
def verify_command(
    names: Annotated[list[str] | None, typer.Argument(help="Models to check (default: all registered).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """sha256 of every present model against the registry or the checksum recorded at download/import.
    Exit 1 when a file does not match (or a named model is absent)."""
    try:
        results = verify_models(names)
    except StoreError as error:
        fail(str(error), EXIT_USAGE)
    if json_output:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        table = Table(title="irestore models verify")
        for column in ("name", "status", "sha256", "path"):
            table.add_column(column, overflow="fold")
        for r in results:
            colour = {"ok": "green", "mismatch": "red", "absent": "yellow"}.get(r.status, "white")
            table.add_row(r.name, f"[{colour}]{r.status}[/{colour}]", (r.sha256 or "-")[:16], r.path or "-")
        err.print(table)
    bad = any(r.status == "mismatch" for r in results) or (names and any(r.status == "absent" for r in results))
    raise typer.Exit(1 if bad else 0)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
