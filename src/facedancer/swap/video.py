"""A video swap as a pipeline, so that the generator never waits on decoding, detection, blending or encoding.

Five threads, each on a later frame than the next (:mod:`facedancer.swap.pipeline`)::

    decode -> detect, track, select, align -> generator -> blend -> encode (the caller's thread)

Frames are grouped until enough faces have gathered for one generator batch (or :data:`MAX_QUEUED_FRAMES`
frames wait), so several frames share a forward pass; the grouping, and so every output pixel, is the same
as a one-thread loop's. At most :data:`FRAMES_IN_FLIGHT` frames are decoded and not yet written, however
long the video. Each stage's busy time goes to ``SwapReport.seconds`` and the wall-clock time to
``SwapReport.elapsed``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facedancer.faces import FaceTracker
from facedancer.io import VideoReader, VideoWriter
from facedancer.swap.pipeline import Pipeline
from facedancer.swap.progress import FrameProgress, progress_bar
from facedancer.swap.report import SwapReport, nothing_swapped
from facedancer.swap.select import Selection, TrackChoices

if TYPE_CHECKING:
    from facedancer.swap.swapper import FaceSwapper, Source, _Face

#: frames a video may group while waiting for a full generator batch
MAX_QUEUED_FRAMES = 16
#: frames decoded and not yet written, at most: bounds memory (one group in the making, one in each stage)
FRAMES_IN_FLIGHT = 2 * MAX_QUEUED_FRAMES

Group = list[tuple[np.ndarray, list["_Face"]]]


def swap_video(
    swapper: FaceSwapper,
    sources: list[Source],
    target: str | Path,
    output: str | Path,
    selection: Selection,
    *,
    label: bool,
    progress: FrameProgress,
    max_frames: int | None,
) -> SwapReport:
    """See :meth:`FaceSwapper.swap_video`."""
    report, start = SwapReport(), time.perf_counter()
    window = threading.Semaphore(FRAMES_IN_FLIGHT)
    with (
        VideoReader(target, max_frames=max_frames, max_pixels=swapper.max_pixels) as reader,
        VideoWriter(output, swapper.label if label else None, like=reader) as writer,
        progress_bar(progress, reader.info.frames, Path(target).name) as advance,
        Pipeline() as pipe,  # left first: every stage has stopped before the reader and writer close
    ):
        tracker = FaceTracker(float(reader.fps), swapper.tracker)
        choices = TrackChoices(selection, swapper.matcher.embed if selection.needs_identity else None)

        def decode(_: Iterator) -> Iterator[np.ndarray]:
            frames = iter(reader)
            while True:
                pipe.wait(lambda seconds: window.acquire(timeout=seconds))
                with report.timed("decode"):
                    frame = next(frames, None)
                if frame is None:
                    return
                yield frame

        def analyse(frames: Iterator[np.ndarray]) -> Iterator[Group]:
            group: Group = []
            for frame in frames:
                with report.timed("detect"):
                    tracked = tracker.update(swapper.detector.detect(frame), frame)
                    assigned = choices.assign(frame, tracked, tracker.track_ids)
                report.faces_found += len(tracked)
                report.most_faces = max(report.most_faces, len(tracked))
                group.append((frame, swapper._align(frame, [t.landmarks for t in tracked], assigned, report)))
                if sum(len(fs) for _, fs in group) >= swapper.batch_size or len(group) >= MAX_QUEUED_FRAMES:
                    yield group
                    group = []
            if group:
                yield group

        def generate(groups: Iterator[Group]) -> Iterator[tuple[Group, list[np.ndarray]]]:
            for group in groups:
                yield group, swapper._generate([f for _, fs in group for f in fs], sources, report)

        def blend(batches: Iterator[tuple[Group, list[np.ndarray]]]) -> Iterator[list[np.ndarray]]:
            for group, swapped in batches:
                yield swapper._paste(group, swapped, report)

        stages = pipe.stage("analyse", analyse, pipe.stage("decode", decode))
        stages = pipe.stage("blend", blend, pipe.stage("generate", generate, stages))
        for frames in pipe.results(stages):
            with report.timed("encode"):
                for frame in frames:
                    writer.write(frame)
            window.release(len(frames))
            advance(len(frames))
        if report.faces_swapped == 0:  # inside the writer: the unchanged copy is discarded, not labelled
            raise nothing_swapped(Path(target), selection, report, video=True)
    report.elapsed = time.perf_counter() - start  # with the output's finishing touches (audio tail, rename)
    return report
