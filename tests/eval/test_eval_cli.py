"""``facedancer eval`` as users run it: a full report for a random-init checkpoint, dry runs, clear errors."""

import csv
import json
import math

import pytest

SAMPLES = 20


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_report_for_a_random_init_checkpoint_beside_classical(run, lfw, random_model, registered_weights, tmp_path):
    """The whole pipeline on CPU: 20 LFW samples, all four metrics, a model and classical compared."""
    pytest.importorskip("dlib")
    out = tmp_path / "report"
    args = ["eval", "folders", lfw, "-o", out, "--samples", SAMPLES, "--gallery-per-identity", 2, "--seed", 7]
    code, stdout, err = run(*args, "--model", random_model, "--compare", "classical")
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["sampling"]["seed"] == 7 and report["sampling"]["samples"] == SAMPLES
    assert report["run"]["metrics"] == ["id", "pose", "expression", "fid"]
    assert report["shards"][0]["versions"]["torch"]
    results = {r["name"]: r for r in report["results"]}
    name = random_model.name
    assert list(results) == ["copy-target", "paste-source", name, "classical"]
    for contender, r in results.items():
        assert r["samples"] >= SAMPLES - 1, contender
        for key in ("id_retrieval", "id_cosine_source", "pose_error", "expression_error", "fid"):
            assert math.isfinite(r[key]), (contender, key)
    assert results["copy-target"]["fid"] < 1e-6 and results["copy-target"]["pose_error"] == 0
    # a random generator paints no face of the source: it must not be mistaken for one
    assert results[name]["id_retrieval"] < results["paste-source"]["id_retrieval"]
    assert results[name]["fid"] > results["classical"]["fid"]
    with (out / "samples.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * SAMPLES and {r["model"] for r in rows} == set(results)
    table = (out / "report.md").read_text()
    assert table in stdout + "\n" and "| classical |" in table and "| copy-target (baseline) |" in table


def test_dry_run_prints_the_plan_without_loading_models(run, lfw, tmp_path):
    args = ["--samples", 12, "--shard", "1/3", "--batch-size", 4, "--dry-run"]
    code, out, err = run("eval", "folders", lfw, "-o", tmp_path, *args)
    assert code == 0, err
    assert "12 samples of 24 identities" in out and "shard 1/3: samples 4..7 (4)" in out
    assert "target " in out and "<- source " in out and not any(tmp_path.iterdir())


@pytest.mark.parametrize("order", ["data first", "data last"])
def test_compare_takes_several_models_in_one_option(run, lfw, random_model, tmp_path, order):
    """``--compare A B`` (the ablation-table form) names both models, wherever the data set is written."""
    compare = ["--compare", random_model, "classical"]
    args = [lfw, *compare] if order == "data first" else [*compare, lfw]
    code, out, err = run("eval", "folders", *args, "-o", tmp_path, "--samples", 4, "--dry-run")
    assert code == 0, err
    assert f"models: baselines copy-target, paste-source, {random_model}, classical" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shard", "2/2"], "K/N"),
        (["--metrics", "id,speed"], "unknown metric 'speed'"),
        (["--frames-per-video", "3"], "videos protocol only"),
        (["--model", "no/such/model"], "unknown model"),
        (["--samples", "0"], "at least 1"),
        (["--identities", "no/such/list.txt"], "cannot read --identities"),
    ],
)
def test_mistakes_are_one_line_errors(run, lfw, tmp_path, args, message):
    code, _, err = run("eval", "folders", lfw, "-o", tmp_path / "r", *args)
    assert code == 2 and message in _one_line(err)


def test_identities_file_bounds_the_plan(run, lfw, tmp_path):
    people = ["Aaron_Peirsol", "Adrien_Brody", "Al_Gore", "Alejandro_Toledo"]
    listing = tmp_path / "held_out_identities.txt"
    listing.write_text("\n".join(people) + "\n")
    code, out, err = run("eval", "folders", lfw, "-o", tmp_path / "r", "--identities", listing, "--dry-run")
    assert code == 0 and "only the 4 listed identities" in out, err
    drawn = {line.split("/")[-2] for line in out.splitlines() if ".jpg" in line}
    assert drawn and drawn <= set(people)


def test_aflw2000_needs_sources_and_merge_needs_parts(run, shared, tmp_path):
    code, _, err = run("eval", "aflw2000", shared / "data" / "aflw2000", "-o", tmp_path / "r", "--dry-run")
    assert code == 2 and "--sources" in _one_line(err)
    (tmp_path / "part.npz").write_bytes(b"junk")
    code, _, err = run("eval", "merge", tmp_path / "part.npz", "-o", tmp_path / "r")
    assert code == 2 and "not a facedancer eval part" in _one_line(err)


def test_blend_settings_reach_the_swaps_and_the_report(run, lfw, registered_weights, tmp_path):
    """``--blend/--colour/--poisson`` as in ``facedancer swap``: recorded in the report and used to paste."""
    common = ["eval", "folders", lfw, "--samples", 3, "--metrics", "pose", "--compare", "classical"]
    code, _, err = run(*common, "-o", tmp_path / "default")
    assert code == 0, err
    code, _, err = run(*common, "--no-colour", "--poisson", "--blend", "rect-image", "-o", tmp_path / "official")
    assert code == 0, err
    reports = {k: json.loads((tmp_path / k / "report.json").read_text()) for k in ("default", "official")}
    assert reports["default"]["run"]["blend"] == {"mask": "landmarks", "colour": True, "poisson": False}
    assert reports["official"]["run"]["blend"] == {"mask": "rect-image", "colour": False, "poisson": True}

    def classical_yaws(name: str) -> list[str]:
        with (tmp_path / name / "samples.csv").open() as f:
            return [r["yaw"] for r in csv.DictReader(f) if r["model"] == "classical"]

    assert classical_yaws("default") != classical_yaws("official")  # other pixels pasted, other measurements
    assert reports["default"]["results"][0] == reports["official"]["results"][0]  # copy-target: nothing pasted


def test_a_no_flag_between_compared_models_and_the_data_takes_no_value(run, lfw, random_model, tmp_path):
    code, out, err = run(
        "eval", "folders", "--compare", random_model, "classical", "--no-colour", lfw, "-o", tmp_path, "--dry-run"
    )
    assert code == 0, err
    assert f"models: baselines copy-target, paste-source, {random_model}, classical" in out
