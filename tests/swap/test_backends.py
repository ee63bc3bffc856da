"""Generator backends: each installed runtime matches torch fp32 on real faces, and ``auto`` chooses as documented."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from facedancer.errors import ConfigError
from facedancer.faces import YuNetDetector, align
from facedancer.identity import from_uint8, load_encoder
from facedancer.io import read_image
from facedancer.nn import Generator
from facedancer.swap import FaceSwapper, backends
from facedancer.swap.backends import AUTO_ORDER, PARITY_TOLERANCE, GeneratorRunner, installed

CPU = torch.device("cpu")
GRAPH_BACKENDS = ("onnxruntime", "openvino")


def _needs(backend: str):
    return pytest.mark.skipif(not installed(backend), reason=f"{backend} is not installed here")


@pytest.fixture(scope="module")
def generator(random_model) -> Generator:
    return Generator.from_pretrained(random_model).eval()


@pytest.fixture(scope="module")
def faces(lfw) -> tuple[torch.Tensor, torch.Tensor]:
    """Three real aligned 256 px target crops in [-1, 1], and SFace embeddings of three other people."""
    people = sorted(p for p in lfw.iterdir() if p.is_dir())[:6]
    detector, encoder = YuNetDetector(), load_encoder("sface")
    crops = {}
    for size in (256, 112):
        batch = []
        for person in people:
            image = read_image(next(iter(sorted(person.glob("*.jpg")))))
            batch.append(align(image, detector.detect(image).landmarks[0], size)[0])
        crops[size] = from_uint8(np.stack(batch))
    with torch.inference_mode():
        z = encoder(crops[112][3:])
    return crops[256][:3] * 2 - 1, z


@pytest.fixture
def fresh_home(tmp_path, monkeypatch):
    """A cache of this test's own: nothing exported or decided by another test."""
    home = tmp_path / "own-home"
    monkeypatch.setenv("FACEDANCER_HOME", str(home))
    return home


@pytest.mark.parametrize("backend", [pytest.param(b, marks=_needs(b)) for b in GRAPH_BACKENDS])
def test_backend_matches_torch_fp32_on_real_faces(backend, generator, faces):
    x, z = faces
    runner = GeneratorRunner(generator, CPU, backend, "fp32")
    assert (runner.runner.backend, runner.runner.precision) == (backend, "fp32")
    with torch.inference_mode():
        want = generator(x, z)
    for batch in (x[:1], x):  # batch 1 and 3: the graph's batch axis is dynamic (OpenVINO compiles each)
        got = runner(batch, z[: len(batch)])
        error = (got - want[: len(batch)]).abs().max().item()
        print(f"{backend} batch {len(batch)}: max |difference| from torch fp32 {error:.2e}")
        assert error <= PARITY_TOLERANCE


# slow (45 s of compilation): tests/swap/test_models.py compiles the same tiny-64 generator, checks that it
# compiled and that it swaps as the eager one does
@pytest.mark.slow
def test_compile_backend_matches_eager():
    from facedancer.presets import load_preset

    torch.manual_seed(0)
    small = Generator(load_preset("tiny-64").generator).eval()  # compiles in seconds
    x, z = backends.probe_inputs(small)
    runner = GeneratorRunner(small, CPU, "compile", "fp32")
    with torch.inference_mode():
        want = small(x, z)
    assert (runner(x, z) - want).abs().max().item() <= PARITY_TOLERANCE
    assert runner.runner._forward is not runner.runner.generator  # it compiled; no silent fallback


def test_a_chosen_backend_that_is_not_exact_runs_with_a_warning(generator, fresh_home, monkeypatch):
    monkeypatch.setattr(backends, "PARITY_TOLERANCE", 0.0)
    backend = next((b for b in GRAPH_BACKENDS if installed(b)), None)
    if backend is None:
        pytest.skip("no ONNX runtime installed")
    with pytest.warns(UserWarning, match=f"--backend {backend}: its output differs from torch fp32"):
        runner = GeneratorRunner(generator, CPU, backend, "fp32")
    assert runner.description == f"{backend} fp32"


def test_auto_takes_the_first_installed_backend_and_caches_its_graph(generator, faces, fresh_home, monkeypatch):
    monkeypatch.setattr(backends, "native_bf16", lambda device: False)
    expected = next(b for b in AUTO_ORDER if installed(b))
    runner = GeneratorRunner(generator, CPU)
    assert runner.description == f"{expected} fp32"
    if expected in GRAPH_BACKENDS:
        graphs = list((fresh_home / "graphs").glob("*/generator.onnx"))
        assert len(graphs) == 1  # the user cache, as $FACEDANCER_HOME says

        def no_export(*args):
            raise AssertionError("the cached graph should have been used")

        monkeypatch.setattr(backends, "export_onnx", no_export)
        monkeypatch.setattr(backends, "max_error", no_export)  # the parity verdict is cached too
        again = GeneratorRunner(generator, CPU)
        x, z = faces
        assert (again(x[:1], z[:1]) - runner(x[:1], z[:1])).abs().max().item() == 0


@pytest.mark.skipif(not any(installed(b) for b in GRAPH_BACKENDS), reason="no ONNX runtime installed")
def test_auto_passes_over_a_backend_that_is_not_exact(generator, fresh_home, monkeypatch):
    monkeypatch.setattr(backends, "native_bf16", lambda device: False)
    monkeypatch.setattr(backends, "PARITY_TOLERANCE", 0.0)  # no runtime reproduces torch bit for bit
    with pytest.warns(UserWarning, match="is not exact for this model"):
        runner = GeneratorRunner(generator, CPU)
    assert runner.description == "eager fp32"


