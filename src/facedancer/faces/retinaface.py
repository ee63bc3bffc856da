"""RetinaFace (Deng et al. 2020) in the state-dict layout of biubug6's ``Pytorch_Retinaface``.

The official FaceDancer crops come from RetinaFace-ResNet50 (PAPER.md §3.6); this module runs the
mobilenet0.25 and ResNet-50 releases of the PyTorch port with our own modules, written so that every
parameter name matches the published ``*_Final.pth`` files and ``load_state_dict(strict=True)`` loads
them unchanged. Prior boxes, box and landmark decoding and NMS follow the reference ``detect.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facedancer import assets
from facedancer.faces.detect import Detections, downscale_factor, too_small
from facedancer.weights_io import load_strict, read_state_dict

Backbone = Literal["mobilenet0.25", "resnet50"]


# --- building blocks (Sequential indices are part of the parameter names) -------------------------------


def _conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1, leaky: float | None = 0.0) -> nn.Sequential:
    """Conv (no bias) -> BN [-> LeakyReLU]; ``leaky=None`` leaves the activation out."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout)]
    if leaky is not None:
        layers.append(nn.LeakyReLU(leaky, inplace=True))
    return nn.Sequential(*layers)


def _conv_dw(cin: int, cout: int, stride: int, leaky: float = 0.1) -> nn.Sequential:
    """Depthwise 3x3 -> BN -> LReLU -> pointwise 1x1 -> BN -> LReLU (MobileNet v1 unit)."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.LeakyReLU(leaky, inplace=True),
        nn.Conv2d(cin, cout, 1, 1, 0, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(leaky, inplace=True),
    )


class MobileNetV1x025(nn.Module):
    """MobileNet v1 at width 0.25, cut into the three stages whose outputs feed the FPN (strides 8, 16, 32)."""

    channels = (64, 128, 256)

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(
            _conv_bn(3, 8, stride=2, leaky=0.1),
            _conv_dw(8, 16, 1),
            _conv_dw(16, 32, 2),
            _conv_dw(32, 32, 1),
            _conv_dw(32, 64, 2),
            _conv_dw(64, 64, 1),
        )
        self.stage2 = nn.Sequential(_conv_dw(64, 128, 2), *[_conv_dw(128, 128, 1) for _ in range(5)])
        self.stage3 = nn.Sequential(_conv_dw(128, 256, 2), _conv_dw(256, 256, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c3 = self.stage1(x)
        c4 = self.stage2(c3)
        return [c3, c4, self.stage3(c4)]


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the 3x3 conv), with torchvision's parameter names."""

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * 4
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet50(nn.Module):
    """torchvision's ResNet-50 without its classifier; returns layer2..layer4 (strides 8, 16, 32)."""

    channels = (512, 1024, 2048)

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for i, (width, blocks, stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], 1):
            layer = [Bottleneck(cin, width, stride)] + [Bottleneck(width * 4, width, 1) for _ in range(blocks - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*layer))
            cin = width * 4

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        c3 = self.layer2(self.layer1(x))
        c4 = self.layer3(c3)
        return [c3, c4, self.layer4(c4)]


class FPN(nn.Module):
    """Top-down pyramid: 1x1 laterals, nearest upsampling, 3x3 merges (no extra levels)."""

    def __init__(self, channels: tuple[int, int, int], out: int) -> None:
        super().__init__()
        leaky = 0.1 if out <= 64 else 0.0
        self.output1 = _conv_bn(channels[0], out, kernel=1, leaky=leaky)
        self.output2 = _conv_bn(channels[1], out, kernel=1, leaky=leaky)
        self.output3 = _conv_bn(channels[2], out, kernel=1, leaky=leaky)
        self.merge1 = _conv_bn(out, out, leaky=leaky)
        self.merge2 = _conv_bn(out, out, leaky=leaky)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        p3, p4, p5 = self.output1(feats[0]), self.output2(feats[1]), self.output3(feats[2])
        p4 = self.merge2(p4 + F.interpolate(p5, size=p4.shape[-2:], mode="nearest"))
        p3 = self.merge1(p3 + F.interpolate(p4, size=p3.shape[-2:], mode="nearest"))
        return [p3, p4, p5]


