"""RetinaFace: biubug6 state-dict compatibility, decoding, and agreement with YuNet and ground truth."""

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from facedancer import assets
from facedancer.errors import AssetError, CheckpointError
from facedancer.faces import RetinaFaceDetector, YuNetDetector
from facedancer.faces.retinaface import RetinaFace, RetinaFaceConfig, decode, load_retinaface, prior_boxes


@pytest.fixture(scope="module")
def mnet_weights(shared: Path) -> Path:
    return shared / "weights" / "retinaface_mnet025" / "mobilenet0.25_Final.pth"


@pytest.fixture(scope="module")
def retina(mnet_weights: Path) -> RetinaFaceDetector:
    return RetinaFaceDetector(weights=mnet_weights)


@pytest.fixture(scope="module")
def yunet() -> YuNetDetector:
    return YuNetDetector()


def rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_resnet50_has_torchvision_names_and_size():
    state = RetinaFace(RetinaFaceConfig("resnet50")).state_dict()
    for key in ("body.conv1.weight", "body.layer1.0.downsample.0.weight", "body.layer4.2.bn3.running_var"):
        assert key in state
    assert not any(k.startswith("body.fc") for k in state)
    body = sum(v.numel() for k, v in state.items() if k.startswith("body.") and "running" not in k and "num_b" not in k)
    assert body == 25_557_032 - 2048 * 1000 - 1000  # torchvision resnet50 without its classifier


