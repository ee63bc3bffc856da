"""How a failed read or write becomes the one-line error a user sees."""

from __future__ import annotations

from pathlib import Path

from facedancer.errors import InputError


def reason(error: BaseException) -> str:
    """``error`` as one line: FFmpeg and Pillow messages can span lines or repeat the file name."""
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return " ".join(str(text).split())


def require_nonempty(path: Path, kind: str) -> None:
    """Say "empty file" for a zero-byte input, which libraries report as an unknown format."""
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(f"cannot read {kind} {path}: the file is empty")
