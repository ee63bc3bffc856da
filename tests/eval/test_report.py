"""Evaluation runs: the baselines bracket the metrics on real LFW swaps, and shards merge into the single run."""

import dataclasses
import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from facedancer.cli import app
from facedancer.errors import InputError
from facedancer.eval.contenders import load_contenders
from facedancer.eval.protocols import SamplingConfig, make_plan
from facedancer.eval.report import Report, merge
from facedancer.eval.runner import Partial, RunConfig, Shard, run_shard

LFW_SAMPLES = 40


def test_baselines_bracket_retrieval_and_pose_on_lfw(lfw, instruments):
    """copy-target: never the source, the target's own pose; paste-source: the source, the source's pose.

    Measured when written (seed 0, 40 samples): copy-target 0% source / 100% target retrieval, pose error
    0; paste-source 90% source / 0% target retrieval, pose error 7.2° (LFW is near-frontal, so sources'
    poses differ from targets' by a few degrees per angle; 15° on AFLW2000-3D). The bounds leave room for
    a few samples to flip on another platform's numerics.
    """
    plan = make_plan(SamplingConfig("folders", str(lfw), samples=LFW_SAMPLES, gallery_per_identity=2))
    config = RunConfig(metrics=("id", "pose"))
    report = merge([run_shard(plan, load_contenders([]), instruments, config)])
    copy, paste = report.results
    print(json.dumps([copy, paste], indent=1))
    assert copy["samples"] >= LFW_SAMPLES - 2
    assert copy["id_retrieval"] <= 5 and copy["id_retrieved_target"] >= 90
    assert copy["pose_error"] < 0.5
    assert paste["id_retrieval"] >= 75 and paste["id_retrieved_target"] <= 10
    assert paste["pose_error"] > 4 and paste["pose_error"] > 10 * copy["pose_error"]
    assert paste["id_cosine_source"] > copy["id_cosine_source"] + 0.05


def test_shards_merge_into_the_single_run(small_videos, instruments, random_model, tmp_path):
    plan = make_plan(SamplingConfig("videos", str(small_videos), frames_per_video=2, gallery_per_identity=1))
    config = RunConfig(models=(str(random_model),), batch_size=2)
    contenders = load_contenders(list(config.models))
    single = merge([run_shard(plan, contenders, instruments, config)])
    paths = [
        run_shard(plan, contenders, instruments, config, Shard(k, 2)).save(tmp_path / f"part-{k}-of-2.npz")
        for k in (1, 0)
    ]
    parts = [Partial.load(p) for p in paths]
    merged = merge(parts)
    cli = CliRunner().invoke(app, ["eval", "merge", *map(str, paths), "-o", str(tmp_path / "report")])
    assert cli.exit_code == 0, cli.output
    written = json.loads((tmp_path / "report" / "report.json").read_text())
    assert written["results"] == json.loads(json.dumps(single.summary()["results"]))

    assert merged.results == single.results
    assert merged.rows() == single.rows()
    summary = merged.summary()
    assert [s["shard"] for s in summary["shards"]] == ["0/2", "1/2"]
    assert summary["plan"]["digest"] == plan.digest() and summary["sampling"]["seed"] == 0
    results = {r["name"]: r for r in summary["results"]}
    assert list(results) == ["copy-target", "paste-source", random_model.name]
    assert summary["run"]["contenders"][2]["model"] == str(random_model.resolve())
    assert results["copy-target"]["fid"] < 1e-6  # the reals against themselves
    for r in results.values():
        assert all(math.isfinite(r[k]) for k in ("id_retrieval", "pose_error", "expression_error", "fid"))
    json.dumps(summary)

    with pytest.raises(InputError, match="1/2 is missing"):
        merge(parts[1:])
    with pytest.raises(InputError, match="given twice"):
        merge([parts[0], parts[0], parts[1]])
    other = make_plan(SamplingConfig("videos", str(small_videos), frames_per_video=2, gallery_per_identity=1, seed=1))
    with pytest.raises(InputError, match="another plan"):
        merge([parts[0], dataclasses.replace(parts[1], plan=other)])


def test_a_part_that_is_not_one_is_a_clear_error(tmp_path):
    bogus = tmp_path / "part-0-of-2.npz"
    np.savez(bogus, x=np.zeros(2))
    with pytest.raises(InputError, match="not a facedancer eval part"):
        Partial.load(bogus)


def test_a_recogniser_that_trained_the_model_is_flagged(lfw):
    plan = make_plan(SamplingConfig("folders", str(lfw), samples=2))
    run = {
        "recogniser": "sface",
        "metrics": ["id"],
        "contenders": [{"name": "m", "kind": "model", "identity_encoder": "sface"}, {"name": "c", "kind": "model"}],
    }
    report = Report(plan, run, ["ok", "ok"], {}, [])
    assert len(report.warnings()) == 1 and report.warnings()[0].startswith("m was trained with the sface")
    assert Report(plan, {**run, "recogniser": "dlib"}, ["ok", "ok"], {}, []).warnings() == []
