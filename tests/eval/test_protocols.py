"""Sampling plans: seeded, identities kept apart, galleries that never hold a swapped picture; shards."""

from pathlib import Path

import numpy as np
import pytest

from facedancer.errors import ConfigError, InputError
from facedancer.eval.media import read_media
from facedancer.eval.protocols import Plan, SamplingConfig, make_plan
from facedancer.eval.runner import Shard
from facedancer.io import VideoReader


def _check_plan(plan: Plan) -> None:
    """What every protocol promises."""
    gallery = set(plan.gallery)
    gallery_ids = {m.identity for m in plan.gallery}
    for s in plan.samples:
        assert s.target.identity != s.source.identity
        assert s.source not in gallery  # a source picture would retrieve itself
        assert s.source.identity in gallery_ids and s.target.identity in gallery_ids
    assert Plan.from_dict(plan.to_dict()).digest() == plan.digest()


def test_folders_plan_is_seeded_and_keeps_swapped_photos_out_of_the_gallery(lfw):
    config = SamplingConfig("folders", str(lfw), samples=150, seed=3)
    plan = make_plan(config)
    assert len(plan.samples) == 150
    _check_plan(plan)
    assert not {s.target for s in plan.samples} & set(plan.gallery)
    assert len({s.target.identity for s in plan.samples}) == 150  # a person is a target once before twice
    assert make_plan(config).digest() == plan.digest()
    assert make_plan(SamplingConfig("folders", str(lfw), samples=150, seed=4)).digest() != plan.digest()
    assert all(sum(m.identity == name for m in plan.gallery) == config.gallery_per_identity for name in plan.identities)


def test_folders_plan_keeps_to_listed_identities(lfw, shared):
    """--identities (e.g. a training run's held-out list) bounds targets, sources and the gallery."""
    people = sorted(p.name for p in lfw.iterdir() if p.is_dir() and len(list(p.iterdir())) >= 4)[:12]
    plan = make_plan(SamplingConfig("folders", str(lfw), samples=30, identities=tuple(people)))
    _check_plan(plan)
    assert set(plan.identities) == set(people) and {m.identity for m in plan.gallery} == set(people)
    aflw = make_plan(
        SamplingConfig(
            "aflw2000", str(shared / "data" / "aflw2000"), sources=str(lfw), samples=20, identities=tuple(people)
        )
    )
    assert {s.source.identity for s in aflw.samples} <= set(people)
    with pytest.raises(InputError, match="among the 1 listed"):
        make_plan(SamplingConfig("folders", str(lfw), identities=(people[0],)))


def test_aflw2000_targets_are_their_own_gallery_identities(shared, lfw):
    with pytest.raises(ConfigError, match="--sources"):
        make_plan(SamplingConfig("aflw2000", str(shared / "data" / "aflw2000")))
    plan = make_plan(SamplingConfig("aflw2000", str(shared / "data" / "aflw2000"), sources=str(lfw), samples=50))
    _check_plan(plan)
    assert len({s.target.path for s in plan.samples}) == 50
    assert {s.target for s in plan.samples} <= set(plan.gallery)
    assert all(Path(s.source.path).parent.parent == lfw for s in plan.samples)
    with pytest.raises(ConfigError, match="within"):
        make_plan(SamplingConfig("aflw2000", str(shared / "data" / "aflw2000"), sources=str(lfw), samples=5000))


def test_videos_plan_draws_sources_from_other_videos(small_videos, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    for link in small_videos.iterdir():
        (folder / link.name).symlink_to(link.resolve())
    (folder / "broken.mp4").write_bytes(b"not a video")
    (folder / "notes.txt").write_text("ignored")
    plan = make_plan(SamplingConfig("videos", str(folder), frames_per_video=4, gallery_per_identity=2, seed=1))
    _check_plan(plan)
    assert len(plan.samples) == 12 and set(plan.skipped) == {"broken.mp4"}
    for name in ("d18.mp4", "d19.mp4", "d20.mp4"):
        targets = {s.target.frame for s in plan.samples if s.target.identity == name}
        gallery = {m.frame for m in plan.gallery if m.identity == name}
        assert len(targets) == 4 and len(gallery) == 2 and not targets & gallery
    capped = make_plan(SamplingConfig("videos", str(folder), samples=5, seed=1))
    assert len(capped.samples) == 5


def test_video_frames_come_from_one_decode(small_videos):
    from facedancer.eval.protocols import Media

    path = str(small_videos / "d18.mp4")
    with VideoReader(path, max_frames=30) as reader:
        frames = list(reader)
    items = [Media(path, "a", 29), Media(path, "a", 3), Media(path, "a", 3)]
    got = read_media(items)
    for media, image in zip(items, got, strict=True):
        np.testing.assert_array_equal(image, frames[media.frame])


@pytest.mark.parametrize(("n", "batch", "count"), [(100, 16, 3), (7, 4, 5), (33, 1, 4), (1, 8, 2)])
def test_shards_cover_the_plan_once_in_whole_batches(n, batch, count):
    shards = [Shard(k, count) for k in range(count)]
    samples = [i for s in shards for i in s.samples(n, batch)]
    assert samples == list(range(n))
    assert all(s.samples(n, batch).start % batch == 0 for s in shards)
    assert [i for s in shards for i in s.gallery(n + 3)] == list(range(n + 3))


@pytest.mark.parametrize("text", ["2/2", "-1/2", "2", "a/b", "0/0"])
def test_bad_shard_specs_are_config_errors(text):
    with pytest.raises(ConfigError, match="K/N"):
        Shard.parse(text)
