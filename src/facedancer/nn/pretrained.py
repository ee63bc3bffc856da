"""``save_pretrained`` / ``from_pretrained`` for the networks, as in diffusers.

A model is a directory: ``config.json`` (the class and every constructor argument, so the file alone
rebuilds the network) and ``model.safetensors``. This is the only file access in ``nn``: its own
weights, through safetensors, which cannot execute code (no pickle, ever), read and checked by
:mod:`facedancer.weights_io` like every other weights file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from safetensors.torch import save_file
from torch import nn

from facedancer.atomic import atomic_path
from facedancer.config import from_dict, to_dict
from facedancer.errors import CheckpointError, ConfigError
from facedancer.weights_io import load_strict, read_state_dict

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1

M = TypeVar("M", bound="Pretrained")
_CLASSES: dict[str, type[Pretrained]] = {}


class Pretrained(nn.Module):
    """Mixin for a module whose constructor takes one dataclass ``config``."""

    config_class: ClassVar[type]
    config: Any

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _CLASSES[cls.__name__] = cls

    def save_pretrained(
        self, directory: str | Path, dtype: torch.dtype | None = None, meta: dict[str, Any] | None = None
    ) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (optionally cast, e.g. fp16 for shipping).

        ``meta`` is stored under ``"meta"`` in config.json for what using the model needs beyond its
        constructor, e.g. ``{"identity_encoder": "sface"}``; :func:`read_meta` returns it.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {
            k: (v.to(dtype) if dtype and v.is_floating_point() else v).detach().cpu().contiguous()
            for k, v in self.state_dict().items()
        }
        doc = {"class": type(self).__name__, "format_version": FORMAT_VERSION, **to_dict(self.config)}
        if meta:
            doc["meta"] = meta
        with atomic_path(directory / WEIGHTS_NAME) as tmp:
            save_file(tensors, str(tmp), metadata={"format": "pt"})
        with atomic_path(directory / CONFIG_NAME) as tmp:
            tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        return directory

    @classmethod
    def read_config(cls: type[M], directory: str | Path) -> tuple[type[M], Any]:
        """The class and validated config a model directory describes, without touching its weights."""
        config_path = Path(directory) / CONFIG_NAME
        meta = _read_json(config_path)
        name = meta.pop("class", None)
        meta.pop("format_version", None)
        meta.pop("meta", None)
        target = _CLASSES.get(name) if cls is Pretrained else cls
        if target is None or (name is not None and name != target.__name__):
            raise CheckpointError(f"{config_path} describes a {name!r}, not a {cls.__name__}")
        try:
            return target, from_dict(target.config_class, meta)
        except ConfigError as e:
            raise CheckpointError(f"{config_path}: {e}") from None

    @classmethod
    def from_pretrained(cls: type[M], directory: str | Path) -> M:
        """Rebuild from a model directory, on the CPU (move it with ``.to``); any mismatch is a
        :class:`CheckpointError` naming it."""
        target, config = cls.read_config(directory)
        weights_path = Path(directory) / WEIGHTS_NAME
        if not weights_path.is_file():
            raise CheckpointError(f"{directory} is not a facedancer model: {WEIGHTS_NAME} is missing")
        model = target(config)
        model.load_weights(read_state_dict(weights_path), source=weights_path)
        return model

    def load_weights(self, tensors: dict[str, torch.Tensor], source: str | Path = "weights") -> None:
        """Load a state dict strictly, with one message listing every missing, extra or mis-shaped tensor."""
        load_strict(self, tensors, source)


def _read_json(config_path: Path) -> dict[str, Any]:
    if not config_path.is_file():
        raise CheckpointError(f"{config_path.parent} is not a facedancer model: {CONFIG_NAME} is missing")
    try:
        doc = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{config_path} is unreadable or not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise CheckpointError(f"{config_path} must hold a JSON object")
    return doc


def read_meta(directory: str | Path) -> dict[str, Any]:
    """The ``meta`` mapping saved with a model (empty when there is none)."""
    meta = _read_json(Path(directory) / CONFIG_NAME).get("meta", {})
    if not isinstance(meta, dict):
        raise CheckpointError(f"{directory}/{CONFIG_NAME}: 'meta' must be an object")
    return meta
