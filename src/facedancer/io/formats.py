"""Which file suffixes facedancer reads and writes as images or as videos.

The swap pipeline picks the image or the video path from the target, so this is the one place that
decides. ``.gif`` reads as a video (it is usually animated); ``.webp`` and ``.png`` read as images unless
the file holds an animation (animated WebP, APNG), which reads as a video so that no frame is dropped.
When a video is written to ``.webp`` it becomes an animated WebP.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from PIL import Image, PngImagePlugin, UnidentifiedImageError, WebPImagePlugin

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".avif"})
IMAGE_OUTPUT_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".gif"})
VIDEO_OUTPUT_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".webm", ".gif", ".webp"})
#: image formats that may hold an animation, read frame by frame with Pillow (FFmpeg cannot decode animated WebP)
ANIMATION_FORMATS = ("WEBP", "PNG")
_PLUGINS = (PngImagePlugin, WebPImagePlugin)  # Image.open(formats=...) only sees plugins already imported
#: FFmpeg's demuxers of single pictures: FFmpeg "opens" any file named like an image as a one-frame stream
STILL_IMAGE_DEMUXERS = re.compile(r"image2|.*_pipe")
#: what a folder swap writes for an input whose own suffix cannot be written (BMP, TIFF, AVI, ...)
FALLBACK_OUTPUT_SUFFIX = {"image": ".png", "video": ".mp4", "animation": ".webp"}


def is_animation(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an animated WebP or PNG (more than one frame). Reads the header only."""
    path = Path(path)
    if not path.is_file():  # never open a pipe: it would block
        return False
    try:
        with Image.open(path, formats=ANIMATION_FORMATS) as image:
            return getattr(image, "n_frames", 1) > 1
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return False  # not an animation; reading it as an image gives the real error


def media_kind(path: str | os.PathLike[str]) -> Literal["image", "video"] | None:
    """``"image"`` or ``"video"`` for a supported input suffix (any case), else ``None``.

    An animated WebP or PNG is a ``"video"``.
    """
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "video" if suffix in (".webp", ".png") and is_animation(path) else "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def output_suffix(path: str | os.PathLike[str], kind: Literal["image", "video"] | None = None) -> str:
    """The suffix a swap of ``path`` is written under, so that the CLI's folders and the web UI agree: its
    own when facedancer writes its kind there (``kind``: its :func:`media_kind`, when already known), else
    its kind's fallback (``photo.bmp`` -> ``.png``, ``clip.avi`` -> ``.mp4``, an animated PNG -> ``.webp``).
    A file of no known kind keeps its suffix."""
    suffix = Path(path).suffix
    kind = kind or media_kind(path)
    if kind is None:
        return suffix
    if suffix.lower() in (IMAGE_OUTPUT_SUFFIXES if kind == "image" else VIDEO_OUTPUT_SUFFIXES):
        return suffix
    animation = kind == "video" and suffix.lower() in IMAGE_SUFFIXES
    return FALLBACK_OUTPUT_SUFFIX["animation" if animation else kind]
