"""The typer application that every command module registers on, its own options (``--version``), and the
click command users run."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from facedancer import __version__
from facedancer.cli.distribution import DISTRIBUTION

try:  # typer vendors click since 0.20
    from typer import _click as click
except ImportError:  # pragma: no cover
    import click

HELP_OPTIONS = ["-h", "--help"]

app = typer.Typer(
    name="facedancer",
    help="FaceDancer face swapping: swap, train, evaluate and export (PyTorch).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": HELP_OPTIONS},  # inherited by every sub-command
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


#: help placeholders by Python type: typer would print ``<str>``, ``<bool>``, ``<list[Path]>``
_METAVARS = {"path": "PATH", "str": "TEXT", "int": "INTEGER", "float": "NUMBER"}


def command() -> click.Command:
    """The ``facedancer`` click command, with help that shows flags as flags and values by what they are."""
    root = typer.main.get_command(app)
    _plain_metavars(root)
    return root


def _plain_metavars(cmd: click.Command) -> None:
    ctx = click.Context(cmd, help_option_names=HELP_OPTIONS)
    for param in [*cmd.params, cmd.get_help_option(ctx)]:
        if param is None:
            continue
        if param.metavar is not None:
            continue
        if param.param_type_name == "argument":
            param.metavar = param.name.upper()
        elif getattr(param, "is_flag", False):
            param.metavar = ""  # a flag takes no value
        else:
            label = param.display_type(ctx).strip("<>")
            label = re.fullmatch(r"list\[(.*)\]", label.lower())[1] if label.lower().startswith("list[") else label
            param.metavar = _METAVARS.get(label.lower(), label)
    for sub in getattr(cmd, "commands", {}).values():
        _plain_metavars(sub)
