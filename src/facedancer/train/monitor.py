"""What a run records: ``metrics.jsonl`` (one JSON object per line) and TensorBoard scalars and images.

Only the main process writes. Scalars are means over the logging interval; images are grids whose rows
are target, source, swap and reconstruction (the target swapped with its own identity).
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch import Tensor

from facedancer.errors import ConfigError


class Monitor:
    def __init__(self, run_dir: Path, tensorboard: bool = True) -> None:
        self.metrics = (run_dir / "metrics.jsonl").open("a", encoding="utf-8")
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError(
                    "TensorBoard logging needs the tensorboard package: pip install 'facedancer-pytorch[train]' "
                    "(or --set train.tensorboard=false)"
                ) from None
            self.writer = SummaryWriter(str(run_dir / "tensorboard"))
        self._sums: dict[str, float] = defaultdict(float)
        self._count = 0
        self._since = time.perf_counter()

    def accumulate(self, values: dict[str, float]) -> None:
        for k, v in values.items():
            self._sums[k] += v
        self._count += 1

    def flush_interval(self, step: int, samples_per_step: int, extra: dict[str, float]) -> dict[str, float]:
        """Write the interval's mean losses, ``extra`` (lr ...) and samples/s; start a new interval."""
        now = time.perf_counter()
        row = {k: v / max(self._count, 1) for k, v in self._sums.items()}
        row.update(extra)
        row["samples_per_s"] = samples_per_step * self._count / max(now - self._since, 1e-9)
        self.write(step, row)
        self._sums.clear()
        self._count = 0
        self._since = now
        return row

    def write(self, step: int, row: dict[str, float | str | list]) -> None:
        self.metrics.write(json.dumps({"step": step, "time": round(time.time(), 3), **row}) + "\n")
        self.metrics.flush()
        if self.writer is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self.writer.add_scalar(k, v, step)

    def images(self, step: int, rows: list[Tensor], tag: str = "samples") -> None:
        """Grid of images in [-1, 1]: one row per tensor in ``rows`` (each (B, 3, H, W))."""
        if self.writer is None:
            return
        grid = torch.cat([torch.cat(list(r), dim=2) for r in rows], dim=1)  # (3, rows*H, B*W)
        self.writer.add_image(tag, ((grid.float().clamp(-1, 1) + 1) / 2).cpu(), step)

    def close(self) -> None:
        self.metrics.close()
        if self.writer is not None:
            self.writer.close()
