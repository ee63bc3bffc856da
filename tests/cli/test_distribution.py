"""The other ``facedancer`` distribution (a USB library with the same import name) is named in one line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from facedancer.cli.distribution import clash

SRC = Path(__file__).resolve().parents[2] / "src"
USB_SUMMARY = (
    "Implement your own USB device in Python, supported by a hardware peripheral such as Cynthion or GreatFET."
)


@pytest.fixture
def usb_facedancer(tmp_path: Path) -> Path:
    """A folder holding the metadata that ``pip install facedancer`` (3.1.3, the USB library) writes."""
    info = tmp_path / "site" / "facedancer-3.1.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.4\nName: facedancer\nVersion: 3.1.3\nSummary: {USB_SUMMARY}\n", encoding="utf-8"
    )
    return info.parent


def test_no_clash_in_this_environment():
    assert clash() is None


def test_clash_names_the_other_distribution_and_the_cure(usb_facedancer, monkeypatch):
    monkeypatch.syspath_prepend(str(usb_facedancer))
    message = clash()
    assert message is not None and "\n" not in message
    assert "'facedancer' 3.1.3 (Implement your own USB device" in message
    assert "facedancer-pytorch" in message and "pip uninstall facedancer" in message


def test_cli_refuses_to_start_beside_it_with_one_line(usb_facedancer):
    # a real process: the check runs when facedancer.cli is imported, before any command module
    result = subprocess.run(
        [sys.executable, "-m", "facedancer", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(usb_facedancer)])},
    )
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the distribution 'facedancer' 3.1.3"), result.stderr
