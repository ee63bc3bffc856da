"""Which file suffixes facedancer reads and writes as images or as videos.

The swap pipeline picks the image or the video path from the target's suffix, so this is the one
place that decides. ``.gif`` reads as a video (it is usually animated); ``.webp`` reads as an image
and, when a video is written to it, becomes an animated WebP.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".avif"})
IMAGE_OUTPUT_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".gif"})
VIDEO_OUTPUT_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".webm", ".gif", ".webp"})


def media_kind(path: str | os.PathLike[str]) -> Literal["image", "video"] | None:
    """``"image"`` or ``"video"`` for a supported input suffix (any case), else ``None``."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None
