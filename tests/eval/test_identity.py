"""The evaluation recogniser and the retrieval metrics, proven on real LFW identities."""

import numpy as np
import pytest

from facedancer.eval import cosine_similarity, mean_cosine, nearest_identity, retrieval_top1
from facedancer.eval.datasets import central_face, identity_folders
from facedancer.eval.validate import validate_retrieval
from facedancer.faces import YuNetDetector
from facedancer.io import read_image

PEOPLE = 80  # seeded subset for CI time; benchmarks/bench_retrieval_lfw.py runs all 610
MAX_PHOTOS = 3  # probe + 2 gallery photos per person


@pytest.fixture(scope="module")
def recogniser():
    pytest.importorskip("dlib")
    from facedancer.eval import DlibRecogniser

    return DlibRecogniser()


def test_retrieval_metrics_on_known_embeddings():
    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    labels = np.array(["a", "b", "c"])
    queries = np.array([[2.0, 0.1], [1.0, 1.1], [0.1, 5.0], [-1.0, 0.2]])
    np.testing.assert_array_equal(nearest_identity(queries, gallery, labels), ["a", "c", "b", "b"])
    assert retrieval_top1(queries, ["a", "b", "b", "a"], gallery, labels) == 0.5
    assert mean_cosine(np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([[3.0, 0.0], [1.0, 0.0]])) == 0.5
    np.testing.assert_allclose(cosine_similarity(gallery, gallery).diagonal(), 1.0)


def _central(image):
    found = YuNetDetector().detect(image)
    return found.select([central_face(found, image.shape)])


def test_image_and_aligned_paths_agree(recogniser, lfw):
    image = read_image(sorted(lfw.glob("*/*.jpg"))[0])
    face = _central(image)
    direct = recogniser.embed(image, face)
    chips = recogniser.aligned(image, face)
    assert direct.shape == (1, 128) and chips[0].shape == (150, 150, 3)
    np.testing.assert_allclose(recogniser.embed_aligned(chips), direct, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(direct, axis=1), 1.0)


def test_identity_encoders_plug_in_as_recognisers(lfw):
    """The hook for the paper's CosFace/ArcFace iResNet (user weights), exercised with SFace."""
    from facedancer.eval import EncoderRecogniser
    from facedancer.identity import load_encoder

    people = identity_folders(lfw, min_images=2)
    names = np.random.default_rng(1).choice(sorted(people), 30, replace=False)
    recogniser = EncoderRecogniser(load_encoder("sface"))
    image = read_image(people[names[0]][0])
    crops = recogniser.aligned(image, _central(image))
    assert crops[0].shape == (112, 112, 3)
    np.testing.assert_allclose(recogniser.embed_aligned(crops), recogniser.embed(image, _central(image)))
    r = validate_retrieval(recogniser, {n: people[n][:3] for n in names}, seed=0)
    print(f"SFace via EncoderRecogniser on LFW subset: top-1 {100 * r.top1:.1f}% of {r.people}")
    assert r.top1 >= 0.9


# slow (1 min): the default run keeps the retrieval arithmetic, validate_retrieval on 30 LFW people (SFace) and
# dlib's retrieval of real swaps (tests/eval/test_report.py: paste-source >= 75 %, copy-target <= 5 %)
@pytest.mark.slow
def test_lfw_retrieval_is_reliable(recogniser, lfw):
    """Probe = one photo per person, gallery = their other photos: the nearest identity must be right."""
    people = identity_folders(lfw, min_images=2)
    names = np.random.default_rng(0).choice(sorted(people), PEOPLE, replace=False)
    subset = {n: people[n][:MAX_PHOTOS] for n in names}
    r = validate_retrieval(recogniser, subset, seed=0)
    print(
        f"LFW subset: {r.people} probes, gallery {r.gallery}, top-1 {100 * r.top1:.1f}%, "
        f"cosine same {r.mean_cosine_same:.3f} vs others {r.mean_cosine_other:.3f}"
    )
    assert r.missed <= 3 and r.people >= PEOPLE - 3
    assert r.top1 >= 0.95
    assert r.mean_cosine_same > r.mean_cosine_other + 0.05  # dlib: 0.95 vs 0.84 on all of LFW
