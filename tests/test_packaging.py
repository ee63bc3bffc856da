"""The wheel: built from the checkout, installed in a fresh virtual environment, run from another folder.

What is checked is that the installed package needs nothing but itself: its presets, IFSR margins and
bundled weights come from the wheel, never from the source tree or ``../shared``. The default test stays
offline: the fresh environment borrows this environment's installed dependencies through a path file,
which puts their folders on ``sys.path`` without running their own path files (so this checkout's
editable install stays out). The slow test installs the wheel with its dependencies as a user does.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
import torch

import facedancer
from facedancer.bundle import bundle_model
from facedancer.swap import DEFAULT_MODEL
from facedancer.train.ifsr import Margins

REPO = Path(__file__).resolve().parents[1]
#: what the build reads from a checkout
BUILD_INPUTS = ("src", "pyproject.toml", "README.md", "LICENSE", ".gitignore")


def _pip(*args: str | Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *map(str, args)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory, random_model: Path) -> Path:
    """The wheel of a copy of this checkout with a model bundled as the default (no weights are committed)."""
    root = tmp_path_factory.mktemp("wheel")
    project = root / "project"
    for name in BUILD_INPUTS:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            project.mkdir(exist_ok=True)
            shutil.copy2(source, project / name)
    bundle_model(random_model, project / "src" / "facedancer" / "weights" / DEFAULT_MODEL, "# test model")
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", root / "dist", project)
    (built,) = (root / "dist").glob("*.whl")
    return built


def _fresh_venv(path: Path, with_pip: bool) -> Path:
    subprocess.run(
        [sys.executable, "-m", "venv", *([] if with_pip else ["--without-pip"]), path],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return path / "bin"


@pytest.fixture(scope="module")
def offline_install(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel alone, with this environment's dependencies borrowed (no index)."""
    bin_dir = _fresh_venv(tmp_path_factory.mktemp("venv") / "venv", with_pip=False)
    _pip("--python", bin_dir / "python", "install", "--no-deps", "--no-index", wheel)
    site = subprocess.run(
        [bin_dir / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    borrowed = dict.fromkeys(sysconfig.get_path(key) for key in ("purelib", "platlib"))
    (Path(site) / "_borrowed_dependencies.pth").write_text("\n".join(borrowed) + "\n", encoding="utf-8")
    return bin_dir


def _run(bin_dir: Path, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(
        [str(bin_dir / args[0]), *map(str, args[1:])], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )


def check_installed(bin_dir: Path, lfw: Path, elsewhere: Path) -> None:
    """Everything a user does first, from a folder that is not the checkout."""
    elsewhere.mkdir()
    probe = "import facedancer, sys; print(facedancer.__file__); print(sys.path)"
    where = _run(bin_dir, "python", "-c", probe, cwd=elsewhere)
    assert where.returncode == 0, where.stderr
    package_file, path = where.stdout.splitlines()
    assert Path(package_file).is_relative_to(bin_dir.parent), package_file
    # (a borrowed dependency folder may lie inside the checkout, as .venv/ does: only src/ and the data are out)
    entries = [Path(entry).resolve() for entry in ast.literal_eval(path) if entry]
    outside = (REPO / "src", (REPO.parent / "shared").resolve())
    assert not [e for e in entries if e == REPO or any(e.is_relative_to(o) for o in outside)], path

    version = _run(bin_dir, "facedancer", "--version", cwd=elsewhere)
    assert (version.returncode, version.stdout) == (0, f"facedancer-pytorch {facedancer.__version__}\n"), version.stderr

    describe = _run(bin_dir, "facedancer", "describe", "facedancer", cwd=elsewhere)
    assert describe.returncode == 0 and "G = 24,505,894" in describe.stdout, describe.stderr

    margins = _run(
        bin_dir,
        "python",
        "-c",
        "from facedancer.train.ifsr import Margins; m = Margins.load('ifsr_margins_sface'); print(sorted(m.margins))",
        cwd=elsewhere,
    )
    assert margins.returncode == 0, margins.stderr
    assert margins.stdout.strip() == str(sorted(Margins.load("ifsr_margins_sface").margins))

    source, target = lfw / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg", lfw / "Adrien_Brody" / "Adrien_Brody_0001.jpg"
    for name, model in [("classical.jpg", ["--model", "classical"]), ("bundled.jpg", [])]:
        swap = _run(bin_dir, "facedancer", "swap", "-s", source, "-t", target, "-o", name, *model, cwd=elsewhere)
        assert swap.returncode == 0, swap.stderr
        label = _run(bin_dir, "facedancer", "inspect", name, cwd=elsewhere)
        assert label.returncode == 0, label.stdout + label.stderr
        assert f"model: {model[1] if model else DEFAULT_MODEL}" in label.stdout


def test_wheel_holds_package_data_metadata_and_command(wheel):
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(whl.read(info).decode())
        entry_points = whl.read(info.replace("METADATA", "entry_points.txt")).decode()
    configs = {f"facedancer/configs/{p.name}" for p in (REPO / "src" / "facedancer" / "configs").iterdir()}
    assert configs and configs <= names  # every preset and the shipped IFSR margins
    assert {f"facedancer/weights/{DEFAULT_MODEL}/{f}" for f in ("config.json", "model.safetensors")} <= names
    assert {n.split("/")[0] for n in names} == {"facedancer", info.split("/")[0]}  # no tests, benchmarks, docs
    assert (meta["Name"], meta["Version"]) == ("facedancer-pytorch", facedancer.__version__)
    assert meta["Requires-Python"] == ">=3.11"
    assert "facedancer = facedancer.cli:main" in entry_points


def test_installed_wheel_works_outside_the_checkout(offline_install, lfw, tmp_path):
    check_installed(offline_install, lfw, tmp_path / "elsewhere")


@pytest.mark.slow
def test_wheel_installs_with_its_dependencies(wheel, lfw, tmp_path):
    """As a user installs it: a fresh venv, this torch build first (never a CUDA one), the wheel from the index."""
    bin_dir = _fresh_venv(tmp_path / "venv", with_pip=True)
    pip = [bin_dir / "python", "-m", "pip", "--disable-pip-version-check", "-q", "install"]
    subprocess.run([*pip, f"torch=={torch.__version__}"], check=True, capture_output=True, timeout=1200)
    subprocess.run([*pip, wheel], check=True, capture_output=True, timeout=1200)
    check_installed(bin_dir, lfw, tmp_path / "elsewhere")
