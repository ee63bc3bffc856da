"""Stream videos in and out with PyAV: upright RGB frames, constant memory, atomic labelled outputs.

A swap loop reads batches from a :class:`VideoReader` and writes them, in order, to a
:class:`VideoWriter` made ``like`` the reader::

    with VideoReader(src) as reader, VideoWriter(dst, label, like=reader) as writer:
        for batch in reader.batches(8):         # (B, H, W, 3) uint8, upright
            writer.write(model(batch))

The writer then keeps everything of the source that is not the pixels: each frame's timestamp (so
variable frame rates and audio sync survive), the frame size, the rotation (frames are turned back
to the stored orientation and the display matrix is written again), the colour tags, and the audio
(copied, or re-encoded where the container needs it). Only the frames in flight are held in memory.

Truncated or damaged input is an :class:`InputError` by default, raised as soon as decoding fails
(or, for containers without an index, when the stream ends well before its stated duration); since
the writer is atomic, nothing is left behind. ``allow_truncated=True`` keeps the frames that
decoded, with a warning, for users who would rather have most of a damaged clip.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from facedancer.atomic import atomic_path
from facedancer.errors import InputError, OutputError
from facedancer.io.audio import AudioTrack
from facedancer.io.failures import reason, require_file
from facedancer.io.formats import ANIMATION_FORMATS, STILL_IMAGE_DEMUXERS, VIDEO_OUTPUT_SUFFIXES, is_animation
from facedancer.io.image import DEFAULT_MAX_PIXELS, to_rgb
from facedancer.io.provenance import ProvenanceLabel, add_gif_comment, add_webp_xmp

DEFAULT_CRF = 18  # libx264 constant rate factor: visually near-lossless, the usual "high quality" setting
# encoder preference per output suffix: the first one this PyAV build has wins
ENCODERS = {".webm": ("libvpx-vp9", "libvpx"), ".gif": ("gif",), ".webp": ("libwebp_anim",)}
H264_ENCODERS = ("libx264", "mpeg4")
_ANIMATIONS = (".gif", ".webp")  # no audio, no display matrix, no container tags
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
        """The timestamp (in ``time_base`` units) of the oldest frame yielded and not yet written."""
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


@functools.cache
def has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except av.codec.codec.UnknownCodecError:
        return False
    return True


def pick_encoder(suffix: str) -> str:
    """The encoder used for an output suffix: H.264 (libx264, else MPEG-4 part 2), VP9 for WebM."""
    candidates = ENCODERS.get(suffix.lower(), H264_ENCODERS)
    name = next((c for c in candidates if has_encoder(c)), None)
    if name is None:
        raise OutputError(f"this PyAV build has none of the encoders {', '.join(candidates)} for {suffix} output")
    return name


class VideoWriter:
    """Encode RGB frames to MP4/MOV/MKV (H.264), WebM (VP9), GIF or animated WebP, atomically.

    ``like`` (a :class:`VideoReader`) supplies timestamps, fps, rotation, colour tags and audio;
    without it give ``fps`` and frames are evenly spaced. The output appears at ``path`` only when
    the ``with`` block ends without an exception. ``label=None`` is the only way to write an
    unlabelled video; ``audio=False`` drops the source's audio.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        label: ProvenanceLabel | None,
        *,
        like: VideoReader | None = None,
        fps: Fraction | float | None = None,
        audio: bool = True,
        crf: int = DEFAULT_CRF,
        preset: str = "medium",
    ) -> None:
        self.path = Path(path)
        self.suffix = self.path.suffix.lower()
        if self.suffix not in VIDEO_OUTPUT_SUFFIXES:
            raise OutputError(
                f"cannot write {self.path}: unsupported video format {self.path.suffix!r} "
                f"(use {', '.join(sorted(VIDEO_OUTPUT_SUFFIXES))})"
            )
        if like is None and fps is None:
            raise ValueError("VideoWriter needs like= (a VideoReader) or fps=")
        self.label = label
        self._like = like
        self.fps = like.fps if fps is None else Fraction(fps).limit_denominator(1001)
        self._time_base = like.time_base if fps is None else 1 / self.fps
        self._step = max(1, round(1 / (self.fps * self._time_base)))
        animation = self.suffix in _ANIMATIONS
        self._turns = 0 if like is None or animation else like.info.rotation // 90
        self._color = {} if like is None or animation else like.color_tags
        self._copy_audio = audio and not animation and like is not None and like.info.has_audio
        self._encoder = pick_encoder(self.suffix)
        self._crf, self._preset = crf, preset
        self._container: av.container.OutputContainer | None = None
        self._audio: AudioTrack | None = None
        self._last_pts: int | None = None
        self.frames_written = 0

    def __enter__(self) -> VideoWriter:
        self._stack = ExitStack()
        try:
            self._tmp = self._stack.enter_context(atomic_path(self.path))
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: {reason(e)}") from None
        # FFmpeg's GIF muxer writes no comment: encode beside the temporary file, then copy with one
        self._encoded = self._tmp.with_name(self._tmp.stem + ".raw.gif") if self.suffix == ".gif" else self._tmp
        return self

    def write(self, frames: np.ndarray) -> None:
        """Append one frame (H, W, 3) or a batch (B, H, W, 3) of RGB uint8, upright like the reader's."""
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
            raise ValueError(f"expected RGB uint8 frames (B, H, W, 3), got {frames.dtype} {frames.shape}")
        try:
            for rgb in frames:
                self._write_one(rgb)
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: {reason(e)}") from None

    def _write_one(self, rgb: np.ndarray) -> None:
        if self._container is None:
            self._open(*rgb.shape[:2])
        if rgb.shape[:2] != self._size:
            raise ValueError(f"frame size {rgb.shape[:2]} differs from the first frame's {self._size}")
        frame = self._frame(np.rot90(rgb, -self._turns) if self._turns else rgb)
        frame.pts = self._next_pts()
        self._container.mux(self._stream.encode(frame))
        self.frames_written += 1
        if self._audio:
            self._audio.write_until(float((frame.pts + self._step) * self._time_base))

    def _open(self, height: int, width: int) -> None:
        self._size = (height, width)
        if self._turns % 2:
            width, height = height, width
        options = {"movflags": "+faststart+use_metadata_tags"} if self.suffix in (".mp4", ".mov") else {}
        if self.suffix in _ANIMATIONS:
            options["loop"] = "0"  # loop forever, as GIFs do by default
        self._container = container = av.open(str(self._encoded), "w", options=options)
        stream = self._stream = container.add_stream(self._encoder, rate=self.fps, options=self._codec_options())
        stream.width, stream.height = width, height
        stream.pix_fmt = _pixel_format(self._encoder, width, height)
        stream.time_base = stream.codec_context.time_base = self._time_base
        if self._encoder == "mpeg4":  # the fallback has no CRF; PyAV's default 200 kb/s is far too low
            stream.bit_rate = int(0.2 * width * height * self.fps)
        for key, value in self._color.items():
            setattr(stream.codec_context, key, value)
        if self._turns:
            stream.set_display_rotation(90 * self._turns)
        if self.label is not None and self.suffix not in _ANIMATIONS:
            container.metadata.update(self.label.tags())
        if self._copy_audio:
            self._audio = AudioTrack(self._like.path, container)

    def _codec_options(self) -> dict[str, str]:
        if self._encoder == "libx264":
            return {"crf": str(self._crf), "preset": self._preset}
        if self._encoder.startswith("libvpx"):
            return {"crf": "30", "b": "0", "row-mt": "1", "deadline": "good", "cpu-used": "4"}
        if self._encoder == "libwebp_anim":
            return {"quality": "90"}
        return {}

    def _frame(self, rgb: np.ndarray) -> av.VideoFrame:
        if self._encoder == "gif":
            return _palette_frame(rgb)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for key, value in self._color.items():  # the RGB -> YUV matrix PyAV uses follows these tags
            setattr(frame, key, value)
        return frame

    def _next_pts(self) -> int:
        pts = self._like.pop_timestamp() if self._like is not None else None
        if pts is None:
            pts = 0 if self._last_pts is None else self._last_pts + self._step
        if self._last_pts is not None and pts <= self._last_pts:  # encoders need strictly rising timestamps
            pts = self._last_pts + 1
        self._last_pts = pts
        return pts

    def _finish(self) -> None:
        if self._container is None:
            raise OutputError(f"cannot write {self.path}: no frames were written")
        self._container.mux(self._stream.encode(None))
        if self._audio:
            self._audio.write_until(float((self._last_pts + self._step) * self._time_base))
            self._audio.close()
        self._container.close()
        if self.suffix == ".gif":
            if self.label is not None:
                add_gif_comment(self._encoded, self._tmp, self.label.text)
                self._encoded.unlink()
            else:
                os.replace(self._encoded, self._tmp)
        elif self.suffix == ".webp" and self.label is not None:
            add_webp_xmp(self._tmp, self.label.xmp())

    def _discard(self) -> None:
        for close in (self._audio and self._audio.close, self._container and self._container.close):
            if close:
                with contextlib.suppress(av.FFmpegError, OSError):  # already failing; temporary files go next
                    close()
        if self._encoded != self._tmp:
            self._encoded.unlink(missing_ok=True)

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            try:
                try:
                    self._finish()
                except OSError as e:
                    raise OutputError(f"cannot write {self.path}: {reason(e)}") from None
            except BaseException as e:
                self._discard()
                self._stack.__exit__(type(e), e, e.__traceback__)  # removes the temporary file
                raise
            self._stack.__exit__(None, None, None)  # renames onto path
            return False
        self._discard()
        self._stack.__exit__(exc_type, exc, tb)
        return False


