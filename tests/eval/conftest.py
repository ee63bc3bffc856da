"""Evaluation fixtures: the third-party weights from ../shared/weights, loaded once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

TDDFA_FILES = {"3ddfa-v2-mb05": "mb05_120x120.pth", "3ddfa-v2-param-stats": "param_mean_std_62d_120x120.pkl"}
FSANET_FILES = {"fsanet-1x1": "fsanet-1x1-iter-688590.onnx", "fsanet-var": "fsanet-var-iter-688590.onnx"}


@pytest.fixture(scope="session")
def tddfa_dir(shared: Path) -> Path:
    return shared / "weights" / "3ddfa_v2_mb05"


@pytest.fixture(scope="session")
def fsanet_dir(shared: Path) -> Path:
    return shared / "weights" / "fsanet_headpose"


@pytest.fixture(scope="session")
def tddfa(tddfa_dir: Path):
    from facedancer.eval import TDDFA

    return TDDFA.load(*(tddfa_dir / f for f in TDDFA_FILES.values()))


@pytest.fixture(scope="session")
def fsanet(fsanet_dir: Path):
    pytest.importorskip("onnxruntime")
    from facedancer.eval import FSANet

    return FSANet([fsanet_dir / f for f in FSANET_FILES.values()])


@pytest.fixture(scope="session")
def aflw(shared: Path):
    from facedancer.eval.datasets import read_aflw2000

    return read_aflw2000(shared / "data" / "aflw2000")


@pytest.fixture(scope="session")
def instruments(tddfa):
    """Every instrument of the evaluation, third-party weights from ../shared."""
    pytest.importorskip("dlib")
    from facedancer.eval import DlibRecogniser, InceptionFeatures
    from facedancer.eval.runner import Instruments
    from facedancer.faces import YuNetDetector

    return Instruments(
        YuNetDetector(), {"id": DlibRecogniser(), "pose": tddfa, "expression": tddfa, "fid": InceptionFeatures()}
    )


@pytest.fixture
def registered_weights(tddfa_dir: Path) -> None:
    """The 3DDFA_V2 files in this test's asset cache, as ``facedancer models add`` puts them (for CLI runs)."""
    from facedancer import assets

    for name, filename in TDDFA_FILES.items():
        assets.add(name, tddfa_dir / filename)


@pytest.fixture(scope="session")
def small_videos(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of three short 480x480 talking-head clips (links to ../shared, nothing copied)."""
    root = tmp_path_factory.mktemp("videos")
    for name in ("d18", "d19", "d20"):
        (root / f"{name}.mp4").symlink_to(shared / "data" / "videos" / "liveportrait" / f"{name}.mp4")
    return root
