"""Evaluation protocols: which target is swapped with which source, and who is in the retrieval gallery.

A protocol turns a data set into a seeded :class:`Plan` (PAPER.md §4.1): a list of (target, source)
samples whose faces belong to different identities, and a gallery of *other* pictures of every identity
in the plan, against which identity retrieval asks "whom does the swap look like?". The plan depends
only on the data and :class:`SamplingConfig` (seed included), is written into every report, and is
hashed so that shards of one evaluation can prove they belong together.

- ``videos`` (FF++ style, any folder of videos): ``frames_per_video`` seeded target frames per video,
  each swapped with a frame of another video; identity = video. The gallery holds
  ``gallery_per_identity`` further frames of each video (the paper's "spread" gallery: real frames
  labelled by video), never a frame that is a sample's source.
- ``folders`` (identity folders, the LFW layout ``root/<person>/<photo>``): target = a photo of person
  A, source = a photo of person B != A. Each person's photos are split once, seeded: the first
  ``gallery_per_identity`` (of a shuffle) go to the gallery, the rest may be targets or sources.
- ``aflw2000`` (AFLW2000-3D, large poses: the pose protocol): targets are its images within ±99° (the
  usual subset), sources come from identity folders given as ``sources`` (e.g. LFW). AFLW2000-3D has
  no identity labels, so it cannot supply "other photos of the source"; each target image is its own
  identity and enters the gallery itself, as the real target frames do in the paper's FF++ gallery:
  a swap must look more like the source's other photos than like its own unswapped target.

Any protocol can take its sources from identity folders (``sources``) instead of from its own data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from facedancer.config import from_dict, to_dict
from facedancer.errors import ConfigError, InputError
from facedancer.eval.datasets import identity_folders, read_aflw2000
from facedancer.io import VideoReader, media_kind

ProtocolName = Literal["videos", "aflw2000", "folders"]
PROTOCOLS: tuple[str, ...] = ("videos", "aflw2000", "folders")
#: frames per video when the videos protocol is not told otherwise (the 10k-frame FF++ protocol)
DEFAULT_FRAMES_PER_VIDEO = 10


@dataclass(frozen=True)
class Media:
    """One face picture: a photo, or frame ``frame`` (0-based, decode order) of a video."""

    path: str
    identity: str
    frame: int | None = None


@dataclass(frozen=True)
class Sample:
    target: Media
    source: Media


@dataclass(frozen=True)
class SamplingConfig:
    """Everything the plan depends on besides the files themselves."""

    protocol: ProtocolName
    data: str
    #: identity folders to draw sources from (required for aflw2000; else sources come from ``data``)
    sources: str | None = None
    #: at most this many samples (None: the protocol's full set)
    samples: int | None = None
    seed: int = 0
    frames_per_video: int = DEFAULT_FRAMES_PER_VIDEO
    gallery_per_identity: int = 3
    #: identity folders to use, e.g. the held-out identities a training run lists (None: every one);
    #: applies to ``data`` and ``sources`` alike
    identities: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.samples is not None and self.samples < 1:
            raise ConfigError(f"--samples must be at least 1, got {self.samples}")
        if self.seed < 0:
            raise ConfigError(f"--seed must be 0 or more, got {self.seed}")
        if self.frames_per_video < 1:
            raise ConfigError(f"--frames-per-video must be at least 1, got {self.frames_per_video}")
        if self.gallery_per_identity < 1:
            raise ConfigError(f"--gallery-per-identity must be at least 1, got {self.gallery_per_identity}")


@dataclass
class Plan:
    config: SamplingConfig
    samples: list[Sample]
    gallery: list[Media]
    #: inputs left out while planning, with the reason (unreadable or too short videos)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Plan:
        return from_dict(cls, data, "plan")

    def digest(self) -> str:
        """sha256 of the plan: equal digests mean the same samples, gallery and sampling parameters."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    @property
    def identities(self) -> list[str]:
        return sorted({m.identity for s in self.samples for m in (s.target, s.source)})


def face_rule(media: Media) -> Literal["central", "largest"]:
    """Which detected face a picture stands for: the largest in a video frame (its main person), the
    one nearest the centre in a photo (the labelled face of centred data sets such as LFW and AFLW)."""
    return "largest" if media.frame is not None else "central"


@dataclass
class IdentityPool:
    """Identity folders split once: ``probes`` may be targets or sources, ``gallery`` only the gallery sees."""

    probes: dict[str, list[Path]]
    gallery: dict[str, list[Path]]

    def draw(self, rng: np.random.Generator, identity: str) -> Media:
        photos = self.probes[identity]
        return Media(str(photos[int(rng.integers(len(photos)))]), identity)

    def gallery_media(self, identities: set[str]) -> list[Media]:
        return [Media(str(p), name) for name in sorted(identities & self.gallery.keys()) for p in self.gallery[name]]


def identity_pool(
    root: str | Path, per_identity: int, rng: np.random.Generator, only: tuple[str, ...] | None = None
) -> IdentityPool:
    people = identity_folders(root, min_images=per_identity + 1)
    if only is not None:
        keep = set(only)
        people = {name: photos for name, photos in people.items() if name in keep}
    if len(people) < 2:
        among = f" among the {len(only)} listed identities" if only is not None else ""
        raise InputError(
            f"{root} needs at least two identity folders with {per_identity + 1} or more images each{among} "
            f"({per_identity} for the gallery, one or more to swap)"
        )
    probes, gallery = {}, {}
    for name, photos in people.items():
        order = rng.permutation(len(photos))
        gallery[name] = [photos[i] for i in sorted(order[:per_identity])]
        probes[name] = [photos[i] for i in sorted(order[per_identity:])]
    return IdentityPool(probes, gallery)


