import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from facedancer.presets import AugmentConfig
from facedancer.train.data import CropIndex, PairDataset, PairSampler, augment, seeded, validation_pairs


def test_pairs_are_deterministic_and_resume_from_a_position():
    a = PairSampler(100, 8, 0.2, seed=3)
    b = PairSampler(100, 8, 0.2, seed=3, start=17)
    first = [batch for _, batch in zip(range(30), a, strict=False)]
    assert [batch for _, batch in zip(range(13), b, strict=False)] == first[17:]
    assert PairSampler(100, 8, 0.2, seed=4).batch(0) != first[0]


def test_same_pairs_ratio_and_at_least_one_per_batch():
    sampler = PairSampler(1000, 4, 0.2, seed=0)
    batches = [sampler.batch(k) for k in range(2000)]
    flags = torch.tensor([[same for _, _, same in b] for b in batches])
    assert flags.any(dim=1).all()
    # per-sample Bernoulli(0.2), then forced where a batch had none: 0.2 + 0.8^4 / 4 ~= 0.302
    assert 0.28 < flags.float().mean() < 0.32
    assert all(t == s for b in batches for t, s, same in b if same)
    cross = [(t, s) for b in batches for t, s, same in b if not same]
    assert sum(t != s for t, s in cross) / len(cross) > 0.99
    assert not PairSampler(1000, 4, 0.0, seed=0).batch(0)[0][2]


def test_ranks_share_each_epoch_disjointly():
    n, bs, world = 96, 4, 3
    per_epoch = PairSampler(n, bs, 0.0, seed=1).per_epoch // world
    targets = []
    for rank in range(world):
        sampler = PairSampler(n, bs, 0.0, seed=1, rank=rank, world_size=world)
        assert sampler.per_epoch == per_epoch
        targets += [t for k in range(per_epoch) for t, _, _ in sampler.batch(k)]
    assert sorted(targets) == list(range(n))
    # the next epoch is a new permutation
    assert PairSampler(n, bs, 0.0, seed=1).batch(per_epoch * world) != PairSampler(n, bs, 0.0, seed=1).batch(0)


def test_augment_per_batch_draws_one_scalar_and_per_sample_one_each():
    flat = torch.zeros(6, 3, 8, 8)
    out = augment(flat, AugmentConfig(contrast=(1, 1), saturation=(1, 1)), seeded(0))
    assert out.unique().numel() == 1 and 0 < out.abs().max() <= 0.3
    out = augment(flat, AugmentConfig(per="sample", contrast=(1, 1), saturation=(1, 1)), seeded(0))
    assert out.flatten(1).unique(dim=0).shape[0] == 6

    x = torch.rand(4, 3, 16, 16, generator=seeded(1)) * 2 - 1
    only_contrast = AugmentConfig(brightness=0, saturation=(1, 1), contrast=(1.1, 1.1))
    y = augment(x, only_contrast, seeded(2))
    torch.testing.assert_close(y.mean((2, 3)), x.mean((2, 3)))
    torch.testing.assert_close(y.std((2, 3)), 1.1 * x.std((2, 3)))
    only_saturation = AugmentConfig(brightness=0, contrast=(1, 1), saturation=(0, 0))
    gray = augment(x, only_saturation, seeded(2))
    torch.testing.assert_close(gray[:, 0], gray[:, 2])
    assert augment(x, AugmentConfig(enabled=False), seeded(0)) is x


def test_dataset_on_prepared_lfw_crops(lfw_crops):
    crops = CropIndex.open(lfw_crops)
    train, val = crops.split(4, seed=0)
    assert len(train) + len(val) == len(crops)
    assert not set(train.labels) & set(val.labels) and len(set(val.labels)) == 4
    sampler = PairSampler(len(train), 4, 0.2, seed=0)
    loader = DataLoader(PairDataset(train, 64), batch_sampler=sampler, num_workers=0)
    batch = next(iter(loader))
    assert batch["target"].shape == (4, 3, 64, 64) and batch["target"].dtype == torch.float32
    assert -1 <= batch["target"].min() < 0 < batch["target"].max() <= 1
    same = batch["same"]
    assert same.any()
    torch.testing.assert_close(batch["source"][same], batch["target"][same])
    pairs = validation_pairs(val, 10, seed=0)
    assert pairs == validation_pairs(val, 10, seed=0) and all(val.labels[t] != val.labels[s] for t, s, _ in pairs)


@pytest.mark.parametrize("image_format", ["png", "jpg"])
def test_crops_read_from_webdataset_tars_equal_the_folder(lfw, tmp_path, image_format):
    from facedancer.errors import InputError
    from facedancer.train.prepare import PrepareOptions, prepare

    src = tmp_path / "src"
    src.mkdir()
    for person in sorted(p for p in lfw.iterdir() if p.is_dir())[:3]:
        (src / person.name).symlink_to(person)
    prepare(src, tmp_path / "out", PrepareOptions(min_face=64, tar_samples=7, image_format=image_format))
    folder, tars = CropIndex.open(tmp_path / "out"), CropIndex.open(tmp_path / "out", "tars")
    assert folder.files == tars.files and len({m.tar for m in tars.members.values()}) > 1
    train, _ = tars.split(1, seed=0)
    assert train.members is tars.members
    for i in (0, len(folder) - 1):
        np.testing.assert_array_equal(folder.load(i, 64), tars.load(i, 64))
    for tar in (tmp_path / "out" / "webdataset").glob("*.tar"):
        tar.unlink()
    with pytest.raises(InputError, match="not in its WebDataset tars"):
        CropIndex.open(tmp_path / "out", "tars")
