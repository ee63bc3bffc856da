"""Merge shards and score them: one JSON report, a Markdown table and a per-sample CSV.

What each metric scores and which columns show it is defined in :mod:`facedancer.eval.metrics`.
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
from facedancer.eval.metrics import METRICS, Measured, Metric
from facedancer.eval.protocols import Plan
from facedancer.eval.runner import OK, Partial

REPORT_FORMAT = 1
#: run settings that may differ between the shards of one evaluation
PER_SHARD = ("device",)


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

    def _measured(self) -> list[tuple[Measured, list[Metric]]]:
        """Per contender: its measurements and the metrics they hold."""
        ok = np.array(self.status) == OK
        out = []
        for i in range(len(self.names)):
            measured = Measured(self.arrays, self.plan, ok, i)
            out.append((measured, [m for m in METRICS.values() if f"c{i}.{m.key}" in self.arrays]))
        return out

    @functools.cached_property
    def results(self) -> list[dict]:
        """Per contender: the aggregate scores."""
        out = []
        for (measured, metrics), scores, contender in zip(
            self._measured(), self.per_sample, self.run["contenders"], strict=True
        ):
            row = {"name": contender["name"], "kind": contender["kind"], "samples": int(measured.ok.sum())}
            for metric in metrics:
                row.update(metric.aggregate(measured, scores))
            out.append(row)
        return out

    @functools.cached_property
    def per_sample(self) -> list[dict[str, np.ndarray]]:
        """Per contender, per sample (NaN / empty where a sample was left out)."""
        return [{k: v for m in metrics for k, v in m.score(measured).items()} for measured, metrics in self._measured()]

    def rows(self) -> list[dict]:
        """One row per (sample, contender): the per-sample CSV."""
        contenders = list(zip(self.names, self._measured(), self.per_sample, strict=True))
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
            for name, (measured, metrics), scores in contenders:
                row = {**base, "model": name}
                for metric in metrics:
                    row.update(metric.row(measured, scores, j))
                rows.append(row)
        return rows

    def warnings(self) -> list[str]:
        """Caveats a reader of the numbers must see."""
        return [w for name in self.run["metrics"] for w in METRICS[name].warnings(self.run)]

    def summary(self) -> dict:
        """Everything but the per-sample rows: config, seed, plan, instruments, versions and scores."""
        metrics = self.run["metrics"]
        found = self.arrays["gallery.ok"] if any(METRICS[m].references for m in metrics) else None
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
                **{name: m.describe(self.run) if name in metrics else None for name, m in METRICS.items()},
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
        columns = [c for m in METRICS.values() for c in m.columns]
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
