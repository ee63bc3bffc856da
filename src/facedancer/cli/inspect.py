"""``facedancer inspect FILE``: does an image or video carry a synthetic-media label, and what does it say."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facedancer.cli.app import app


@app.command()
def inspect(file: Annotated[Path, typer.Argument(help="an image or video")]) -> None:
    """Print FILE's synthetic-media label. Exit 0 if labelled, 1 if not, 2 if FILE cannot be read."""
    from facedancer.io import read_label  # PyAV only for the commands that read or write media
    from facedancer.io.provenance import SOURCE_TYPE_MEANINGS

    label = read_label(file)
    if label is None:
        typer.echo(f"{file}: not labelled as synthetic media")
        raise typer.Exit(1)
    typer.echo(f"{file}: labelled as synthetic media")
    typer.echo(f"  IPTC digital source type: {label.source_type} ({SOURCE_TYPE_MEANINGS[label.source_type]})")
    typer.echo(f"  made with: {label.tool} {label.version}".rstrip())
    typer.echo(f"  model: {label.model}")
    if label.note:
        typer.echo(f"  note: {label.note}")
