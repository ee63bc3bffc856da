"""Fixtures for the web page and HTTP API: the app under Starlette's test client, and a real server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facedancer.io import write_image
from support import png_with_size

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def pair(lfw: Path) -> tuple[Path, Path]:
    """(source, target): two different people from LFW."""
    return lfw / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg", lfw / "Adrien_Brody" / "Adrien_Brody_0001.jpg"


@pytest.fixture(scope="session")
def clip(shared: Path) -> Path:
    """A talking-head MP4 (one face per frame); tests cap its frames."""
    return shared / "data" / "videos" / "video_retalking" / "5.mp4"


@pytest.fixture(scope="session")
def bad_uploads(tmp_path_factory: pytest.TempPathFactory, clip: Path) -> dict[str, Path]:
    """Files a server must refuse with one line each: empty, not an image, a bomb header, a truncated video."""
    root = tmp_path_factory.mktemp("bad")
    empty, text, bomb, cut = root / "empty.jpg", root / "notes.jpg", root / "bomb.png", root / "cut.mp4"
    empty.write_bytes(b"")
    text.write_text("these are not pixels")
    bomb.write_bytes(png_with_size(50_000, 50_000))
    data = clip.read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    return {"empty": empty, "not-an-image": text, "huge-header": bomb, "truncated-video": cut}


#: what each bad upload's one-line message says (the swap library's own words)
BAD_UPLOAD_MESSAGES = {
    "empty": "cannot read image empty.jpg: the file is empty",
    "not-an-image": "cannot read image notes.jpg: not an image in a supported format",
    "huge-header": "cannot read image bomb.png: refused as a possible decompression bomb",
    "truncated-video": "cannot read video cut.mp4:",
}


@pytest.fixture(scope="session")
def faceless(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("faceless") / "wall.png"
    write_image(path, np.full((200, 200, 3), 90, np.uint8), None)
    return path


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``facedancer ui --port 0`` as users start it, in a subprocess: its URL. Uploads are capped at 2 MiB."""
    home = tmp_path_factory.mktemp("server-home")
    process = subprocess.Popen(
        [sys.executable, "-m", "facedancer", "ui", "--port", "0", "--max-upload-mb", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src"), "FACEDANCER_HOME": str(home), "TMPDIR": str(home)},
    )
    line = process.stdout.readline() if process.stdout else ""
    if "http://" not in line:
        process.kill()
        pytest.fail(f"facedancer ui did not start: {line}{process.communicate()[1]}")
    yield line.split()[2]
    process.send_signal(signal.SIGINT)
    try:
        assert process.wait(timeout=20) == 130, process.communicate()[1]  # Ctrl+C: "interrupted", as any command
    finally:
        process.kill()
    # the server removed every job folder when it stopped
    assert not any(home.glob("facedancer-ui-*")), list(home.rglob("*"))
