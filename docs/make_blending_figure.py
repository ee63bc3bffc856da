"""Render docs/blending.png: one face pasted into another person's photo with each blend variant.

No generator is involved: the *source* person's aligned 256 crop stands in for a generated face, which
is the hardest case for a blend (different skin, light and face shape), so seams and colour steps show.

    PYTHONPATH=src FACEDANCER_TEST_DATA=../shared python docs/make_blending_figure.py
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from facedancer.faces import YuNetDetector, align
from facedancer.faces.align import footprint
from facedancer.faces.blend import BlendConfig, blend_face
from facedancer.io import read_image

LFW = Path(os.environ.get("FACEDANCER_TEST_DATA", "../shared")) / "data" / "lfw"
PAIRS = [  # (target photo, source photo)
    ("Natalie_Coughlin/Natalie_Coughlin_0005.jpg", "Abdoulaye_Wade/Abdoulaye_Wade_0004.jpg"),
    ("Arnold_Schwarzenegger/Arnold_Schwarzenegger_0009.jpg", "Paul_ONeill/Paul_ONeill_0008.jpg"),
    ("Clay_Aiken/Clay_Aiken_0003.jpg", "Carlos_Moya/Carlos_Moya_0007.jpg"),
]
VARIANTS = {
    "rect-image": BlendConfig("rect-image", colour=False),
    "rect-video": BlendConfig("rect-video", colour=False),
    "landmarks": BlendConfig("landmarks", colour=False),
    "landmarks+colour": BlendConfig("landmarks", colour=True),
    "+poisson": BlendConfig("landmarks", colour=True, poisson=True),
}
TILE = 150
OUT = Path(__file__).with_name("blending.png")


def read(name: str) -> np.ndarray:
    return read_image(LFW / name)


def label(tile: np.ndarray, text: str) -> np.ndarray:
    tile = tile.copy()
    cv2.rectangle(tile, (0, 0), (TILE, 16), (0, 0, 0), -1)
    cv2.putText(tile, text, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def main(out: Path = OUT) -> None:
    detector = YuNetDetector()
    rows = []
    for target_name, source_name in PAIRS:
        target, source = read(target_name), read(source_name)
        t_points = detector.detect(target).landmarks[0]
        source_crop, _ = align(source, detector.detect(source).landmarks[0], 256)
        _, matrix = align(target, t_points, 256)
        ys, xs = footprint(matrix, 256, *target.shape[:2])

        def zoom(image: np.ndarray, ys: slice = ys, xs: slice = xs) -> np.ndarray:
            return cv2.resize(image[ys, xs], (TILE, TILE), interpolation=cv2.INTER_AREA)

        tiles = [label(zoom(target), "target"), label(cv2.resize(source_crop, (TILE, TILE)), "face in")]
        for name, config in VARIANTS.items():
            tiles.append(label(zoom(blend_face(target, source_crop, matrix, t_points, config)), name))
        rows.append(np.hstack(tiles))
    # 256-colour palette keeps the file small; the dithering is invisible at this size
    Image.fromarray(np.vstack(rows)).quantize(256, dither=Image.Dither.FLOYDSTEINBERG).save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
