"""Shared test fixtures: where the research data lives, and small helpers.

Research data (LFW, AFLW2000, videos, third-party weights) is never in the repo: tests read it from
``$FACEDANCER_TEST_DATA`` or ``../shared`` beside the checkout, and skip with a reason when it is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from support import SMALL_AFFA_GENERATOR

REPO = Path(__file__).resolve().parents[1]


def shared_root() -> Path:
    return Path(os.environ.get("FACEDANCER_TEST_DATA") or REPO.parent / "shared")


@pytest.fixture(scope="session")
def shared() -> Path:
    root = shared_root()
    if not (root / "data").is_dir():
        pytest.skip(f"research data not found at {root} (set FACEDANCER_TEST_DATA)")
    return root


@pytest.fixture(scope="session")
def lfw(shared: Path) -> Path:
    return shared / "data" / "lfw"


@pytest.fixture(scope="session")
def _exported_graphs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("graphs")


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, _exported_graphs: Path
) -> None:
    """Tests never write to the user's cache, nor see each other's, except the exported generator graphs:
    those are keyed by the weights' digest (one model, one graph), and exporting takes seconds a model.
    The cache lies outside ``tmp_path``, which tests may expect to hold only what they wrote."""
    home = tmp_path_factory.mktemp("facedancer-home")
    (home / "graphs").symlink_to(_exported_graphs, target_is_directory=True)
    monkeypatch.setenv("FACEDANCER_HOME", str(home))


def pytest_configure(config: pytest.Config) -> None:
    # two xdist workers on two cores: one intra-op thread each avoids oversubscription
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)
    # A shell without job control starts background jobs with SIGINT ignored, and an ignored signal stays
    # ignored in every child: the tests that Ctrl-C a `facedancer` subprocess would see it shrug. Children
    # of a process that handles SIGINT start with the default action, as from a terminal.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the real ``facedancer`` entry point in a subprocess (exit codes and stderr as users see them)."""
    return subprocess.run(
        [sys.executable, "-m", "facedancer", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )


@pytest.fixture(scope="session")
def cli():
    return run_cli


@pytest.fixture
def run(monkeypatch, capsys):
    """Call the CLI's ``main`` in-process: (exit code, stdout, stderr)."""
    from facedancer.cli import main

    def call(*args):
        monkeypatch.setattr(sys, "argv", ["facedancer", *map(str, args)])
        try:
            main()
            code = 0
        except SystemExit as e:
            code = e.code or 0
        out, err = capsys.readouterr()
        return code, out, err

    return call


@pytest.fixture
def one_thread():
    """One intra-op thread, as the pytest-xdist workers run: torch's reductions split differently over more
    threads (bit-exact outputs), and on two shared cores two threads make CPU training many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def random_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small randomly initialised SFace-conditioned generator saved as a model directory."""
    from facedancer.nn import Generator, GeneratorConfig

    torch.manual_seed(0)
    cfg = GeneratorConfig(**SMALL_AFFA_GENERATOR)
    path = tmp_path_factory.mktemp("models") / "random-init"
    Generator(cfg).save_pretrained(path, meta={"identity_encoder": "sface"})
    return path


@pytest.fixture(scope="session")
def official_keras(shared: Path) -> Path:
    """Small Keras .h5 files made with the official FaceDancer code, and their TensorFlow outputs (README.md)."""
    root = shared / "fixtures" / "official-keras"
    if not (root / "tiny_g_configC.h5").is_file():
        pytest.skip(f"the official Keras fixtures are not at {root}")
    return root


def edit_keras(
    src: Path, dst: Path, config: Callable[[dict], None] | None = None, weights: Callable | None = None
) -> Path:
    """A copy of a full-model Keras .h5 with its architecture JSON and/or weight groups changed in place."""
    import h5py

    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        if config is not None:
            spec = json.loads(f.attrs["model_config"])
            config(spec)
            f.attrs["model_config"] = json.dumps(spec)
        if weights is not None:
            weights(f["model_weights"])
    return dst


def split_keras(src: Path, dst: Path, json_path: Path | None = None) -> tuple[Path, Path | None]:
    """What the official train.py writes for ``src``: a save_weights() .h5 (layer groups at the root) and,
    when ``json_path`` is given, the model.to_json() beside it."""
    import h5py

    with h5py.File(src, "r") as f, h5py.File(dst, "w") as out:
        for name, value in f["model_weights"].attrs.items():
            out.attrs[name] = value
        for name in f["model_weights"]:
            f.copy(f["model_weights"][name], out, name)
        spec = f.attrs["model_config"]
    if json_path is not None:
        json_path.write_text(spec if isinstance(spec, str) else spec.decode())
    return dst, json_path


@pytest.fixture(scope="session")
def keras_split() -> Callable[..., tuple[Path, Path | None]]:
    """:func:`split_keras`: a full-model fixture as a weights-only checkpoint (+ its JSON)."""
    return split_keras


@pytest.fixture(scope="session")
def keras_edit() -> Callable[..., Path]:
    """:func:`edit_keras` for tests that build bad or variant Keras files from the fixtures."""
    return edit_keras


def _weight_names(group) -> list[str]:
    return [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs["weight_names"]]


def _replace(group, key: str, data) -> None:
    del group[key]
    group[key] = data


def resize_arcface(src: Path, dst: Path, dim: int, seed: int = 0) -> Path:
    """``src`` (the fixture ArcFace) with a ``dim``-d embedding.

    The fixture generators take 16-d identities and the fixture ArcFace gives 32-d ones. Cutting its Dense and
    the BatchNorm after it to the first 16 units gives exactly the first 16 values of the original embedding
    (both act per unit): an encoder those generators fit. Wider sizes get random extra units (512: the size
    of the real ArcFace-Res50, which presets expect).
    """
    import numpy as np

    rng, names = np.random.default_rng(seed), {}

    def grow(array, axis: int, fill):
        if dim <= array.shape[axis]:
            return array[:, :dim] if axis else array[:dim]
        shape = list(array.shape)
        shape[axis] = dim - array.shape[axis]
        return np.concatenate([array, fill(shape).astype(array.dtype)], axis=axis)

    def config(spec: dict) -> None:
        head = next(x for x in spec["config"]["layers"] if x["name"] == spec["config"]["output_layers"][0][0])
        layers = head["config"]["layers"]
        dense = next(x for x in layers if x["class_name"] == "Dense")
        dense["config"]["units"] = dim
        bn = next(x for x in layers if x["inbound_nodes"] and x["inbound_nodes"][0][0][0] == dense["name"])
        names.update(group=head["name"], dense=dense["name"], bn=bn["name"])

    def weights(root) -> None:
        group = root[names["group"]]
        for key in _weight_names(group):
            layer, variable = key.split("/")[-2:]
            data = np.asarray(group[key])
            if layer == names["dense"]:
                axis = 1 if variable.startswith("kernel") else 0
                _replace(group, key, grow(data, axis, lambda s: rng.normal(0, 0.05, s)))
            elif layer == names["bn"]:
                low = 0.5 if variable.startswith(("gamma", "moving_variance")) else -0.5
                _replace(group, key, grow(data, 0, lambda s, low=low: rng.uniform(low, low + 1, s)))

    return edit_keras(src, dst, config, weights)


def widen_identity(src: Path, dst: Path, dim: int, seed: int = 0) -> Path:
    """``src`` (a fixture generator) taking ``dim``-d identities: its first mapping Dense gets random extra rows."""
    import numpy as np

    names: dict[str, str] = {}

    def config(spec: dict) -> None:
        layers = spec["config"]["layers"]
        vector = next(
            x for x in layers if x["class_name"] == "InputLayer" and len(x["config"]["batch_input_shape"]) == 2
        )
        vector["config"]["batch_input_shape"] = [None, dim]
        names["dense"] = next(
            x["name"] for x in layers if x["inbound_nodes"] and x["inbound_nodes"][0][0][0] == vector["name"]
        )

    def weights(root) -> None:
        group = root[names["dense"]]
        key = next(k for k in _weight_names(group) if "kernel" in k)
        kernel = np.asarray(group[key])
        extra = np.random.default_rng(seed).normal(0, 0.05, (dim - kernel.shape[0], kernel.shape[1]))
        _replace(group, key, np.concatenate([kernel, extra.astype(kernel.dtype)]))

    return edit_keras(src, dst, config, weights)


@pytest.fixture(scope="session")
def arcface16(official_keras: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture ArcFace cut to the 16-d identities the fixture generators take."""
    return resize_arcface(official_keras / "tiny_arcface.h5", tmp_path_factory.mktemp("arcface") / "arcface16.h5", 16)


@pytest.fixture(scope="session")
def official_model(official_keras: Path, arcface16: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A converted official model that can swap: the config C fixture (64 px), its 16-d ArcFace and the
    fixture discriminator, as `facedancer convert-official` writes it."""
    from facedancer.official import convert_official

    out = tmp_path_factory.mktemp("official") / "tiny_config_c"
    return convert_official(official_keras / "tiny_g_configC.h5", out, arcface16, official_keras / "tiny_d.h5")


@pytest.fixture(scope="session")
def official_model_512(official_keras: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A converted official model with ArcFace-Res50's 512-d identities (the fixtures widened), so that the
    ``arcface-keras-r50`` presets and IFSR margins apply to it: for fine-tuning tests."""
    from facedancer.official import convert_official

    tmp = tmp_path_factory.mktemp("official512")
    generator = widen_identity(official_keras / "tiny_g_configC.h5", tmp / "tiny_g_configC_512.h5", 512)
    arcface = resize_arcface(official_keras / "tiny_arcface.h5", tmp / "tiny_arcface_512.h5", 512)
    return convert_official(generator, tmp / "model", arcface, official_keras / "tiny_d.h5")


@pytest.fixture(scope="session")
def small_clip(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve frames of a talking head (liveportrait/d0.mp4) at 192x192 px, 25 fps: a video that swaps in seconds."""
    import cv2

    from facedancer.io import VideoReader, VideoWriter

    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    with (
        VideoReader(shared / "data/videos/liveportrait/d0.mp4", max_frames=12) as reader,
        VideoWriter(path, None, fps=reader.fps, preset="ultrafast") as writer,
    ):
        for frame in reader:
            writer.write(cv2.resize(frame, (192, 192), interpolation=cv2.INTER_AREA))
    return path
