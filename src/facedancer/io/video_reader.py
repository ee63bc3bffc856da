"""Decode videos and animated images as upright RGB frames, one at a time, with their timestamps.

PyAV decodes videos (MP4, MOV, MKV, WebM, GIF, ...); Pillow decodes animated WebP and PNG, whose frame
durations become the timestamps. A :class:`~facedancer.io.video.VideoWriter` made ``like`` a reader takes
each frame's timestamp, the rotation, the colour tags and the audio from it.

Truncated or damaged input is an :class:`InputError` by default, raised as soon as decoding fails
(or, for containers without an index, when the stream ends well before its stated duration).
``allow_truncated=True`` keeps the frames that decoded, with a warning.
"""

from __future__ import annotations

import os
import re
import warnings
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from facedancer.errors import InputError
from facedancer.io.failures import reason, require_file
from facedancer.io.formats import ANIMATION_FORMATS, STILL_IMAGE_DEMUXERS, is_animation
from facedancer.io.image import DEFAULT_MAX_PIXELS, to_rgb

_MS = Fraction(1, 1000)  # the time base of animated WebP and PNG frame durations


@dataclass(frozen=True)
class VideoInfo:
    """What a video is, read from its header and first frame.

    ``width``/``height`` are of the frames as yielded (upright). ``rotation`` is the stored display
    rotation in degrees counter-clockwise (0, 90, 180 or 270). ``frames`` is the expected count
    (stream duration x fps, which honours MP4 edit lists, or the container index), ``None`` when
    the file does not say.
    """

    path: Path
    width: int
    height: int
    fps: Fraction
    frames: int | None
    duration: float | None
    rotation: int
    has_audio: bool
    codec: str


