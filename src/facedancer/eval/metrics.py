"""The metrics of ``facedancer eval`` by name: each one's instrument, measurement, scores and report columns.

A metric is one class here: how its instrument loads, what it measures on a face (stored per sample as
``target.<key>``, ``c<i>.<key>`` and, for retrieval, ``source.<key>`` / ``gallery.<key>``), how the
report scores those measurements (per sample, per contender) and which columns show them. The runner
and the report only loop over :data:`METRICS`, so adding a metric touches this file alone.

Scores (PAPER.md §4.1), per contender, over the samples whose target and source faces were found:

- ID retrieval: % of swaps whose nearest gallery picture (cosine, the paper's "spread" mode) belongs
  to the source identity; beside it the mean cosine between swap and source, and the % retrieved as
  the *target* identity (a swap that kept the target's identity).
- pose error: mean L2 of (yaw, pitch, roll) in degrees between target and swap, and the mean absolute
  error of each angle.
- expression error: mean L2 of 3DDFA_V2's 10 expression coefficients between target and swap. **Not
  the paper's metric** (an EfficientNet-B0 expression embedding): compare it only between models
  measured here.
- FID between the swaps' and the real targets' aligned face crops (TF-FID Inception). With fewer
  images than the 2048 feature dimensions it is biased upwards: compare FIDs of equal sample counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from facedancer.eval.expression import expression_error
from facedancer.eval.fid import FEATURE_DIM, InceptionFeatures, fid
from facedancer.eval.identity import load_recogniser, nearest_identity
from facedancer.eval.pose import ANGLES, load_estimator, pose_error
from facedancer.eval.protocols import Plan
from facedancer.eval.tddfa import TDDFA, angles_from_rotation, expression_coefficients, rotation_from_params
from facedancer.faces import Detections, alignment_matrix, warp

if TYPE_CHECKING:
    from facedancer.eval.runner import RunConfig

#: aligned face crop (ArcFace template) whose Inception features enter FID: the face, as the paper's
#: aligned test frames, not a frame whose unchanged background would dilute the difference
FID_CROP = 256

INSTRUMENTS = {
    "dlib": "dlib ResNet 128-d (face-recognition-models), not the training encoder",
    "3ddfa": "3DDFA_V2 MobileNet-0.5",
    "fsanet": "FSA-Net (1x1 + var)",
}

#: a Markdown column: result key, title, number format
Column = tuple[str, str, str]
Images = Sequence[np.ndarray]
Faces = Sequence[Detections]


@dataclass(frozen=True)
class Measured:
    """One contender's stored measurements in a report, beside the targets', sources' and gallery's."""

    arrays: Mapping[str, np.ndarray]
    plan: Plan
    #: per sample: were its target and source faces found
    ok: np.ndarray
    contender: int

    def swap(self, key: str) -> np.ndarray:
        return self.arrays[f"c{self.contender}.{key}"]

    def target(self, key: str) -> np.ndarray:
        return self.arrays[f"target.{key}"]


class Metric:
    """One metric. ``key`` names its stored measurement; ``references``: it also measures each sample's
    source and the gallery pictures (identity retrieval needs them)."""

    name: ClassVar[str]
    key: ClassVar[str]
    columns: ClassVar[tuple[Column, ...]]
    dtype: ClassVar[type] = np.float64
    references: ClassVar[bool] = False

    def load(self, config: RunConfig, shared: dict[str, Any]) -> Any:
        """The instrument (``shared`` holds instruments that several metrics use, loaded once)."""
        raise NotImplementedError

    def width(self, instrument: Any) -> int:
        raise NotImplementedError

    def measure(self, instrument: Any, images: Images, faces: Faces, cache: dict[str, Any]) -> np.ndarray:
        """(N, width) for the one face ``faces[i]`` in ``images[i]``; ``cache`` lives for this batch."""
        raise NotImplementedError

    def describe(self, run: Mapping[str, Any]) -> str:
        """The instrument, as the report names it."""
        raise NotImplementedError

    def score(self, m: Measured) -> dict[str, np.ndarray]:
        """Per-sample scores (NaN / empty where a sample was left out)."""
        return {}

    def aggregate(self, m: Measured, scores: dict[str, np.ndarray]) -> dict[str, Any]:
        """This metric's entries in the contender's results row."""
        raise NotImplementedError

    def row(self, m: Measured, scores: dict[str, np.ndarray], j: int) -> dict[str, Any]:
        """Its cells in sample ``j``'s per-sample CSV row."""
        return {}

    def warnings(self, run: Mapping[str, Any]) -> list[str]:
        """Caveats a reader of its numbers must see."""
        return []


