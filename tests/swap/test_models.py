"""The generator swapper's speed options: torch.compile gives the eager result, and falls back when it fails."""

import numpy as np
import pytest
import torch

from facedancer.swap.models import GeneratorSwapper


@pytest.fixture
def crops_and_sources():
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    return crops, [torch.randn(128, generator=torch.Generator().manual_seed(i)) for i in range(2)]


def test_compiled_generator_swaps_like_the_eager_one(random_model, crops_and_sources):
    eager = GeneratorSwapper.from_pretrained(random_model)
    compiled = GeneratorSwapper.from_pretrained(random_model, compile=True)
    a, b = eager.swap(*crops_and_sources), compiled.swap(*crops_and_sources)
    assert compiled._forward is not compiled.generator  # it compiled; no silent fallback
    assert np.abs(a.astype(np.int16) - b).max() <= 1  # rounding to pixels may flip a level


def test_failed_compilation_runs_eagerly_with_a_warning(random_model, crops_and_sources):
    swapper = GeneratorSwapper.from_pretrained(random_model, compile=True)

    def broken(*args):
        raise RuntimeError("no C++ compiler found\n(long compiler log)")

    swapper._forward = broken
    with pytest.warns(UserWarning, match="running the generator eagerly: no C\\+\\+ compiler found$"):
        out = swapper.swap(*crops_and_sources)
    assert swapper._forward is swapper.generator
    np.testing.assert_array_equal(out, GeneratorSwapper.from_pretrained(random_model).swap(*crops_and_sources))
