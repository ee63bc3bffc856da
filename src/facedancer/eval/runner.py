"""Run a plan: swap every sample with every contender and measure targets, sources, swaps and gallery.

A run stores raw measurements (angles, expression coefficients, embeddings, Inception features), not
scores: scores need the whole plan (FID over all swaps, retrieval against the whole gallery), so they
are computed by :func:`facedancer.eval.report.merge`, and a single run is simply the merge of its one
shard. Shards split the samples at multiples of ``batch_size``, so every batch holds the same samples
as in an unsharded run and the merged report is the same, number for number.

Each distinct source is prepared once per shard and kept until the shard ends: a crop-based contender
(paste-source, classical) holds a 256 px crop per source, about 0.2 GB per 1,000 samples, so the
10k-frame FF++ protocol is best run in a few shards.

Metrics are taken on the pasted-back image (see :mod:`facedancer.eval.contenders`) at the *target's*
detected face: the swap is measured where the face was, so an unrecognisable swap still gets a pose,
an expression and an identity rather than silently dropping out of the average.
"""

from __future__ import annotations

import json
import platform
import sys
import time
import zipfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rich.progress import MofNCompleteColumn, Progress

from facedancer import __version__
from facedancer.atomic import atomic_path
from facedancer.config import parse_shard, to_dict
from facedancer.errors import ConfigError, InputError, OutputError
from facedancer.eval.contenders import Contender, CopyTarget
from facedancer.eval.media import pick_face, read_media
from facedancer.eval.metrics import METRICS as METRIC_REGISTRY
from facedancer.eval.metrics import Metric
from facedancer.eval.protocols import Media, Plan
from facedancer.faces import BlendConfig, Detections, FaceDetector
from facedancer.io.failures import reason

#: the metrics' names, in report order
METRICS: tuple[str, ...] = tuple(METRIC_REGISTRY)
OK = "ok"
PART_FORMAT = 1


@dataclass(frozen=True)
class RunConfig:
    """How samples are swapped and measured (everything that changes the numbers besides the plan)."""

    models: tuple[str, ...] = ()
    metrics: tuple[str, ...] = METRICS
    pose_estimator: Literal["3ddfa", "fsanet"] = "3ddfa"
    recogniser: str = "dlib"
    recogniser_weights: str | None = None
    detector: Literal["yunet", "retinaface"] = "yunet"
    blend: BlendConfig = field(default_factory=BlendConfig)
    batch_size: int = 16
    device: str = "cpu"

    def __post_init__(self) -> None:
        if unknown := [m for m in self.metrics if m not in METRIC_REGISTRY]:
            raise ConfigError(f"unknown metric {unknown[0]!r}; choose from {', '.join(METRIC_REGISTRY)}")
        if not self.metrics:
            raise ConfigError("no metric chosen")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")