def _pixel_format(encoder: str, width: int, height: int) -> str:
    if encoder == "gif":
        return "pal8"
    if encoder in ("libx264", "libvpx-vp9") and (width % 2 or height % 2):
        return "yuv444p"  # 4:2:0 needs even sizes; 4:4:4 keeps odd-sized inputs exactly
    return "yuv420p"


def _palette_frame(rgb: np.ndarray) -> av.VideoFrame:
    """A GIF frame with its own 256-colour palette (median cut, dithered) instead of a fixed 3-3-2 one."""
    image = Image.fromarray(rgb).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG)
    colors = np.asarray(image.getpalette(), dtype=np.uint8).reshape(-1, 3)[:256]
    palette = np.zeros((256, 4), dtype=np.uint8)
    palette[:, 0] = 255  # PyAV wants ARGB
    palette[: len(colors), 1:] = colors
    return av.VideoFrame.from_ndarray((np.asarray(image), palette), format="pal8")


def transcode(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    label: ProvenanceLabel | None,
    fn: Callable[[np.ndarray], np.ndarray] | None = None,
    *,
    batch_size: int = 1,
    max_frames: int | None = None,
    preset: str = "medium",
) -> int:
    """Read ``src``, pass batches of frames through ``fn`` (identity if ``None``), write ``dst``.

    Returns the number of frames written.
    """
    with (
        VideoReader(src, max_frames=max_frames) as reader,
        VideoWriter(dst, label, like=reader, preset=preset) as writer,
    ):
        for batch in reader.batches(batch_size):
            writer.write(batch if fn is None else fn(batch))
        return writer.frames_written
