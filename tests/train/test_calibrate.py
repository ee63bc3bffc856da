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


def test_shipped_sface_margins_fit_sface_and_its_presets():
    from facedancer.identity import SFace
    from facedancer.presets import list_presets, load_preset
    from facedancer.train.ifsr import Margins

    m = Margins.load("ifsr_margins_sface")
    assert m.encoder == "sface" and m.provenance["command"].startswith("facedancer calibrate-ifsr")
    assert set(m.margins) <= set(SFace().feature_names) and all(0 < v < 1 for v in m.margins.values())
    for name in list_presets():
        p = load_preset(name)
        if p.identity.encoder == "sface" and p.ifsr.enabled:
            assert p.ifsr.margins == "ifsr_margins_sface", name


def test_calibrate_ifsr_end_to_end_on_lfw_with_the_classical_swapper(cli, lfw_crops, tmp_path):
    from facedancer.train.ifsr import Margins

    out, png = tmp_path / "margins.json", tmp_path / "dist.png"
    r = cli("calibrate-ifsr", lfw_crops, "--out", out, "--plot", png, "--pairs", "24", "--eer-max", "0.1")
    assert r.returncode == 0, r.stderr
    m = Margins.load(out)
    assert m.encoder == "sface" and len(m.statistics) == 27 and m.provenance["triplets"] == 24
    assert m.provenance["command"].startswith("facedancer calibrate-ifsr") and "--pairs 24" in m.provenance["command"]
    first = m.statistics["conv_1"]
    # a swap changes only the inner face: early blocks stay far closer to the target than to the source
    assert first["target_changed"]["mean"] < 0.5 * first["changed_source"]["mean"] and "conv_1" in m.margins
    assert all(s["target_source"]["mean"] > s["target_changed"]["mean"] for s in m.statistics.values())
    assert cv2.imread(str(png)) is not None


def test_calibrate_from_triplets_and_from_a_generator_checkpoint(lfw_crops, tmp_path):
    from facedancer.nn import Generator, GeneratorConfig
    from facedancer.train.calibrate import calibrate

    g = Generator(
        GeneratorConfig(
            image_size=32, identity_dim=128, base_channels=8, max_channels=16, mapping_width=16, fusion={32: "concat"}
        )
    )
    g.save_pretrained(tmp_path / "g", meta={"identity_encoder": "sface"})
    m = calibrate(lfw_crops, tmp_path / "m.json", swapper=str(tmp_path / "g"), pairs=6, blocks=["conv_2", "conv_4"])
    assert list(m.margins) == ["conv_2", "conv_4"] and m.provenance["swapper"] == str(tmp_path / "g")

    for part in ("target", "source", "changed"):
        (tmp_path / "t" / part).mkdir(parents=True)
    files = sorted(lfw_crops.glob("crops/*/*.png"))
    for i in range(4):
        for part, f in zip(("target", "source", "changed"), (files[i], files[-1 - i], files[i]), strict=True):
            (tmp_path / "t" / part / f"{i}.png").write_bytes(f.read_bytes())
    m = calibrate(tmp_path / "t", tmp_path / "m2.json", eer_max=1.0)
    # "changed" is the target itself: every target-changed distance is zero
    assert all(abs(s["target_changed"]["mean"]) < 1e-5 for s in m.statistics.values())
    assert m.provenance["data_kind"] == "triplet folder"