def test_auto_runs_torch_when_the_export_fails(generator, fresh_home, monkeypatch):
    monkeypatch.setattr(backends, "native_bf16", lambda device: False)

    def broken(*args):
        raise RuntimeError("unsupported operator aten::foo\n(exporter log)")

    monkeypatch.setattr(backends, "export_onnx", broken)
    graph_backends = [b for b in AUTO_ORDER if b in GRAPH_BACKENDS and installed(b)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runner = GeneratorRunner(generator, CPU)
    said = [str(w.message) for w in caught]
    assert said == [
        f"{b} cannot run this model (unsupported operator aten::foo); trying the next backend" for b in graph_backends
    ]
    assert runner.description == "eager fp32"


@pytest.mark.parametrize("psnr_floor, kept", [(0.0, "bf16"), (999.0, "fp32")])
def test_auto_precision_keeps_bf16_only_within_the_psnr_floor(
    generator, faces, fresh_home, monkeypatch, psnr_floor, kept
):
    monkeypatch.setattr(backends, "native_bf16", lambda device: True)
    monkeypatch.setattr(backends, "BF16_MIN_PSNR", psnr_floor)
    x, z = faces
    runner = GeneratorRunner(generator, CPU, "eager")
    assert "if it is within" in runner.description  # decided on the first faces, not before
    with torch.inference_mode():
        want = generator(x, z)
    first = runner(x, z)
    assert torch.equal(first, want)  # the deciding batch returns the exact fp32 result
    assert runner.runner.precision == kept
    assert GeneratorRunner(generator, CPU, "eager").runner.precision == kept  # the verdict is cached


def test_auto_precision_is_fp32_without_native_bf16(generator, fresh_home, monkeypatch):
    monkeypatch.setattr(backends, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert not backends.native_bf16(CPU)
    assert GeneratorRunner(generator, CPU, "eager").description == "eager fp32"
    monkeypatch.setattr(backends, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert backends.native_bf16(CPU)


@pytest.mark.parametrize(
    "backend, precision, device, message",
    [
        ("onnxruntime", "bf16", CPU, "onnxruntime runs the generator in fp32, not bf16"),
        ("openvino", "fp16", CPU, "openvino runs the generator in fp32 or bf16, not fp16"),
        ("openvino", "fp32", torch.device("cuda"), "runs on the CPU only"),
        ("tensorrt", "fp32", CPU, "unknown backend 'tensorrt'"),
    ],
)
def test_impossible_choices_are_clear_errors(generator, backend, precision, device, message):
    if backend in GRAPH_BACKENDS and not installed(backend):
        pytest.skip(f"{backend} is not installed here")
    with pytest.raises(ConfigError, match=message):
        GeneratorRunner(generator, device, backend, precision)


def test_default_swap_matches_torch_fp32_on_a_real_pair(random_model, lfw_pair, monkeypatch):
    monkeypatch.setattr(backends, "native_bf16", lambda device: False)  # the exactness of auto's fp32 choice
    source, target = (read_image(p) for p in lfw_pair)
    auto = FaceSwapper.from_pretrained(random_model)
    eager = FaceSwapper.from_pretrained(random_model, backend="eager", precision="fp32")
    a, b = auto.swap_image(source, target), eager.swap_image(source, target)
    assert np.abs(a.astype(np.int16) - b).max() <= 1  # rounding to pixels may flip a level
    assert np.abs(a.astype(np.int16) - target).max() > 50  # and a face was really swapped


def test_cli_rejects_an_unknown_backend(run, lfw_pair, tmp_path):
    code, _, err = run("swap", "-s", lfw_pair[0], "-t", lfw_pair[1], "-o", tmp_path / "o.png", "--backend", "tpu")
    assert code == 2 and "tpu" in err


def test_cli_help_says_when_bf16_is_chosen(run):
    code, out, _ = run("swap", "--help")
    assert code == 0
    flat = " ".join(out.replace("│", " ").split())
    assert "natively" in flat and "40 dB" in flat and "fp32 everywhere else" in flat


@_needs("openvino")
def test_openvino_runs_without_loading_its_telemetry(generator, tmp_path):
    # importing openvino's conversion tools sends a usage event to Intel (and writes ~/intel): never do it
    script = (
        "import sys, torch\n"
        "from facedancer.nn import Generator\n"
        "from facedancer.swap.backends import GeneratorRunner\n"
        f"g = Generator.from_pretrained({str(tmp_path / 'model')!r})\n"
        "runner = GeneratorRunner(g, torch.device('cpu'), 'openvino', 'fp32')\n"
        "runner(torch.zeros(1, 3, 256, 256), torch.zeros(1, 128))\n"
        "print(sorted(m for m in sys.modules if 'telemetry' in m or m.startswith('openvino.tools')))\n"
    )
    generator.save_pretrained(tmp_path / "model")
    env = {**os.environ, "HOME": str(tmp_path)}  # FACEDANCER_HOME: the test cache, with the exported graphs
    env.pop("CI", None)  # the telemetry stays off in CI by itself: test what a user gets
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "[]"
    assert not (tmp_path / "intel").exists()


def test_precision_verdicts_are_kept_per_device_type(generator, faces, fresh_home, monkeypatch):
    """A bf16 verdict measured on one kind of device is not taken for another (GPU and CPU bf16 differ)."""
    monkeypatch.setattr(backends, "native_bf16", lambda device: True)
    runner = GeneratorRunner(generator, CPU, "eager")
    runner(*faces)
    (verdicts,) = fresh_home.rglob("verdicts.json")
    recorded = json.loads(verdicts.read_text())
    assert any(key.endswith(" cpu bf16") for key in recorded), recorded
    verdicts.write_text(json.dumps({k.replace(" cpu ", " cuda "): v for k, v in recorded.items()}))
    assert "if it is within" in GeneratorRunner(generator, CPU, "eager").description  # decided again on the CPU