class SSH(nn.Module):
    """Context module: parallel 3x3, 5x5 (two 3x3) and 7x7 (three 3x3) branches, concatenated, ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        leaky = 0.1 if cout <= 64 else 0.0
        self.conv3X3 = _conv_bn(cin, cout // 2, leaky=None)
        self.conv5X5_1 = _conv_bn(cin, cout // 4, leaky=leaky)
        self.conv5X5_2 = _conv_bn(cout // 4, cout // 4, leaky=None)
        self.conv7X7_2 = _conv_bn(cout // 4, cout // 4, leaky=leaky)
        self.conv7x7_3 = _conv_bn(cout // 4, cout // 4, leaky=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c5_1 = self.conv5X5_1(x)
        c7_2 = self.conv7X7_2(c5_1)
        return F.relu(torch.cat([self.conv3X3(x), self.conv5X5_2(c5_1), self.conv7x7_3(c7_2)], 1))


class _Head(nn.Module):
    """1x1 conv predicting ``values`` numbers per anchor, flattened to (N, H*W*anchors, values)."""

    def __init__(self, cin: int, values: int, anchors: int = 2) -> None:
        super().__init__()
        self.values = values
        self.conv1x1 = nn.Conv2d(cin, anchors * values, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1x1(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1, self.values)


@dataclass(frozen=True)
class RetinaFaceConfig:
    backbone: Backbone = "mobilenet0.25"
    min_sizes: tuple[tuple[int, int], ...] = ((16, 32), (64, 128), (256, 512))
    steps: tuple[int, ...] = (8, 16, 32)
    variances: tuple[float, float] = (0.1, 0.2)

    @property
    def fpn_channels(self) -> int:
        return 64 if self.backbone == "mobilenet0.25" else 256


class RetinaFace(nn.Module):
    """Backbone -> FPN -> SSH per level -> class / box / landmark heads (two anchors per cell)."""

    def __init__(self, config: RetinaFaceConfig | None = None) -> None:
        super().__init__()
        self.config = config or RetinaFaceConfig()
        self.body = MobileNetV1x025() if self.config.backbone == "mobilenet0.25" else ResNet50()
        out = self.config.fpn_channels
        self.fpn = FPN(self.body.channels, out)
        self.ssh1, self.ssh2, self.ssh3 = SSH(out, out), SSH(out, out), SSH(out, out)
        self.ClassHead = nn.ModuleList(_Head(out, 2) for _ in range(3))
        self.BboxHead = nn.ModuleList(_Head(out, 4) for _ in range(3))
        self.LandmarkHead = nn.ModuleList(_Head(out, 10) for _ in range(3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x``: BGR minus (104, 117, 123), NCHW. Returns box offsets, face probability, landmark offsets."""
        p3, p4, p5 = self.fpn(self.body(x))
        feats = [self.ssh1(p3), self.ssh2(p4), self.ssh3(p5)]
        boxes = torch.cat([h(f) for h, f in zip(self.BboxHead, feats, strict=True)], 1)
        logits = torch.cat([h(f) for h, f in zip(self.ClassHead, feats, strict=True)], 1)
        points = torch.cat([h(f) for h, f in zip(self.LandmarkHead, feats, strict=True)], 1)
        return boxes, logits.softmax(-1)[..., 1], points


def prior_boxes(config: RetinaFaceConfig, height: int, width: int) -> np.ndarray:
    """Anchors (cx, cy, w, h) normalised by the image size, in the order the heads emit them."""
    out = []
    for step, sizes in zip(config.steps, config.min_sizes, strict=True):
        rows, cols = math.ceil(height / step), math.ceil(width / step)
        cy, cx = np.meshgrid(
            (np.arange(rows) + 0.5) * step / height, (np.arange(cols) + 0.5) * step / width, indexing="ij"
        )
        cell = np.empty((rows, cols, len(sizes), 4))
        cell[..., 0], cell[..., 1] = cx[..., None], cy[..., None]
        cell[..., 2] = np.array(sizes) / width
        cell[..., 3] = np.array(sizes) / height
        out.append(cell.reshape(-1, 4))
    return np.concatenate(out)