class Identity(Metric):
    name, key, references = "id", "embedding", True
    columns = (("id_retrieval", "ID retrieval % ↑", "{:.1f}"), ("id_cosine_source", "cos(source) ↑", "{:.3f}"))

    def load(self, config: RunConfig, shared: dict[str, Any]) -> Any:
        return load_recogniser(config.recogniser, config.recogniser_weights, config.device)

    def width(self, instrument: Any) -> int:
        return getattr(instrument, "dim", 0)

    def measure(self, instrument: Any, images: Images, faces: Faces, cache: dict[str, Any]) -> np.ndarray:
        return np.concatenate([instrument.embed(im, f) for im, f in zip(images, faces, strict=True)])

    def describe(self, run: Mapping[str, Any]) -> str:
        return INSTRUMENTS.get(run["recogniser"], run["recogniser"])

    def score(self, m: Measured) -> dict[str, np.ndarray]:
        found = m.arrays["gallery.ok"]
        labels = np.array([g.identity for g in m.plan.gallery], dtype=object)[found]
        retrieved = np.full(len(m.ok), "", dtype=object)
        if found.any() and m.ok.any():
            retrieved[m.ok] = nearest_identity(m.swap(self.key)[m.ok], m.arrays[f"gallery.{self.key}"][found], labels)
        sources = np.array([s.source.identity for s in m.plan.samples])
        targets = np.array([s.target.identity for s in m.plan.samples])
        return {
            "retrieved": retrieved,
            "hit": (retrieved == sources).astype(float),
            "hit_target": (retrieved == targets).astype(float),
            "cosine_source": np.sum(_unit(m.swap(self.key)) * _unit(m.arrays[f"source.{self.key}"]), axis=1),
        }

    def aggregate(self, m: Measured, scores: dict[str, np.ndarray]) -> dict[str, Any]:
        return {
            "id_retrieval": _mean(100.0 * scores["hit"][m.ok]),
            "id_retrieved_target": _mean(100.0 * scores["hit_target"][m.ok]),
            "id_cosine_source": _mean(scores["cosine_source"][m.ok]),
        }

    def row(self, m: Measured, scores: dict[str, np.ndarray], j: int) -> dict[str, Any]:
        return {
            "retrieved_identity": scores["retrieved"][j],
            "id_hit": int(scores["hit"][j]) if m.ok[j] else "",
            "cosine_source": _num(scores["cosine_source"][j]),
        }

    def warnings(self, run: Mapping[str, Any]) -> list[str]:
        recogniser = run["recogniser"]
        return [
            f"{c['name']} was trained with the {recogniser} identity encoder that also judges its retrieval here: "
            "use a different recogniser (the default dlib) for independent evidence"
            for c in run["contenders"]
            if recogniser and c.get("identity_encoder") == recogniser
        ]


class Pose(Metric):
    name, key = "pose", "pose"
    columns = (("pose_error", "pose error ° ↓", "{:.2f}"),)

    def load(self, config: RunConfig, shared: dict[str, Any]) -> Any:
        if config.pose_estimator == "3ddfa":
            return _tddfa(config, shared)
        return load_estimator(config.pose_estimator, config.device)

    def width(self, instrument: Any) -> int:
        return len(ANGLES)

    def measure(self, instrument: Any, images: Images, faces: Faces, cache: dict[str, Any]) -> np.ndarray:
        if isinstance(instrument, TDDFA):  # the forward pass that also gives the expression
            return angles_from_rotation(rotation_from_params(_params(instrument, images, faces, cache)))
        return np.concatenate([instrument.predict(im, f.boxes) for im, f in zip(images, faces, strict=True)])

    def describe(self, run: Mapping[str, Any]) -> str:
        return INSTRUMENTS[run["pose_estimator"]]

    def score(self, m: Measured) -> dict[str, np.ndarray]:
        return {"pose_error": pose_error(m.target(self.key), m.swap(self.key))}

    def aggregate(self, m: Measured, scores: dict[str, np.ndarray]) -> dict[str, Any]:
        diff = np.abs(m.swap(self.key)[m.ok] - m.target(self.key)[m.ok])
        return {
            "pose_error": _mean(scores["pose_error"][m.ok]),
            "pose_abs_error": {a: _mean(diff[:, k]) for k, a in enumerate(ANGLES)},
        }

    def row(self, m: Measured, scores: dict[str, np.ndarray], j: int) -> dict[str, Any]:
        cells: dict[str, Any] = {"pose_error": _num(scores["pose_error"][j])}
        for k, angle in enumerate(ANGLES):
            cells[f"target_{angle}"] = _num(m.target(self.key)[j, k])
            cells[angle] = _num(m.swap(self.key)[j, k])
        return cells


