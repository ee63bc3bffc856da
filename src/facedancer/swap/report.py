"""What a swap did and where its time went; the error when it swapped nothing."""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from facedancer.errors import NothingSwappedError
from facedancer.swap.select import Selection

#: the stages of a swap, in the order a frame goes through them
STAGES = ("decode", "detect", "align", "generate", "blend", "encode")


@dataclass
class SwapReport:
    """What a swap did, and where its time went.

    ``seconds`` holds each stage's busy time (:data:`STAGES`). A video's stages run at the same time, each in
    its own thread, so they add up to more than ``elapsed``, the wall-clock time of the whole swap; the
    share of ``elapsed`` the generator was busy says how well the rest kept it fed.
    """

    frames: int = 0
    faces_swapped: int = 0
    frames_without_faces: int = 0
    faces_found: int = 0  # detected (videos: shown by the tracker), selected or not
    most_faces: int = 0  # the most faces found in one frame
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    elapsed: float = 0.0

    @contextlib.contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start

    def timings(self) -> str:
        """One line per stage, ms per frame and share of the wall-clock time, for ``swap --timings``."""
        frames = max(self.frames, 1)
        lines = [f"{self.elapsed:.2f} s for {self.frames} frames: {1000 * self.elapsed / frames:.1f} ms per frame"]
        for stage in [*STAGES, *sorted(set(self.seconds) - set(STAGES))]:
            if stage in self.seconds:
                busy = self.seconds[stage]
                share = f", busy {100 * busy / self.elapsed:.0f}% of the time" if self.elapsed else ""
                lines.append(f"  {stage:<9} {1000 * busy / frames:7.1f} ms per frame{share}")
        if self.faces_swapped and "generate" in self.seconds:
            lines.append(f"  generator {1000 * self.seconds['generate'] / self.faces_swapped:7.1f} ms per face")
        return "\n".join(lines)


def nothing_swapped(target: Path, selection: Selection, report: SwapReport, video: bool) -> NothingSwappedError:
    """The error for a swap that changed no face: what was found, and why none was swapped."""
    found = report.most_faces
    faces = f"{found} face" if found == 1 else f"{found} faces"
    if report.faces_found == 0:
        why = f"no face found in {report.frames} frames" if video else "no face found"
    elif selection.mode == "index":
        has = f"at most {faces} in a frame" if video else f"it has {faces}"
        why = f"face index {selection.index} was asked for (0 is the leftmost) but {has}"
    elif selection.mode == "reference":
        why = f"no face looks like the reference (similarity threshold {selection.threshold:g})"
    else:
        why = "no face could be swapped"
    return NothingSwappedError(f"nothing swapped in {target}: {why}; nothing written")