def _other(rng: np.random.Generator, names: list[str], not_this: str) -> str:
    """A uniformly drawn name other than ``not_this``."""
    choices = [n for n in names if n != not_this]
    return choices[int(rng.integers(len(choices)))]


def _cap(rng: np.random.Generator, samples: list[Sample], limit: int | None) -> list[Sample]:
    """At most ``limit`` samples, a seeded subset in plan order."""
    if limit is None or limit >= len(samples):
        return samples
    return [samples[i] for i in sorted(rng.choice(len(samples), limit, replace=False))]


def plan_folders(config: SamplingConfig) -> Plan:
    rng = np.random.default_rng(config.seed)
    pool = identity_pool(config.data, config.gallery_per_identity, rng, config.identities)
    separate = config.sources is not None and Path(config.sources).resolve() != Path(config.data).resolve()
    source_pool = (
        identity_pool(config.sources, config.gallery_per_identity, rng, config.identities) if separate else pool
    )
    names, source_names = sorted(pool.probes), sorted(source_pool.probes)
    count = config.samples or len(names)
    samples = []
    # every person is a target once before anyone is a target twice
    for i in np.resize(rng.permutation(len(names)), count):
        target = pool.draw(rng, names[i])
        samples.append(Sample(target, source_pool.draw(rng, _other(rng, source_names, target.identity))))
    target_ids, source_ids = {s.target.identity for s in samples}, {s.source.identity for s in samples}
    if separate:
        gallery = pool.gallery_media(target_ids) + source_pool.gallery_media(source_ids)
    else:
        gallery = pool.gallery_media(target_ids | source_ids)
    return Plan(config, samples, gallery)


def plan_aflw2000(config: SamplingConfig) -> Plan:
    if not config.sources:
        raise ConfigError(
            "the aflw2000 protocol takes its sources from identity folders: give --sources DIR (e.g. LFW); "
            "AFLW2000-3D itself has no identity labels"
        )
    rng = np.random.default_rng(config.seed)
    targets = [s.image for s in read_aflw2000(config.data) if s.within_99deg]
    count = config.samples or len(targets)
    if count > len(targets):
        raise ConfigError(f"--samples {count}: {config.data} has only {len(targets)} images within ±99°")
    pool = identity_pool(config.sources, config.gallery_per_identity, rng, config.identities)
    names = sorted(pool.probes)
    samples = []
    for i in sorted(rng.choice(len(targets), count, replace=False)):
        target = Media(str(targets[i]), f"aflw2000/{targets[i].stem}")
        samples.append(Sample(target, pool.draw(rng, names[int(rng.integers(len(names)))])))
    gallery = [s.target for s in samples] + pool.gallery_media({s.source.identity for s in samples})
    return Plan(config, samples, gallery)


def usable_frames(path: Path) -> int:
    """Frames of a video that are certain to decode: the stated count less the shortfall the reader
    tolerates before it calls a file truncated (a count read from headers can be a frame or two high)."""
    with VideoReader(path) as reader:
        stated = reader.info.frames
        if stated is None:
            return sum(1 for _ in reader)
    return stated - max(2, stated // 100)


def plan_videos(config: SamplingConfig) -> Plan:
    root = Path(config.data)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder")
    rng = np.random.default_rng(config.seed)
    per_video, per_gallery = config.frames_per_video, config.gallery_per_identity
    targets: dict[str, list[int]] = {}
    gallery: dict[str, list[int]] = {}
    frames: dict[str, int] = {}
    paths: dict[str, str] = {}
    skipped = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and media_kind(p) == "video"):
        name = path.relative_to(root).as_posix()
        try:
            count = usable_frames(path)
        except InputError as e:
            skipped[name] = str(e)
            continue
        if count < per_video + per_gallery:
            skipped[name] = f"{count} frames, fewer than {per_video} targets + {per_gallery} gallery frames"
            continue
        chosen = rng.choice(count, per_video + per_gallery, replace=False)
        targets[name], gallery[name] = sorted(map(int, chosen[:per_video])), sorted(map(int, chosen[per_video:]))
        frames[name], paths[name] = count, str(path)
    names = sorted(targets)
    if len(names) < (1 if config.sources else 2):
        raise InputError(f"{root} needs at least two readable videos of {per_video + per_gallery}+ frames each")
    pool = identity_pool(config.sources, per_gallery, rng, config.identities) if config.sources else None
    source_names = sorted(pool.probes) if pool is not None else names
    samples = []
    for name in names:
        for frame in targets[name]:
            target = Media(paths[name], name, frame)
            if pool is not None:
                source = pool.draw(rng, source_names[int(rng.integers(len(source_names)))])
            else:
                other = _other(rng, source_names, name)
                allowed = np.setdiff1d(np.arange(frames[other]), gallery[other])
                source = Media(paths[other], other, int(rng.choice(allowed)))
            samples.append(Sample(target, source))
    samples = _cap(rng, samples, config.samples)
    used = {s.target.identity for s in samples} | {s.source.identity for s in samples}
    media = [Media(paths[n], n, f) for n in names if n in used for f in gallery[n]]
    if pool is not None:
        media += pool.gallery_media({s.source.identity for s in samples})
    return Plan(config, samples, media, skipped)


def make_plan(config: SamplingConfig) -> Plan:
    """The seeded plan of a protocol on its data."""
    planners = {"videos": plan_videos, "aflw2000": plan_aflw2000, "folders": plan_folders}
    if config.protocol not in planners:
        raise ConfigError(f"unknown protocol {config.protocol!r}; choose {', '.join(PROTOCOLS)}")
    return planners[config.protocol](config)
