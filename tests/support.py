"""Helpers several test packages share (importable as ``support``: pytest puts ``tests/`` on the path)."""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` over a few bytes of pixel data (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def one_line(err: str) -> str:
    """The one line a user sees for a mistake: exactly one non-empty line on stderr, and no traceback."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (links not followed): files by content, links by target, folders by mode."""
    entries = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                entries[key] = "link -> " + os.readlink(path)
            elif path.is_dir():
                entries[key] = f"folder {oct(path.stat().st_mode)}"
            elif path.is_file():
                entries[key] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                entries[key] = "special"
    return entries


#: a small 256 px generator with AFFA at 32-128 px and concat at 256 px: every kind of decoder stage, fast on a CPU
SMALL_AFFA_GENERATOR = {
    "identity_dim": 128,
    "base_channels": 8,
    "max_channels": 32,
    "mapping_width": 32,
    "fusion": {32: "affa", 64: "affa", 128: "affa", 256: "concat"},
}


@dataclass(frozen=True)
class HostileCase:
    """A hostile input: the command line it builds in a workspace, the exit code and what the one line says."""

    name: str
    args: Callable[[Any], list]
    code: int = 2
    says: str = ""

    def check(self, ws: Any, run: Callable) -> None:
        """Run it: that exit code, one line saying it, nothing under ``ws.root`` created, changed or removed."""
        args = self.args(ws)
        before = snapshot(ws.root)
        code, _, err = run(*args)
        assert code == self.code, err
        line = one_line(err)
        assert self.says in line, line
        assert snapshot(ws.root) == before, "files were created, changed or removed"
