"""Which models a server offers: bundled ones, model directories named when it started, and classical.

A request names a model from this list; it never gives a path, so no request can make the server read
a file outside what its operator chose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from facedancer.nn.pretrained import CONFIG_NAME
from facedancer.swap import CLASSICAL, DEFAULT_MODEL
from facedancer.swap.models import bundled_models, model_directory

ModelKind = Literal["bundled", "directory", "classical"]


@dataclass(frozen=True)
class ModelChoice:
    """``name``: what the page shows and a request sends; ``spec``: what the swap library loads."""

    name: str
    spec: str
    kind: ModelKind

    @property
    def has_precision(self) -> bool:
        """Precision applies to generators; the classical swap has no network."""
        return self.kind != "classical"


def model_choices(folders: Sequence[Path] = ()) -> dict[str, ModelChoice]:
    """Bundled models, then every model directory in ``folders`` (a model directory, or a folder of
    them), then classical. Names stay unique: a second ``name`` becomes ``name-2``.

    A directory is offered once however often it is named (``dir/m`` and ``dir``, a symlink): jobs run
    one at a time per name, so two names for one loaded model would let two threads use it at once."""
    choices = {name: ModelChoice(name, str(path), "bundled") for name, path in bundled_models().items()}
    seen = {Path(c.spec).resolve() for c in choices.values()}
    for folder in folders:
        for path in _model_directories(Path(folder)):
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            name, n = path.name, 1
            while name in choices or name == CLASSICAL:
                n += 1
                name = f"{path.name}-{n}"
            choices[name] = ModelChoice(name, str(path), "directory")
    choices[CLASSICAL] = ModelChoice(CLASSICAL, CLASSICAL, "classical")
    return choices


def default_choice(choices: dict[str, ModelChoice]) -> str:
    """The CLI's default model when this server has it, else the first one offered."""
    return DEFAULT_MODEL if DEFAULT_MODEL in choices else next(iter(choices))


def _model_directories(folder: Path) -> list[Path]:
    if folder.is_dir() and not (folder / CONFIG_NAME).is_file():
        found = sorted(p for p in folder.iterdir() if (p / CONFIG_NAME).is_file())
        if found:
            return found
    return [model_directory(folder)]  # the swap library's own error for anything that is not a model
