import json
import subprocess
import sys
from pathlib import Path

import pytest

from facedancer.io import VideoReader

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_video_io.py"


def test_peak_memory_does_not_grow_with_frames(shared):
    """Each run is a fresh process; keeping decoded frames would add ~0.7 MB per 480x480 frame."""
    cmd = [
        sys.executable,
        BENCH,
        "--json",
        "--preset",
        "ultrafast",
        "--frames",
        "100",
        "400",
        "--video",
        shared / "data/videos/liveportrait/d6.mp4",
    ]
    short, long = json.loads(subprocess.run(list(map(str, cmd)), check=True, capture_output=True, text=True).stdout)
    assert (short["frames"], long["frames"]) == (100, 400)
    assert long["peak_rss_mb"] - short["peak_rss_mb"] < 20, (short, long)


@pytest.mark.slow
def test_expected_frame_count_is_exact_on_every_clip(shared):
    """``VideoInfo.frames`` (which the truncation check trusts) equals what decodes, for all 26 clips."""
    for path in sorted((shared / "data/videos").rglob("*.mp4")):
        with VideoReader(path) as reader:
            assert sum(1 for _ in reader) == reader.info.frames, path
