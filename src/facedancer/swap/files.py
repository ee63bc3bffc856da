"""Files and folders: which output each input gets, and the outputs refused before any work."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from facedancer.atomic import overwritten_input
from facedancer.errors import InputError, OutputError
from facedancer.io import IMAGE_OUTPUT_SUFFIXES, IMAGE_SUFFIXES, VIDEO_OUTPUT_SUFFIXES, output_suffix


@dataclass
class FolderReport:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    #: (input, output) of the files written under another suffix, because their own cannot be written
    renamed: list[tuple[Path, Path]] = field(default_factory=list)


def folder_plan(target: Path, output: Path) -> list[tuple[Path, Path]]:
    """(input, output) for every file under the folder ``target``, mirrored under ``output``.

    An input whose suffix cannot be written gets the fallback suffix of its kind (``photo.bmp`` -> ``photo.png``:
    :func:`~facedancer.io.formats.output_suffix`), or its whole name plus that suffix (``photo.bmp.png``) where
    the short name is taken.
    """
    files = sorted(p for p in target.rglob("*") if p.is_file() and not p.name.startswith("."))
    plan, fallback = [], set()
    for path in files:
        rel = path.relative_to(target)
        suffix = output_suffix(path)
        if suffix == path.suffix:
            plan.append((path, output / rel))
            continue
        plan.append((path, output / rel.with_suffix(suffix)))
        fallback.add(path)
    taken = defaultdict(int)
    for _, dest in plan:
        taken[dest] += 1
    return [
        (path, dest.with_name(path.name + dest.suffix) if path in fallback and taken[dest] > 1 else dest)
        for path, dest in plan
    ]


def check_outputs(target: Path, output: Path, inputs: Sequence[Path] = ()) -> list[tuple[Path, Path]]:
    """Refuse, before any work, an output that would overwrite an input (the target, a source, a reference),
    however its path is spelled (``./``, ``..``, a symlink or a hard link); for a folder target also an output
    folder inside it. Returns the folder plan (:func:`folder_plan`), or ``[(target, output)]`` for a file."""
    if target.is_dir():
        if output.exists() and not output.is_dir():
            raise OutputError(f"cannot write into {output}: it is a file; a folder target needs an output folder")
        inside = output.resolve()
        if inside == target.resolve() or target.resolve() in inside.parents:
            raise OutputError(
                f"cannot write into {output}: it is inside the target folder {target}; choose a folder outside it"
            )
        plan = folder_plan(target, output)
        if not plan:
            raise InputError(f"cannot swap {target}: the folder is empty")
    else:
        if output.is_dir():
            raise OutputError(f"cannot write {output}: it is a folder; give a file name (or a folder target)")
        plan = [(target, output)]
    if clash := overwritten_input((dest for _, dest in plan), [*inputs, *(path for path, _ in plan)]):
        raise OutputError(f"cannot write {clash[0]}: it would overwrite the input {clash[1]}")
    return plan


def check_output(output: Path, target: Path, kind: str) -> None:
    """An output suffix that can hold what ``target`` (an "image" or a "video") becomes."""
    allowed = IMAGE_OUTPUT_SUFFIXES if kind == "image" else VIDEO_OUTPUT_SUFFIXES
    if output.suffix.lower() not in allowed:
        what = "an image" if kind == "image" else "a video"
        if kind == "video" and target.suffix.lower() in IMAGE_SUFFIXES:
            what = f"{target.name} is an animation: a video"
        raise OutputError(f"cannot write {output}: {what} output needs one of {', '.join(sorted(allowed))}")


def input_paths(items: object) -> list[Path]:
    """The paths among sources given as paths, images or prepared sources (the inputs an output must spare)."""
    items = list(items) if isinstance(items, (list, tuple)) else [items]
    return [Path(s) for s in items if isinstance(s, (str, Path))]
