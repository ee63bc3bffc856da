import numpy as np
import pytest
import torch

from facedancer.nn import Generator, GeneratorConfig


def test_describe_facedancer_prints_paper_counts(cli):
    r = cli("describe", "facedancer")
    assert r.returncode == 0, r.stderr
    assert "G = 24,505,894" in r.stdout and "mapping 1,050,624" in r.stdout and "D = 23,972,353" in r.stdout
    assert r.stdout.count("affa") >= 3 and "concat" in r.stdout


def test_describe_model_directory(cli, tmp_path):
    Generator(
        GeneratorConfig(
            image_size=64, base_channels=8, max_channels=16, mapping_width=16, identity_dim=16, fusion={64: "concat"}
        )
    ).save_pretrained(tmp_path)
    r = cli("describe", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "64x64" in r.stdout


def test_unknown_preset_is_one_line_exit_2(cli):
    r = cli("describe", "nope")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "unknown preset" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_checkpoint_is_one_line_exit_2(cli, tmp_path, damage):
    Generator(
        GeneratorConfig(
            image_size=64, base_channels=8, max_channels=16, mapping_width=16, identity_dim=16, fusion={64: "concat"}
        )
    ).save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x00garbage" * 100)
    r = cli("export", tmp_path, "-o", tmp_path / "m.onnx")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0
    assert "model.safetensors is truncated or corrupt" in r.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_onnx_export_gives_the_torch_output(cli, random_model, tmp_path):
    """``facedancer export`` of a small 256 px generator: dynamic batch, the torch output within 1e-4."""
    ort = pytest.importorskip("onnxruntime")
    r = cli("export", random_model, "-o", tmp_path / "g.onnx")
    assert r.returncode == 0, r.stderr
    g = Generator.from_pretrained(random_model).eval()
    session = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    torch.manual_seed(0)
    for batch in (1, 3):
        x, z = torch.rand(batch, 3, 256, 256) * 2 - 1, torch.randn(batch, g.config.identity_dim)
        (y_onnx,) = session.run(None, {"target": x.numpy(), "identity": z.numpy()})
        with torch.no_grad():
            y = g(x, z).numpy()
        assert y_onnx.shape == y.shape and np.abs(y_onnx - y).max() <= 1e-4


# slow (1 min): the paper-size export; the small export above and tests/swap/test_backends.py's ONNX Runtime
# parity on real faces run by default
@pytest.mark.slow
def test_onnx_export_parity_at_256(cli, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    g = Generator().eval()  # the paper generator, 256 px
    g.save_pretrained(tmp_path / "model")
    r = cli("export", tmp_path / "model", "-o", tmp_path / "g.onnx")
    assert r.returncode == 0, r.stderr
    session = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 3):  # the batch axis is dynamic
        x, z = torch.randn(batch, 3, 256, 256), torch.randn(batch, 512)
        (y_onnx,) = session.run(None, {"target": x.numpy(), "identity": z.numpy()})
        with torch.no_grad():
            y = g(x, z).numpy()
        assert y_onnx.shape == y.shape
        assert np.abs(y_onnx - y).max() <= 1e-4
