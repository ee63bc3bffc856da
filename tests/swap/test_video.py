"""A video swap's pipeline on real clips: a failing stage ends the swap with its own error, leaves no file and
no thread behind; memory stays bounded; the report says where the time went."""

from __future__ import annotations

import threading

import pytest

from facedancer.errors import InputError, OutputError
from facedancer.faces import YuNetDetector
from facedancer.io import VideoWriter
from facedancer.swap import FaceSwapper
from facedancer.swap.report import STAGES
from facedancer.swap.video import FRAMES_IN_FLIGHT


def _ours() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("facedancer-")]


class FailingDetector(YuNetDetector):
    """YuNet that fails on its ``fail_at``-th frame, as a detector on a bad frame or out of memory would."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at, self.seen = fail_at, 0

    def detect(self, image):
        self.seen += 1
        if self.seen == self.fail_at:
            raise InputError("detector broke on frame 6")
        return super().detect(image)


def _swap(swapper, lfw_pair, clip, out, **kwargs):
    return swapper.swap_video(lfw_pair[0], clip, out, **kwargs)


def test_a_detector_failing_mid_video_is_the_error_and_leaves_nothing(echo, lfw_pair, small_clip, tmp_path):
    source = FaceSwapper(echo).source(lfw_pair[0])
    with pytest.raises(InputError, match="^detector broke on frame 6$"):
        FaceSwapper(echo, detector=FailingDetector(fail_at=6)).swap_video(source, small_clip, tmp_path / "out.mp4")
    assert list(tmp_path.iterdir()) == [] and _ours() == []


def test_a_generator_failing_mid_video_is_the_error_and_leaves_nothing(echo, lfw_pair, small_clip, tmp_path):
    calls = []

    def broken(crops, sources):
        calls.append(len(crops))
        if len(calls) == 4:
            raise RuntimeError("generator ran out of memory")
        return crops.copy()

    echo.swap = broken
    with pytest.raises(RuntimeError, match="out of memory"):
        _swap(FaceSwapper(echo), lfw_pair, small_clip, tmp_path / "out.mp4")
    assert list(tmp_path.iterdir()) == [] and _ours() == []


def test_a_writer_failing_mid_video_is_its_one_line_error(echo, lfw_pair, small_clip, tmp_path, monkeypatch):
    written = []
    original = VideoWriter.write

    def full_disk(self, frames):
        if len(written) == 5:
            raise OutputError(f"cannot write {self.path}: No space left on device")
        written.append(1)
        return original(self, frames)

    monkeypatch.setattr(VideoWriter, "write", full_disk)
    with pytest.raises(OutputError, match="No space left on device"):
        _swap(FaceSwapper(echo), lfw_pair, small_clip, tmp_path / "out.mp4")
    assert list(tmp_path.iterdir()) == [] and _ours() == []


def test_a_progress_callback_that_cancels_stops_the_swap(echo, lfw_pair, small_clip, tmp_path):
    """The web page cancels a job by raising from its progress callback."""

    class Cancelled(Exception):
        pass

    def cancel(n):
        raise Cancelled

    with pytest.raises(Cancelled):
        _swap(FaceSwapper(echo), lfw_pair, small_clip, tmp_path / "out.mp4", progress=cancel)
    assert list(tmp_path.iterdir()) == [] and _ours() == []


def test_frames_in_flight_stay_bounded_however_slow_the_writer(echo, lfw_pair, shared, tmp_path, monkeypatch):
    """The decoder and detector may run ahead of a slow encoder by at most FRAMES_IN_FLIGHT frames (with
    batches of 16 faces, the queues between the stages alone would hold more)."""
    detected, written, most = [0], [0], [0]
    original_write = VideoWriter.write

    class Counting(YuNetDetector):
        def detect(self, image):
            detected[0] += 1
            most[0] = max(most[0], detected[0] - written[0])
            return super().detect(image)

    def slow(self, frames):
        original_write(self, frames)
        written[0] += 1
        threading.Event().wait(0.02)

    monkeypatch.setattr(VideoWriter, "write", slow)
    swapper = FaceSwapper(echo, detector=Counting(), batch_size=16)
    clip = shared / "data/videos/liveportrait/d6.mp4"
    report = swapper.swap_video(lfw_pair[0], clip, tmp_path / "out.mp4", max_frames=3 * FRAMES_IN_FLIGHT)
    assert report.frames == written[0] == 3 * FRAMES_IN_FLIGHT
    assert FRAMES_IN_FLIGHT // 2 < most[0] <= FRAMES_IN_FLIGHT  # it did run ahead, and no further than allowed


def test_the_report_times_every_stage_and_the_whole(echo, lfw_pair, small_clip, tmp_path):
    report = _swap(FaceSwapper(echo), lfw_pair, small_clip, tmp_path / "out.mp4")
    assert set(STAGES) <= set(report.seconds) and report.elapsed > 0
    # the stages overlap, yet none can be busy longer than the whole swap took
    assert max(report.seconds.values()) <= report.elapsed
    text = report.timings()
    assert f"for {report.frames} frames" in text and all(stage in text for stage in STAGES)
    assert "ms per face" in text