class VideoReader:
    """Decode a video one frame at a time as upright RGB uint8 (H, W, 3) arrays; iterate once.

    Opening decodes the first frame, so a file that cannot produce one fails here, before any work.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_frames: int | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        allow_truncated: bool = False,
    ) -> None:
        self.path = Path(path)
        self._max_frames = max_frames
        self._allow_truncated = allow_truncated
        self._timestamps: deque[int] = deque()
        self._iterated = False
        require_file(self.path, "video")
        self._animation: Image.Image | None = None
        if is_animation(self.path):
            self._container = self._animation = Image.open(self.path, formats=ANIMATION_FORMATS)
            probe = self._probe_animation
        else:
            try:
                self._container = av.open(str(self.path))
            except (av.FFmpegError, OSError) as e:
                raise InputError(f"cannot read video {self.path}: {reason(e)}") from None
            probe = self._probe
        try:
            self.info = probe(max_pixels)
        except BaseException:
            self._container.close()
            raise

    def _probe_animation(self, max_pixels: int) -> VideoInfo:
        """An animated WebP or PNG, decoded by Pillow frame by frame; its timestamps are the frame durations."""
        image = self._animation
        width, height = image.size
        if width * height > max_pixels:
            raise InputError(
                f"cannot read video {self.path}: {width}x{height} frames are above the {max_pixels / 1e6:g} MP limit"
            )
        self._turns, self.color_tags, self.time_base = 0, {}, _MS
        first = self._load(0)
        if first is None:
            raise InputError(f"cannot read video {self.path}: no frame could be decoded")
        self.fps = Fraction(1000, first) if first > 0 else Fraction(10)
        return VideoInfo(self.path, width, height, self.fps, image.n_frames, None, 0, False, image.format.lower())

    def _load(self, index: int) -> int | None:
        """Decode frame ``index`` of an animation; its duration in ms, or None when it cannot be decoded."""
        try:
            self._animation.seek(index)
            self._animation.load()
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            self._truncated(f"decoding failed at frame {index} ({reason(e)})")
            return None
        return int(self._animation.info.get("duration") or 0)

    def _probe(self, max_pixels: int) -> VideoInfo:
        if not self._container.streams.video:
            raise InputError(f"cannot read video {self.path}: it has no video stream")
        if STILL_IMAGE_DEMUXERS.fullmatch(self._container.format.name):
            raise InputError(f"cannot read video {self.path}: it holds a still image, not a video")
        stream = self._stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        width, height = stream.codec_context.width, stream.codec_context.height
        if width * height > max_pixels:
            raise InputError(
                f"cannot read video {self.path}: {width}x{height} frames are above the {max_pixels / 1e6:g} MP limit"
            )
        fps = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not fps:
            raise InputError(f"cannot read video {self.path}: it states no frame rate")
        self.fps = Fraction(fps)
        self.time_base = stream.time_base or 1 / self.fps
        seconds = _stream_seconds(stream)
        self._expected = round(seconds * self.fps) if seconds else (stream.frames or None)
        if not seconds and (self._container.duration or 0) > 0:
            seconds = self._container.duration / av.time_base
        self._frames = self._decode()
        first = next(self._frames, None)
        if first is None:
            raise InputError(f"cannot read video {self.path}: no frame could be decoded")
        self._first: av.VideoFrame | None = first
        self._turns = round(first.rotation / 90) % 4  # np.rot90 turns, counter-clockwise
        self.color_tags = {k: getattr(first, k) for k in ("colorspace", "color_range", "color_primaries", "color_trc")}
        if self._turns % 2:
            width, height = height, width
        return VideoInfo(
            path=self.path,
            width=width,
            height=height,
            fps=self.fps,
            frames=self._expected or (round(seconds * self.fps) if seconds else None),
            duration=seconds,
            rotation=90 * self._turns,
            has_audio=bool(self._container.streams.audio),
            codec=stream.codec_context.codec.name,
        )

    def _decode(self) -> Iterator[av.VideoFrame]:
        count = 0
        try:
            for packet in self._container.demux(self._stream):
                for frame in packet.decode():
                    count += 1
                    yield frame
        except av.FFmpegError as e:
            self._truncated(f"decoding failed after {count} frames ({reason(e)})")
            return
        if self._expected and count + max(2, self._expected // 100) < self._expected:
            self._truncated(f"the video stream ends after {count} of {self._expected} frames")

    def _truncated(self, why: str) -> None:
        message = f"video {self.path} is truncated or corrupt: {why}"
        if not self._allow_truncated:
            raise InputError(message)
        warnings.warn(f"{message}; keeping the frames decoded so far", stacklevel=2)

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._iterated:
            raise RuntimeError("a VideoReader can be iterated only once")
        self._iterated = True
        for index, (pts, rgb) in enumerate(self._animation_frames() if self._animation else self._video_frames()):
            if self._max_frames is not None and index >= self._max_frames:
                return
            self._timestamps.append(pts)
            yield rgb

    def _video_frames(self) -> Iterator[tuple[int, np.ndarray]]:
        step = max(1, round(1 / (self.fps * self.time_base)))
        last = None
        for frame in self._pending_then_decoded():
            last = frame.pts if frame.pts is not None else (0 if last is None else last + step)
            rgb = frame.to_ndarray(format="rgb24")
            yield last, np.ascontiguousarray(np.rot90(rgb, self._turns)) if self._turns else rgb

    def _animation_frames(self) -> Iterator[tuple[int, np.ndarray]]:
        pts = 0
        for index in range(self.info.frames):
            duration = self._load(index)
            if duration is None:  # truncated, and allowed to be
                return
            yield pts, to_rgb(self._animation)
            pts += duration

    def _pending_then_decoded(self) -> Iterator[av.VideoFrame]:
        first, self._first = self._first, None
        if first is not None:
            yield first
        yield from self._frames

    def batches(self, size: int) -> Iterator[np.ndarray]:
        """Frames stacked in order as (B, H, W, 3), ``B == size`` except perhaps the last batch."""
        if size < 1:
            raise ValueError(f"batch size must be at least 1, got {size}")
        batch: list[np.ndarray] = []
        for frame in self:
            batch.append(frame)
            if len(batch) == size:
                yield np.stack(batch)
                batch = []
        if batch:
            yield np.stack(batch)

    def pop_timestamp(self) -> int | None:
        """The timestamp (in ``time_base`` units) of the oldest frame yielded and not yet written. Safe to call
        from another thread than the one iterating (a deque's appends and pops are atomic)."""
        return self._timestamps.popleft() if self._timestamps else None

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stream_seconds(stream: av.video.stream.VideoStream) -> float | None:
    """The video stream's own duration: MP4/MOV header (edit lists applied), or Matroska's DURATION tag."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = next((v for k, v in stream.metadata.items() if k.upper() == "DURATION"), "")
    if m := re.fullmatch(r"(\d+):(\d+):(\d+(?:\.\d+)?)", tag):
        return int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
    return None
