"""The app's handlers under Starlette's test client: forms, jobs, results, limits and clean-up."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from facedancer.io import VideoReader, read_image, read_label
from facedancer.swap.files import folder_plan
from facedancer.ui import create_app

from .conftest import BAD_UPLOAD_MESSAGES


@pytest.fixture
def app(tmp_path, random_model):
    return create_app(models=[random_model], work_dir=tmp_path)


@pytest.fixture
def client(app):
    with TestClient(app) as client:
        yield client


def files(*parts: tuple[str, Path, str | None]) -> list:
    """Multipart file parts: (field, path, name sent, or the path's own)."""
    return [(field, (name or path.name, path.read_bytes())) for field, path, name in parts]


def finish(client: TestClient, job: dict, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while job["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
        job = client.get(f"/api/jobs/{job['id']}").json()
    return job


def leftovers(app) -> list[Path]:
    return sorted(app.state.jobs.root.rglob("*"))


def test_page_is_self_contained(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "http://" not in page.text and "https://" not in page.text  # no CDN script, style or font
    assert "default-src 'none'" in page.headers["content-security-policy"]


def test_models_lists_directories_and_classical(client, random_model):
    info = client.get("/api/models").json()
    kinds = {m["name"]: (m["kind"], m["precision"]) for m in info["models"]}
    assert kinds == {random_model.name: ("directory", True), "classical": ("classical", False)}
    assert info["faces"] == ["all", "largest", "index", "reference"] and info["max_pixels"] == 100_000_000


def test_image_job_gives_the_cli_result_and_label(client, app, run, pair, tmp_path):
    job = client.post(
        "/api/jobs",
        files=files(("source", pair[0], None), ("target", pair[1], "brody.jpg")),
        data={"model": "classical"},
    )
    assert job.status_code == 202 and job.headers["location"] == f"/api/jobs/{job.json()['id']}"
    job = finish(client, job.json())
    assert job["state"] == "done" and job["progress"] == {"done": 1, "total": 1}, job
    assert job["report"] == {"faces_swapped": 1, "frames": 1} and job["filename"] == "brody-swapped.jpg"
    result = client.get(job["download"])
    assert result.status_code == 200 and 'filename="brody-swapped.jpg"' in result.headers["content-disposition"]
    (tmp_path / "ui.jpg").write_bytes(result.content)
    # the same swap from the command line: same pixels, same label
    code, _, err = run("swap", "-s", pair[0], "-t", pair[1], "-o", tmp_path / "cli.jpg", "--model", "classical")
    assert code == 0, err
    np.testing.assert_array_equal(read_image(tmp_path / "ui.jpg"), read_image(tmp_path / "cli.jpg"))
    assert read_label(tmp_path / "ui.jpg") == read_label(tmp_path / "cli.jpg") is not None
    assert job["label"]["model"] == "classical" and job["label"]["source_type"].endswith("compositeSynthetic")
    # the upload is gone as soon as the job ended; the result stays until the job is deleted
    assert [p.name for p in leftovers(app)] == [job["id"], "result.jpg"]
    assert client.delete(f"/api/jobs/{job['id']}").status_code == 204
    assert leftovers(app) == [] and client.get(f"/api/jobs/{job['id']}").status_code == 404


def test_video_job_reports_progress_and_writes_a_labelled_video(client, pair, clip, tmp_path):
    job = client.post(
        "/api/jobs",
        files=files(("source", pair[0], None), ("target", clip, None)),
        data={"model": "classical", "max_frames": "6", "mask": "rect-video", "colour": "false"},
    ).json()
    assert job["kind"] == "video" and job["progress"]["total"] == 6
    job = finish(client, job)
    assert job["state"] == "done" and job["progress"] == {"done": 6, "total": 6}, job
    out = tmp_path / job["filename"]
    out.write_bytes(client.get(job["result"]).content)
    with VideoReader(out) as reader:
        assert sum(1 for _ in reader) == 6
    assert read_label(out).model == "classical"


def test_an_animated_png_is_written_as_the_cli_writes_it(client, pair, tmp_path):
    """An animated PNG is a video that PNG cannot hold: an animated WebP, as a folder swap writes it."""
    still = Image.open(pair[1]).convert("RGB")
    anim = tmp_path / "in" / "anim.png"
    anim.parent.mkdir()
    still.save(anim, save_all=True, append_images=[still.rotate(i) for i in (1, 2)], duration=80, loop=0)
    job = client.post(
        "/api/jobs", files=files(("source", pair[0], None), ("target", anim, None)), data={"model": "classical"}
    ).json()
    assert job["kind"] == "video" and job["progress"]["total"] == 3
    job = finish(client, job)
    assert job["state"] == "done" and job["filename"] == "anim-swapped.webp", job
    assert folder_plan(anim.parent, tmp_path / "out") == [(anim, tmp_path / "out" / "anim.webp")]
    out = tmp_path / job["filename"]
    out.write_bytes(client.get(job["result"]).content)
    with Image.open(out) as result:
        assert result.format == "WEBP" and result.n_frames == 3


def test_generator_model_with_precision(client, random_model, pair):
    job = client.post(
        "/api/jobs",
        files=files(("source", pair[0], None), ("target", pair[1], None)),
        data={"model": random_model.name, "precision": "bf16", "faces": "largest"},
    ).json()
    job = finish(client, job)
    assert job["state"] == "done", job
    assert job["label"]["model"] == random_model.name


def test_reference_pairs_choose_faces(client, pair):
    def swap(*references: Path) -> dict:
        parts = [("source", pair[0], None)] * len(references) + [("reference", r, None) for r in references]
        parts = files(*parts, ("target", pair[1], None))
        job = client.post("/api/jobs", files=parts, data={"model": "classical", "faces": "reference"}).json()
        return finish(client, job)

    assert swap(pair[1])["report"]["faces_swapped"] == 1  # the target's own face as the reference
    left_alone = swap(pair[0])  # someone else: nothing swapped, so nothing is written (as the CLI does)
    assert left_alone["state"] == "failed" and left_alone["error"].startswith("nothing swapped in"), left_alone
    assert swap(pair[0], pair[1])["report"]["faces_swapped"] == 1  # two people: the second one is here


def test_a_failed_job_says_why_and_leaves_nothing(client, app, pair, faceless):
    job = client.post(
        "/api/jobs", files=files(("source", faceless, None), ("target", pair[1], None)), data={"model": "classical"}
    ).json()
    job = finish(client, job)
    assert job["state"] == "failed" and job["error"] == "no face found in the source image (wall.png)"
    assert leftovers(app) == []
    assert client.get(f"/api/jobs/{job['id']}/result").json()["error"] == job["error"]


@pytest.mark.parametrize("case", sorted(BAD_UPLOAD_MESSAGES))
def test_bad_uploads_are_refused_with_one_line(client, app, pair, bad_uploads, case):
    role = "target" if case == "truncated-video" else "source"
    other = ("target", pair[1], None) if role == "source" else ("source", pair[0], None)
    answer = client.post("/api/jobs", files=files((role, bad_uploads[case], None), other), data={"model": "classical"})
    assert answer.status_code == 400
    message = answer.json()["error"]
    assert message.startswith(BAD_UPLOAD_MESSAGES[case]) and "\n" not in message, message
    assert str(app.state.jobs.root) not in message  # the user's file name, not the server's path
    assert leftovers(app) == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"model": "nope"}, "unknown model 'nope'; this server offers random-init, classical"),
        ({"faces": "eldest"}, "faces 'eldest': expected one of all, largest, index, reference"),
        ({"faces": "reference"}, "faces=reference needs one reference image per source (1 sources, 0 references)"),
        ({"index": "-1"}, "index '-1': expected at least 0"),
        ({"threshold": "nan"}, "threshold 'nan': expected between -1.0 and 1.0"),
        ({"max_frames": "two"}, "max_frames 'two': expected a whole number"),
        ({"colour": "maybe"}, "colour 'maybe': expected true or false"),
        ({"mask": "oval"}, "mask 'oval': expected one of landmarks, rect-image, rect-video"),
        ({"precision": "fp8"}, "precision 'fp8': expected one of auto, fp32, fp16, bf16"),
    ],
)
def test_bad_options_are_refused_with_one_line(client, app, pair, data, message):
    answer = client.post("/api/jobs", files=files(("source", pair[0], None), ("target", pair[1], None)), data=data)
    assert answer.status_code == 400 and answer.json()["error"] == message
    assert leftovers(app) == []


