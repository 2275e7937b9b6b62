"""`irestore manifest merge OUTPUT`: fold the shards' manifests of a restore OUTPUT into one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from irestore.batch.report import MANIFEST_NAME
from irestore.batch.shard import ShardError
from irestore.cli.messages import err, fail

manifest_app = typer.Typer(
    name="manifest",
    help="The manifest of a restore OUTPUT: merge the shards' manifests (--shard K/N) into one.",
    no_args_is_help=True,
)


@manifest_app.command("merge", no_args_is_help=True)
def merge(
    output: Annotated[Path, typer.Argument(help="The OUTPUT folder the shards restored into.")],
) -> None:
    """Merge the shards' manifests into one, then remove them.

    \b
    OUTPUT/irestore-manifest.shard-K-of-N.jsonl -> OUTPUT/irestore-manifest.jsonl

    The latest record per output path is kept; the shards' reports become one report. Run it once
    every shard has finished; a restore resumes the same before and after."""
    from irestore.batch.merge import merge_folder

    if not output.is_dir():
        fail(f"{output}: no such folder (give the OUTPUT folder of the sharded restore)")
    try:
        merged = merge_folder(output)
    except ShardError as error:
        fail(str(error))
    except OSError as error:
        fail(f"cannot merge the manifests in {output}: {error}", code=1)
    if not merged.shards:
        err.print(f"nothing to merge: no irestore-manifest.shard-*-of-*.jsonl in {output}", highlight=False)
        return
    dropped = merged.records - merged.kept
    err.print(f"merged {len(merged.shards)} shard manifest(s) into {output / MANIFEST_NAME}: {merged.kept} record(s)"
              + (f", {dropped} superseded one(s) dropped" if dropped else ""), highlight=False)
    if merged.report is not None:
        err.print(f"report: {merged.report} (.json, .md)", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(manifest_app, name="manifest")
