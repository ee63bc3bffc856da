"""The typer application that every command module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="facedancer",
    help="FaceDancer face swapping: swap, train, evaluate and export (PyTorch).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
