"""3DDFA_V2 (Guo et al., ECCV 2020): a MobileNetV1 regressing 62 3DMM parameters from a 120x120 face crop.

We use it for the pose error (yaw, pitch, roll from the 3x4 camera matrix) and for our expression error
(its 10 expression coefficients). The network is written here from the architecture description; the
weights are the MIT-licensed ``mb05_120x120.pth`` of github.com/cleardusk/3DDFA_V2.

Input conventions follow the released model: a BGR crop (the model was trained on ``cv2.imread``
images), resized to 120x120 with bilinear interpolation, normalised as ``(x - 127.5) / 128``.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from facedancer import assets
from facedancer.errors import AssetError
from facedancer.weights_io import load_strict, read_state_dict

INPUT_SIZE = 120
NUM_PARAMS = 62  # 12 pose (3x4 camera matrix, row-major) + 40 shape + 10 expression
POSE_SLICE, SHAPE_SLICE, EXPRESSION_SLICE = slice(0, 12), slice(12, 52), slice(52, 62)


class _DepthwiseSeparable(nn.Sequential):
    """3x3 depthwise conv + BN + ReLU, then 1x1 pointwise conv + BN + ReLU (names match the checkpoint)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)
        self.bn_dw = nn.BatchNorm2d(cin)
        self.relu_dw = nn.ReLU(inplace=True)
        self.conv_sep = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn_sep = nn.BatchNorm2d(cout)
        self.relu_sep = nn.ReLU(inplace=True)


#: (name, output width at widen 1.0, stride) of the 13 separable blocks of MobileNetV1
_BLOCKS = (
    ("dw2_1", 64, 1),
    ("dw2_2", 128, 2),
    ("dw3_1", 128, 1),
    ("dw3_2", 256, 2),
    ("dw4_1", 256, 1),
    ("dw4_2", 512, 2),
    ("dw5_1", 512, 1),
    ("dw5_2", 512, 1),
    ("dw5_3", 512, 1),
    ("dw5_4", 512, 1),
    ("dw5_5", 512, 1),
    ("dw5_6", 1024, 2),
    ("dw6", 1024, 1),
)


