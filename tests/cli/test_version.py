"""``facedancer --version`` / ``-V``: the version written once, in ``facedancer/__init__.py``."""

import tomllib
from pathlib import Path

import pytest
from packaging.version import Version

import facedancer

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_prints_the_distribution_and_package_version(run, flag):
    code, out, err = run(flag)
    assert (code, out, err) == (0, f"facedancer-pytorch {facedancer.__version__}\n", "")


def test_the_version_is_written_in_one_place():
    # pyproject declares no version of its own: hatch reads it from the package (the wheel's metadata
    # carrying the same number is checked in tests/test_packaging.py)
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert REPO / project["tool"]["hatch"]["version"]["path"] == REPO / "src" / "facedancer" / "__init__.py"
    assert str(Version(facedancer.__version__)) == facedancer.__version__  # PEP 440, as the wheel needs
