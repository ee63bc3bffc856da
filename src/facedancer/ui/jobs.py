"""Swap jobs: each in its own folder, run one at a time per model in the order they came.

A CPU that runs two generators at once runs each at half speed and needs twice the memory, so every
model has one worker thread and a queue. A job's folder holds its uploads and its result; the uploads
go as soon as the job ends, a failed job's whole folder goes, and finished results are kept only for
the newest ``keep`` jobs (and until the server stops, which removes the root folder).
"""

from __future__ import annotations

import itertools
import logging
import shutil
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from facedancer.errors import FacedancerError
from facedancer.io.failures import reason

log = logging.getLogger(__name__)

JobState = Literal["queued", "running", "done", "failed"]


class Cancelled(FacedancerError):
    """A job stopped part-way because the server is stopping (the video writer then leaves nothing)."""


#: what a job runs: the job (its folder, ``advance`` for progress, ``report``) -> the result file in its folder
Work = Callable[["Job"], Path]


@dataclass(eq=False)  # a job is itself, however its fields compare
class Job:
    id: str
    lane: str
    kind: Literal["image", "video"]
    folder: Path
    #: frames the job will swap, when known (an image is one frame)
    total: int | None
    #: upload path -> the name the user gave it, so that messages name the user's file, not ours
    names: dict[Path, str] = field(default_factory=dict)
    state: JobState = "queued"
    done: int = 0
    error: str | None = None
    result: Path | None = None
    #: what the swap did (faces swapped, frames), for the page to say
    report: dict[str, int] = field(default_factory=dict)
    seq: int = 0
    finished: threading.Event = field(default_factory=threading.Event)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def advance(self, frames: int) -> None:
        """Count frames done; raise :class:`Cancelled` between frames once the server is stopping."""
        if self.cancelled.is_set():
            raise Cancelled("cancelled: the server is stopping")
        self.done += frames

    def explain(self, error: BaseException | str) -> str:
        return explain(error, self.names)


def explain(error: BaseException | str, names: dict[Path, str]) -> str:
    """``error``'s one line, with our upload paths replaced by the names the user gave the files."""
    text = str(error)
    for path, name in names.items():
        text = text.replace(str(path), name)
    return text


class JobQueue:
    """Jobs by id, one worker thread per lane (model), folders under ``root``."""

    def __init__(self, root: Path, keep: int = 8) -> None:
        self.root = root
        self.keep = keep
        self._jobs: dict[str, Job] = {}
        self._finished: list[Job] = []  # in the order they finished
        self._lanes: dict[str, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()
        self._seq = itertools.count()

    def new_folder(self) -> Path:
        """A fresh folder named by a random id (the job's id: nothing from a request names it)."""
        folder = self.root / uuid.uuid4().hex
        folder.mkdir()
        return folder

    def submit(
        self,
        folder: Path,
        lane: str,
        kind: Literal["image", "video"],
        total: int | None,
        work: Work,
        names: dict[Path, str] | None = None,
    ) -> Job:
        """Queue ``work`` for the job whose uploads are in ``folder`` (from :meth:`new_folder`)."""
        job = Job(id=folder.name, lane=lane, kind=kind, folder=folder, total=total, names=names or {})
        job.seq = next(self._seq)
        with self._lock:
            self._jobs[job.id] = job
            if lane not in self._lanes:
                self._lanes[lane] = ThreadPoolExecutor(1, thread_name_prefix=f"facedancer-ui-{lane}")
            self._lanes[lane].submit(self._run, job, work)
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def ahead(self, job: Job) -> int:
        """Jobs that run before ``job`` on its model: the one running and those queued earlier."""
        if job.state != "queued":
            return 0
        with self._lock:
            return sum(
                1
                for j in self._jobs.values()
                if j.lane == job.lane and (j.state == "running" or (j.state == "queued" and j.seq < job.seq))
            )

    def remove(self, job: Job) -> None:
        """Forget a finished job and delete its folder."""
        with self._lock:
            self._jobs.pop(job.id, None)
            if job in self._finished:
                self._finished.remove(job)
        shutil.rmtree(job.folder, ignore_errors=True)

    def close(self) -> None:
        """Drop what is queued, stop what runs at its next frame, and delete every job folder."""
        with self._lock:
            lanes, self._lanes = list(self._lanes.values()), {}
            for job in self._jobs.values():
                job.cancelled.set()
        for lane in lanes:
            lane.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, job: Job, work: Work) -> None:
        """Run a job, clean its folder, then publish the outcome: whoever sees it finished sees it clean."""
        job.state = "running"
        result, error = None, None
        try:
            result = work(job)
        except FacedancerError as e:
            error = job.explain(e)
        except Exception as e:  # a bug in facedancer: the traceback goes to the server's log, one line to the user
            log.exception("job %s failed", job.id)
            error = f"internal error ({type(e).__name__}): {job.explain(reason(e))}"
        if error is None:
            for path in job.folder.glob("*"):
                if path != result:
                    path.unlink(missing_ok=True)
        else:
            shutil.rmtree(job.folder, ignore_errors=True)
        self._evict(job)
        job.result, job.error, job.state = result, error, "done" if error is None else "failed"
        job.finished.set()

    def _evict(self, finishing: Job) -> None:
        """Remove the jobs that finished longest ago beyond ``keep``, counting the one finishing now."""
        with self._lock:
            self._finished.append(finishing)
            old = self._finished[: max(0, len(self._finished) - self.keep)]
        for job in old:
            self.remove(job)
