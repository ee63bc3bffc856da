"""``facedancer swap``: faces in an image, a folder or a video."""

from __future__ import annotations

import logging
import math
from collections import Counter
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import typer
from rich.console import Console

from facedancer.cli.app import app
from facedancer.cli.options import BlendMask, Colour, Poisson
from facedancer.errors import ConfigError

console = Console(stderr=True)


def _selection_args(faces: str, pairs: list[str], sources: list[Path]) -> tuple[list[Path], str, int, list[Path]]:
    """(sources, mode, index, references) from --faces / --pair / -s."""
    if pairs:
        if sources:
            raise ConfigError("give either -s/--source or --pair SOURCE=REFERENCE, not both")
        split = [p.split("=", 1) for p in pairs]
        if any(len(s) != 2 or not all(s) for s in split):
            raise ConfigError("--pair expects SOURCE=REFERENCE (two image paths)")
        return [Path(s) for s, _ in split], "reference", 0, [Path(r) for _, r in split]
    if not sources:
        raise ConfigError("missing -s/--source (the face to put in)")
    if len(sources) > 1:
        raise ConfigError("several sources need --pair SOURCE=REFERENCE to say which face each replaces")
    if faces in ("all", "largest"):
        return sources, faces, 0, []
    if faces.isdigit():
        return sources, "index", int(faces), []
    if Path(faces).is_file():
        return sources, "reference", 0, [Path(faces)]
    raise ConfigError(f"--faces {faces!r}: expected all, largest, a face index (0 = leftmost) or a reference image")


@app.command()
def swap(
    target: Annotated[Path, typer.Option("-t", "--target", help="image, folder (batch) or video")],
    output: Annotated[Path, typer.Option("-o", "--output", help="output file, or folder for a folder target")],
    source: Annotated[list[Path] | None, typer.Option("-s", "--source", help="image of the face to put in")] = None,
    faces: Annotated[str, typer.Option(help="all | largest | N (0 = leftmost) | REFERENCE image")] = "all",
    pair: Annotated[
        list[str] | None,
        typer.Option(
            help="SOURCE=REFERENCE: faces that look like REFERENCE get SOURCE's face; repeat for several people"
        ),
    ] = None,
    threshold: Annotated[float, typer.Option(help="identity similarity a face needs to match a reference")] = 0.363,
    model: Annotated[str, typer.Option(help="bundled model name, model directory, or 'classical'")] = "facedancer-lite",
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or mps")] = "cpu",
    backend: Annotated[
        Literal["auto", "eager", "compile", "onnxruntime", "openvino"],
        typer.Option(
            help="where the generator runs: auto = the fastest installed runtime that matches torch fp32 within "
            "1e-4 for this model (OpenVINO, then ONNX Runtime, then torch; torch on a GPU); eager/compile = torch"
        ),
    ] = "auto",
    precision: Annotated[
        Literal["auto", "fp32", "fp16", "bf16"],
        typer.Option(
            help="generator precision: auto = bf16 only where the hardware has it natively (AVX512-BF16 or AMX "
            "CPUs, bf16 GPUs) and the model's bf16 output is within 40 dB PSNR of fp32 on the first faces "
            "(an invisible loss), fp32 everywhere else"
        ),
    ] = "auto",
    compile: Annotated[bool, typer.Option("--compile", hidden=True, help="same as --backend compile")] = False,
    detector: Annotated[Literal["yunet", "retinaface"], typer.Option(help="face detector")] = "yunet",
    blend: BlendMask = "landmarks",
    colour: Colour = True,
    poisson: Poisson = False,
    batch_size: Annotated[
        int | None, typer.Option(help="faces per generator batch [default: 8 on a GPU, 1 on a CPU]")
    ] = None,
    max_frames: Annotated[int | None, typer.Option(help="stop a video after this many frames")] = None,
    timings: Annotated[
        bool, typer.Option("--timings", help="print where the time went: each stage's busy ms per frame")
    ] = False,
    no_label: Annotated[
        bool,
        typer.Option(
            "--no-label", help="do NOT label outputs as synthetic media (IPTC source type); only with good reason"
        ),
    ] = False,
) -> None:
    """Swap the source face onto faces in TARGET and write OUT (labelled as synthetic media)."""
    from facedancer.faces import BlendConfig
    from facedancer.io import media_kind
    from facedancer.swap import FaceSwapper, Selection
    from facedancer.swap.files import check_outputs

    sources, mode, index, references = _selection_args(faces, pair or [], source or [])
    _check_numbers(threshold, batch_size, max_frames)
    if max_frames is not None and not target.is_dir() and media_kind(target) == "image":
        raise ConfigError(f"--max-frames applies to videos; {target} is a photo")
    check_outputs(target, output, [*sources, *references])  # before any work: never overwrite an input
    _show_backend_messages()
    swapper = FaceSwapper.from_pretrained(
        model,
        device=device,
        precision=precision,
        compile=compile,
        backend=backend,
        detector=detector,
        blend=BlendConfig(mask=blend, colour=colour, poisson=poisson),
        batch_size=batch_size,
    )
    refs = np.stack([swapper.reference(r) for r in references]) if references else None
    selection = Selection(mode=mode, index=index, references=refs, threshold=threshold)
    prepared = [swapper.source(s) for s in sources]
    if target.is_dir():
        result = swapper.swap_folder(
            prepared, target, output, selection, label=not no_label, progress=True, max_frames=max_frames
        )
        console.print(f"wrote {len(result.written)} files under {output}", highlight=False, soft_wrap=True)
        renamed = Counter((p.suffix.lower(), q.suffix) for p, q in result.renamed)
        for (old, new), n in sorted(renamed.items()):
            console.print(f"{_count(n, old + ' file')} written as {new} ({old} cannot be written)", highlight=False)
        for path, why in result.failed:
            console.print(f"skipped {path}: {why}", highlight=False, markup=False, soft_wrap=True)
        if result.failed:
            raise typer.Exit(1)
        return
    report = swapper.swap_file(
        prepared, target, output, selection, label=not no_label, progress=True, max_frames=max_frames
    )
    console.print(
        f"wrote {output}: {_count(report.faces_swapped, 'face')} swapped in {_count(report.frames, 'frame')}",
        highlight=False,
        soft_wrap=True,
    )
    if timings:
        console.print(report.timings(), highlight=False, markup=False)


def _check_numbers(threshold: float, batch_size: int | None, max_frames: int | None) -> None:
    if not (math.isfinite(threshold) and -1 <= threshold <= 1):
        raise ConfigError(f"--threshold {threshold}: a cosine similarity, from -1 to 1")
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size}: must be at least 1")
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"--max-frames {max_frames}: must be at least 1")


class _ConsoleHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        console.print(self.format(record), highlight=False, markup=False, soft_wrap=True)


def _show_backend_messages() -> None:
    """The backend's one-off costs (export, checks) and its choices, on stderr as they happen."""
    logger = logging.getLogger("facedancer.swap.backends")
    if not any(isinstance(h, _ConsoleHandler) for h in logger.handlers):
        logger.addHandler(_ConsoleHandler())
    logger.setLevel(logging.INFO)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
