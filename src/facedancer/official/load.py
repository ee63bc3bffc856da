"""One loader per official model kind, shared by the Python API and ``facedancer convert-official``.

Each reads the Keras file, matches it by structure and builds the module; when the file is not the kind
asked for but another official model, the error says which one it is and the option that takes it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from facedancer.errors import ConversionError
from facedancer.identity.arcface_keras import match_arcface
from facedancer.keras import KerasGraph, read_keras
from facedancer.nn import Discriminator, Generator
from facedancer.official.discriminator import match_discriminator
from facedancer.official.generator import match_generator

T = TypeVar("T")

#: what each role's file must be, what that is called, and the option of convert-official that takes it
ROLES: dict[str, tuple[Callable[[KerasGraph], tuple], str, str]] = {
    "generator": (match_generator, "a FaceDancer generator", "GENERATOR"),
    "identity encoder": (match_arcface, "the ArcFace identity encoder", "--arcface"),
    "discriminator": (match_discriminator, "a FaceDancer discriminator", "--discriminator"),
}


def load_keras_generator(h5_path: str | Path, model_json: str | Path | None = None) -> Generator:
    """An official Keras generator (full-model ``.h5``, or weights-only ``.h5`` + model JSON) in eval mode."""
    config, tensors = as_role("generator", read_keras(h5_path, model_json), match_generator)
    generator = Generator(config)
    generator.load_weights(tensors, source=h5_path)
    return generator.eval()


def load_keras_discriminator(h5_path: str | Path, model_json: str | Path | None = None) -> Discriminator:
    """An official Keras discriminator (full-model ``.h5``, or weights-only ``.h5`` + model JSON) in eval mode."""
    config, tensors = as_role("discriminator", read_keras(h5_path, model_json), match_discriminator)
    discriminator = Discriminator(config)
    discriminator.load_weights(tensors, source=h5_path)
    return discriminator.eval()


def as_role(role: str, graph: KerasGraph, load: Callable[[KerasGraph], T]) -> T:
    """``load(graph)``; when that refuses the graph and it is another official model, the error says which."""
    try:
        return load(graph)
    except ConversionError as error:
        for other, (match, what, option) in ROLES.items():
            if other != role and _matches(match, graph):
                raise ConversionError(f"{error}; it is {what}: give it as {option}") from None
        raise


def _matches(match: Callable[[KerasGraph], tuple], graph: KerasGraph) -> bool:
    try:
        match(graph)
    except ConversionError:
        return False
    return True