def test_resnet50_loads_a_dataparallel_checkpoint_and_rejects_foreign_files(tmp_path):
    model = RetinaFace(RetinaFaceConfig("resnet50"))
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "Resnet50_Final.pth")  # as biubug6's load_model accepts
    loaded = load_retinaface(tmp_path / "Resnet50_Final.pth", "resnet50")
    x = torch.randn(1, 3, 64, 96)
    model.eval()
    for a, b in zip(model(x), loaded(x), strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_retinaface(tmp_path / "Resnet50_Final.pth", "mobilenet0.25")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    for junk in ("junk.pth", "tensor.pth"):
        with pytest.raises(CheckpointError, match="not a RetinaFace"):
            load_retinaface(tmp_path / junk, "resnet50")


def test_priors_and_decoding_follow_the_reference_layout():
    config = RetinaFaceConfig()
    priors = prior_boxes(config, 640, 640)
    assert priors.shape == (16800, 4)  # (80^2 + 40^2 + 20^2) cells x 2 anchors, as in biubug6's detect.py
    np.testing.assert_allclose(
        priors[:2], [[4 / 640, 4 / 640, 16 / 640, 16 / 640], [4 / 640, 4 / 640, 32 / 640, 32 / 640]]
    )
    assert prior_boxes(config, 250, 250).shape[0] == 2 * (32**2 + 16**2 + 8**2)  # ceil(250 / step) cells
    boxes, points = decode(priors[:1], np.zeros((1, 4)), np.zeros((1, 10)), config.variances)
    np.testing.assert_allclose(boxes[0] * 640, [-4, -4, 12, 12])  # zero offsets: the anchor itself
    np.testing.assert_allclose(points[0] * 640, np.full((5, 2), 4.0))


def test_mobilenet_release_loads_strictly(mnet_weights):
    model = load_retinaface(mnet_weights, "mobilenet0.25")
    assert sum(p.numel() for p in model.parameters()) == 426_608


def test_no_face_in_a_flat_image(retina):
    assert len(retina.detect(np.full((300, 400, 3), 128, np.uint8))) == 0


def _agreement(a: RetinaFaceDetector, b: YuNetDetector, files: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-point distances (px) between the two detectors' best-overlapping faces, and each face's size."""
    dists, iods, sizes = [], [], []
    for f in files:
        image = rgb(f)
        ra, yb = a.detect(image), b.detect(image)
        assert len(ra) and len(yb), f
        # the same face in both: the RetinaFace detection nearest YuNet's best
        j = int(np.argmin(np.linalg.norm(ra.landmarks.mean(1) - yb.landmarks[0].mean(0), axis=1)))
        dists.append(np.linalg.norm(ra.landmarks[j] - yb.landmarks[0], axis=1))
        iods.append(np.linalg.norm(yb.landmarks[0][1] - yb.landmarks[0][0]))
        sizes.append(np.sqrt(np.prod(yb.boxes[0][2:] - yb.boxes[0][:2])))
    return np.array(dists), np.array(iods), np.array(sizes)


def _report(name: str, d: np.ndarray, iod: np.ndarray, size: np.ndarray) -> None:
    n = d / iod[:, None]
    print(
        f"\n{name}: {len(d)} faces, IOD median {np.median(iod):.1f} px; distance px mean {d.mean():.2f} "
        f"median {np.median(d):.2f} max {d.max():.2f}; per point mean px {[round(float(v), 2) for v in d.mean(0)]}; "
        f"/IOD mean {n.mean():.3f} median {np.median(n):.3f} max {n.max():.3f}; "
        f"/box size mean {(d / size[:, None]).mean():.3f}"
    )


def test_retinaface_and_yunet_points_agree_on_lfw(retina, yunet, lfw):
    files = sorted(lfw.glob("*/*.jpg"))
    files = [files[i] for i in np.random.default_rng(0).choice(len(files), 60, replace=False)]
    d, iod, size = _agreement(retina, yunet, files)
    _report("LFW", d, iod, size)
    # faces are ~45 px between the eyes here: the detectors agree within a few pixels, same point order
    assert np.median(d) < 5 and d.mean() < 6
    assert np.all(d.mean(0) < 8)
    assert np.median(d / iod[:, None]) < 0.12


@pytest.fixture(scope="module")
def aflw_frontal(shared: Path) -> list[Path]:
    root = shared / "data" / "aflw2000"
    with (root / "pose_degrees.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if abs(float(r["yaw_deg"])) < 30 and abs(float(r["pitch_deg"])) < 30]
    return [root / r["image"] for r in rows[:50]]


def test_retinaface_and_yunet_points_agree_on_aflw2000(retina, yunet, aflw_frontal):
    d, iod, size = _agreement(retina, yunet, aflw_frontal)
    _report("AFLW2000 |yaw|,|pitch| < 30", d, iod, size)
    # IOD ~90 px: a few pixels, under a tenth of the eye distance
    assert np.median(d) < 8 and d.mean() < 9
    assert np.median(d / iod[:, None]) < 0.1


def _five_from_68(pt3d: np.ndarray) -> np.ndarray:
    """ArcFace-order points from the 68-point annotation: eye centres, nose tip, mouth corners."""
    p = pt3d[:2].T
    return np.array([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])


def test_both_detectors_match_aflw2000_ground_truth(retina, yunet, aflw_frontal):
    loadmat = pytest.importorskip("scipy.io").loadmat
    errors: dict[str, list[np.ndarray]] = {"RetinaFace": [], "YuNet": []}
    for f in aflw_frontal:
        pt3d = loadmat(str(f.with_suffix(".mat")))["pt3d_68"]
        truth = _five_from_68(pt3d)
        size = np.sqrt(np.prod(pt3d[:2].max(1) - pt3d[:2].min(1)))  # the usual AFLW2000 normaliser
        image = rgb(f)
        for name, detector in (("RetinaFace", retina), ("YuNet", yunet)):
            found = detector.detect(image)
            j = int(np.argmin(np.linalg.norm(found.landmarks.mean(1) - truth.mean(0), axis=1)))
            errors[name].append(np.linalg.norm(found.landmarks[j] - truth, axis=1) / size)
    for name, e in errors.items():
        e = np.array(e)
        print(
            f"\nAFLW2000 ground truth, {name}: NME (/ sqrt of the 68-point box area) mean {e.mean():.3f}, "
            f"per point {[round(float(v), 3) for v in e.mean(0)]}"
        )
        assert e.mean() < 0.06 and np.all(e.mean(0) < 0.08)  # a left/right swap would put two points ~0.4 off


@pytest.mark.parametrize("factor", [1, 5])
def test_large_frames_are_downscaled_and_reported_in_frame_pixels(mnet_weights, lfw, factor):
    image = rgb(sorted(lfw.glob("*/*.jpg"))[0])
    base = RetinaFaceDetector(weights=mnet_weights).detect(image).landmarks[0]
    big = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    found = RetinaFaceDetector(weights=mnet_weights, max_side=640).detect(big)
    assert np.abs(found.landmarks[0] / factor - base).max() < 6


def test_detectors_come_from_the_asset_registry(mnet_weights, tmp_path):
    with pytest.raises(AssetError, match="retinaface-mnet025 is not installed"):
        RetinaFaceDetector()
    assets.add("retinaface-mnet025", mnet_weights)  # what `facedancer models add` does
    assert len(RetinaFaceDetector().detect(np.full((64, 64, 3), 128, np.uint8))) == 0
    # ResNet-50 weights are user-supplied: any file in the biubug6 layout is accepted and loaded safely
    torch.save(RetinaFace(RetinaFaceConfig("resnet50")).state_dict(), tmp_path / "Resnet50_Final.pth")
    assets.add("retinaface-resnet50", tmp_path / "Resnet50_Final.pth")
    assert RetinaFaceDetector("resnet50").model.config.fpn_channels == 256
