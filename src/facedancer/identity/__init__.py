"""Identity encoders: an aligned face crop in, an embedding out, plus named intermediate features.

Every encoder is an :class:`IdentityEncoder` (see ``base.py`` for the input/output conventions);
:func:`load_encoder` builds one by the name a preset uses, from a given file or the asset registry.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from facedancer import assets
from facedancer.errors import ConfigError
from facedancer.identity.arcface_keras import KerasResNet
from facedancer.identity.base import INPUT_SIZE, IdentityEncoder, from_uint8, prepare
from facedancer.identity.inference import embed_crops
from facedancer.identity.iresnet import LAYOUTS, IResNet
from facedancer.identity.sface import SFace
from facedancer.identity.tensors import encode_crops

#: embedding size of every encoder a preset may name
EMBEDDING_DIMS: dict[str, int] = {
    "sface": 128,
    "arcface-iresnet50": 512,
    "arcface-iresnet100": 512,
    "arcface-keras-r50": 512,
}

_LOADERS: dict[str, Callable[[Path], IdentityEncoder]] = {
    "sface": SFace.from_onnx,
    **{f"arcface-iresnet{depth}": partial(IResNet.from_checkpoint, depth=depth) for depth in LAYOUTS},
    "arcface-keras-r50": KerasResNet.load,
}

#: where a model directory keeps the identity encoder it was converted with (``facedancer convert-official``)
ENCODER_DIR = "identity_encoder"


def load_encoder(name: str, weights: str | Path | None = None) -> IdentityEncoder:
    """A frozen encoder by name, from ``weights`` or else the registry's verified copy (never downloads)."""
    if name not in _LOADERS:
        raise ConfigError(f"unknown identity encoder {name!r}; known: {', '.join(_LOADERS)}")
    return _LOADERS[name](Path(weights) if weights is not None else assets.resolve(name))


def load_model_encoder(model_dir: str | Path, name: str) -> IdentityEncoder:
    """The encoder a model directory was made for: the copy the directory carries in ``identity_encoder/``
    (converted models), else the registry's."""
    carried = Path(model_dir) / ENCODER_DIR
    return load_encoder(name, carried if carried.is_dir() else None)


__all__ = [
    "EMBEDDING_DIMS",
    "ENCODER_DIR",
    "INPUT_SIZE",
    "IResNet",
    "IdentityEncoder",
    "KerasResNet",
    "SFace",
    "embed_crops",
    "encode_crops",
    "from_uint8",
    "load_encoder",
    "load_model_encoder",
    "prepare",
]
