"""Training-crop decoding: facedancer.io.decode_image (Pillow, the one image reader) against OpenCV's imdecode.

The data loader reads every crop of every step through :func:`facedancer.io.decode_image`. This checks that
it gives the same pixels as the OpenCV path it replaced, for each crop format ``facedancer prepare`` writes
(PNG, JPEG 90, WebP 90), and prints ms per 256 px crop, median of several runs, with the ratio to OpenCV.

    python benchmarks/bench_crop_read.py                  # 64 LFW faces, 5 runs
    python benchmarks/bench_crop_read.py --crops 200 --runs 9 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import cv2
import numpy as np

from _common import SHARED

FORMATS = {
    "png": (".png", []),
    "jpg": (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90]),
    "webp": (".webp", [cv2.IMWRITE_WEBP_QUALITY, 90]),
}


def opencv(data: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from facedancer.io import decode_image, read_image

    cv2.setNumThreads(1)
    photos = sorted((SHARED / "data" / "lfw").glob("*/*.jpg"))[: args.crops]
    crops = [cv2.resize(read_image(p)[25:225, 25:225], (256, 256), interpolation=cv2.INTER_AREA) for p in photos]
    rows = []
    for name, (suffix, params) in FORMATS.items():
        encoded = [cv2.imencode(suffix, cv2.cvtColor(c, cv2.COLOR_RGB2BGR), params)[1].tobytes() for c in crops]
        same = all(np.array_equal(decode_image(d, name), opencv(d)) for d in encoded)
        times = {}
        for label, read in (("opencv", opencv), ("facedancer", lambda d, name=name: decode_image(d, name))):
            runs = []
            for _ in range(args.runs):
                start = time.perf_counter()
                for d in encoded:
                    read(d)
                runs.append((time.perf_counter() - start) / len(encoded) * 1e3)
            times[label] = statistics.median(runs)
        rows.append(
            {
                "format": name,
                "same_pixels": same,
                "opencv_ms": round(times["opencv"], 3),
                "decode_image_ms": round(times["facedancer"], 3),
                "ratio": round(times["facedancer"] / times["opencv"], 2),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"{'format':<7}{'same pixels':>13}{'OpenCV ms':>11}{'decode_image ms':>17}{'ratio':>7}")
    for r in rows:
        print(
            f"{r['format']:<7}{r['same_pixels']!s:>13}{r['opencv_ms']:>11.3f}{r['decode_image_ms']:>17.3f}"
            f"{r['ratio']:>7.2f}"
        )


if __name__ == "__main__":
    main()