def test_missing_and_unsupported_files(client, pair, tmp_path):
    answer = client.post("/api/jobs", files=files(("target", pair[1], None)))
    assert answer.json()["error"] == "missing source: upload an image of the face to put in"
    answer = client.post("/api/jobs", files=files(("source", pair[0], None)))
    assert answer.json()["error"] == "missing target: upload the image or video whose faces are swapped"
    answer = client.post("/api/jobs", files=files(("source", pair[0], None), ("target", pair[1], "face.txt")))
    assert answer.status_code == 400 and answer.json()["error"].startswith(
        "cannot swap face.txt: unsupported file type"
    )
    two = files(("source", pair[0], None), ("source", pair[1], None), ("target", pair[1], None))
    assert "several sources need faces=reference" in client.post("/api/jobs", files=two).json()["error"]


def test_client_names_never_become_paths(client, app, pair, tmp_path):
    """A name like ../../x.jpg only words messages: the upload is stored under a fixed name in its job folder."""
    outside = tmp_path.parent
    before = sorted(outside.iterdir())
    parts = files(("source", pair[0], "../../../../evil.jpg"), ("target", pair[1], "../../../../evil-target.jpg"))
    job = finish(client, client.post("/api/jobs", files=parts, data={"model": "classical"}).json())
    assert job["state"] == "done" and job["filename"] == "evil-target-swapped.jpg"
    assert sorted(outside.iterdir()) == before
    assert [p.name for p in leftovers(app)] == [job["id"], "result.jpg"]
    assert client.get("/api/jobs/..%2F..%2Fetc/result").status_code == 404


