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


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never write to the user's cache, nor see each other's."""
    monkeypatch.setenv("FACEDANCER_HOME", str(tmp_path / "facedancer-home"))


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