class Expression(Metric):
    name, key = "expression", "expression"
    columns = (("expression_error", "expression error ↓", "{:.3f}"),)

    def load(self, config: RunConfig, shared: dict[str, Any]) -> Any:
        return _tddfa(config, shared)

    def width(self, instrument: Any) -> int:
        return 10

    def measure(self, instrument: Any, images: Images, faces: Faces, cache: dict[str, Any]) -> np.ndarray:
        return expression_coefficients(_params(instrument, images, faces, cache))

    def describe(self, run: Mapping[str, Any]) -> str:
        return "3DDFA_V2 expression coefficients (NOT the paper's EfficientNet-B0 embedding)"

    def score(self, m: Measured) -> dict[str, np.ndarray]:
        return {"expression_error": expression_error(m.target(self.key), m.swap(self.key))}

    def aggregate(self, m: Measured, scores: dict[str, np.ndarray]) -> dict[str, Any]:
        return {"expression_error": _mean(scores["expression_error"][m.ok])}

    def row(self, m: Measured, scores: dict[str, np.ndarray], j: int) -> dict[str, Any]:
        return {"expression_error": _num(scores["expression_error"][j])}


class Fid(Metric):
    name, key, dtype = "fid", "fid", np.float32
    columns = (("fid", "FID ↓", "{:.1f}"),)

    def load(self, config: RunConfig, shared: dict[str, Any]) -> Any:
        return InceptionFeatures(device=config.device)

    def width(self, instrument: Any) -> int:
        return FEATURE_DIM

    def measure(self, instrument: Any, images: Images, faces: Faces, cache: dict[str, Any]) -> np.ndarray:
        matrices = [alignment_matrix(f.landmarks[0], FID_CROP) for f in faces]
        crops = [warp(im, m, FID_CROP) for im, m in zip(images, matrices, strict=True)]
        return instrument(crops).astype(np.float32)

    def describe(self, run: Mapping[str, Any]) -> str:
        return "TF-FID Inception-v3 on 256 px aligned face crops, swaps vs real targets"

    def aggregate(self, m: Measured, scores: dict[str, np.ndarray]) -> dict[str, Any]:
        reals, fakes = m.target(self.key)[m.ok], m.swap(self.key)[m.ok]
        # identical sets give 0 up to rounding (-1e-14): FID is a distance, never negative
        return {"fid": max(fid(reals, fakes), 0.0) if m.ok.sum() >= 2 else None}


#: every metric by name, in report order
METRICS: dict[str, Metric] = {m.name: m for m in (Identity(), Pose(), Expression(), Fid())}


def _tddfa(config: RunConfig, shared: dict[str, Any]) -> TDDFA:
    """One 3DDFA_V2 for pose and expression: one forward pass gives both."""
    if "tddfa" not in shared:
        shared["tddfa"] = TDDFA.load(device=config.device)
    return shared["tddfa"]


def _params(tddfa: TDDFA, images: Images, faces: Faces, cache: dict[str, Any]) -> np.ndarray:
    """3DDFA_V2's parameters of this batch's faces, computed once for pose and expression."""
    key = f"tddfa-params-{id(tddfa)}"
    if key not in cache:
        cache[key] = np.concatenate([tddfa.params(im, f.boxes) for im, f in zip(images, faces, strict=True)])
    return cache[key]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _mean(x: np.ndarray) -> float | None:
    return float(np.mean(x)) if len(x) else None


def _num(x: float) -> str | float:
    return "" if np.isnan(x) else round(float(x), 6)
