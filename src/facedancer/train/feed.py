"""The images one training process sees: its share of the pairs from the data position on, on the device and
augmented (PAPER.md §3.5), plus the fixed validation pairs of the held-out identities.

Augmentation draws depend only on ``(seed, position, rank)`` (``data.seeded``), so the data position, one
integer in every checkpoint, is all that resume needs. Unreadable crops are replaced by the dataset
(``data.PairDataset``); the feed counts them, warns about the first five and stops the run when so many
in a row fail that the dataset itself must be gone.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from facedancer.errors import InputError
from facedancer.presets import Preset
from facedancer.train import distributed
from facedancer.train.data import (
    MAX_UNREADABLE_IN_A_ROW,
    CropIndex,
    PairDataset,
    PairSampler,
    augment,
    ignore_stop_signals,
    seeded,
    validation_pairs,
)

#: the augmentation streams of a micro-batch: targets and sources are jittered independently
_TARGET_STREAM, _SOURCE_STREAM = 0, 1


class Feed:
    def __init__(
        self,
        preset: Preset,
        crops: CropIndex,
        world: distributed.World,
        device: torch.device,
        channels_last: bool,
    ) -> None:
        cfg, data = preset.train, preset.data
        self.preset, self.world, self.device = preset, world, device
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.train_crops, val_crops = crops.split(data.val_identities, cfg.seed)
        #: the identities never trained on, for `facedancer eval --identities`
        self.held_out = val_crops.identity_names()
        self.dataset = PairDataset(self.train_crops, preset.generator.image_size)
        self.sampler(0)  # fewer crops than a batch is a config error, found before any file is written
        self.val_pairs = validation_pairs(val_crops, data.val_pairs, cfg.seed) if data.val_pairs else []
        self.val_dataset = PairDataset(val_crops, preset.generator.image_size)
        #: micro-batches this process has consumed
        self.position = 0
        self.unreadable: set[str] = set()
        self._batches: Iterator[dict] | None = None

    def sampler(self, start: int) -> PairSampler:
        cfg, data = self.preset.train, self.preset.data
        size = len(self.train_crops)
        return PairSampler(size, cfg.batch_size, data.same_ratio, cfg.seed, self.world.rank, self.world.size, start)

    def _loader(self) -> DataLoader:
        workers = self.preset.data.workers
        return DataLoader(
            self.dataset,
            batch_sampler=self.sampler(self.position),
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=workers > 0,
            worker_init_fn=ignore_stop_signals if workers else None,
        )

    def next(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The next micro-batch: augmented targets and sources, the same-pair flags and their positions."""
        if self._batches is None:
            self._batches = iter(self._loader())
        raw = next(self._batches)
        self.note_unreadable(raw["unreadable"])
        aug, key = self.preset.data.augment, (self.preset.train.seed, self.position, self.world.rank)
        self.position += 1
        target = augment(self.to_device(raw["target"]), aug, seeded(*key, _TARGET_STREAM))
        source = augment(self.to_device(raw["source"]), aug, seeded(*key, _SOURCE_STREAM))
        same = raw["same"]  # on the CPU: its positions are found there, without a wait for the GPU
        index = same.nonzero().flatten()
        return target, source, same.to(self.device, non_blocking=True), index.to(self.device, non_blocking=True)

    def restart(self, position: int) -> None:
        """Go on from ``position`` (a resume); the loader's workers are restarted there."""
        self.position = position
        self._batches = None

    def validation(self) -> Iterator[tuple[Tensor, Tensor]]:
        """(targets, sources) of the fixed validation pairs, in batches of ``train.batch_size``."""
        bs = self.preset.train.batch_size
        for i in range(0, len(self.val_pairs), bs):
            items = [self.val_dataset[p] for p in self.val_pairs[i : i + bs]]
            self.note_unreadable([it["unreadable"] for it in items])
            yield (self.to_device(torch.stack([it[k] for it in items])) for k in ("target", "source"))

    def to_device(self, x: Tensor) -> Tensor:
        return x.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)

    def note_unreadable(self, reports: list[str]) -> None:
        """Count and warn about crops the dataset replaced; stop when the dataset is clearly gone."""
        for report in filter(None, reports):
            names = report.split("\n")
            if len(names) >= MAX_UNREADABLE_IN_A_ROW:
                root = self.train_crops.root
                raise InputError(
                    f"{len(names)} crops in a row could not be read ({root / names[0]} ... {names[-1]}): "
                    f"is {root} still there and complete? Rerun `facedancer prepare SRC {root}` to rebuild it"
                )
            for name in names:
                if name in self.unreadable:
                    continue
                self.unreadable.add(name)
                if len(self.unreadable) <= 5:
                    warnings.warn(
                        f"skipping unreadable crop {self.train_crops.root / name} (the next crop takes its place)",
                        stacklevel=2,
                    )
                elif len(self.unreadable) == 6:
                    warnings.warn("more unreadable crops: counted as data/unreadable in metrics.jsonl", stacklevel=2)

    def close(self) -> None:
        self._batches = None  # stops the DataLoader's worker processes
