"""The one error console of the CLI and the way a subcommand stops with a message."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

EXIT_FAILURE = 1  # the command ran and failed (a missing model, a failed training run)
EXIT_USAGE = 2  # bad arguments or input, as click/typer use for usage errors

err = Console(stderr=True, soft_wrap=True)  # messages name files: never break a path across lines


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``error: MESSAGE`` on stderr and exit with ``code``."""
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)
