import cv2
import numpy as np
import pytest

from facedancer.errors import InputError
from facedancer.train.calibrate import KINDS, equal_error_rate, folder_triplets, plot, summarise


def _distances(rng, blocks):
    """Fake distances: the first blocks separate target-changed from changed-source, the rest overlap."""
    out = {}
    for i, name in enumerate(blocks):
        gap = 0.3 if i < 2 else 0.0
        out[name] = {
            "target_changed": rng.normal(0.1 + 0.05 * i, 0.02, 200).clip(0),
            "changed_source": rng.normal(0.1 + 0.05 * i + gap, 0.02, 200).clip(0),
            "target_source": rng.normal(0.5, 0.05, 200),
        }
    return out


def test_equal_error_rate():
    assert equal_error_rate(np.array([0.1, 0.2]), np.array([0.5, 0.6])) == 0.0
    assert equal_error_rate(np.array([0.5, 0.6]), np.array([0.1, 0.2])) == 1.0
    rng = np.random.default_rng(0)
    same = rng.normal(0, 1, 5000)
    assert equal_error_rate(same, rng.normal(0, 1, 5000)) == pytest.approx(0.5, abs=0.03)
    assert equal_error_rate(same, rng.normal(2, 1, 5000)) == pytest.approx(0.159, abs=0.02)  # Phi(-1)


def test_summarise_selects_separable_blocks_and_margins_are_mean_t2c(tmp_path):
    d = _distances(np.random.default_rng(0), ["b1", "b2", "b3", "b4"])
    m = summarise("tiny", d, eer_max=0.05, provenance={"command": "x"})
    assert list(m.margins) == ["b1", "b2"]
    assert m.margins["b1"] == pytest.approx(d["b1"]["target_changed"].mean())
    assert set(m.statistics["b3"]) == {*KINDS, "eer"} and m.statistics["b3"]["eer"] > 0.3
    assert list(summarise("tiny", d, blocks=["b4", "b1"]).margins) == ["b1", "b4"]  # encoder order
    with pytest.raises(InputError, match="unknown blocks"):
        summarise("tiny", d, blocks=["b9"])
    with pytest.raises(InputError, match="no block"):
        summarise("tiny", d, eer_max=-1)
    path = plot(m, tmp_path / "dist.png")
    image = cv2.imread(str(path))
    assert image is not None and image.shape[1] >= 800


def test_folder_triplets(tmp_path):
    for part in ("target", "source", "changed"):
        (tmp_path / part).mkdir()
        for i in range(3):
            cv2.imwrite(str(tmp_path / part / f"{i}.png"), np.full((64, 64, 3), i * 10, np.uint8))
    triplets = list(folder_triplets(tmp_path))
    assert len(triplets) == 3 and triplets[2].changed[0, 0, 0] == 20
    (tmp_path / "source" / "1.png").unlink()
    with pytest.raises(InputError, match="missing or unreadable"):
        list(folder_triplets(tmp_path))
