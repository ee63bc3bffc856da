"""FSA-Net (Yang et al., CVPR 2019) head pose, a second estimator beside 3DDFA_V2, run by ONNX Runtime.

The two ONNX exports of github.com/omasaht/headpose-fsanet-pytorch (MIT; the "1x1" and "var" scoring
variants, trained on 300W-LP) are averaged, as that repository's demo does. Input conventions are those
of FSA-Net's data preparation (``TYY_create_db_type1.py``) and demos: a BGR crop of the face box enlarged
by 0.6 of its width and height on every side, clipped to the image (not padded) and resized to 64x64
without keeping the aspect ratio, normalised as ``(x - 127.5) / 128``. The outputs are yaw, pitch and
roll in degrees, with the signs of AFLW2000-3D's ``Pose_Para`` (the labels FSA-Net was trained on).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facedancer import assets
from facedancer.errors import AssetError, InputError

INPUT_SIZE = 64
#: FSA-Net's "ad": how much of the box's width (height) is added on the left and right (top and bottom)
MARGIN = 0.6
MODELS = ("fsanet-1x1", "fsanet-var")


def crop_box(box: np.ndarray, image_shape: tuple[int, ...], margin: float = MARGIN) -> np.ndarray:
    """FSA-Net's crop: the box grown by ``margin`` of its size on each side and clipped to the image."""
    h, w = image_shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    bw, bh = x2 - x1, y2 - y1
    return np.array(
        [
            max(int(x1 - margin * bw), 0),
            max(int(y1 - margin * bh), 0),
            min(int(x2 + margin * bw), w - 1),
            min(int(y2 + margin * bh), h - 1),
        ]
    )


class FSANet:
    """Yaw, pitch, roll in degrees of faces in RGB images, the mean of FSA-Net's 1x1 and var models."""

    def __init__(self, paths: list[str | Path] | None = None) -> None:
        """``paths`` defaults to the registered ``fsanet-1x1`` and ``fsanet-var`` files."""
        try:
            import onnxruntime as ort
        except ImportError:
            raise AssetError("FSA-Net needs onnxruntime: pip install 'facedancer-pytorch[eval]'") from None
        paths = paths or [assets.resolve(name) for name in MODELS]
        options = ort.SessionOptions()
        options.log_severity_level = 3
        # a 64x64 network gains nothing from a thread pool, whose spinning threads would slow torch beside it
        options.intra_op_num_threads = 1
        self._sessions = [ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"]) for p in paths]

    def predict_rois(self, image: np.ndarray, rois: np.ndarray) -> np.ndarray:
        """(N, 3) yaw, pitch, roll for crops ``rois`` (N, 4) that are already FSA-Net crop boxes."""
        out = np.zeros((len(rois), 3), np.float32)
        bgr = image[..., ::-1]
        for i, (x1, y1, x2, y2) in enumerate(np.asarray(rois, int)):
            if x2 <= x1 or y2 <= y1:
                raise InputError(f"face box {x1, y1, x2, y2} lies outside the {image.shape[1]}x{image.shape[0]} image")
            face = cv2.resize(np.ascontiguousarray(bgr[y1:y2, x1:x2]), (INPUT_SIZE, INPUT_SIZE))
            x = ((face.transpose(2, 0, 1)[None].astype(np.float32) - 127.5) / 128.0).astype(np.float32)
            # the exports have a fixed batch of one
            out[i] = np.mean([s.run(None, {"input": x})[0][0] for s in self._sessions], axis=0)
        return out

    def predict(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(N, 3) yaw, pitch, roll in degrees of the faces in detector ``boxes`` (N, 4) x1, y1, x2, y2."""
        return self.predict_rois(image, np.array([crop_box(b, image.shape) for b in boxes]).reshape(-1, 4))
