"""Write files so that a reader never sees half of one: write beside the target, then rename.

``durable=True`` also survives a power loss: the new contents are flushed to the disk (fsync) before
the rename, and the folder after it, so the name never points at data the disk does not hold yet.
It costs a disk round trip per file, so it is for the few files a run depends on (checkpoints, the
dataset's completion record), not for every crop or frame.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
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
    created = make_parents(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=suffix or target.suffix, dir=target.parent)
    except BaseException:
        _remove_empty(created)
        raise
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
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        _remove_empty(created)  # a failed write leaves no trace, not even the folders made for it
        raise


def make_parents(target: Path) -> list[Path]:
    """Create ``target``'s missing parent folders; returns those created, outermost first.

    A parent that exists but is a file is named in the error (``mkdir`` would only say "File exists").
    """
    missing = []
    for folder in (target.parent, *target.parent.parents):
        if folder.is_dir():
            break
        if os.path.lexists(folder):
            if folder.is_dir():  # made since the line above by another process (parallel workers, one tree)
                break
            kind = "a file, not a folder" if folder.is_file() else "not a folder"
            raise NotADirectoryError(errno.ENOTDIR, f"{folder} is {kind}", str(folder))
        missing.append(folder)
    created = []
    try:
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except FileExistsError:  # made meanwhile by another process (parallel workers writing one tree)
                if not folder.is_dir():
                    raise
                continue
            created.append(folder)
    except BaseException:
        _remove_empty(created)
        raise
    return created


def _remove_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()


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


def overwritten_input(
    outputs: Iterable[str | os.PathLike[str]], inputs: Iterable[str | os.PathLike[str]]
) -> tuple[Path, Path] | None:
    """(output, input) for the first output whose writing would replace an input file, or None.

    Compares the files the paths reach, so ``./x``, ``a/../x``, a symlink in either direction and a hard link
    all count as the same file; an output that does not exist yet replaces nothing.
    """
    files: dict[tuple[int, int], Path] = {}
    for path in inputs:
        if (reached := _file_id(path)) is not None:
            files.setdefault(reached, Path(path))
    for path in outputs:
        if (reached := _file_id(path)) in files:
            return Path(path), files[reached]
    return None


def _file_id(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None
