"""Per-frame cost of the face pipeline around the generator: detect, track, align, blend (median ms).

    python benchmarks/bench_faces.py                                                # 720p talking head
    python benchmarks/bench_faces.py --video clip.mp4 --frames 100 --upscale 3      # the same at 4K
    python benchmarks/bench_faces.py --retinaface PATH/mobilenet0.25_Final.pth      # add RetinaFace

The generator is replaced by the identity (the aligned crop is pasted back), so the numbers are the
pipeline's own overhead per frame; the generator is measured by bench_generator.py.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from _common import SHARED
from facedancer.faces import (
    BlendConfig,
    FaceDetector,
    FaceTracker,
    RetinaFaceDetector,
    YuNetDetector,
    align,
    blend_face,
)

BLENDS = {"blend (default)": BlendConfig(), "blend (+poisson)": BlendConfig(poisson=True)}
DEFAULT_VIDEO = SHARED / "data/videos/3ddfa/obama.mp4"


def frames(path: Path, count: int, upscale: float) -> tuple[list[np.ndarray], float]:
    out = []
    with av.open(str(path)) as container:
        fps = float(container.streams.video[0].average_rate)
        for frame in container.decode(video=0):
            image = frame.to_ndarray(format="rgb24")
            if upscale != 1:
                image = cv2.resize(image, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_LINEAR)
            out.append(image)
            if len(out) == count:
                break
    return out, fps


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1000, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--upscale", type=float, default=1.0, help="resize frames first (3 turns 720p into 4K)")
    parser.add_argument("--retinaface", type=Path, help="mobilenet0.25_Final.pth to time RetinaFace too")
    parser.add_argument("--device", default="cpu", help="RetinaFace device")
    args = parser.parse_args()

    images, fps = frames(args.video, args.frames, args.upscale)
    detectors: dict[str, FaceDetector] = {"YuNet": YuNetDetector()}
    if args.retinaface:
        detectors["RetinaFace mnet0.25"] = RetinaFaceDetector(weights=args.retinaface, device=args.device)
    times: dict[str, list[float]] = {}
    for name, detector in detectors.items():
        detector.detect(images[0])  # warm-up
        times[f"detect ({name})"] = [timed(lambda im=im, d=detector: d.detect(im))[0] for im in images]
    detector = detectors["YuNet"]
    tracker = FaceTracker(fps)
    times.update({"track + smooth": [], "align 256": []} | {name: [] for name in BLENDS})
    for image in images:
        found = detector.detect(image)
        ms, faces = timed(lambda im=image, f=found: tracker.update(f, im))
        times["track + smooth"].append(ms)
        for face in faces:
            ms, (crop, matrix) = timed(lambda im=image, p=face.landmarks: align(im, p, 256))
            times["align 256"].append(ms)
            for name, config in BLENDS.items():
                work = image.copy()  # the swapper composites in place into its own frame
                blend = lambda w=work, c=crop, m=matrix, p=face.landmarks, k=config: blend_face(w, c, m, p, k, True)  # noqa: E731
                times[name].append(timed(blend)[0])

    h, w = images[0].shape[:2]
    table = Table(title=f"{args.video.name}: {len(images)} frames {w}x{h}, median ms per call")
    table.add_column("stage")
    table.add_column("ms", justify="right")
    for stage, values in times.items():
        if values:
            table.add_row(stage, f"{statistics.median(values):.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