def decode(
    priors: np.ndarray, boxes: np.ndarray, points: np.ndarray, variances: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised (x1, y1, x2, y2) boxes and (5, 2) landmarks from the heads' offsets (SSD encoding)."""
    centre, size = priors[:, :2], priors[:, 2:]
    c = centre + boxes[:, :2] * variances[0] * size
    wh = size * np.exp(boxes[:, 2:] * variances[1])
    xyxy = np.concatenate([c - wh / 2, c + wh / 2], 1)
    landmarks = centre[:, None] + points.reshape(-1, 5, 2) * variances[0] * size[:, None]
    return xyxy, landmarks


def nms(boxes: np.ndarray, scores: np.ndarray, score_threshold: float, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy NMS, best first (OpenCV's implementation)."""
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1)
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), score_threshold, iou_threshold)
    return np.asarray(keep, np.int64).reshape(-1)


def load_retinaface(path: str | Path, backbone: Backbone) -> RetinaFace:
    """A RetinaFace with a biubug6 ``*_Final.pth`` state dict (tensors only: ``weights_only=True``)."""
    state = read_state_dict(path, "RetinaFace state dict")
    model = load_strict(RetinaFace(RetinaFaceConfig(backbone)), state, path, f"RetinaFace-{backbone}")
    return model.eval()


#: registry names of the two releases
ASSETS: dict[Backbone, str] = {"mobilenet0.25": "retinaface-mnet025", "resnet50": "retinaface-resnet50"}
_MEAN_BGR = np.array([104.0, 117.0, 123.0], np.float32)


class RetinaFaceDetector:
    """RetinaFace behind the :class:`FaceDetector` interface: RGB in, :class:`Detections` in frame pixels out.

    Frames whose longer side exceeds ``max_side`` are shrunk before detection (the official video
    script divides by floor(w / 640); large frames make the detector miss faces, PAPER.md §6.1).
    ``weights`` overrides the registered file, e.g. for a path the user has not added to the cache.
    """

    def __init__(
        self,
        backbone: Backbone = "mobilenet0.25",
        weights: str | Path | None = None,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.4,
        max_side: int = 640,
        device: str | torch.device = "cpu",
    ) -> None:
        self.score_threshold, self.nms_threshold, self.max_side = score_threshold, nms_threshold, max_side
        self.device = torch.device(device)
        path = weights if weights is not None else assets.resolve(ASSETS[backbone])
        self.model = load_retinaface(path, backbone).to(self.device)
        self._priors: dict[tuple[int, int], np.ndarray] = {}

    def _priors_for(self, height: int, width: int) -> np.ndarray:
        key = (height, width)
        if key not in self._priors:
            self._priors = {key: prior_boxes(self.model.config, height, width)}  # video: one size, keep one
        return self._priors[key]

    @torch.inference_mode()
    def detect(self, image: np.ndarray) -> Detections:
        h, w = image.shape[:2]
        factor = downscale_factor(h, w, self.max_side)
        if factor < 1.0:
            image = cv2.resize(
                image, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA
            )
        sh, sw = image.shape[:2]
        if too_small(sh, sw):
            return Detections.empty()
        x = image[..., ::-1].astype(np.float32) - _MEAN_BGR
        x = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].to(self.device)
        boxes, scores, points = (t[0].float().cpu().numpy() for t in self.model(x))
        candidates = np.flatnonzero(scores >= self.score_threshold)
        if len(candidates) == 0:
            return Detections.empty()
        config = self.model.config
        xyxy, landmarks = decode(
            self._priors_for(sh, sw)[candidates], boxes[candidates], points[candidates], config.variances
        )
        # back to the caller's pixels: normalised coordinates times the *original* frame size
        xyxy *= np.array([w, h, w, h])
        landmarks *= np.array([w, h])
        keep = nms(xyxy, scores[candidates], self.score_threshold, self.nms_threshold)
        found = Detections(xyxy[keep].astype(np.float32), scores[candidates][keep], landmarks[keep].astype(np.float32))
        return found.sorted()
