"""The ONNX export's checks before any work: the missing extra is named by the distribution users install."""

from __future__ import annotations

import sys

import pytest

from facedancer.errors import FacedancerError
from facedancer.export import check_target


@pytest.mark.parametrize("missing", ["onnx.defs", "onnxscript"])
def test_a_missing_exporter_names_the_pip_distribution(monkeypatch, tmp_path, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # an import of it now raises ImportError
    with pytest.raises(FacedancerError) as caught:
        check_target(tmp_path / "g.onnx", 18)
    assert "pip install 'facedancer-pytorch[export]'" in str(caught.value)
