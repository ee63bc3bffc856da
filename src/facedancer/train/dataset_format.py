"""The format of a prepared dataset: what ``facedancer prepare`` writes and every reader of it expects.

    DST/crops/<identity>/<photo>.png          one aligned crop per photo (or .jpg / .webp)
    DST/crops/<video path>/<frame:06d>.png    every ``every``-th frame of a video
    DST/manifest.csv                          one row per crop: MANIFEST_COLUMNS
    DST/skipped.csv                           source, frame, reason
    DST/prepared.json                         the completion record: rows and sha256 of manifest.csv
    DST/webdataset/crops-NNNNNN.tar           optional: <key>.<ext> image + <key>.json per crop

A dataset counts only once its completion record matches its manifest (:func:`read_manifest`): a
manifest truncated, edited, or written while other shards were still running would otherwise train on a
part of the data without a word. ``prepare.py`` writes this format; the data loader, the trainer and the
IFSR pre-study read it through this module only.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

import cv2
import numpy as np

from facedancer.atomic import atomic_path
from facedancer.errors import InputError
from facedancer.io.failures import reason

CROPS = "crops"
MANIFEST = "manifest.csv"
SKIPPED = "skipped.csv"
#: the completion record: rows and sha256 of the finished manifest
COMPLETE = "prepared.json"
WEBDATASET = "webdataset"
LANDMARK_COLUMNS = [f"{axis}{i}" for i in range(5) for axis in ("x", "y")]
MANIFEST_COLUMNS = ["identity", "file", "source", "frame", "score", "face_size", *LANDMARK_COLUMNS]
CropFormat = Literal["png", "jpg", "webp"]
#: crop format -> the OpenCV imwrite flag that sets its quality (PNG is lossless: none)
QUALITY_FLAG = {"png": None, "jpg": cv2.IMWRITE_JPEG_QUALITY, "webp": cv2.IMWRITE_WEBP_QUALITY}


@dataclass
class Crop:
    """One manifest row: an aligned crop and where it came from."""

    identity: str
    file: str  # relative to DST
    source: str
    frame: int  # -1 for photos
    score: float
    face_size: float
    landmarks: list[list[float]]  # 5 x 2 in source pixels


def crop_file(source: str, frame: int | None, image_format: CropFormat) -> str:
    """Where the crop of a photo (``frame`` None) or of a video frame is stored, relative to DST."""
    stem = source.rsplit(".", 1)[0]
    return f"{CROPS}/{stem}.{image_format}" if frame is None else f"{CROPS}/{stem}/{frame:06d}.{image_format}"


def row_landmarks(row: dict[str, str]) -> np.ndarray:
    """A manifest row's five landmarks (5, 2), in the source image's pixels."""
    return np.array([[float(row[f"x{i}"]), float(row[f"y{i}"])] for i in range(5)])


# --- manifest and completion record --------------------------------------------------------------------


def write_manifest(dst: Path, crops: Iterable[Crop]) -> int:
    """Write ``manifest.csv``; the number of rows."""
    rows = 0
    with atomic_path(dst / MANIFEST) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(MANIFEST_COLUMNS)
        for c in crops:
            points = [f"{v:.3f}" for xy in c.landmarks for v in xy]
            w.writerow([c.identity, c.file, c.source, c.frame, f"{c.score:.4f}", f"{c.face_size:.1f}", *points])
            rows += 1
    return rows


def write_skipped(dst: Path, skipped: Iterable[tuple[str, int, str]]) -> None:
    """Write ``skipped.csv``: (source, frame, reason) of every photo or frame without a crop."""
    with atomic_path(dst / SKIPPED) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["source", "frame", "reason"])
        w.writerows(skipped)


def write_record(dst: Path, rows: int) -> None:
    """The completion record: what a complete ``manifest.csv`` holds, flushed to disk before it counts."""
    record = {"rows": rows, "manifest_sha256": hashlib.sha256((dst / MANIFEST).read_bytes()).hexdigest()}
    with atomic_path(dst / COMPLETE, durable=True) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def read_record(root: str | Path) -> dict | None:
    """The completion record of a prepared dataset, or None when it is missing or unreadable."""
    try:
        record = json.loads((Path(root) / COMPLETE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("manifest_sha256"), str):
        return None
    return record if isinstance(record.get("rows"), int) else None


def completion_problem(root: str | Path) -> str | None:
    """Why ``root`` is not a complete prepared dataset (None when it is)."""
    root = Path(root)
    if not (root / MANIFEST).is_file():
        return f"{MANIFEST} is missing"
    record = read_record(root)
    if record is None:
        return (
            f"it has no completion record ({COMPLETE}): prepare was interrupted, other shards are not done, "
            "or it was prepared before records existed"
        )
    if hashlib.sha256((root / MANIFEST).read_bytes()).hexdigest() != record["manifest_sha256"]:
        return f"{MANIFEST} is not the one prepare finished with {record['rows']} rows (truncated or changed)"
    return None


def read_manifest(root: str | Path) -> list[dict[str, str]]:
    """The rows of a complete prepared dataset; anything else is one line saying how to finish it."""
    root = Path(root)
    if not (root / MANIFEST).is_file():
        raise InputError(f"{root} is not a prepared dataset: {MANIFEST} is missing (run `facedancer prepare`)")
    problem = completion_problem(root)
    if problem is not None:
        raise InputError(f"{root} is not a complete prepared dataset: {problem}; rerun `facedancer prepare SRC {root}`")
    return read_rows(root / MANIFEST)


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a manifest file whether or not its dataset is complete (``prepare`` packing its tars)."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{path} is not a manifest written by `facedancer prepare` ({reason(e)})") from None
    missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InputError(f"{path} is not a manifest written by `facedancer prepare`: no column {missing[0]!r}")
    return rows


# --- WebDataset tars -----------------------------------------------------------------------------------


def tar_key(file: str) -> str:
    """WebDataset sample key of a crop: its path below crops/ without suffix (no dots: they split keys)."""
    return str(PurePosixPath(file).relative_to(CROPS).with_suffix("")).replace(".", "_")


def write_webdataset(dst: Path, samples_per_tar: int) -> None:
    """Pack the crops into ``DST/webdataset/crops-NNNNNN.tar`` (image + json per sample) for streaming readers."""
    rows = read_rows(dst / MANIFEST)
    out = dst / WEBDATASET
    out.mkdir(exist_ok=True)
    for old in out.glob("crops-*.tar"):
        old.unlink()
    for start in range(0, len(rows), samples_per_tar):
        name = out / f"crops-{start // samples_per_tar:06d}.tar"
        with atomic_path(name) as tmp, tarfile.open(tmp, "w") as tar:
            for row in rows[start : start + samples_per_tar]:
                key = tar_key(row["file"])
                meta = {k: row[k] for k in ("identity", "source", "frame", "score")}
                meta["landmarks"] = row_landmarks(row).tolist()
                tar.add(dst / row["file"], arcname=key + PurePosixPath(row["file"]).suffix)
                _add_bytes(tar, f"{key}.json", json.dumps(meta).encode())


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@dataclass(frozen=True)
class TarMember:
    """Where a crop's encoded bytes lie inside a WebDataset tar: read with one seek, no tar parsing."""

    tar: Path
    offset: int
    size: int

    def read(self) -> bytes:
        with self.tar.open("rb") as f:
            f.seek(self.offset)
            return f.read(self.size)


def index_tars(root: Path) -> dict[str, TarMember]:
    """Sample key -> image member of every ``root/webdataset/crops-*.tar`` (headers only are read)."""
    found = {}
    for path in sorted((root / WEBDATASET).glob("crops-*.tar")):
        with tarfile.open(path) as tar:
            for m in tar:
                key, dot, ext = m.name.rpartition(".")
                if m.isfile() and dot and ext in QUALITY_FLAG:
                    found[key] = TarMember(path, m.offset_data, m.size)
    return found
