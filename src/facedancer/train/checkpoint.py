"""Training checkpoints that load safely: safetensors for every tensor, JSON for everything else.

A checkpoint is a directory ``checkpoints/step-NNNNNNNN/`` with

- ``generator/`` and ``discriminator/``: model directories (``config.json`` + ``model.safetensors``),
  so the generator of any checkpoint is directly a usable model;
- ``training.safetensors`` + ``training.json``: optimiser, schedule, grad-scaler and RNG states and the
  data position. Nested Python state is split into a JSON tree whose tensors (and numpy arrays) are
  replaced by references into the safetensors file: nothing is pickled, nothing executes on load.

It is written under a temporary name, flushed to the disk (fsync: a power loss cannot leave a
"complete" checkpoint empty) and renamed into place, and ``checkpoints/latest`` (a one-line file) is
replaced afterwards, so a kill at any moment leaves the previous checkpoint intact. A write that fails
(a full disk) removes its partial files and says which complete checkpoint remains.

Resuming takes the checkpoint ``latest`` names, and when that one cannot be read (truncated by a disk
fault, deleted) the older ones, newest first: :func:`candidates`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from facedancer.atomic import atomic_dir, atomic_path
from facedancer.errors import CheckpointError, OutputError
from facedancer.io.failures import reason

STATE_TENSORS = "training.safetensors"
STATE_JSON = "training.json"
LATEST = "latest"
PREFIX = "step-"


def split_state(obj: Any, tensors: dict[str, torch.Tensor], path: str = "s") -> Any:
    """JSON-able tree of ``obj`` with tensors/arrays moved into ``tensors`` (keys are tree paths)."""
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().cpu().contiguous()
        return {"__tensor__": path}
    if isinstance(obj, np.ndarray):
        tensors[path] = torch.from_numpy(np.ascontiguousarray(obj))
        return {"__ndarray__": path}
    if isinstance(obj, dict):
        return {"__dict__": [[k, split_state(v, tensors, f"{path}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [split_state(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [split_state(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot checkpoint a {type(obj).__name__} at {path}")


def join_state(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`split_state`."""
    if isinstance(tree, list):
        return [join_state(v, tensors) for v in tree]
    if isinstance(tree, dict):
        if "__tensor__" in tree:
            return tensors[tree["__tensor__"]]
        if "__ndarray__" in tree:
            return tensors[tree["__ndarray__"]].numpy()
        if "__tuple__" in tree:
            return tuple(join_state(v, tensors) for v in tree["__tuple__"])
        return {k: join_state(v, tensors) for k, v in tree["__dict__"]}
    return tree


def step_dir(checkpoints: Path, step: int) -> Path:
    return checkpoints / f"{PREFIX}{step:08d}"


def save(checkpoints: Path, step: int, models: dict[str, Any], state: dict[str, Any], keep: int) -> Path:
    """Write one checkpoint atomically and durably, point ``latest`` at it, and keep only the newest ``keep``.

    Checkpoints of later steps than this one (left by a run that resumed from an older checkpoint) are
    neither counted nor pruned: the run rewrites them when it gets there.
    """
    final = step_dir(checkpoints, step)
    try:
        with atomic_dir(final, durable=True) as tmp:
            for name, (model, meta) in models.items():
                model.save_pretrained(tmp / name, meta=meta)
            tensors: dict[str, torch.Tensor] = {}
            tree = split_state(state, tensors)
            save_file(tensors, str(tmp / STATE_TENSORS))
            (tmp / STATE_JSON).write_text(json.dumps(tree) + "\n", encoding="utf-8")
        with atomic_path(checkpoints / LATEST, durable=True) as f:
            f.write_text(final.name + "\n", encoding="utf-8")
    except OSError as e:  # a full disk: the partial files are gone, the earlier checkpoints untouched
        raise OutputError(f"cannot write checkpoint {final} ({reason(e)})") from None
    older = sorted(p for p in _step_dirs(checkpoints) if p.name <= final.name)
    for old in older[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in checkpoints.glob(".*"):  # staging folders and pointer temporaries of killed writes
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    return final


def _step_dirs(checkpoints: Path) -> list[Path]:
    return [p for p in checkpoints.glob(f"{PREFIX}*") if p.is_dir() and p.name[len(PREFIX) :].isdigit()]


def latest(checkpoints: Path) -> Path:
    """The checkpoint ``latest`` names (for reading a finished run; resuming uses :func:`candidates`)."""
    pointer = checkpoints / LATEST
    if not pointer.is_file():
        raise CheckpointError(f"no checkpoint in {checkpoints} (nothing to resume)")
    path = checkpoints / pointer.read_text(encoding="utf-8").strip()
    if not path.is_dir():
        raise CheckpointError(f"{pointer} points at {path.name}, which is missing")
    return path


def candidates(checkpoints: Path) -> list[Path]:
    """Checkpoints to resume from, best first: the one ``latest`` names, then the older ones, newest first.

    Without a readable pointer (a run killed before its first pointer write, a damaged disk), every
    checkpoint folder counts, newest first: a folder only gets its ``step-`` name once it is complete.
    """
    found = sorted(_step_dirs(checkpoints), reverse=True)
    try:
        named = checkpoints / (checkpoints / LATEST).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        named = None
    if named in found:
        return [p for p in found if p.name <= named.name]
    return found


def load_state(path: Path) -> dict[str, Any]:
    try:
        tensors = load_file(str(path / STATE_TENSORS))
        tree = json.loads((path / STATE_JSON).read_text(encoding="utf-8"))
        return join_state(tree, tensors)
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as e:
        raise CheckpointError(f"{path} holds no readable training state ({reason(e)})") from None
