"""Faces across video frames: tracks with stable ids and smoothed five points.

Per-frame detections jitter by a few pixels, and a swapped face follows them, so an unsmoothed video
shimmers (PAPER.md §6.1, issues #28/#37). Tracks let each face be smoothed on its own (One-Euro,
``faces/smooth.py``), keep a one-frame false positive from flashing in, and give the swapper a stable
id per person for face selection. Tracks end at shot cuts, so neither an id nor smoothing carries a
face of one shot onto another person in the next.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from facedancer.faces.detect import Detections
from facedancer.faces.smooth import OneEuroConfig, OneEuroFilter


@dataclass(frozen=True)
class TrackerConfig:
    """Association and life-cycle rules; see :class:`FaceTracker`."""

    #: a detection continues a track seen in the previous frame when their boxes overlap this much (IoU) ...
    min_iou: float = 0.3
    #: ... and a track missed in the previous frame only when they overlap this much
    revive_iou: float = 0.5
    #: a new track is shown once it was detected in this many consecutive frames ...
    min_hits: int = 3
    #: ... or at once when a detection is this sure
    confident_score: float = 0.85
    #: frames a track survives undetected (its id is kept if the face comes back)
    max_misses: int = 10
    #: of those, frames it is still shown at its last smoothed position (bridges detector dropouts)
    hold: int = 1
    #: a shot cut ends all tracks: Bhattacharyya distance between consecutive frames' hue-saturation
    #: histograms above this (camera and subject motion stay under ~0.1, cuts measure 0.35-0.75)
    cut_threshold: float = 0.3
    smoothing: OneEuroConfig = field(default_factory=OneEuroConfig)


@dataclass
class TrackedFace:
    """One face in one frame as the tracker reports it."""

    track_id: int
    box: np.ndarray  # (4,) x1, y1, x2, y2 of the latest detection
    score: float
    landmarks: np.ndarray  # (5, 2) smoothed
    raw_landmarks: np.ndarray  # (5, 2) as detected (the last detection while held)
    detected: bool  # False while the track is held through a missed detection


@dataclass
class _Track:
    track_id: int
    box: np.ndarray
    score: float
    raw: np.ndarray
    smooth: np.ndarray
    filter: OneEuroFilter
    last_frame: int
    hits: int = 1
    misses: int = 0
    confirmed: bool = False


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over union of (N, 4) and (M, 4) x1y1x2y2 boxes: (N, M)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=-1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


def _greedy_match(overlap: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs (track, detection) by descending overlap, each used once: enough for a handful of faces."""
    pairs = []
    used_t, used_d = set(), set()
    for flat in np.argsort(-overlap, axis=None, kind="stable"):
        t, d = np.unravel_index(flat, overlap.shape)
        if overlap[t, d] < threshold:
            break
        if t not in used_t and d not in used_d:
            pairs.append((int(t), int(d)))
            used_t.add(t)
            used_d.add(d)
    return pairs


class ShotCuts:
    """Tells whether a frame starts a new shot, from a colour histogram of a thumbnail (about 1 ms)."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._previous: np.ndarray | None = None

    def __call__(self, frame: np.ndarray) -> bool:
        step = max(1, min(frame.shape[:2]) // 144)  # subsample first: INTER_AREA over a 4K frame costs ~8 ms
        small = cv2.resize(frame[::step, ::step], (64, 36), interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
        hist = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256])
        cv2.normalize(hist, hist, 1, 0, cv2.NORM_L1)
        previous, self._previous = self._previous, hist
        return previous is not None and cv2.compareHist(previous, hist, cv2.HISTCMP_BHATTACHARYYA) > self.threshold


class FaceTracker:
    """Turns per-frame :class:`Detections` into :class:`TrackedFace` lists with stable ids.

    A detection continues the track whose last box it overlaps most (a track missed in the previous frame
    needs a closer overlap, ``revive_iou``: someone else may stand there now). Unmatched detections
    start tentative tracks, shown once confirmed (``min_hits`` frames in a row, or one confident
    detection), so a low-score false positive that lives a frame or two never flashes in. A confirmed
    track that loses its face is shown at its last position for ``hold`` frames, kept (unshown) for
    ``max_misses`` frames, then dropped; ids are never reused. Given the frames, it also ends every
    track at a shot cut.
    """

    def __init__(self, fps: float, config: TrackerConfig | None = None) -> None:
        self.dt = 1.0 / fps
        self.config = config or TrackerConfig()
        self.frame = -1
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._cuts = ShotCuts(self.config.cut_threshold)

    def update(self, detections: Detections, frame: np.ndarray | None = None) -> list[TrackedFace]:
        """Advance one frame; returns the faces to process in it, in track-id order.

        ``frame`` (the RGB image the detections come from) enables shot-cut detection.
        """
        c = self.config
        self.frame += 1
        if frame is not None and self._cuts(frame):
            self._tracks = []
        boxes = detections.boxes.astype(np.float64)
        live_boxes = np.array([t.box for t in self._tracks]).reshape(-1, 4)
        overlap = iou(live_boxes, boxes)
        missed = np.array([t.misses > 0 for t in self._tracks], bool)
        overlap[missed] = np.where(overlap[missed] >= c.revive_iou, overlap[missed], 0.0)
        pairs = _greedy_match(overlap, c.min_iou)
        matched_t = {t for t, _ in pairs}
        matched_d = {d for _, d in pairs}
        for ti, di in pairs:
            self._continue(self._tracks[ti], detections, di)
        for ti, track in enumerate(self._tracks):
            if ti not in matched_t:
                track.misses += 1
                track.hits = 0
        self._tracks = [t for t in self._tracks if t.misses <= c.max_misses and (t.confirmed or t.misses == 0)]
        for di in range(len(detections)):
            if di not in matched_d:
                self._start(detections, di)
        return [self._report(t) for t in sorted(self._tracks, key=lambda t: t.track_id) if self._shown(t)]

    @property
    def track_ids(self) -> set[int]:
        """Ids of every track still kept, shown or not (a face missed for a few frames keeps its id)."""
        return {t.track_id for t in self._tracks}

    def _start(self, det: Detections, i: int) -> None:
        points = det.landmarks[i].astype(np.float64)
        track = _Track(
            self._next_id,
            det.boxes[i].astype(np.float64),
            float(det.scores[i]),
            points,
            points,
            OneEuroFilter(self.config.smoothing),
            self.frame,
        )
        track.filter(points, self.dt, 1.0)  # the first call only sets the filter's state
        track.confirmed = self._confirms(track)
        self._next_id += 1
        self._tracks.append(track)

    def _continue(self, track: _Track, det: Detections, i: int) -> None:
        track.box, track.score = det.boxes[i].astype(np.float64), float(det.scores[i])
        track.raw = det.landmarks[i].astype(np.float64)
        width = float(track.box[2] - track.box[0])
        track.smooth = track.filter(track.raw, (self.frame - track.last_frame) * self.dt, width)
        track.last_frame = self.frame
        track.hits += 1
        track.misses = 0
        track.confirmed = track.confirmed or self._confirms(track)

    def _confirms(self, track: _Track) -> bool:
        return track.hits >= self.config.min_hits or track.score >= self.config.confident_score

    def _shown(self, track: _Track) -> bool:
        return track.confirmed and track.misses <= self.config.hold

    @staticmethod
    def _report(t: _Track) -> TrackedFace:
        return TrackedFace(t.track_id, t.box.copy(), t.score, t.smooth.copy(), t.raw.copy(), t.misses == 0)
