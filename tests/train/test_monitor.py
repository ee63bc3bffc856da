import json

import pytest
import torch

from facedancer.train.monitor import Meter, Monitor, read_metrics, read_values


def test_a_resume_marks_the_metrics_and_readers_drop_the_rows_it_re_runs(tmp_path):
    first = Monitor(tmp_path, tensorboard=False)
    for step in (1, 2, 3):
        first.write(step, {"G/total": float(step)})
    first.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "G/tot')  # killed halfway through a line
    again = Monitor(tmp_path, tensorboard=False)
    again.resumed(2, {"from": "step-00000002", "changed": {}})
    for step in (3, 4):
        again.write(step, {"G/total": step + 0.5})
    again.close()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert lines[3] == '{"step": 4, "G/tot'  # the torn line stays alone on its line
    assert json.loads(lines[4])["event"] == "resumed"
    rows = read_metrics(tmp_path)
    assert [(r["step"], r.get("G/total")) for r in rows] == [(1, 1.0), (2, 2.0), (2, None), (3, 3.5), (4, 4.5)]


def test_a_monitor_that_never_wrote_leaves_no_file(tmp_path):
    Monitor(tmp_path, tensorboard=True).close()
    assert list(tmp_path.iterdir()) == []


def test_the_meter_sums_on_the_device_as_python_summed_floats():
    """Interval means equal the float64 sums of the per-step values, and a cross-pair diagnostic that was
    NaN (no cross pair) in some steps is averaged over all steps without them, in none: left out."""
    steps = [
        {"G/id": 0.1, "G/id_cross": float("nan"), "D/r1": 3.0},
        {"G/id": 0.2000001, "G/id_cross": 0.7, "D/r1": 1e-8},
        {"G/id": 0.3, "G/id_cross": 0.9, "D/r1": 2.5},
    ]
    meter = Meter()
    for row in steps:
        meter.add({k: torch.tensor(v) for k, v in row.items()})
    assert meter.steps == 3
    as_float32 = [{k: torch.tensor(v).item() for k, v in row.items()} for row in steps]
    expected = {k: sum(r[k] for r in as_float32 if r[k] == r[k]) / 3 for k in ("G/id", "G/id_cross", "D/r1")}
    assert meter.read() == expected  # bit for bit
    assert meter.steps == 0 and meter.read() == {}
    meter.add({"G/id": torch.tensor(0.5), "G/id_cross": torch.tensor(float("nan"))})
    assert meter.read() == {"G/id": 0.5}
    meter.add({"G/id": torch.tensor(0.5)})
    with pytest.raises(ValueError, match="changed within an interval"):
        meter.add({"D/adv": torch.tensor(0.5)})
    assert read_values({"G/id": torch.tensor(0.25), "D/total": torch.tensor(float("inf"))}) == {
        "G/id": 0.25,
        "D/total": float("inf"),
    }