def test_swap_endpoint_returns_the_result_and_forgets_the_job(client, app, pair, faceless, tmp_path):
    answer = client.post(
        "/api/swap", files=files(("source", pair[0], None), ("target", pair[1], "b.png")), data={"model": "classical"}
    )
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    (tmp_path / "r.png").write_bytes(answer.content)
    assert read_label(tmp_path / "r.png").model == "classical"
    assert read_image(tmp_path / "r.png").shape == (250, 250, 3)
    answer = client.post(
        "/api/swap", files=files(("source", faceless, None), ("target", pair[1], None)), data={"model": "classical"}
    )
    assert answer.status_code == 422 and answer.json()["error"] == "no face found in the source image (wall.png)"
    assert leftovers(app) == []


def test_upload_limit(tmp_path, pair):
    app = create_app(max_upload_bytes=10_000, work_dir=tmp_path)
    with TestClient(app) as client:
        big = files(("source", pair[0], None), ("target", pair[1], None))  # two ~8 KB JPEGs
        answer = client.post("/api/jobs", files=big)
        assert answer.status_code == 413
        assert answer.json()["error"] == "the upload is larger than this server's limit of 0.009537 MiB"

        def chunks():  # no Content-Length: counted as it arrives
            yield b"x" * 6_000
            yield b"x" * 6_000

        answer = client.post("/api/jobs", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
        assert answer.status_code == 413 and "larger than this server's limit" in answer.json()["error"]
        assert leftovers(app) == []


def test_finished_results_are_kept_for_the_newest_jobs_only(tmp_path, pair):
    app = create_app(keep=1, work_dir=tmp_path)
    with TestClient(app) as client:
        parts = files(("source", pair[0], None), ("target", pair[1], None))
        first = finish(client, client.post("/api/jobs", files=parts, data={"model": "classical"}).json())
        second = finish(client, client.post("/api/jobs", files=parts, data={"model": "classical"}).json())
        assert client.get(f"/api/jobs/{first['id']}").status_code == 404
        assert client.get(second["result"]).status_code == 200
        assert [p.name for p in leftovers(app)] == [second["id"], "result.jpg"]
    assert not app.state.jobs.root.exists()  # stopping the server removed everything
