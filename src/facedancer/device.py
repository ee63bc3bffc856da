"""Which torch device: one a user named, checked before any work, and the one each process of a run uses.

Two questions, so two functions: :func:`resolve_device` takes a device as written (``--device cuda:1``)
and says in one line why it cannot be used; :func:`rank_device` also understands ``auto`` and gives each
process of a data-parallel run its own GPU (its local rank), which is what training needs.
"""

from __future__ import annotations

import torch

from facedancer.errors import ConfigError


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` checked before any work: a typo or a missing GPU is one line, not a torch traceback later."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"--device {device!r}: not a device; use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: no CUDA GPU is available to this torch build")
        if (dev.index or 0) >= torch.cuda.device_count():
            raise ConfigError(f"--device {device}: there are {torch.cuda.device_count()} CUDA GPUs (cuda:0 ...)")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"--device {device}: Metal is not available on this machine")
    elif dev.type != "cpu":
        raise ConfigError(f"--device {device}: not supported; use cpu, cuda, cuda:N or mps")
    return dev


def rank_device(name: str, local_rank: int = 0, setting: str = "train.device") -> torch.device:
    """The device of the process with ``local_rank`` on its node: ``auto`` is its GPU when there is one, else
    the CPU; ``cuda`` without an index is its GPU too. ``setting`` names the option in errors."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"{setting}={name!r} is not a device (auto, cpu, cuda, cuda:N)") from None
    if device.type not in ("cpu", "cuda") or (device.type == "cuda" and not torch.cuda.is_available()):
        raise ConfigError(f"{setting}={name!r} is not available here (auto picks what is)")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device
