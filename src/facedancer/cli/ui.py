"""``facedancer ui``: the local web page and HTTP API (the optional ``ui`` extra)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated

import typer

from facedancer.cli.app import app
from facedancer.errors import ConfigError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@app.command()
def ui(
    host: Annotated[str, typer.Option(help="address to listen on; anything but loopback lets other machines in")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="port (0: any free port)")] = 7860,
    models: Annotated[
        list[Path] | None,
        typer.Option("--models", help="a model directory, or a folder of them, to offer (repeatable)"),
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or mps")] = "cpu",
    max_upload_mb: Annotated[float, typer.Option(min=1, help="largest request body accepted, in MiB")] = 512,
    keep: Annotated[int, typer.Option(min=1, help="finished results kept for download")] = 8,
) -> None:
    """Serve a web page and an HTTP API for swapping on HOST:PORT (127.0.0.1:7860); Ctrl+C stops it."""
    missing = [m for m in ("starlette", "uvicorn", "python_multipart") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"facedancer ui needs the ui extra ({', '.join(missing)} missing): pip install 'facedancer-pytorch[ui]'"
        )
    from facedancer.device import resolve_device
    from facedancer.ui import create_app, listen, serve, url

    resolve_device(device)
    sock = listen(host, port)
    try:
        web = create_app(models=models or [], device=device, max_upload_bytes=int(max_upload_mb * 2**20), keep=keep)
    except BaseException:
        sock.close()
        raise
    typer.echo(f"facedancer ui: {url(sock)}  (Ctrl+C to stop)")
    if host not in LOOPBACK:
        typer.echo(
            f"warning: {host} lets other machines in, with no password: anyone who reaches it can swap", err=True
        )
    serve(web, sock)
