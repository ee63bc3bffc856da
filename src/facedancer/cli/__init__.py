"""The ``facedancer`` command: thin typer commands over the library, one module per command group.

``main`` turns every :class:`~facedancer.errors.FacedancerError` and every usage mistake into one line on
stderr and its exit code, so users never see a traceback (or a boxed usage screen) for a mistake they can
fix; SIGTERM unwinds like Ctrl-C, so temporary files are removed on both. Importing it first checks that
the unrelated ``facedancer`` distribution is not installed alongside (:mod:`facedancer.cli.distribution`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading

import typer

from facedancer.cli.distribution import exit_on_clash

# first: with the unrelated 'facedancer' distribution installed, the imports below may load its files
exit_on_clash()

from facedancer.cli.app import app, click, command
from facedancer.errors import FacedancerError

# each module registers its commands on ``app`` when imported
from facedancer.cli import models  # noqa: F401  isort: skip
from facedancer.cli import convert  # noqa: F401  isort: skip
from facedancer.cli import inspect  # noqa: F401  isort: skip
from facedancer.cli import swap  # noqa: F401  isort: skip
from facedancer.cli import train  # noqa: F401  isort: skip
from facedancer.cli import ui  # noqa: F401  isort: skip
from facedancer.cli import eval  # isort: skip


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that ``with`` blocks clean up (temporary files, partial outputs)."""


def _on_sigterm(main_pid: int):
    def handler(signum: int, frame: object) -> None:
        if os.getpid() != main_pid:  # a forked worker: die as SIGTERM asks, without unwinding the parent's state
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        raise Terminated

    return handler


def _say(message: str) -> None:
    """One line on stderr, whatever newlines a message (a YAML error, a file name) carries."""
    typer.echo(f"error: {' '.join(line.strip() for line in message.splitlines() if line.strip())}", err=True)


def main() -> None:
    installed = threading.current_thread() is threading.main_thread()  # only it may set signal handlers
    previous = signal.signal(signal.SIGTERM, _on_sigterm(os.getpid())) if installed else None
    try:
        _run()
    finally:  # callers that run main() in-process (tests, other tools) keep their own handler
        if installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _run() -> None:
    try:
        code = command().main(args=eval.expand_compare(sys.argv[1:]), prog_name="facedancer", standalone_mode=False)
    except FacedancerError as e:
        _say(str(e))
        sys.exit(e.exit_code)
    except click.exceptions.NoArgsIsHelpError as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.UsageError as e:
        hint = f" (see {e.ctx.command_path} -h)" if e.ctx is not None else ""
        _say(e.format_message() + hint)
        sys.exit(e.exit_code)
    except click.exceptions.ClickException as e:
        _say(e.format_message())
        sys.exit(e.exit_code)
    except (typer.Abort, getattr(click.exceptions, "Abort", typer.Abort)):
        typer.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Terminated:
        typer.echo("terminated", err=True)
        sys.exit(128 + signal.SIGTERM)
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["app", "main"]
