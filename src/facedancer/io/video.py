"""Stream videos in and out with PyAV: upright RGB frames, constant memory, atomic labelled outputs.

A swap loop reads batches from a :class:`~facedancer.io.video_reader.VideoReader` and writes them, in order,
to a :class:`VideoWriter` made ``like`` the reader::

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
from collections.abc import Callable
from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from facedancer.atomic import atomic_path
from facedancer.errors import OutputError
from facedancer.io.audio import AudioTrack
from facedancer.io.failures import reason
from facedancer.io.formats import VIDEO_OUTPUT_SUFFIXES
from facedancer.io.provenance import ProvenanceLabel, add_gif_comment, add_webp_xmp
from facedancer.io.video_reader import VideoReader

DEFAULT_CRF = 18  # libx264 constant rate factor: visually near-lossless, the usual "high quality" setting
# encoder preference per output suffix: the first one this PyAV build has wins
ENCODERS = {".webm": ("libvpx-vp9", "libvpx"), ".gif": ("gif",), ".webp": ("libwebp_anim",)}
H264_ENCODERS = ("libx264", "mpeg4")
_ANIMATIONS = (".gif", ".webp")  # no audio, no display matrix, no container tags


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
