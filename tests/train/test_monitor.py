import json

from facedancer.train.monitor import Monitor, read_metrics


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
