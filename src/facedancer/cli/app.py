"""The typer application that every command module registers on, and its own options (``--version``)."""

from __future__ import annotations

from typing import Annotated

import typer

from facedancer import __version__
from facedancer.cli.distribution import DISTRIBUTION

app = typer.Typer(
    name="facedancer",
    help="FaceDancer face swapping: swap, train, evaluate and export (PyTorch).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"{DISTRIBUTION} {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Options of ``facedancer`` itself, before any command."""
