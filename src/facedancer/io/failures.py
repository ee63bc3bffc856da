"""How a failed read or write becomes the one-line error a user sees."""

from __future__ import annotations

from pathlib import Path

from facedancer.errors import InputError


def reason(error: BaseException) -> str:
    """``error`` as one line: FFmpeg and Pillow messages can span lines or repeat the file name."""
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return " ".join(str(text).split())


def require_file(path: Path, kind: str) -> None:
    """Refuse, by name, what decoders would misreport or hang on: a folder, a pipe or device (reading one blocks
    until someone writes to it), and a zero-byte file (which libraries call an unknown format).

    A missing path is left to the reader, whose "No such file or directory" already says it.
    """
    if path.is_dir():
        raise InputError(f"cannot read {kind} {path}: it is a folder")
    if path.exists() and not path.is_file():
        raise InputError(f"cannot read {kind} {path}: not a regular file (a pipe, socket or device)")
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(f"cannot read {kind} {path}: the file is empty")
