"""Write files so that a reader never sees half of one: write beside the target, then rename.

``durable=True`` also survives a power loss: the new contents are flushed to the disk (fsync) before
the rename, and the folder after it, so the name never points at data the disk does not hold yet.
It costs a disk round trip per file, so it is for the few files a run depends on (checkpoints, the
dataset's completion record), not for every crop or frame.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _create_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_CREATE_MODE = _create_mode()


def fsync(path: Path) -> None:
    """Flush ``path`` (a file, or a folder's entries) to the disk."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if path.is_dir() else 0)
    try:
        fd = os.open(path, flags)
    except PermissionError:  # folders cannot be opened on Windows; their entries are durable there anyway
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str | None = None, *, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path in ``target``'s folder; on success rename it onto ``target``.

    The temporary name keeps the target's extension (``suffix`` overrides it) so that writers which
    pick a format from the name (OpenCV, PyAV) behave. On any exception the temporary file is removed
    and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=suffix or target.suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file private (0600); give it the mode a plain open() would have
        os.chmod(tmp_path, _CREATE_MODE)
        if durable:
            fsync(tmp_path)
        os.replace(tmp_path, target)
        if durable:
            fsync(target.parent)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str], *, durable: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder beside ``target``; on success it replaces ``target`` whole.

    For outputs made of several files (a checkpoint, a model directory) that a reader must see complete
    or not at all. On any exception the staging folder is removed and ``target`` is left as it was.
    """
    target = Path(target)
    staging = target.parent / f".{target.name}.tmp"
    shutil.rmtree(staging, ignore_errors=True)  # left by a killed run
    staging.mkdir(parents=True)
    try:
        yield staging
        if durable:
            for folder, _, files in os.walk(staging, topdown=False):
                for name in files:
                    fsync(Path(folder) / name)
                fsync(Path(folder))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
        if durable:
            fsync(target.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
