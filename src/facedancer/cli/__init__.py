"""The ``facedancer`` command: thin typer commands over the library, one module per command group.

``main`` turns every :class:`~facedancer.errors.FacedancerError` into one line on stderr and its exit
code, so users never see a traceback for a mistake they can fix. Importing it first checks that the
unrelated ``facedancer`` distribution is not installed alongside (:mod:`facedancer.cli.distribution`).
"""

from __future__ import annotations

import sys

import typer

from facedancer.cli.distribution import exit_on_clash

# first: with the unrelated 'facedancer' distribution installed, the imports below may load its files
exit_on_clash()

from facedancer.cli.app import app
from facedancer.errors import FacedancerError

# each module registers its commands on ``app`` when imported
from facedancer.cli import models  # noqa: F401  isort: skip
from facedancer.cli import convert  # noqa: F401  isort: skip
from facedancer.cli import inspect  # noqa: F401  isort: skip
from facedancer.cli import swap  # noqa: F401  isort: skip
from facedancer.cli import train  # noqa: F401  isort: skip
from facedancer.cli import ui  # noqa: F401  isort: skip
from facedancer.cli import eval  # isort: skip


def main() -> None:
    try:
        app(args=eval.expand_compare(sys.argv[1:]))
    except FacedancerError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


__all__ = ["app", "main"]
