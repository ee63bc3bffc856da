"""Reading a weights file safely and loading it strictly: the one path for every state dict from outside.

Our own model directories, a user's ``backbone.pth``, the RetinaFace, VGG16 and 3DDFA_V2 releases all go
through :func:`read_state_dict` (safetensors, or ``torch.load(weights_only=True)``: tensors only, never
pickled code) and :func:`load_strict` (every key and shape must match). Whatever is wrong is a
:class:`~facedancer.errors.CheckpointError` on one line, in one format: the file that cannot be read and why,
or the missing, unexpected and mis-shaped tensors by name.

It sits just above ``errors`` so that ``nn``, ``identity`` and ``faces`` can all use it.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from facedancer.errors import CheckpointError

#: the prefix ``nn.DataParallel`` / ``DistributedDataParallel`` put on every key
PARALLEL_PREFIX = "module."
#: how many names a message lists per kind of problem before "and N more"
LISTED = 4

M = TypeVar("M", bound=nn.Module)


def read_state_dict(path: str | Path, what: str | None = None) -> dict[str, Tensor]:
    """The tensors a safetensors or torch file holds, keyed as the network names them.

    A training checkpoint's ``{"state_dict": {...}, ...}`` is unwrapped and a ``module.`` prefix from
    (Distributed)DataParallel dropped, as the released RetinaFace, 3DDFA_V2 and arcface_torch files need.
    ``what`` names the expected content in errors ("RetinaFace state dict"); the default names the format.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    safetensors = path.suffix == ".safetensors" or _is_safetensors(path)
    what = what or ("readable safetensors file" if safetensors else "readable torch weights file")
    try:
        obj = load_file(str(path)) if safetensors else torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a malformed file makes the unpickler raise anything (KeyError, EOFError, ...)
        if isinstance(e, pickle.UnpicklingError) and "Unsupported global" in str(e):  # weights_only refused code
            raise CheckpointError(
                f"{path} is not a {what}: it holds pickled Python objects beyond tensors, which facedancer never "
                "unpickles (save the model's state_dict() instead)"
            ) from None
        raise CheckpointError(f"{path} is truncated or corrupt, or not a {what} ({_one_line(e)})") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):  # a training checkpoint
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        found = ", ".join(map(repr, list(obj)[:5])) if isinstance(obj, dict) else f"a {type(obj).__name__}"
        raise CheckpointError(f"{path} is not a {what}: it does not hold a plain state dict of tensors ({found})")
    return {k.removeprefix(PARALLEL_PREFIX): v for k, v in obj.items()}


def load_strict(
    module: M,
    tensors: Mapping[str, Tensor],
    source: str | Path,
    name: str | None = None,
    hint: Callable[[Mapping[str, Tensor]], str] | None = None,
) -> M:
    """Load ``tensors`` into ``module`` only if every key and shape matches.

    Floating tensors take the module's own dtype either way: a built module copies them into its tensors,
    and one built on the meta device (no random init to throw away) is given them cast to the dtype its meta
    tensors carry, so an fp16 file (bundles write fp16) never turns an fp32 module into fp16. ``hint`` may
    add what the mismatch suggests ("it looks like iResNet-100") to the error.
    """
    own = module.state_dict()
    problem = misfit(own, tensors)
    if problem:
        extra = hint(tensors) if hint else ""
        raise CheckpointError(f"{source} does not fit {name or type(module).__name__}: {problem}{extra}")
    assign = any(v.is_meta for v in own.values())
    if assign:
        tensors = {k: _cast(v, own[k].dtype) for k, v in tensors.items()}
    module.load_state_dict(tensors, strict=True, assign=assign)
    return module


def _cast(tensor: Tensor, dtype: torch.dtype) -> Tensor:
    """A floating tensor in the floating ``dtype`` wanted; anything else (counters, int buffers) as it is."""
    return tensor.to(dtype) if tensor.is_floating_point() and dtype.is_floating_point else tensor


def misfit(own: Mapping[str, Tensor], tensors: Mapping[str, Tensor]) -> str:
    """Every missing, unexpected and mis-shaped tensor of ``tensors`` against ``own``, named; empty if it fits."""
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    shapes = [
        f"{k} {tuple(tensors[k].shape)} != {tuple(v.shape)}"
        for k, v in own.items()
        if k in tensors and tensors[k].shape != v.shape
    ]
    return "; ".join(
        f"{label}: {_brief(items)}"
        for label, items in (("missing tensors", missing), ("unexpected tensors", extra), ("wrong shapes", shapes))
        if items
    )


def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with its JSON header's length (8 bytes, little-endian), then ``{``."""
    try:
        with path.open("rb") as f:
            head = f.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:] == b"{"


def _one_line(error: BaseException) -> str:
    """The gist of an error whose text may run to a paragraph (torch's weights_only advice, miniz's notes)."""
    text = str(error)
    if "WeightsUnpickler error:" in text:  # the advice around it is about trusting the file, not what is wrong
        text = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0]
    text = " ".join(text.split())
    return text.split(". ")[0].strip() or type(error).__name__


def _brief(items: list[str]) -> str:
    more = f" and {len(items) - LISTED} more" if len(items) > LISTED else ""
    return ", ".join(items[:LISTED]) + more
