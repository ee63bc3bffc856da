"""Training data: aligned crops, random target/source pairs, photometric augmentation (PAPER.md §3.5).

Pairs follow the official code: targets and sources come from two independently shuffled streams over
the same crops, so pairs are random and almost always cross-identity; each sample independently becomes
a *same pair* with probability ``same_ratio`` (at least one per batch), whose source is the target image
itself (it still gets its own colour jitter). Same pairs drive the reconstruction and perceptual losses.

Everything random is a pure function of ``(seed, position)``: the batch at global index ``k`` is the same
whatever happened before, which makes resume exact (the data position is one integer) and lets each
distributed rank take its own disjoint share of every epoch, as ``DistributedSampler`` does.

A crop that cannot be read (a damaged disk, a file deleted after ``prepare``) is replaced by the next
readable crop in the dataset's order, and named in the sample so that the trainer can count it and warn.
The replacement depends on nothing but the dataset, so batches stay a function of the position and a
run never stops at the same step on every resume. Many unreadable crops in a row mean the dataset is gone
(unmounted, deleted): that sample says so, and the trainer stops with one line.
"""

from __future__ import annotations

import functools
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from facedancer.errors import InputError
from facedancer.io.failures import reason
from facedancer.io.image import decode_image
from facedancer.presets import AugmentConfig
from facedancer.train.dataset_format import TarMember, index_tars, read_manifest, read_record, tar_key

#: ITU-R 601 luma, the grayscale that saturation blends towards
LUMA = (0.299, 0.587, 0.114)


@functools.cache
def _luma(device: torch.device, dtype: torch.dtype) -> Tensor:
    """The luma weights on a device, made once: building them per call copies to the GPU, which waits for it."""
    return torch.tensor(LUMA, dtype=dtype, device=device).view(1, 3, 1, 1)


#: unreadable crops in a row after which the dataset counts as gone rather than damaged
MAX_UNREADABLE_IN_A_ROW = 32


def seeded(*keys: int) -> torch.Generator:
    """A torch generator for one purpose at one position, e.g. ``seeded(seed, epoch, STREAM_TARGET)``."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence(list(keys)).generate_state(1, np.uint64)[0]))


@dataclass(frozen=True)
class CropIndex:
    """The crops of a prepared dataset with an integer identity label each.

    ``source`` "crops" reads the files under ``crops/``; "tars" reads the same crops from the WebDataset tars of
    ``prepare --tar-samples`` by offset (few large files suit cluster file systems), so sampling, resume
    and distribution work exactly as with the folder.
    """

    root: Path
    files: tuple[str, ...]
    labels: tuple[int, ...]
    identities: tuple[str, ...]
    members: dict[str, TarMember] | None = None
    #: sha256 of the manifest (from the completion record): which dataset a checkpoint was trained on
    fingerprint: str = ""

    @classmethod
    def open(cls, root: str | Path, source: Literal["crops", "tars"] = "crops") -> CropIndex:
        root = Path(root)
        rows = read_manifest(root)
        fingerprint = read_record(root)["manifest_sha256"]
        if not rows:
            raise InputError(f"{root} holds no aligned crops")
        identities = tuple(sorted({r["identity"] for r in rows}))
        label = {name: i for i, name in enumerate(identities)}
        files, labels = tuple(r["file"] for r in rows), tuple(label[r["identity"]] for r in rows)
        members = None
        if source == "tars":
            by_key = index_tars(root)
            missing = [f for f in files if tar_key(f) not in by_key]
            if missing:
                raise InputError(
                    f"{len(missing)} crops of {root}/manifest.csv are not in its WebDataset tars "
                    f"(e.g. {missing[0]}): rerun `facedancer prepare ... --tar-samples N`"
                )
            members = {f: by_key[tar_key(f)] for f in files}
        return cls(root, files, labels, identities, members, fingerprint)

    def __len__(self) -> int:
        return len(self.files)

    def split(self, held_out: int, seed: int) -> tuple[CropIndex, CropIndex]:
        """(train, validation): ``held_out`` whole identities go to validation, chosen by ``seed``."""
        if held_out >= len(self.identities):
            raise InputError(f"cannot hold out {held_out} of {len(self.identities)} identities for validation")
        order = torch.randperm(len(self.identities), generator=seeded(seed, 0x5EED)).tolist()
        val = set(order[:held_out])
        return self._subset(lambda lab: lab not in val), self._subset(lambda lab: lab in val)

    def _subset(self, keep) -> CropIndex:
        idx = [i for i, lab in enumerate(self.labels) if keep(lab)]
        files, labels = tuple(self.files[i] for i in idx), tuple(self.labels[i] for i in idx)
        return CropIndex(self.root, files, labels, self.identities, self.members, self.fingerprint)

    def identity_names(self) -> list[str]:
        """The identities this index holds (a split keeps every name in ``identities``, so count labels)."""
        return [self.identities[label] for label in sorted(set(self.labels))]

    def load(self, i: int, size: int) -> np.ndarray:
        """RGB uint8 crop resized to ``size`` (area filter when shrinking)."""
        path = self.root / self.files[i]
        try:
            data = path.read_bytes() if self.members is None else self.members[self.files[i]].read()
        except OSError as e:
            raise InputError(f"cannot read {path}: {reason(e)}") from None
        image = decode_image(data, path)
        if image.shape[0] != size:
            interp = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR
            image = cv2.resize(image, (size, size), interpolation=interp)
        return image


def to_tensor(image: np.ndarray) -> Tensor:
    """RGB uint8 (H, W, 3) -> float (3, H, W) in [-1, 1], as (x - 127.5) / 127.5 in the official parser."""
    return torch.from_numpy(image).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


#: one training sample's recipe: (target index, source index, is same pair)
Pair = tuple[int, int, bool]

_TARGETS, _SOURCES, _SAME = 1, 2, 3


class PairSampler:
    """Yields batches of :data:`Pair` forever, starting at global batch ``start``.

    Each epoch draws one permutation for targets and another for sources (shared by all ranks); rank
    ``r`` of ``w`` takes every ``w``-th position, like ``DistributedSampler``, and cuts its share into
    batches (an incomplete last batch is dropped).
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        same_ratio: float,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        start: int = 0,
    ) -> None:
        self.size, self.batch_size, self.same_ratio, self.seed = size, batch_size, same_ratio, seed
        self.rank, self.world_size, self.start = rank, world_size, start
        self.per_epoch = size // (batch_size * world_size)
        self._epoch: int | None = None
        self._epoch_orders: tuple[Tensor, Tensor] = ()  # type: ignore[assignment]
        if self.per_epoch == 0:
            raise InputError(f"{size} crops are fewer than one batch of {batch_size} x {world_size} processes")

    def batch(self, k: int) -> list[Pair]:
        epoch, j = divmod(k, self.per_epoch)
        lo = j * self.batch_size * self.world_size + self.rank
        positions = slice(lo, lo + self.batch_size * self.world_size, self.world_size)
        epoch_targets, epoch_sources = self._orders(epoch)
        targets, sources = epoch_targets[positions], epoch_sources[positions]
        draw = seeded(self.seed, k, self.rank, _SAME)
        same = torch.rand(self.batch_size, generator=draw) < self.same_ratio
        if self.same_ratio > 0 and not same.any():
            same[torch.randint(self.batch_size, (1,), generator=draw)] = True
        sources = torch.where(same, targets, sources)
        return list(zip(targets.tolist(), sources.tolist(), same.tolist(), strict=True))

    def _orders(self, epoch: int) -> tuple[Tensor, Tensor]:
        """The epoch's target and source permutations, drawn once per epoch (not per batch: at VGGFace2's
        3M crops two permutations take over 100 ms)."""
        if self._epoch != epoch:
            self._epoch = epoch
            self._epoch_orders = (
                torch.randperm(self.size, generator=seeded(self.seed, epoch, _TARGETS)),
                torch.randperm(self.size, generator=seeded(self.seed, epoch, _SOURCES)),
            )
        return self._epoch_orders

    def __iter__(self) -> Iterator[list[Pair]]:
        k = self.start
        while True:
            yield self.batch(k)
            k += 1