@dataclass(frozen=True)
class Shard:
    """Part ``index`` of ``count`` of a plan, 0-based like ``facedancer prepare --shard``."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        return cls(*parse_shard(text))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def _part(self, n: int) -> tuple[int, int]:
        return n * self.index // self.count, n * (self.index + 1) // self.count

    def samples(self, n: int, batch_size: int) -> range:
        """This shard's sample indices: whole batches of the unsharded run."""
        lo, hi = self._part(-(-n // batch_size))
        return range(lo * batch_size, min(hi * batch_size, n))

    def gallery(self, n: int) -> range:
        return range(*self._part(n))


@dataclass
class Instruments:
    """The face detector and, by metric name, each metric's measuring instrument (see :mod:`.metrics`)."""

    detector: FaceDetector
    by_metric: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, config: RunConfig) -> Instruments:
        """The instruments ``config.metrics`` need, weights from the asset registry."""
        from facedancer.faces import make_detector

        shared: dict[str, Any] = {}
        tools = {name: METRIC_REGISTRY[name].load(config, shared) for name in config.metrics}
        return cls(make_detector(config.detector, config.device), tools)

    def only(self, metrics: Sequence[str]) -> Instruments:
        """These instruments less those that no metric in ``metrics`` needs."""
        if missing := [m for m in metrics if self.by_metric.get(m) is None]:
            raise ConfigError(f"no instrument to measure {missing[0]!r} with")
        return Instruments(self.detector, {m: self.by_metric[m] for m in METRIC_REGISTRY if m in metrics})

    def _metrics(self) -> list[tuple[Metric, Any]]:
        return [(metric, self.by_metric[name]) for name, metric in METRIC_REGISTRY.items() if name in self.by_metric]

    def dims(self) -> dict[str, int]:
        """Width of each measurement this set of instruments takes."""
        return {metric.key: metric.width(tool) for metric, tool in self._metrics()}

    def measure(self, images: Sequence[np.ndarray], faces: Sequence[Detections]) -> dict[str, np.ndarray]:
        """Each measurement of the one face ``faces[i]`` (a single detection) in ``images[i]``."""
        cache: dict[str, Any] = {}
        return {metric.key: metric.measure(tool, images, faces, cache) for metric, tool in self._metrics()}

    def references(self, image: np.ndarray, face: Detections) -> dict[str, np.ndarray]:
        """The measurements a source or gallery picture needs (the identity embedding for retrieval)."""
        return {
            metric.key: metric.measure(tool, [image], [face], {})[0]
            for metric, tool in self._metrics()
            if metric.references
        }


@dataclass
class Partial:
    """The raw measurements of one shard: enough to merge with the other shards into a report."""

    plan: Plan
    #: RunConfig as a dict plus the contenders' provenance
    run: dict
    shard: Shard
    #: global indices of this shard's samples and gallery pictures
    samples: np.ndarray
    gallery: np.ndarray
    #: per sample: "ok" or why it was left out
    status: list[str]
    #: "target.<m>", "source.embedding", "c<i>.<m>" (contender i), "gallery.embedding", "gallery.ok"
    arrays: dict[str, np.ndarray]
    #: versions, device, seconds per stage
    environment: dict

    def save(self, path: str | Path) -> Path:
        meta = {
            "format": PART_FORMAT,
            "plan": self.plan.to_dict(),
            "run": self.run,
            "shard": [self.shard.index, self.shard.count],
            "status": self.status,
            "environment": self.environment,
        }
        path = Path(path)
        try:
            with atomic_path(path) as tmp, tmp.open("wb") as f:
                np.savez(
                    f,
                    meta=np.array(json.dumps(meta)),
                    samples=self.samples,
                    gallery=self.gallery,
                    **{f"m.{k}": v for k, v in self.arrays.items()},
                )
        except OSError as e:
            raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
        return path

    @classmethod
    def load(cls, path: str | Path) -> Partial:
        if Path(path).is_file() and not zipfile.is_zipfile(path):  # numpy would suggest unpickling it
            raise InputError(f"{path} is not a facedancer eval part (not an .npz archive)")
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                arrays = {k[2:]: z[k] for k in z.files if k.startswith("m.")}
                samples, gallery = z["samples"], z["gallery"]
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
            raise InputError(f"{path} is not a facedancer eval part: {reason(e)}") from None
        if meta.get("format") != PART_FORMAT:
            raise InputError(f"{path}: eval part format {meta.get('format')!r}, expected {PART_FORMAT}")
        return cls(
            Plan.from_dict(meta["plan"]),
            meta["run"],
            Shard(*meta["shard"]),
            samples,
            gallery,
            meta["status"],
            arrays,
            meta["environment"],
        )


def environment(device: str) -> dict:
    """Versions of what produced the numbers."""
    import cv2
    import torch

    versions = {
        "facedancer": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
    }
    for module in ("dlib", "scipy", "onnxruntime"):
        if module in sys.modules:
            versions[module] = getattr(sys.modules[module], "__version__", "?")
    return {"versions": versions, "platform": platform.platform(), "device": device}


@dataclass
class _Source:
    """A source face, measured and prepared once for every contender."""

    references: dict[str, np.ndarray]
    states: list[object]


class _Clock:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] += now - self._last
        self._last = now


