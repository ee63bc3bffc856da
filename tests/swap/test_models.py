"""The generator swapper's speed options: torch.compile gives the eager result, and falls back when it fails."""

import numpy as np
import pytest
import torch

from facedancer.swap.models import GeneratorSwapper


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """tiny-64's generator with random weights: quick to compile, and clear of the inductor bug that the
    256 px test model's 4-channel AFFA gate meets (see facedancer.swap.backends)."""
    from facedancer.nn import Generator
    from facedancer.presets import load_preset

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "tiny-64-random"
    Generator(load_preset("tiny-64").generator).save_pretrained(path, meta={"identity_encoder": "sface"})
    return path


@pytest.fixture
def crops_and_sources():
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    return crops, [torch.randn(128, generator=torch.Generator().manual_seed(i)) for i in range(2)]


def test_compiled_generator_swaps_like_the_eager_one(small_model, crops_and_sources):
    eager = GeneratorSwapper.from_pretrained(small_model, precision="fp32", backend="eager")
    compiled = GeneratorSwapper.from_pretrained(small_model, precision="fp32", backend="compile")
    a, b = eager.swap(*crops_and_sources), compiled.swap(*crops_and_sources)
    assert compiled.runner.runner._forward is not compiled.runner.runner.generator  # it compiled; no silent fallback
    assert np.abs(a.astype(np.int16) - b).max() <= 1  # rounding to pixels may flip a level


def test_failed_compilation_runs_eagerly_with_a_warning(small_model, crops_and_sources):
    swapper = GeneratorSwapper.from_pretrained(small_model, precision="fp32", backend="compile")
    torch_runner = swapper.runner.runner

    def broken(*args):
        raise RuntimeError("no C++ compiler found\n(long compiler log)")

    torch_runner._forward = broken
    with pytest.warns(UserWarning, match="running the generator eagerly: no C\\+\\+ compiler found$"):
        out = swapper.swap(*crops_and_sources)
    assert torch_runner._forward is torch_runner.generator
    eager = GeneratorSwapper.from_pretrained(small_model, precision="fp32", backend="eager")
    np.testing.assert_array_equal(out, eager.swap(*crops_and_sources))
