"""A swap request's form: options checked with one-line messages, files saved under fixed names in the
job's folder and opened once, so that a bad upload is answered at once instead of failing in the queue.

No name a client sends becomes a path: uploads are stored as ``source-0``, ``reference-0`` and
``target<suffix>``, where the suffix must be one of the media suffixes facedancer knows (the swap picks
the image or the video path by it). The client's names are kept only to word messages.
"""

from __future__ import annotations

import shutil
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from starlette.datastructures import FormData, UploadFile

from facedancer.errors import ConfigError, InputError
from facedancer.faces import MASK_KINDS, BlendConfig
from facedancer.io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, VideoReader, media_kind, output_suffix, read_image
from facedancer.swap.backends import DTYPES
from facedancer.ui.choices import ModelChoice
from facedancer.ui.swapping import SwapOptions

FACES = ("all", "largest", "index", "reference")
_TRUE, _FALSE = ("1", "true", "on", "yes"), ("0", "false", "off", "no")


@dataclass
class Uploads:
    """A job's files in its folder, and the name the user gave each one."""

    sources: list[Path] = field(default_factory=list)
    references: list[Path] = field(default_factory=list)
    target: Path | None = None
    #: the target's media kind, found once when it is saved (telling an animation takes opening the file)
    kind: Literal["image", "video"] = "image"
    names: dict[Path, str] = field(default_factory=dict)

    def output(self) -> Path:
        """Where the result goes: the suffix the CLI would write (its own, else its kind's fallback)."""
        assert self.target is not None
        return self.target.with_name("result" + output_suffix(self.target, self.kind))


def parse_options(form: FormData, choices: dict[str, ModelChoice], default_model: str) -> SwapOptions:
    """The form's options, or a ConfigError naming the field and what it accepts."""
    model = _text(form, "model") or default_model
    if model not in choices:
        raise ConfigError(f"unknown model {model!r}; this server offers {', '.join(choices)}")
    faces = _one_of(form, "faces", FACES, "all")
    precision = _one_of(form, "precision", ("auto", *DTYPES), "auto")
    mask = _one_of(form, "mask", tuple(MASK_KINDS), BlendConfig.mask)
    index = _number(form, "index", int, 0, low=0)
    threshold = _number(form, "threshold", float, None, low=-1.0, high=1.0)
    max_frames = _number(form, "max_frames", int, None, low=1)
    return SwapOptions(
        model=choices[model],
        faces=faces,  # type: ignore[arg-type]
        index=index,
        blend=BlendConfig(mask=mask, colour=_flag(form, "colour", True), poisson=_flag(form, "poisson", False)),
        precision=precision,  # type: ignore[arg-type]
        max_frames=max_frames,
        **({} if threshold is None else {"threshold": threshold}),
    )


def save_uploads(form: FormData, folder: Path) -> Uploads:
    """Copy the form's files into ``folder`` under fixed names (blocking: run it in a worker thread)."""
    uploads = Uploads()
    for role, paths in (("source", uploads.sources), ("reference", uploads.references)):
        for i, upload in enumerate(_files(form, role)):
            paths.append(_save(upload, folder / f"{role}-{i}", f"{role} {i + 1}", uploads.names))
    targets = _files(form, "target")
    if len(targets) > 1:
        raise ConfigError("one target per request: send several requests for several files")
    if targets:
        name = _display(targets[0].filename, "target")
        suffix = PurePosixPath(name).suffix.lower()
        if suffix not in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
            known = ", ".join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))
            raise InputError(f"cannot swap {name}: unsupported file type {suffix!r} (use {known})")
        uploads.target = _save(targets[0], folder / f"target{suffix}", "target", uploads.names)
        uploads.kind = "video" if media_kind(uploads.target) == "video" else "image"
    return uploads


def check_uploads(uploads: Uploads, options: SwapOptions, max_pixels: int) -> int | None:
    """Open every upload as the swap will (the same readers, caps and messages); the frames to expect."""
    if not uploads.sources:
        raise ConfigError("missing source: upload an image of the face to put in")
    if uploads.target is None:
        raise ConfigError("missing target: upload the image or video whose faces are swapped")
    if options.faces == "reference":
        if len(uploads.references) != len(uploads.sources):
            raise ConfigError(
                f"faces=reference needs one reference image per source "
                f"({len(uploads.sources)} sources, {len(uploads.references)} references)"
            )
    elif uploads.references:
        raise ConfigError("reference images are only used with faces=reference")
    elif len(uploads.sources) > 1:
        raise ConfigError(
            "several sources need faces=reference and a reference image each, to say which face each replaces"
        )
    for path in uploads.sources + uploads.references:
        read_image(path, max_pixels=max_pixels)
    if uploads.kind == "image":
        read_image(uploads.target, max_pixels=max_pixels)
        return 1
    with VideoReader(uploads.target, max_frames=options.max_frames, max_pixels=max_pixels) as reader:
        frames = reader.info.frames
    if options.max_frames is not None:
        frames = min(frames or options.max_frames, options.max_frames)
    return frames


def _files(form: FormData, key: str) -> list[UploadFile]:
    items = form.getlist(key)
    if any(not isinstance(item, UploadFile) for item in items):
        raise ConfigError(f"{key} must be a file upload")
    # a browser sends an empty, unnamed part for a file field left empty
    return [item for item in items if item.filename or item.size]  # type: ignore[misc]


def _save(upload: UploadFile, path: Path, fallback: str, names: dict[Path, str]) -> Path:
    with path.open("wb") as f:
        upload.file.seek(0)
        shutil.copyfileobj(upload.file, f, 1 << 20)
    names[path] = _display(upload.filename, fallback)
    return path


def _display(filename: str | None, fallback: str) -> str:
    """A client's file name fit to quote in a message: its last part, printable, at most 100 characters."""
    name = PurePosixPath((filename or "").replace("\\", "/")).name
    name = "".join(c for c in name if unicodedata.category(c)[0] not in "CZ" or c == " ").strip()
    return name[:100] or fallback


def _text(form: FormData, key: str) -> str | None:
    value = form.get(key)
    if isinstance(value, UploadFile):
        raise ConfigError(f"{key} must be a text field, not a file")
    return value.strip() if value and value.strip() else None


def _one_of(form: FormData, key: str, allowed: tuple[str, ...], default: str) -> str:
    value = _text(form, key) or default
    if value not in allowed:
        raise ConfigError(f"{key} {value!r}: expected one of {', '.join(allowed)}")
    return value


def _flag(form: FormData, key: str, default: bool) -> bool:
    value = (_text(form, key) or "").lower()
    if not value:
        return default
    if value not in _TRUE + _FALSE:
        raise ConfigError(f"{key} {value!r}: expected true or false")
    return value in _TRUE


def _number(form: FormData, key: str, kind: type, default, *, low=None, high=None):
    value = _text(form, key)
    if value is None:
        return default
    try:
        number = kind(value)
    except ValueError:
        raise ConfigError(f"{key} {value!r}: expected {'a whole number' if kind is int else 'a number'}") from None
    if (low is not None and not number >= low) or (high is not None and not number <= high):  # NaN fails too
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise ConfigError(f"{key} {value!r}: expected {bounds}")
    return number
