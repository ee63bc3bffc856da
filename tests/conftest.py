"""Shared test fixtures: where the research data lives, and small helpers.

Research data (LFW, AFLW2000, videos, third-party weights) is never in the repo: tests read it from
``$FACEDANCER_TEST_DATA`` or ``../shared`` beside the checkout, and skip with a reason when it is absent.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

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


@pytest.fixture(scope="session")
def random_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small randomly initialised SFace-conditioned generator saved as a model directory."""
    from facedancer.nn import Generator, GeneratorConfig

    torch.manual_seed(0)
    cfg = GeneratorConfig(
        identity_dim=128,
        base_channels=8,
        max_channels=32,
        mapping_width=32,
        fusion={32: "affa", 64: "affa", 128: "affa", 256: "concat"},
    )
    path = tmp_path_factory.mktemp("models") / "random-init"
    Generator(cfg).save_pretrained(path, meta={"identity_encoder": "sface"})
    return path
