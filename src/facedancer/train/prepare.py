"""``facedancer prepare``: detect, align and store every face of an identity-folder dataset.

The layout is VGGFace2's and LFW's: ``SRC/<identity>/<photo>.jpg``. Videos are accepted too, anywhere in
``SRC``: every ``every``-th frame is aligned and each video is one identity (its path without suffix).
Each face is the highest-scoring detection (as the official crop script, PAPER.md §3.6), aligned to the
ArcFace template scaled to ``size`` with shrink 1.0 and stored under ``DST/crops`` as PNG (lossless, the
default), or as JPEG or WebP at a set quality where disk or transfer size matters (a 256 px LFW crop:
PNG 88 KB, JPEG at quality 90 10.7 KB on average).

Resumability: every finished source file appends one line to ``DST/progress[-K-of-N].jsonl`` (its crops
and its skip reasons). A rerun reads those files and skips what they list, so a rerun of a finished
dataset does nothing; ``--shard K/N`` lets N cluster jobs split the files by a stable hash of their path
and write to separate progress files. ``manifest.csv`` (identity, file, landmarks, score) and
``skipped.csv`` (file, frame, reason) are rendered from all progress files at the end of a run.

Completeness: once every source file (of every shard) is done, ``prepared.json`` records the manifest's
row count and sha256, and readers refuse a dataset without a matching record (the files and their
checks are ``dataset_format.py``). Rerunning ``prepare`` completes the dataset and its record.

Face choice: the highest-scoring detection among those whose detection box has a shorter side of at
least ``min_face`` pixels, so that a sharper small background face (common in news photos) does not
displace the subject; a file is skipped only when every face is too small. The default minimum, 128 px,
is the issue's (the official script's 128 px test is on the *image* size). LFW's 250 px photos hold
faces of about 75-105 px (YuNet box width: 1st percentile 76, median 93), so every LFW face would fail
128; for LFW we use ``--min-face 64``, which keeps the subjects and still ignores small background faces.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facedancer.atomic import atomic_path
from facedancer.errors import InputError, OutputError
from facedancer.io.failures import reason
from facedancer.io.image import read_image
from facedancer.train.dataset_format import (
    COMPLETE,
    QUALITY_FLAG,
    Crop,
    CropFormat,
    completion_problem,
    crop_file,
    write_manifest,
    write_record,
    write_skipped,
    write_webdataset,
)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


@dataclass(frozen=True)
class PrepareOptions:
    size: int = 256
    shrink: float = 1.0
    #: shorter side of the detection box, in source pixels
    min_face: int = 128
    #: detector confidence threshold (YuNet's default)
    score_threshold: float = 0.6
    #: for videos: align every Nth frame
    every: int = 10
    workers: int = 1
    #: (K, N): process only the files whose path hashes to K modulo N (0 <= K < N)
    shard: tuple[int, int] = (0, 1)
    #: also pack the crops into WebDataset tar shards of this many samples (0 = no tars)
    tar_samples: int = 0
    #: how crops are stored: "png" (lossless), or "jpg" / "webp" at ``quality`` (1-100)
    image_format: CropFormat = "png"
    quality: int = 95

    def __post_init__(self) -> None:
        k, n = self.shard
        if n < 1 or not 0 <= k < n:
            raise InputError(f"--shard K/N needs 0 <= K < N, got {k}/{n}")
        if self.image_format not in QUALITY_FLAG:
            raise InputError(f"crop format must be one of {', '.join(QUALITY_FLAG)}, got {self.image_format!r}")
        if not 1 <= self.quality <= 100:
            raise InputError(f"crop quality must be in 1..100, got {self.quality}")
        if self.every < 1 or self.min_face < 0 or self.workers < 1 or self.size < 16 or self.tar_samples < 0:
            raise InputError("every and workers must be >= 1, min_face and tar_samples >= 0, and size >= 16")


@dataclass(frozen=True)
class Item:
    """One source file; ``identity`` is its folder (photos) or its own path without suffix (videos)."""

    source: str  # path relative to SRC, with forward slashes
    identity: str
    video: bool


@dataclass
class ItemResult:
    source: str
    crops: list[Crop] = field(default_factory=list)
    #: (frame, reason) pairs; frame -1 for photos
    skipped: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class PrepareSummary:
    items: int  # source files in this shard
    already_done: int
    processed: int
    crops: int  # over all progress files (every shard, every run)
    skipped: Counter[str]
    #: source files of other shards not done yet: the dataset is complete (has its record) at 0
    pending: int = 0

    @property
    def aligned_fraction(self) -> float:
        total = self.crops + sum(self.skipped.values())
        return self.crops / total if total else 0.0


def discover(src: Path) -> list[Item]:
    """Photos in identity folders and videos anywhere below ``src``, sorted for reproducibility."""
    if not src.is_dir():
        raise InputError(f"{src} is not a directory")
    items = []
    for path in _walk(src):
        rel = path.relative_to(src).as_posix()
        suffix = path.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            items.append(Item(rel, rel[: -len(path.suffix)], True))
        elif suffix in IMAGE_SUFFIXES and "/" in rel:
            items.append(Item(rel, rel.rsplit("/", 1)[0], False))
    if not items:
        raise InputError(f"{src} holds no photos in identity folders (SRC/<identity>/*.jpg) and no videos")
    return items


def _walk(root: Path) -> list[Path]:
    """Every file below ``root``, following symlinked folders (datasets are often assembled from links).

    Each folder is entered once, so a link to an ancestor cannot loop; named pipes, sockets and devices
    are left out (reading one would block or never end), while broken links stay, to be reported as
    unreadable rather than silently missing.
    """
    found, seen = [], set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        info = os.stat(folder)
        if (info.st_dev, info.st_ino) in seen:
            subfolders.clear()
            continue
        seen.add((info.st_dev, info.st_ino))
        for name in files:
            path = Path(folder) / name
            if path.is_file() or not path.exists():
                found.append(path)
    return sorted(found)


def in_shard(item: Item, shard: tuple[int, int]) -> bool:
    """Stable across machines and file additions: a hash of the path, not its position in a listing."""
    k, n = shard
    return zlib.crc32(item.source.encode()) % n == k


def progress_name(shard: tuple[int, int]) -> str:
    k, n = shard
    return "progress.jsonl" if n == 1 else f"progress-{k:04d}-of-{n:04d}.jsonl"


def read_progress(dst: Path) -> dict[str, ItemResult]:
    """Every finished source file over all shards; a torn last line (a killed run) is ignored."""
    done: dict[str, ItemResult] = {}
    for path in sorted(dst.glob("progress*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            done[rec["source"]] = ItemResult(
                rec["source"], [Crop(**c) for c in rec["crops"]], [tuple(s) for s in rec["skipped"]]
            )
    return done


class Aligner:
    """Detect the best face of each image and write its aligned crop; one per worker process."""

    def __init__(self, src: Path, dst: Path, options: PrepareOptions) -> None:
        from facedancer.faces import YuNetDetector

        cv2.setNumThreads(1)
        self.src, self.dst, self.options = src, dst, options
        self.detector = YuNetDetector(score_threshold=options.score_threshold)

    def __call__(self, item: Item) -> ItemResult:
        result = ItemResult(item.source)
        try:
            frames = self._video_frames(item) if item.video else [(-1, self._read_image(item))]
            for frame, image in frames:
                self._align_one(item, frame, image, result)
        except InputError as e:
            result.skipped.append((-1, str(e)))
        return result

    def _read_image(self, item: Item) -> np.ndarray:
        """Upright RGB through the reader every photo goes through; the skip report keeps its own wording."""
        path = self.src / item.source
        try:
            return read_image(path)
        except InputError as e:
            why = str(e).removeprefix(f"cannot read image {path}: ")
            short = "unreadable image" if why.startswith("not an image") else f"unreadable image ({why})"
            raise InputError(short) from None

    def _video_frames(self, item: Item) -> Iterator[tuple[int, np.ndarray]]:
        """Every ``every``-th frame, upright: VideoReader applies the display rotation phones record."""
        from facedancer.io import VideoReader

        try:
            with VideoReader(self.src / item.source) as reader:
                for i, frame in enumerate(reader):
                    if i % self.options.every == 0:
                        yield i, frame
        except InputError as e:
            raise InputError(f"unreadable video ({e})") from None

    def _align_one(self, item: Item, frame: int, image: np.ndarray, result: ItemResult) -> None:
        from facedancer.faces import align

        found = self.detector.detect(image)
        if len(found) == 0:
            result.skipped.append((frame, "no face detected"))
            return
        sizes = np.minimum(found.boxes[:, 2] - found.boxes[:, 0], found.boxes[:, 3] - found.boxes[:, 1])
        big = np.flatnonzero(sizes >= self.options.min_face)  # detections are sorted best first
        if len(big) == 0:
            result.skipped.append((frame, f"face too small ({sizes.max():.0f} px < {self.options.min_face} px)"))
            return
        best = int(big[0])
        face_size, landmarks = float(sizes[best]), found.landmarks[best]
        crop, _ = align(image, landmarks, self.options.size, self.options.shrink)
        rel = crop_file(item.source, frame if item.video else None, self.options.image_format)
        flag = QUALITY_FLAG[self.options.image_format]
        params = [] if flag is None else [flag, self.options.quality]
        with atomic_path(self.dst / rel) as tmp:
            # the temporary name keeps the suffix, which tells OpenCV the format
            if not cv2.imwrite(str(tmp), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), params):
                raise InputError(f"cannot write {self.dst / rel}")
        result.crops.append(
            Crop(item.identity, rel, item.source, frame, float(found.scores[best]), face_size, landmarks.tolist())
        )


_WORKER: Aligner | None = None


def _init_worker(src: Path, dst: Path, options: PrepareOptions) -> None:
    global _WORKER
    _WORKER = Aligner(src, dst, options)


def _work(item: Item) -> ItemResult:
    assert _WORKER is not None
    return _WORKER(item)


def _run(items: list[Item], src: Path, dst: Path, options: PrepareOptions) -> Iterator[ItemResult]:
    if options.workers == 1:
        aligner = Aligner(src, dst, options)
        yield from map(aligner, items)
        return
    # spawn: OpenCV's and torch's thread pools do not survive fork reliably
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(options.workers, initializer=_init_worker, initargs=(src, dst, options)) as pool:
        yield from pool.imap_unordered(_work, items, chunksize=4)


def prepare(src: str | Path, dst: str | Path, options: PrepareOptions | None = None) -> PrepareSummary:
    """Align every face of ``src`` into ``dst`` (resumable, shardable); see the module docstring."""
    from rich.progress import Progress

    options = options or PrepareOptions()
    src, dst = Path(src), Path(dst)
    every_item = discover(src)
    _make_output_folder(src, dst)
    items = [i for i in every_item if in_shard(i, options.shard)]
    done = read_progress(dst)
    todo = [i for i in items if i.source not in done]
    if todo:
        log_path = dst / progress_name(options.shard)
        torn = log_path.is_file() and not log_path.read_bytes().endswith(b"\n") and log_path.stat().st_size > 0
        with log_path.open("a", encoding="utf-8") as log, Progress() as bar:
            if torn:  # a killed run left half a line: start ours on a fresh one
                log.write("\n")
            task = bar.add_task(f"aligning {len(todo)} files", total=len(todo))
            for result in _run(todo, src, dst, options):
                log.write(json.dumps(_record(result)) + "\n")
                log.flush()
                done[result.source] = result
                bar.advance(task)
    pending = sum(1 for i in every_item if i.source not in done)
    if todo or completion_problem(dst) is not None:
        (dst / COMPLETE).unlink(missing_ok=True)  # the rewritten manifest is complete only once recorded so
        rows = write_reports(dst, done.values())
        if options.tar_samples:
            write_webdataset(dst, options.tar_samples)
        if not pending:
            write_record(dst, rows)
    skipped = Counter(_reason_kind(r) for res in done.values() for _, r in res.skipped)
    crops = sum(len(r.crops) for r in done.values())
    return PrepareSummary(len(items), len(items) - len(todo), len(todo), crops, skipped, pending)


def _make_output_folder(src: Path, dst: Path) -> None:
    """Refuse an output folder inside the source (its crops would be read as photos next time) or a file."""
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise InputError(f"the output folder {dst} is inside the source folder {src}: choose one outside it")
    if dst.exists() and not dst.is_dir():
        raise InputError(f"the output folder {dst} is a file")
    try:
        dst.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the output folder {dst}: {reason(e)}") from None


def _record(result: ItemResult) -> dict:
    return {"source": result.source, "crops": [asdict(c) for c in result.crops], "skipped": result.skipped}


def _reason_kind(why: str) -> str:
    """'face too small (93 px < 128 px)' -> 'face too small', for summaries."""
    return why.split(" (")[0]


def write_reports(dst: Path, results: Iterable[ItemResult]) -> int:
    """Write ``manifest.csv`` and ``skipped.csv``; the number of manifest rows."""
    results = sorted(results, key=lambda r: r.source)
    rows = write_manifest(dst, (c for r in results for c in r.crops))
    write_skipped(dst, ((r.source, frame, why) for r in results for frame, why in r.skipped))
    return rows
