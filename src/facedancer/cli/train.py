"""Training commands: ``prepare`` (align a dataset), ``train``, ``calibrate-ifsr`` (the IFSR pre-study)."""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console

from facedancer.cli.app import app

console = Console()


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Warnings as ``warning: ...`` lines on stderr (Python's default adds a file name and a source line)."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        typer.echo(f"warning: {' '.join(str(message).split())}", err=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


@app.command()
def prepare(
    src: Annotated[Path, typer.Argument(help="identity-folder dataset (SRC/<identity>/*.jpg) and/or videos")],
    dst: Annotated[Path, typer.Argument(help="output folder: crops/, manifest.csv, skipped.csv")],
    min_face: Annotated[int, typer.Option(help="minimum face size in px (shorter box side); LFW needs 64")] = 128,
    size: Annotated[int, typer.Option(help="crop size in px")] = 256,
    every: Annotated[int, typer.Option(help="videos: align every Nth frame")] = 10,
    workers: Annotated[int, typer.Option(help="parallel processes")] = max(1, (os.cpu_count() or 1)),
    shard: Annotated[str, typer.Option(help="K/N: process only shard K (0-based) of N, for clusters")] = "0/1",
    tar_samples: Annotated[int, typer.Option(help="also write WebDataset tars of this many samples (0: none)")] = 0,
    image_format: Annotated[
        Literal["png", "jpg", "webp"],
        typer.Option("--format", help="crop files: png (lossless), or jpg / webp at --quality (jpg 90: 8x smaller)"),
    ] = "png",
    quality: Annotated[int, typer.Option(help="jpg / webp quality, 1-100")] = 95,
) -> None:
    """Detect the best face of every photo (and every Nth video frame), align it and store it as an image.

    Resumable: a rerun skips every file an earlier run (or another shard) finished.
    """
    from facedancer.config import parse_shard
    from facedancer.train.prepare import PrepareOptions
    from facedancer.train.prepare import prepare as run_prepare

    options = PrepareOptions(
        size=size,
        min_face=min_face,
        every=every,
        workers=workers,
        shard=parse_shard(shard),
        tar_samples=tar_samples,
        image_format=image_format,
        quality=quality,
    )
    with _one_line_warnings():
        s = run_prepare(src, dst, options)
    console.print(
        f"{s.items} files in this shard: {s.processed} processed, {s.already_done} already done; "
        f"dataset: {s.crops} crops, {sum(s.skipped.values())} skipped ({s.aligned_fraction:.1%} aligned)",
        highlight=False,
    )
    for reason, count in s.skipped.most_common():
        console.print(f"  skipped {count}: {reason}", highlight=False)
    if s.skipped:
        console.print(f"details: {dst / 'skipped.csv'}", highlight=False)
    if s.pending:
        console.print(
            f"{s.pending} files of other shards are not aligned yet: the dataset is complete (and trainable) "
            "once every shard has finished, or after a run without --shard",
            highlight=False,
        )


@app.command("calibrate-ifsr")
def calibrate_ifsr(
    data: Annotated[
        Path, typer.Argument(help="prepared dataset (manifest.csv) or triplet folder (target/ source/ changed/)")
    ],
    out: Annotated[Path, typer.Option("-o", "--out", help="margins JSON to write")],
    plot: Annotated[Path | None, typer.Option(help="PNG of the per-block distance distributions")] = None,
    encoder: Annotated[str, typer.Option(help="identity encoder whose blocks are measured")] = "sface",
    swapper: Annotated[str, typer.Option(help="'classical' or a facedancer generator directory")] = "classical",
    pairs: Annotated[int, typer.Option(help="triplets to make from a prepared dataset")] = 500,
    seed: Annotated[int, typer.Option(help="seed of the random (target, source) pairs")] = 0,
    eer_max: Annotated[float, typer.Option(help="select blocks whose t2c/c2s equal error rate is at most this")] = 0.05,
    blocks: Annotated[
        str | None, typer.Option(help="comma-separated blocks to give margins (overrides --eer-max)")
    ] = None,
) -> None:
    """The IFSR pre-study: per-block feature distances of face swaps, and the margins file for IFSR."""
    from facedancer.train.calibrate import calibrate

    chosen = [b.strip() for b in blocks.split(",") if b.strip()] if blocks else None
    command = shlex.join(["facedancer", *sys.argv[1:]])
    with _one_line_warnings():
        m = calibrate(data, out, encoder, swapper, pairs, seed, eer_max, chosen, plot, command=command)
    console.print(f"{len(m.margins)} of {len(m.statistics)} blocks: {', '.join(m.margins)}", highlight=False)
    console.print(f"wrote {out}" + (f" and {plot}" if plot else ""), highlight=False)


@app.command()
def train(
    config: Annotated[str | None, typer.Argument(help="preset name or YAML file (omit with --resume)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a config value: key.sub=value")] = None,
    resume: Annotated[Path | None, typer.Option(help="continue the run in this run directory")] = None,
    init: Annotated[
        Path | None,
        typer.Option(help="start from this model directory (e.g. a converted official model): weights only, new run"),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the resolved config and exit")] = False,
) -> None:
    """Train a FaceDancer model; every run gets a numbered directory with its config, metrics and checkpoints.

    Fine-tune: `--init MODEL_DIR` starts G (and D, when the model has one) from a model's weights, with a new
    optimiser, in a new run; `--resume RUN_DIR` continues a run exactly where it stopped.

    Multi-GPU / multi-node: launch with torchrun, e.g. `torchrun --nproc_per_node 8 -m facedancer train ...`.
    """
    import json

    import yaml

    from facedancer.config import to_dict
    from facedancer.errors import ConfigError
    from facedancer.presets import load_preset

    if resume is not None:
        if config is not None:
            raise ConfigError("--resume continues a run with its own config.yaml: drop CONFIG (change it with --set)")
        if init is not None:
            raise ConfigError("--init starts a new run from a model's weights; --resume continues a run: give one")
        from facedancer.train.run import load_run_preset

        preset = load_run_preset(resume, set_ or [])
    elif config is None:
        raise ConfigError("give a preset name or config file (or --resume RUN_DIR)")
    else:
        # --init is train.init, which a later --set may still change
        init_set = [f"train.init={json.dumps(str(init))}"] if init is not None else []
        preset = load_preset(config, [*init_set, *(set_ or [])])
    if dry_run:
        typer.echo(yaml.safe_dump(to_dict(preset), sort_keys=False), nl=False)
        return
    from facedancer.train.run import train as run_training

    with _one_line_warnings():
        result = run_training(preset, resume=resume)
    console.print(f"{result.run_dir}: step {result.step}, {result.status}", highlight=False)
    if result.unreadable:
        console.print(
            f"{result.unreadable} unreadable crops were skipped (the first ones named above)", highlight=False
        )
    if result.status != "finished":
        console.print(f"checkpoint {result.checkpoint}; continue with --resume {result.run_dir}", highlight=False)
        raise typer.Exit(128 + {"SIGINT": 2, "SIGTERM": 15}.get(result.status, 0))
