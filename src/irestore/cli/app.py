"""The `irestore` command: a Typer app; each subcommand lives in its own module."""

from __future__ import annotations

import logging

import typer
from rich.console import Console
from rich.logging import RichHandler

from irestore import __version__
from irestore.cli import benchmark, caption, classify, data, models, plan, restore, train
from irestore.devices import keep_freed_memory_mapped

app = typer.Typer(
    name="irestore",
    help="Text-guided universal image restoration with a mean-reverting SDE diffusion model.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
for _module in (restore, plan, classify, caption, models, train, benchmark, data):
    _module.register(app)


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
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False, show_time=False)],
        force=True,
    )
    keep_freed_memory_mapped()


def main() -> None:
    app()
