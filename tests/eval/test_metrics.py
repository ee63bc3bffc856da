"""The metric registry: a metric defined in one place is measured, scored, reported and tabulated."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from facedancer.eval import metrics
from facedancer.eval.contenders import load_contenders
from facedancer.eval.protocols import SamplingConfig, make_plan
from facedancer.eval.report import merge
from facedancer.eval.runner import Instruments, RunConfig, run_shard


class Brightness(metrics.Metric):
    """Mean grey level inside the face box: a metric no module but this test knows."""

    name, key = "brightness", "brightness"
    columns = (("brightness_change", "brightness change ↓", "{:.2f}"),)

    def width(self, instrument):
        return 1

    def measure(self, instrument, images, faces, cache):
        boxes = [f.boxes[0].astype(int) for f in faces]
        return np.array([[im[y1:y2, x1:x2].mean()] for im, (x1, y1, x2, y2) in zip(images, boxes, strict=True)])

    def describe(self, run):
        return "mean grey level in the face box"

    def score(self, m):
        return {"brightness_change": np.abs(m.swap(self.key) - m.target(self.key))[:, 0]}

    def aggregate(self, m, scores):
        return {"brightness_change": float(scores["brightness_change"][m.ok].mean())}

    def row(self, m, scores, j):
        return {"brightness_change": metrics._num(scores["brightness_change"][j])}


def test_a_metric_added_in_one_place_runs_through_the_report(lfw, monkeypatch, tmp_path):
    from facedancer.faces import YuNetDetector

    monkeypatch.setitem(metrics.METRICS, "brightness", Brightness())
    plan = make_plan(SamplingConfig("folders", str(lfw), samples=4, gallery_per_identity=1))
    config = RunConfig(metrics=("brightness",))
    instruments = Instruments(YuNetDetector(), {"brightness": object()})
    report = merge([run_shard(plan, load_contenders([]), instruments, config)])
    copy, paste = report.results
    assert copy["brightness_change"] == 0 and paste["brightness_change"] > 0
    assert "| model | brightness change ↓ |" in report.markdown()
    written = report.write(tmp_path)
    summary = json.loads(written["report.json"].read_text())
    assert summary["instruments"]["brightness"] == "mean grey level in the face box"
    assert summary["instruments"]["id"] is None and summary["plan"]["gallery_faces"] is None  # no retrieval
    with written["samples.csv"].open() as f:
        rows = [r for r in csv.DictReader(f) if r["status"] == "ok"]
    assert rows and all(float(r["brightness_change"]) == 0 for r in rows if r["model"] == "copy-target")
    assert any(float(r["brightness_change"]) > 0 for r in rows if r["model"] == "paste-source")


def test_unknown_metrics_and_missing_instruments_are_named():
    from facedancer.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown metric 'speed'; choose from id, pose, expression, fid"):
        RunConfig(metrics=("speed",))
    with pytest.raises(ConfigError, match="no instrument to measure 'pose' with"):
        Instruments(None, {"id": object()}).only(["id", "pose"])
