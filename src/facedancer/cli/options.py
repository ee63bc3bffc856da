"""Options that several commands share, defined once so that their names, defaults and help agree."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

#: how a generated face meets its frame (``facedancer.faces.BlendConfig``)
BlendMask = Annotated[
    Literal["landmarks", "rect-image", "rect-video"],
    typer.Option(help="paste-back mask: soft landmark outline, or the official feathered rectangles"),
]
Colour = Annotated[bool, typer.Option("--colour/--no-colour", help="match the face's colour to the target")]
Poisson = Annotated[bool, typer.Option(help="Poisson (gradient-domain) blending on top of the mask")]
