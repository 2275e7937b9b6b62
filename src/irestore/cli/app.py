"""The `irestore` command: a Typer app; each subcommand lives in its own module.

Subcommand modules import torch and the models' code, which takes seconds; they are imported
only when their command runs (or shows its own help), so `irestore --help` starts at once.
"""

from __future__ import annotations

import importlib
import logging

import click
import typer
from typer.core import TyperGroup

from irestore import __version__

# Plain click help: it reads at 80 columns (rich panels squeeze the help text into a narrow column
# and cut option names); None also keeps Typer from importing rich for every --help.
HELP_MARKUP = None

# name -> (module under irestore.cli with a register(app) function, its one-line help as listed)
SUBCOMMANDS = {
    "restore": ("restore", "Restore an image or a folder of images."),
    "plan": ("plan", ("Plan the restoration of an image or folder: detected degradations, the steps chosen and "
                      "the evaluations behind them (kept, rolled back).")),
    "classify": ("classify", "Classify the degradations of an image or a folder of images."),
    "caption": ("caption", "Caption an image or a folder of images."),
    "train": ("train", "Train a restorer (IR-SDE maximum-likelihood loss, or x̂_0 L1) or a degradation classifier."),
    "benchmark": ("benchmark", "Compare restoration methods on a benchmark suite."),
    "models": ("models", ("The model store: which weights exist, where they resolve, fetching, importing and "
                          "checking them.")),
    "data": ("data", "Dataset layouts (GoPro, Rain100, SOTS, ...): list them, check a local copy."),
    "manifest": ("manifest", "The manifest of a restore OUTPUT: merge the shards' manifests (--shard K/N) into one."),
}


def load_subcommand(name: str) -> click.Command:
    """The real click command of a subcommand (importing its module)."""
    module = importlib.import_module(f"irestore.cli.{SUBCOMMANDS[name][0]}")
    holder = typer.Typer(rich_markup_mode=HELP_MARKUP, pretty_exceptions_enable=False)
    holder.callback()(lambda: None)  # a group, so the command is found by name whatever its kind
    module.register(holder)
    return typer.main.get_command(holder).commands[name]


class LazyGroup(TyperGroup):
    """Lists the subcommands from SUBCOMMANDS and loads one only when it is resolved to run."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *SUBCOMMANDS]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in SUBCOMMANDS and name not in self.commands:
            return click.Command(name, help=SUBCOMMANDS[name][1])  # enough for the listing
        return super().get_command(ctx, name)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name = args[0] if args else None
        if name in SUBCOMMANDS and name not in self.commands:
            self.commands[name] = load_subcommand(name)
        return super().resolve_command(ctx, args)


app = typer.Typer(
    name="irestore",
    cls=LazyGroup,
    help="Text-guided universal image restoration with a mean-reverting SDE diffusion model.",
    no_args_is_help=True,
    rich_markup_mode=HELP_MARKUP,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"irestore {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
) -> None:
    """Restore degraded photographs (noise, blur, rain, haze, low light, JPEG, low resolution)."""
    from rich.console import Console
    from rich.logging import RichHandler

    from irestore.devices import keep_freed_memory_mapped

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False, show_time=False)],
        force=True,
    )
    keep_freed_memory_mapped()


def main() -> None:
    app()