class _ShardRun:
    """The three passes over one shard: sources, samples, gallery. Measurements go into ``arrays``."""

    def __init__(
        self,
        plan: Plan,
        contenders: Sequence[Contender],
        instruments: Instruments,
        batch_size: int,
        indices: range,
        gallery: range,
        bar: Progress,
    ) -> None:
        self.plan, self.contenders, self.instruments, self.batch_size = plan, contenders, instruments, batch_size
        self.indices, self.gallery_indices, self.bar, self.clock = indices, gallery, bar, _Clock()
        self.status = [OK] * len(indices)
        dims = instruments.dims()
        #: measurements of the sources and the gallery (retrieval's)
        self.references = {m.key: dims[m.key] for m in METRIC_REGISTRY.values() if m.references and m.key in dims}
        self.arrays: dict[str, np.ndarray] = {}
        for prefix in ["target", *(f"c{i}" for i in range(len(contenders)))]:
            self._allocate(prefix, len(indices), dims)
        if self.references:
            self._allocate("source", len(indices), self.references)
            self._allocate("gallery", len(gallery), self.references)
        self.arrays["gallery.ok"] = np.zeros(len(gallery), bool)

    def _allocate(self, prefix: str, n: int, dims: dict[str, int]) -> None:
        self.arrays.update({f"{prefix}.{k}": np.full((n, d), np.nan, _dtype(k)) for k, d in dims.items()})

    def sources(self) -> dict[Media, _Source | None]:
        """Each distinct source picture read, detected and prepared for every contender once."""
        wanted = sorted({self.plan.samples[i].source for i in self.indices}, key=_media_order)
        task = self.bar.add_task("sources", total=len(wanted))
        out: dict[Media, _Source | None] = {}
        for start in range(0, len(wanted), self.batch_size):
            chunk = wanted[start : start + self.batch_size]
            for media, image in zip(chunk, read_media(chunk), strict=True):
                self.clock.lap("read")
                face = pick_face(self.instruments.detector, image, media)
                self.clock.lap("detect")
                if face is not None:
                    states = [c.prepare(image, face.landmarks[0]) for c in self.contenders]
                    out[media] = _Source(self.instruments.references(image, face), states)
                else:
                    out[media] = None
                self.clock.lap("sources")
            self.bar.advance(task, len(chunk))
        return out

    def samples(self, sources: dict[Media, _Source | None]) -> None:
        """Every sample swapped by every contender and measured, one batch at a time."""
        task = self.bar.add_task("samples", total=len(self.indices))
        for start in range(0, len(self.indices), self.batch_size):
            rows = range(start, min(start + self.batch_size, len(self.indices)))
            batch = [self.plan.samples[self.indices[r]] for r in rows]
            frames = read_media([s.target for s in batch])
            self.clock.lap("read")
            keep = []
            for r, sample, frame in zip(rows, batch, frames, strict=True):
                face = pick_face(self.instruments.detector, frame, sample.target)
                if face is None:
                    self.status[r] = "no face in target"
                elif sources[sample.source] is None:
                    self.status[r] = "no face in source"
                else:
                    keep.append((r, frame, face, sources[sample.source]))
            self.clock.lap("detect")
            if keep:
                self._measure(*map(list, zip(*keep, strict=True)))
            self.bar.advance(task, len(rows))

    def _measure(self, rows: list[int], frames: list, faces: list[Detections], prepared: list[_Source]) -> None:
        target = self.instruments.measure(frames, faces)
        self.clock.lap("measure")
        self._store("target", rows, target)
        for key in self.references:
            self.arrays[f"source.{key}"][rows] = np.stack([p.references[key] for p in prepared])
        landmarks = [f.landmarks[0] for f in faces]
        for i, contender in enumerate(self.contenders):
            if isinstance(contender, CopyTarget):
                measured = target  # the same pixels: measuring them again would give the same numbers
            else:
                images = contender.render(frames, landmarks, [p.states[i] for p in prepared])
                self.clock.lap(f"render {contender.name}")
                measured = self.instruments.measure(images, faces)
                self.clock.lap("measure")
            self._store(f"c{i}", rows, measured)

    def _store(self, prefix: str, rows: list[int], measured: dict[str, np.ndarray]) -> None:
        for key, values in measured.items():
            self.arrays[f"{prefix}.{key}"][rows] = values

    def gallery(self) -> None:
        """The gallery pictures of this shard: which have a face, and its embedding (only for retrieval)."""
        if not self.references:
            return
        task = self.bar.add_task("gallery", total=len(self.gallery_indices))
        for start in range(0, len(self.gallery_indices), self.batch_size):
            chunk = [self.plan.gallery[g] for g in self.gallery_indices[start : start + self.batch_size]]
            for j, (media, image) in enumerate(zip(chunk, read_media(chunk), strict=True), start):
                face = pick_face(self.instruments.detector, image, media)
                self.arrays["gallery.ok"][j] = face is not None
                if face is not None:
                    for key, value in self.instruments.references(image, face).items():
                        self.arrays[f"gallery.{key}"][j] = value
            self.clock.lap("gallery")
            self.bar.advance(task, len(chunk))


def run_shard(
    plan: Plan,
    contenders: Sequence[Contender],
    instruments: Instruments,
    config: RunConfig,
    shard: Shard = Shard(),
    progress: bool = False,
) -> Partial:
    """Swap and measure one shard of ``plan`` (the whole plan with the default shard)."""
    started = time.perf_counter()
    indices = shard.samples(len(plan.samples), config.batch_size)
    gallery = shard.gallery(len(plan.gallery))
    bar = Progress(*Progress.get_default_columns(), MofNCompleteColumn(), disable=not progress)
    run = _ShardRun(plan, contenders, instruments.only(config.metrics), config.batch_size, indices, gallery, bar)
    with bar:
        run.samples(run.sources())
        run.gallery()
    env = environment(config.device)
    env.update(seconds=dict(run.clock.seconds), wall_seconds=time.perf_counter() - started)
    return Partial(
        plan,
        {**to_dict(config), "contenders": [c.describe() for c in contenders]},
        shard,
        np.array(indices, np.int64),
        np.array(gallery, np.int64),
        run.status,
        run.arrays,
        env,
    )


def _dtype(key: str) -> type:
    return next(m.dtype for m in METRIC_REGISTRY.values() if m.key == key)


def _media_order(media: Media) -> tuple:
    """Pictures of one video next to each other, in frame order, so each video is decoded once per batch."""
    return (media.path, -1 if media.frame is None else media.frame)
