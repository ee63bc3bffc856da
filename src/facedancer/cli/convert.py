"""``facedancer convert-official``: the authors' Keras models as a facedancer model directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from facedancer.cli.app import app

console = Console()


@app.command("convert-official")
def convert_official(
    generator: Annotated[Path, typer.Argument(help="FaceDancer_config_*.h5 (full model) or a gen_N.h5 checkpoint")],
    output: Annotated[Path, typer.Option("-o", "--output", help="the new model directory")],
    arcface: Annotated[Path | None, typer.Option(help="ArcFace-Res50.h5, converted into the model directory")] = None,
    discriminator: Annotated[
        Path | None, typer.Option(help="the discriminator .h5 (found on its own beside gen/gen_N.h5 checkpoints)")
    ] = None,
    json: Annotated[
        Path | None, typer.Option("--json", help="model JSON of a weights-only generator .h5 (train.py's gen.json)")
    ] = None,
) -> None:
    """Convert the official Keras FaceDancer weights (no TensorFlow needed) into a model for --model.

    The weights are the authors', licensed CC BY-NC-SA 4.0: non-commercial use only.
    """
    from facedancer.nn import Generator
    from facedancer.official import convert_official as convert

    out = convert(generator, output, arcface_h5=arcface, discriminator_h5=discriminator, model_json=json)
    cfg = Generator.read_config(out)[1]
    stages = ", ".join(f"{r}: {kind}" for r, kind in zip(cfg.stage_resolutions, cfg.stage_fusions, strict=True))
    parts = [
        "generator",
        *(["identity encoder"] if arcface else []),
        *(["discriminator"] if (out / "discriminator").is_dir() else []),
    ]
    console.print(f"wrote {out}: {' + '.join(parts)}; {cfg.image_size} px, fusion {stages}", highlight=False)
    console.print(
        f"licence of the weights: CC BY-NC-SA 4.0 (non-commercial); swap with `facedancer swap --model {out}`",
        highlight=False,
    )