class TDDFANet(nn.Module):
    """MobileNetV1 at ``widen`` width with a linear head to the 62 normalised 3DMM parameters."""

    def __init__(self, widen: float = 0.5) -> None:
        super().__init__()
        width = int(32 * widen)
        self.conv1 = nn.Conv2d(3, width, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        for name, cout, stride in _BLOCKS:
            self.add_module(name, _DepthwiseSeparable(width, int(cout * widen), stride))
            width = int(cout * widen)
        self.fc_param = nn.Linear(width, NUM_PARAMS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for name, _, _ in _BLOCKS:
            x = getattr(self, name)(x)
        return self.fc_param(x.mean(dim=(2, 3)))


class _NumpyArraysOnly(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and nothing else.

    Unpickling runs whatever callables the stream names through ``find_class``. Here only numpy's
    array reconstructor, ``ndarray`` and ``dtype`` may be named, none of which can run code or touch
    files; any other global (``os.system``, ``builtins.eval``, ...) raises before it is called. The
    arrays are then required to be numeric, so no object array can smuggle Python objects through.
    """

    _ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
        }
    )

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")
        if name == "_reconstruct":
            return np._core.multiarray._reconstruct
        return getattr(np, name)


def load_param_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) of the 62 parameters from 3DDFA_V2's ``param_mean_std_62d_120x120.pkl``.

    The file is a pickle of ``{"mean": array, "std": array}``; it is read with :class:`_NumpyArraysOnly`,
    never with a plain ``pickle.load``.
    """
    try:
        with open(path, "rb") as f:
            stats = _NumpyArraysOnly(f).load()
        mean, std = (np.asarray(stats[k]) for k in ("mean", "std"))
    except (OSError, pickle.UnpicklingError, KeyError, TypeError, EOFError, ValueError) as e:
        raise AssetError(f"{path} is not 3DDFA_V2's parameter mean/std file: {e}") from None
    if mean.shape != (NUM_PARAMS,) or std.shape != (NUM_PARAMS,) or mean.dtype.kind != "f" or std.dtype.kind != "f":
        raise AssetError(f"{path} holds arrays of the wrong shape or type for 3DDFA_V2's 62 parameters")
    return mean.astype(np.float32), std.astype(np.float32)


def load_net(path: str | Path) -> TDDFANet:
    """The mb05 checkpoint (``{"epoch", "state_dict"}`` with ``module.`` prefixes), read with weights_only."""
    state = read_state_dict(path, "3DDFA_V2 checkpoint")
    # fc_lm is an auxiliary 68-landmark head used in training; the 62 parameters come from fc_param
    state = {k: v for k, v in state.items() if not k.startswith("fc_lm.")}
    return load_strict(TDDFANet(widen=0.5), state, path, "3DDFA_V2 MobileNet-0.5").eval()


def roi_from_box(box: np.ndarray) -> np.ndarray:
    """3DDFA_V2's square crop around a detector box: 1.58x the mean side, shifted down by 0.14 of it."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    side = (x2 - x1 + y2 - y1) / 2
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 + 0.14 * side
    size = int(side * 1.58)
    return np.array([cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2])


def roi_from_landmarks(points: np.ndarray) -> np.ndarray:
    """3DDFA_V2's square crop from 68 landmarks (N, 2): the diagonal of their bounding square as side."""
    pts = np.asarray(points, np.float64)[:, :2]
    lo, hi = pts.min(0), pts.max(0)
    centre = (lo + hi) / 2
    side = float((hi - lo).max()) * math.sqrt(2)
    return np.concatenate([centre - side / 2, centre + side / 2])


def crop(image: np.ndarray, roi: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """The ``roi`` (x1, y1, x2, y2) of an image, zero-padded where it leaves the frame, resized to ``size``."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (round(float(v)) for v in roi)
    out = np.zeros((y2 - y1, x2 - x1, 3), np.uint8)
    sx, sy, ex, ey = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if ex > sx and ey > sy:
        out[sy - y1 : ey - y1, sx - x1 : ex - x1] = image[sy:ey, sx:ex]
    return cv2.resize(out, (size, size), interpolation=cv2.INTER_LINEAR)


def rotation_from_params(params: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations from (N, 62) parameters: the 3x4 camera matrix's rows, normalised (dropping
    the scale) and completed by their cross product, as 3DDFA_V2's ``P2sRt`` does."""
    p = np.asarray(params, np.float64)[:, POSE_SLICE].reshape(-1, 3, 4)[:, :, :3]
    r1 = p[:, 0] / np.linalg.norm(p[:, 0], axis=1, keepdims=True)
    r2 = p[:, 1] / np.linalg.norm(p[:, 1], axis=1, keepdims=True)
    return np.stack([r1, r2, np.cross(r1, r2)], axis=1)


def angles_from_rotation(r: np.ndarray) -> np.ndarray:
    """(N, 3) yaw, pitch, roll in degrees, in the convention of AFLW2000-3D's ``Pose_Para``.

    300W-LP and AFLW2000-3D (the data 3DDFA was trained and is tested on) compose their rotation as
    ``R = Rx(pitch) @ Ry(yaw) @ Rz(roll)`` with the transposed elementary matrices of 3DDFA's Matlab
    code (``Rx = [[1, 0, 0], [0, c, s], [0, -s, c]]`` and so on), so ``R.T = Rz Ry Rx`` in the usual
    right-handed form, which we invert here. 3DDFA_V2's own ``matrix2angle`` (yaw = asin R[2, 0])
    reads the matrix in a different order: on 300 AFLW2000 faces it gave MAE 3.6 / 8.6 / 7.5 degrees
    against 2.6 / 4.6 / 2.7 for this decomposition of the same network outputs.
    """
    r = np.asarray(r, np.float64)
    yaw = -np.arcsin(np.clip(r[:, 0, 2], -1.0, 1.0))
    pitch = np.arctan2(r[:, 1, 2], r[:, 2, 2])
    roll = np.arctan2(r[:, 0, 1], r[:, 0, 0])
    return np.degrees(np.stack([yaw, pitch, roll], axis=1))


def rotation_from_angles(angles: np.ndarray) -> np.ndarray:
    """The inverse of :func:`angles_from_rotation`: (N, 3) yaw, pitch, roll in degrees to (N, 3, 3)."""
    yaw, pitch, roll = np.radians(np.asarray(angles, np.float64)).T
    one, zero = np.ones_like(yaw), np.zeros_like(yaw)

    def stack(rows: list[list[np.ndarray]]) -> np.ndarray:
        return np.stack([np.stack(row, -1) for row in rows], -2)

    cp, sp, cy, sy, cr, sr = np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw), np.cos(roll), np.sin(roll)
    rx = stack([[one, zero, zero], [zero, cp, sp], [zero, -sp, cp]])
    ry = stack([[cy, zero, -sy], [zero, one, zero], [sy, zero, cy]])
    rz = stack([[cr, sr, zero], [-sr, cr, zero], [zero, zero, one]])
    return rx @ ry @ rz


class TDDFA:
    """3DDFA_V2 MobileNet-0.5: 3DMM parameters, head pose and expression coefficients of faces in RGB images."""

    def __init__(self, net: TDDFANet, mean: np.ndarray, std: np.ndarray, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.mean, self.std = mean, std

    @classmethod
    def load(
        cls, weights: str | Path | None = None, stats: str | Path | None = None, device: str | torch.device = "cpu"
    ) -> TDDFA:
        """From the asset registry (``3ddfa-v2-mb05``, ``3ddfa-v2-param-stats``) unless paths are given."""
        weights = weights or assets.resolve("3ddfa-v2-mb05")
        stats = stats or assets.resolve("3ddfa-v2-param-stats")
        return cls(load_net(weights), *load_param_stats(stats), device=device)

    @torch.inference_mode()
    def params_from_rois(self, image: np.ndarray, rois: np.ndarray) -> np.ndarray:
        """(N, 62) de-normalised parameters for the square crops ``rois`` (N, 4) of an RGB image."""
        if len(rois) == 0:
            return np.zeros((0, NUM_PARAMS), np.float32)
        bgr = np.ascontiguousarray(image[..., ::-1])
        crops = np.stack([crop(bgr, roi) for roi in rois])
        x = torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2).float().sub_(127.5).div_(128.0)
        return self.net(x).cpu().numpy() * self.std + self.mean

    def params(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(N, 62) parameters for the faces in detector ``boxes`` (N, 4) x1, y1, x2, y2."""
        return self.params_from_rois(image, np.array([roi_from_box(b) for b in boxes]).reshape(-1, 4))

    def predict_rois(self, image: np.ndarray, rois: np.ndarray) -> np.ndarray:
        return angles_from_rotation(rotation_from_params(self.params_from_rois(image, rois)))

    def predict(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(N, 3) yaw, pitch, roll in degrees (AFLW2000-3D convention) of the faces in ``boxes``."""
        return angles_from_rotation(rotation_from_params(self.params(image, boxes)))


def expression_coefficients(params: np.ndarray) -> np.ndarray:
    """The 10 expression coefficients (BFM expression basis) of (N, 62) parameters."""
    return np.asarray(params)[:, EXPRESSION_SLICE]
