"""Carry a source video's audio into an output, interleaved with the video as it is written.

Packets are copied unchanged when the output container accepts the codec (FFmpeg's own table,
``avformat_query_codec``); otherwise (AAC or MP3 into WebM, say) they are decoded and re-encoded to
the container's default audio codec (Opus for WebM, AAC for MP4/MOV). Only packets up to the time the
caller asks for are read, so memory stays constant however long the audio is.
"""

from __future__ import annotations

from pathlib import Path

import av
from av.container import OutputContainer


class AudioTrack:
    """The first audio stream of ``source``, muxed into ``output`` up to a moving end time."""

    def __init__(self, source: Path, output: OutputContainer) -> None:
        self._input = av.open(str(source))
        src = self._src = self._input.streams.audio[0]
        self.copied = src.codec_context.codec.name in output.supported_codecs
        if self.copied:
            self._out = output.add_stream_from_template(src)
        else:
            self._out = output.add_stream(output.default_audio_codec, rate=_encoder_rate(output, src.rate))
            self._out.layout = src.layout
        self._packets = self._input.demux(src)
        self._pending: av.Packet | None = None
        self._output = output

    @property
    def codec(self) -> str:
        return self._out.codec_context.codec.name

    def write_until(self, end: float) -> None:
        """Mux every packet that starts before ``end`` seconds (source time)."""
        while (packet := self._next()) is not None:
            if packet.pts is not None and float(packet.pts * packet.time_base) >= end:
                return
            self._pending = None
            if self.copied:
                packet.stream = self._out
                self._output.mux(packet)
            else:
                self._encode(packet.decode())

    def close(self) -> None:
        """Flush a re-encoding track and close the source (packets after the last end are dropped)."""
        if not self.copied:
            self._encode([*self._src.codec_context.decode(None), None])
        self._input.close()

    def _next(self) -> av.Packet | None:
        """The next packet with data, read ahead once; ``None`` at the end or on a damaged tail."""
        while self._pending is None:
            try:
                packet = next(self._packets)
            except (StopIteration, av.FFmpegError):
                return None
            if packet.size:
                self._pending = packet
        return self._pending

    def _encode(self, frames) -> None:
        for frame in frames:
            self._output.mux(self._out.encode(frame))


def _encoder_rate(output: OutputContainer, rate: int) -> int:
    """Opus runs at 48 kHz only; AAC keeps the source rate."""
    return 48000 if output.default_audio_codec in ("opus", "libopus") else rate
