"""Video I/O throughput and peak memory against the number of frames processed.

Each frame count runs in a fresh process (so ``ru_maxrss`` is that run's own peak): decode with
VideoReader, write with VideoWriter (H.264 + copied audio), nothing else. Peak RSS should not grow
with the number of frames; frames/s is decode + colour conversion + encode on this machine.

    python benchmarks/bench_video_io.py                         # d6.mp4, 60/250/1000 frames
    python benchmarks/bench_video_io.py --frames 30 120 --preset ultrafast --json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import SHARED

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = SHARED / "data/videos/liveportrait/d6.mp4"  # 1,008 frames, 480x480, 30 fps, AAC


def child(video: Path, frames: int, preset: str, suffix: str, batch: int) -> dict[str, float]:
    from facedancer.io import ProvenanceLabel, transcode

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        written = transcode(
            video,
            Path(tmp) / f"out{suffix}",
            ProvenanceLabel(model="bench"),
            batch_size=batch,
            max_frames=frames,
            preset=preset,
        )
        seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"frames": written, "seconds": seconds, "fps": written / seconds, "peak_rss_mb": peak_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--frames", type=int, nargs="+", default=[60, 250, 1000])
    parser.add_argument("--preset", default="medium", help="libx264 preset")
    parser.add_argument("--suffix", default=".mp4", help="output container")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of a table")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.video, args.child, args.preset, args.suffix, args.batch)))
        return
    rows = []
    for n in args.frames:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            str(n),
            "--video",
            str(args.video),
            "--preset",
            args.preset,
            "--suffix",
            args.suffix,
            "--batch",
            str(args.batch),
        ]
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        rows.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout))
    if args.json:
        print(json.dumps(rows))
        return
    print(f"{args.video.name} -> {args.suffix}, libx264 preset {args.preset}, batch {args.batch}")
    print(f"{'frames':>7} {'seconds':>8} {'frames/s':>9} {'peak RSS MB':>12}")
    for r in rows:
        print(f"{r['frames']:>7} {r['seconds']:>8.2f} {r['fps']:>9.1f} {r['peak_rss_mb']:>12.1f}")
    if len(rows) > 1:  # the last two runs: the first frames fill decoder and encoder queues
        a, b = rows[-2], rows[-1]
        growth = (b["peak_rss_mb"] - a["peak_rss_mb"]) / max(1, b["frames"] - a["frames"])
        print(f"peak RSS growth from {a['frames']} to {b['frames']} frames: {1000 * growth:.1f} MB per 1000 frames")


if __name__ == "__main__":
    main()
