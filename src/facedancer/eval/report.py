"""Merge shards and score them: one JSON report, a Markdown table and a per-sample CSV.

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

import csv
import functools
import io
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facedancer.atomic import atomic_path
from facedancer.config import to_dict
from facedancer.errors import InputError, OutputError
from facedancer.eval.expression import expression_error
from facedancer.eval.fid import fid
from facedancer.eval.identity import nearest_identity
from facedancer.eval.pose import ANGLES, pose_error
from facedancer.eval.protocols import Plan
from facedancer.eval.runner import OK, Partial

REPORT_FORMAT = 1
#: run settings that may differ between the shards of one evaluation
PER_SHARD = ("device",)

INSTRUMENTS = {
    "dlib": "dlib ResNet 128-d (face-recognition-models), not the training encoder",
    "3ddfa": "3DDFA_V2 MobileNet-0.5",
    "fsanet": "FSA-Net (1x1 + var)",
}


@dataclass
class Report:
    plan: Plan
    run: dict
    status: list[str]
    arrays: dict[str, np.ndarray]
    shards: list[dict]

    @property
    def names(self) -> list[str]:
        return [c["name"] for c in self.run["contenders"]]

    @functools.cached_property
    def results(self) -> list[dict]:
        """Per contender: the aggregate scores."""
        per = self.per_sample
        ok = np.array(self.status) == OK
        out = []
        for i, contender in enumerate(self.run["contenders"]):
            s = per[i]
            row = {"name": contender["name"], "kind": contender["kind"], "samples": int(ok.sum())}
            if "retrieved" in s:
                row["id_retrieval"] = _mean(100.0 * s["hit"][ok])
                row["id_retrieved_target"] = _mean(100.0 * s["hit_target"][ok])
                row["id_cosine_source"] = _mean(s["cosine_source"][ok])
            if "pose_error" in s:
                row["pose_error"] = _mean(s["pose_error"][ok])
                diff = np.abs(self.arrays[f"c{i}.pose"][ok] - self.arrays["target.pose"][ok])
                row["pose_abs_error"] = {a: _mean(diff[:, k]) for k, a in enumerate(ANGLES)}
            if "expression_error" in s:
                row["expression_error"] = _mean(s["expression_error"][ok])
            if f"c{i}.fid" in self.arrays:
                reals, fakes = self.arrays["target.fid"][ok], self.arrays[f"c{i}.fid"][ok]
                # identical sets give 0 up to rounding (-1e-14): FID is a distance, never negative
                row["fid"] = max(fid(reals, fakes), 0.0) if ok.sum() >= 2 else None
            out.append(row)
        return out

    @functools.cached_property
    def per_sample(self) -> list[dict[str, np.ndarray]]:
        """Per contender, per sample (NaN / empty where a sample was left out)."""
        a = self.arrays
        ok = np.array(self.status) == OK
        sources = np.array([s.source.identity for s in self.plan.samples])
        targets = np.array([s.target.identity for s in self.plan.samples])
        out = []
        for i in range(len(self.names)):
            s: dict[str, np.ndarray] = {}
            if f"c{i}.embedding" in a:
                found = a["gallery.ok"]
                labels = np.array([m.identity for m in self.plan.gallery], dtype=object)[found]
                retrieved = np.full(len(ok), "", dtype=object)
                if found.any() and ok.any():
                    retrieved[ok] = nearest_identity(a[f"c{i}.embedding"][ok], a["gallery.embedding"][found], labels)
                s["retrieved"] = retrieved
                s["hit"] = (retrieved == sources).astype(float)
                s["hit_target"] = (retrieved == targets).astype(float)
                s["cosine_source"] = np.sum(_unit(a[f"c{i}.embedding"]) * _unit(a["source.embedding"]), axis=1)
            if f"c{i}.pose" in a:
                s["pose_error"] = pose_error(a["target.pose"], a[f"c{i}.pose"])
            if f"c{i}.expression" in a:
                s["expression_error"] = expression_error(a["target.expression"], a[f"c{i}.expression"])
            out.append(s)
        return out

    def rows(self) -> list[dict]:
        """One row per (sample, contender): the per-sample CSV."""
        per = self.per_sample
        rows = []
        for j, sample in enumerate(self.plan.samples):
            base = {
                "sample": j,
                "target": sample.target.path,
                "target_frame": "" if sample.target.frame is None else sample.target.frame,
                "target_identity": sample.target.identity,
                "source": sample.source.path,
                "source_frame": "" if sample.source.frame is None else sample.source.frame,
                "source_identity": sample.source.identity,
                "status": self.status[j],
            }
            for i, name in enumerate(self.names):
                row = {**base, "model": name}
                ok = self.status[j] == OK
                s = per[i]
                if "retrieved" in s:
                    row["retrieved_identity"] = s["retrieved"][j]
                    row["id_hit"] = int(s["hit"][j]) if ok else ""
                    row["cosine_source"] = _num(s["cosine_source"][j])
                if "pose_error" in s:
                    row["pose_error"] = _num(s["pose_error"][j])
                    for k, angle in enumerate(ANGLES):
                        row[f"target_{angle}"] = _num(self.arrays["target.pose"][j, k])
                        row[angle] = _num(self.arrays[f"c{i}.pose"][j, k])
                if "expression_error" in s:
                    row["expression_error"] = _num(s["expression_error"][j])
                rows.append(row)
        return rows

    def warnings(self) -> list[str]:
        """Caveats a reader of the numbers must see."""
        recogniser = self.run["recogniser"] if "id" in self.run["metrics"] else None
        return [
            f"{c['name']} was trained with the {recogniser} identity encoder that also judges its retrieval here: "
            "use a different recogniser (the default dlib) for independent evidence"
            for c in self.run["contenders"]
            if recogniser and c.get("identity_encoder") == recogniser
        ]

    def summary(self) -> dict:
        """Everything but the per-sample rows: config, seed, plan, instruments, versions and scores."""
        metrics = self.run["metrics"]
        found = self.arrays["gallery.ok"] if "id" in metrics else None
        return {
            "format": REPORT_FORMAT,
            "protocol": self.plan.config.protocol,
            "sampling": to_dict(self.plan.config),
            "plan": {
                "digest": self.plan.digest(),
                "samples": len(self.plan.samples),
                "evaluated": self.status.count(OK),
                "left_out": dict(Counter(s for s in self.status if s != OK)),
                "identities": len(self.plan.identities),
                "gallery": len(self.plan.gallery),
                "gallery_faces": None if found is None else int(found.sum()),
                "gallery_identities": None
                if found is None
                else len({m.identity for m, f in zip(self.plan.gallery, found, strict=True) if f}),
                "skipped_inputs": self.plan.skipped,
            },
            "run": self.run,
            "instruments": {
                "id": INSTRUMENTS.get(self.run["recogniser"], self.run["recogniser"]) if "id" in metrics else None,
                "pose": INSTRUMENTS[self.run["pose_estimator"]] if "pose" in metrics else None,
                "expression": "3DDFA_V2 expression coefficients (NOT the paper's EfficientNet-B0 embedding)"
                if "expression" in metrics
                else None,
                "fid": "TF-FID Inception-v3 on 256 px aligned face crops, swaps vs real targets"
                if "fid" in metrics
                else None,
                "measured_on": "pasted-back image, at the target's detected face",
            },
            "results": self.results,
            "warnings": self.warnings(),
            "shards": self.shards,
            "per_sample": "samples.csv",
        }

    def markdown(self) -> str:
        summary = self.summary()
        plan, cfg = summary["plan"], summary["sampling"]
        columns = [
            ("id_retrieval", "ID retrieval % ↑", "{:.1f}"),
            ("id_cosine_source", "cos(source) ↑", "{:.3f}"),
            ("pose_error", "pose error ° ↓", "{:.2f}"),
            ("expression_error", "expression error ↓", "{:.3f}"),
            ("fid", "FID ↓", "{:.1f}"),
        ]
        results = summary["results"]
        shown = [c for c in columns if any(c[0] in r for r in results)]
        lines = [
            f"### facedancer eval: {cfg['protocol']} on `{cfg['data']}`",
            "",
            f"{plan['evaluated']} of {plan['samples']} samples evaluated (seed {cfg['seed']}, plan "
            f"{plan['digest'][:12]})"
            + (
                f"; gallery {plan['gallery_faces']} pictures of {plan['gallery_identities']} identities."
                if plan["gallery_faces"] is not None
                else "."
            ),
            "",
            "| model | " + " | ".join(title for _, title, _ in shown) + " |",
            "|---|" + "---:|" * len(shown),
        ]
        for r in results:
            name = f"{r['name']} (baseline)" if r["kind"] == "baseline" else r["name"]
            cells = [fmt.format(r[key]) if r.get(key) is not None else "–" for key, _, fmt in shown]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += [f"\n**Warning:** {w}" for w in summary["warnings"]]
        lines += [
            "",
            "copy-target = the unswapped target (retrieval floor; best pose, expression, FID); paste-source = the "
            "aligned source face blended in without a generator (retrieval ceiling; the pose/expression error of "
            "ignoring the target). Expression error: 3DDFA_V2 coefficients, not the paper's metric.",
        ]
        return "\n".join(lines) + "\n"

    def write(self, directory: str | Path) -> dict[str, Path]:
        """``report.json``, ``report.md`` and ``samples.csv`` in ``directory``, each written atomically."""
        directory = Path(directory)
        rows = self.rows()
        fields = list(dict.fromkeys(k for row in rows for k in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        texts = {
            "report.json": json.dumps(self.summary(), indent=2, ensure_ascii=False) + "\n",
            "report.md": self.markdown(),
            "samples.csv": buffer.getvalue(),
        }
        written = {}
        try:
            for name, text in texts.items():
                with atomic_path(directory / name) as tmp:
                    tmp.write_text(text, encoding="utf-8")
                written[name] = directory / name
        except OSError as e:
            raise OutputError(f"cannot write the report into {directory}: {e.strerror or e}") from None
        return written


def merge(parts: Sequence[Partial]) -> Report:
    """One report from all shards of one evaluation (a single run is the merge of its one part)."""
    if not parts:
        raise InputError("nothing to merge")
    first = parts[0]
    count = first.shard.count
    digest = first.plan.digest()
    settings = {k: v for k, v in first.run.items() if k not in PER_SHARD}
    seen: dict[int, Partial] = {}
    for part in parts:
        if part.plan.digest() != digest:
            raise InputError(f"shard {part.shard} belongs to another plan (different data, samples or seed)")
        if {k: v for k, v in part.run.items() if k not in PER_SHARD} != settings:
            raise InputError(f"shard {part.shard} was run with other settings (models, metrics or instruments)")
        if part.shard.count != count:
            raise InputError(f"shards of {count} and of {part.shard.count} parts cannot be merged")
        if part.shard.index in seen:
            raise InputError(f"shard {part.shard} is given twice")
        seen[part.shard.index] = part
    if missing := sorted(set(range(count)) - seen.keys()):
        raise InputError(f"shard {missing[0]}/{count} is missing ({len(missing)} of {count} missing)")
    ordered = [seen[k] for k in range(count)]
    samples = np.concatenate([p.samples for p in ordered])
    gallery = np.concatenate([p.gallery for p in ordered])
    if not np.array_equal(samples, np.arange(len(first.plan.samples))) or not np.array_equal(
        gallery, np.arange(len(first.plan.gallery))
    ):
        raise InputError("the shards do not cover the plan exactly once (were they run with different batch sizes?)")
    arrays = {k: np.concatenate([p.arrays[k] for p in ordered]) for k in first.arrays}
    status = [s for p in ordered for s in p.status]
    shards = [{"shard": str(p.shard), **p.environment} for p in ordered]
    return Report(first.plan, first.run, status, arrays, shards)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _mean(x: np.ndarray) -> float | None:
    return float(np.mean(x)) if len(x) else None


def _num(x: float) -> str | float:
    return "" if np.isnan(x) else round(float(x), 6)
