"""What a run records: ``metrics.jsonl`` (one JSON object per line) and TensorBoard scalars and images.

Only the main process writes. Scalars are means over the logging interval, summed on the device by a
:class:`Meter` and read once per interval (reading each step would make the CPU wait for the GPU); images
are grids whose rows are target, source, swap and reconstruction (the target swapped with its own identity).

A resumed run re-runs the steps after its checkpoint, so ``metrics.jsonl`` then holds some steps twice:
:meth:`Monitor.resumed` writes a marker row (``"event": "resumed"``) first, and rows after a marker
supersede earlier rows of the same or later steps (:func:`read_metrics` applies that). TensorBoard is
told the same with ``purge_step``. Nothing is written before the first row, so a run refused at start
leaves no files.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TextIO

import torch
from torch import Tensor

from facedancer.errors import ConfigError
from facedancer.train.guard import CROSS_SUFFIX

METRICS = "metrics.jsonl"


class Monitor:
    def __init__(self, run_dir: Path, tensorboard: bool = True) -> None:
        self.run_dir = run_dir
        self._metrics: TextIO | None = None
        self._writer = None
        self._summary_writer = None
        self._purge_step: int | None = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError(
                    "TensorBoard logging needs the tensorboard package: pip install 'facedancer-pytorch[train]' "
                    "(or --set train.tensorboard=false)"
                ) from None
            self._summary_writer = SummaryWriter
        self._since = time.perf_counter()

    @property
    def metrics(self) -> TextIO:
        if self._metrics is None:
            path = self.run_dir / METRICS
            torn = path.is_file() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
            self._metrics = path.open("a", encoding="utf-8")
            if torn:  # a killed run left half a line: start ours on a fresh one
                self._metrics.write("\n")
        return self._metrics

    @property
    def writer(self):
        if self._writer is None and self._summary_writer is not None:
            self._writer = self._summary_writer(str(self.run_dir / "tensorboard"), purge_step=self._purge_step)
        return self._writer

    def resumed(self, step: int, info: dict) -> None:
        """Mark that the run continues from ``step``: later rows of steps after it replace the earlier ones."""
        self._purge_step = step + 1
        self.write(step, {"event": "resumed", **info})

    def interval(self, step: int, means: dict[str, float], steps: int, samples_per_step: int, extra: dict) -> None:
        """Write an interval's mean losses, ``extra`` (lr ...) and the samples/s of its ``steps``."""
        now = time.perf_counter()
        row = {**means, **extra, "samples_per_s": samples_per_step * steps / max(now - self._since, 1e-9)}
        self.write(step, row)
        self._since = now

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
        if self._metrics is not None:
            self._metrics.close()
        if self._writer is not None:
            self._writer.close()


class Meter:
    """Sums of the logged values over an interval, on the device in float64 (as Python's float sums were)."""

    def __init__(self) -> None:
        self.steps = 0
        self._keys: tuple[str, ...] = ()
        self._sums = self._present = self._cross = torch.zeros(0)

    def add(self, logged: dict[str, Tensor]) -> None:
        keys = tuple(logged)
        values = torch.stack([v.float() for v in logged.values()]).double()
        if not self.steps:
            if keys != self._keys:  # made once: a tensor made from a list is a copy the host waits for
                self._cross = torch.tensor([k.endswith(CROSS_SUFFIX) for k in keys], device=values.device)
            self._keys = keys
            self._sums = torch.zeros_like(values)
            self._present = torch.zeros_like(values)
        elif keys != self._keys:
            raise ValueError(f"the logged values changed within an interval: {self._keys} -> {keys}")
        # the cross-pair diagnostic of a micro-batch without cross pairs is NaN: no value, so not counted
        missing = values.isnan() & self._cross
        self._sums += torch.where(missing, 0.0, values)
        self._present += (~missing).double()
        self.steps += 1

    def read(self) -> dict[str, float]:
        """The interval's means over its steps (one transfer from the device), leaving out values it never
        had; the next interval starts."""
        if not self.steps:
            return {}
        n, steps = len(self._keys), self.steps
        numbers = torch.cat([self._sums, self._present]).tolist()
        self.steps = 0
        return {k: total / steps for k, total, seen in zip(self._keys, numbers[:n], numbers[n:], strict=True) if seen}


def read_values(logged: dict[str, Tensor]) -> dict[str, float]:
    """One step's logged values on the host (benchmarks, tests)."""
    meter = Meter()
    meter.add(logged)
    return meter.read()


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The rows of ``metrics.jsonl`` as the run ended up: the rows a resume re-ran replace the first ones.

    Torn lines (a kill while writing) are left out.
    """
    rows: list[dict] = []
    for line in (Path(run_dir) / METRICS).read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if row.get("event") == "resumed":
            rows = [r for r in rows if r["step"] <= row["step"]]
        rows.append(row)
    return rows