class PairDataset(Dataset):
    """Map-style: a :data:`Pair` in, ``{"target", "source", "same", "unreadable"}`` out (images in [-1, 1]).

    ``unreadable`` names the crops (one per line) that could not be read and were replaced.
    """

    def __init__(self, crops: CropIndex, size: int) -> None:
        self.crops, self.size = crops, size

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, pair: Pair) -> dict[str, Tensor | str]:
        t, s, same = pair
        target, unreadable = self._readable(t)
        if same:
            source = target.clone()
        else:
            source, more = self._readable(s)
            unreadable += more
        return {
            "target": target,
            "source": source,
            "same": torch.tensor(bool(same)),
            "unreadable": "\n".join(unreadable),
        }

    def _readable(self, i: int) -> tuple[Tensor, list[str]]:
        """Crop ``i``, or the next readable one after it; and the crops that could not be read."""
        unreadable = []
        for k in range(min(len(self.crops), MAX_UNREADABLE_IN_A_ROW)):
            j = (i + k) % len(self.crops)
            try:
                return to_tensor(self.crops.load(j, self.size)), unreadable
            except InputError:
                unreadable.append(self.crops.files[j])
        return torch.zeros(3, self.size, self.size), unreadable


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave SIGINT and SIGTERM to the training process, which checkpoints and then stops
    them: a terminal's Ctrl-C and a cluster's SIGTERM reach the whole process group, and a worker dying of
    one would abort the run before its checkpoint."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def validation_pairs(crops: CropIndex, count: int, seed: int) -> list[Pair]:
    """Fixed cross-identity pairs (for identity similarity); their targets also serve as same pairs."""
    gen = seeded(seed, 0xE7A1)
    labels = torch.tensor(crops.labels)
    if len(set(crops.labels)) < 2:
        raise InputError("validation needs at least two held-out identities")
    pairs: list[Pair] = []
    while len(pairs) < count:
        t, s = torch.randint(len(crops), (2,), generator=gen).tolist()
        if labels[t] != labels[s]:
            pairs.append((t, s, False))
    return pairs


def augment(images: Tensor, config: AugmentConfig, generator: torch.Generator) -> Tensor:
    """Brightness, contrast and saturation jitter on [-1, 1] images, no clipping (as the TF ops).

    Contrast scales each channel about its spatial mean (``tf.image.adjust_contrast``). Saturation
    blends with the luma grayscale; the blend is affine-equivariant, so it behaves the same on [-1, 1] as
    on [0, 1], unlike TF's HSV op that the official code applied to [-1, 1] data (PAPER.md §3.5).
    """
    if not config.enabled:
        return images
    n = images.shape[0] if config.per == "sample" else 1
    shape = (n, 1, 1, 1)

    def uniform(lo: float, hi: float) -> Tensor:
        # drawn on the CPU (seeded), copied without waiting for the GPU: no host sync per micro-batch
        return torch.rand(shape, generator=generator).mul_(hi - lo).add_(lo).to(images, non_blocking=True)

    x = images + uniform(-config.brightness, config.brightness)
    mean = x.mean(dim=(2, 3), keepdim=True)
    x = (x - mean) * uniform(*config.contrast) + mean
    gray = (x * _luma(x.device, x.dtype)).sum(1, keepdim=True)
    return gray + (x - gray) * uniform(*config.saturation)
