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


def test_a_converted_model_swaps_as_the_official_inference_does(official_model, lfw):
    """utils/swap_func.py's ``run_inference`` written out step by step on a real pair, against GeneratorSwapper.

    Official: the source aligned straight to 112 px (ArcFace template, shrink 1.0), RGB / 255 into ArcFace;
    the target aligned at the generator's size, (x - 127.5) / 127.5 into G; the crop is (y + 1) / 2. Ours
    rounds that crop to 8 bits (half a grey level); the networks themselves match TensorFlow on the fixtures
    (tests/official, tests/identity), so this pins what happens around them.
    """
    import cv2

    from facedancer.faces import YuNetDetector
    from facedancer.faces.align import ARCFACE_112, similarity_transform
    from facedancer.io import read_image

    swapper = GeneratorSwapper.from_pretrained(official_model, precision="fp32", backend="eager")
    source, target = (
        read_image(lfw / p) for p in ("Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Colin_Powell/Colin_Powell_0001.jpg")
    )
    detector = YuNetDetector()
    lm_source, lm_target = (detector.detect(im).landmarks[0] for im in (source, target))
    size = swapper.crop_size

    aligned_source = cv2.warpAffine(source, similarity_transform(lm_source, ARCFACE_112), (112, 112), borderValue=0.0)
    with torch.no_grad():
        z = swapper.encoder(torch.from_numpy(aligned_source / 255.0).permute(2, 0, 1)[None].float())
    aligned_target = cv2.warpAffine(
        target, similarity_transform(lm_target, ARCFACE_112 * size / 112), (size, size), borderValue=0.0
    )
    x = torch.from_numpy((aligned_target - 127.5) / 127.5).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        official = ((swapper.runner.reference(x, z) + 1) / 2).clip(0, 1)[0].permute(1, 2, 0).numpy()

    ours_z = swapper.source(source, lm_source)
    # x / 255 in float32 (ours) or float64 (NumPy) differ by an ulp, which fp32 round-off through 50 random
    # BatchNorm layers turns into ~1e-5 of the embedding's scale (TensorFlow itself shows it: fixture README)
    assert (ours_z - z[0]).abs().max() < 1e-4 * z.abs().max()
    ours = swapper.swap(aligned_target[None], [ours_z])[0]
    # measured: 0.503 grey levels at most (rounding, plus that round-off through G)
    assert np.abs(ours - official * 255).max() <= 0.55
    assert official.std() > 0.05  # a real image-sized output, not a constant
