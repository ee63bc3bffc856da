"""The job queue: one job at a time per model, in order; folders cleaned whatever happens."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from facedancer.errors import InputError
from facedancer.ui.jobs import Job, JobQueue


@pytest.fixture
def queue(tmp_path):
    queue = JobQueue(tmp_path / "jobs", keep=8)
    queue.root.mkdir()
    yield queue
    queue.close()


def wait(job: Job) -> Job:
    assert job.finished.wait(10), job
    return job


def test_one_job_at_a_time_per_model_in_order(queue):
    running: dict[str, int] = {"a": 0, "b": 0}
    peak: dict[str, int] = {"a": 0, "b": 0}
    order: list[str] = []
    both_models_ran_together = threading.Event()
    lock = threading.Lock()

    def work(lane: str, name: str):
        def run(job: Job) -> Path:
            with lock:
                running[lane] += 1
                peak[lane] = max(peak[lane], running[lane])
                order.append(name)
                if running["a"] and running["b"]:
                    both_models_ran_together.set()
            time.sleep(0.05)
            with lock:
                running[lane] -= 1
            (job.folder / "result.png").write_bytes(b"x")
            return job.folder / "result.png"

        return run

    jobs = [
        queue.submit(queue.new_folder(), lane, "image", 1, work(lane, f"{lane}{i}")) for i in range(3) for lane in "ab"
    ]
    assert queue.ahead(jobs[-1]) >= 1  # b2 waits behind b0 (running or queued) and b1
    for job in jobs:
        wait(job)
    assert peak == {"a": 1, "b": 1}  # never two jobs on one model
    assert both_models_ran_together.is_set()  # but two models at once
    assert [n for n in order if n[0] == "a"] == ["a0", "a1", "a2"]
    assert all(j.state == "done" for j in jobs)


def test_failures_remove_the_folder_and_keep_one_line(queue):
    def bad_input(job: Job) -> Path:
        (job.folder / "target.jpg").write_bytes(b"x")
        raise InputError(f"cannot read image {job.folder / 'target.jpg'}: truncated")

    def bug(job: Job) -> Path:
        raise RuntimeError("boom\nsecond line")

    folder = queue.new_folder()
    job = wait(queue.submit(folder, "m", "image", 1, bad_input, names={folder / "target.jpg": "holiday.jpg"}))
    assert job.state == "failed" and job.error == "cannot read image holiday.jpg: truncated"
    assert not folder.exists()
    job = wait(queue.submit(queue.new_folder(), "m", "image", 1, bug))
    assert job.error == "internal error (RuntimeError): boom second line"
    assert list(queue.root.iterdir()) == []


def test_uploads_go_when_the_job_ends(queue):
    def work(job: Job) -> Path:
        job.advance(3)
        (job.folder / "result.mp4").write_bytes(b"x")
        return job.folder / "result.mp4"

    folder = queue.new_folder()
    (folder / "source-0").write_bytes(b"x")
    (folder / "target.mp4").write_bytes(b"x")
    job = wait(queue.submit(folder, "m", "video", 3, work))
    assert job.state == "done" and job.done == 3
    assert [p.name for p in folder.iterdir()] == ["result.mp4"]
    queue.remove(job)
    assert not folder.exists() and queue.get(job.id) is None


def test_closing_stops_a_running_job_at_its_next_frame(tmp_path):
    queue = JobQueue(tmp_path / "jobs")
    queue.root.mkdir()
    started = threading.Event()

    def endless(job: Job) -> Path:
        started.set()
        while True:
            job.advance(1)
            time.sleep(0.01)

    running = queue.submit(queue.new_folder(), "m", "video", None, endless)
    waiting = queue.submit(queue.new_folder(), "m", "video", None, endless)
    assert started.wait(10)
    queue.close()  # returns: the running job stopped, the queued one never started
    assert running.state == "failed" and running.error == "cancelled: the server is stopping"
    assert waiting.state == "queued" and not queue.root.exists()
