"""`irestore data list` and `irestore data verify NAME --root DIR`: the dataset layouts and their checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from irestore.cli.messages import err
from irestore.data.layouts import DatasetError, list_layouts, verify_layout

out = Console()

data_app = typer.Typer(
    name="data",
    help="Dataset layouts (GoPro, Rain100, SOTS, ...): list them, check a local copy.",
    no_args_is_help=True,
)


@data_app.command("list")
def list_command(
    json_output: Annotated[bool, typer.Option("--json", help="Print the layouts as JSON.")] = False,
) -> None:
    """The registered layouts: task, degradation labels, expected counts and the folder layout to bring."""
    layouts = list_layouts()
    if json_output:
        rows = [{"name": lay.name, "task": lay.task, "labels": list(lay.labels), "clean_only": lay.clean_only,
                 "expected": lay.expected, "layout": lay.description, "degradations": lay.degradations}
                for lay in layouts]
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="dataset layouts (also: pairs:LQ_DIR,GT_DIR and folder:DIR)")
    for column in ("name", "task", "labels", "expected", "layout"):
        table.add_column(column, overflow="fold")
    for lay in layouts:
        expected = ", ".join(f"{split} {count}" for split, count in lay.counts)
        labels = ", ".join(lay.labels) or f"synthetic: {lay.degradations}"
        table.add_row(lay.name, lay.task, labels, expected, lay.description)
    out.print(table)


@data_app.command("verify", no_args_is_help=True)
def verify_command(
    name: Annotated[str, typer.Argument(help="Layout name (see `irestore data list`), NAME:ROOT, pairs:LQ,GT or folder:DIR.")],
    root: Annotated[Path | None, typer.Option(help="The dataset folder (or its parent).")] = None,
    decode: Annotated[bool, typer.Option(help="Also decode every image to find unreadable files (slow).")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check a dataset's folders, pairing and counts per split. Exit code 1 when incomplete."""
    try:
        report = verify_layout(name, root, decode=decode)
    except (ValueError, DatasetError) as error:
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    if json_output:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        typer.echo(report.summary())
    raise typer.Exit(0 if report.complete else 1)


def register(app: typer.Typer) -> None:
    """Add the `data` sub-app to the irestore command."""
    app.add_typer(data_app, name="data")
