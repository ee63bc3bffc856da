"""The Starlette application: one self-contained page and a small JSON API over :class:`JobQueue`.

Routes::

    GET    /                       the page (no script, style or font from anywhere else)
    GET    /api/models             models, selection modes, blend masks, precisions, limits
    POST   /api/jobs               multipart form -> 202 + the job (queued)
    GET    /api/jobs/{id}          state, progress, error, and when done the label and result URL
    GET    /api/jobs/{id}/result   the labelled result (?download=1 to save it under a name)
    DELETE /api/jobs/{id}          forget a finished job and delete its files
    POST   /api/swap               the same form -> the labelled result itself, when it is done

Every error is ``{"error": "<one line>"}``: the swap library's own message (the CLI prints the same),
with a 4xx status: 400 for a bad form or upload, 413 for a body over the limit, 404/409 for jobs.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict
from importlib import resources
from pathlib import Path

import anyio
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facedancer.errors import FacedancerError, InputError
from facedancer.faces import MASK_KINDS
from facedancer.io import DEFAULT_MAX_PIXELS, read_label
from facedancer.swap import DEFAULT_THRESHOLD
from facedancer.swap.backends import DTYPES
from facedancer.ui.choices import default_choice, model_choices
from facedancer.ui.form import FACES, check_uploads, parse_options, save_uploads
from facedancer.ui.jobs import Job, JobQueue, explain
from facedancer.ui.swapping import Swappers

DEFAULT_MAX_UPLOAD_BYTES = 512 << 20
#: the page may use only itself: inline script and style, images and videos from this server
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
    "img-src 'self' blob: data:; media-src 'self' blob:; form-action 'none'; base-uri 'none'"
)


class UploadTooLarge(InputError):
    """A request body above the server's upload limit."""


def create_app(
    *,
    models: Sequence[Path] = (),
    device: str = "cpu",
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    keep: int = 8,
    work_dir: Path | None = None,
) -> Starlette:
    """The web app. ``models``: model directories (or folders of them) to offer besides the bundled ones
    and classical; ``keep``: finished results kept for download; ``work_dir``: where job folders go."""
    choices = model_choices(models)
    default_model = default_choice(choices)
    swappers = Swappers(device, max_pixels)
    jobs = JobQueue(Path(tempfile.mkdtemp(prefix="facedancer-ui-", dir=work_dir)), keep)
    page = (resources.files("facedancer.ui") / "page.html").read_text(encoding="utf-8")

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers={"Content-Security-Policy": CSP})

    async def list_models(request: Request) -> Response:
        return JSONResponse(
            {
                "models": [{"name": c.name, "kind": c.kind, "precision": c.has_precision} for c in choices.values()],
                "default": default_model,
                "faces": FACES,
                "masks": MASK_KINDS,
                "precisions": ["auto", *DTYPES],
                "threshold": DEFAULT_THRESHOLD,
                "max_upload_bytes": max_upload_bytes,
                "max_pixels": max_pixels,
            }
        )

    async def accept(request: Request) -> Job:
        """Parse, store and open a swap form, then queue its job; nothing is left behind when it fails."""
        async with request.form(max_files=64, max_fields=64) as form:
            options = parse_options(form, choices, default_model)
            folder = jobs.new_folder()
            names: dict[Path, str] = {}
            try:
                uploads = await run_in_threadpool(save_uploads, form, folder)
                names = uploads.names
                frames = await run_in_threadpool(check_uploads, uploads, options, max_pixels)
            except FacedancerError as e:
                await run_in_threadpool(_remove, folder)
                raise type(e)(explain(e, names)) from None
            except BaseException:
                await run_in_threadpool(_remove, folder)
                raise
        output, target = uploads.output(), uploads.target

        def work(job: Job) -> Path:
            report = swappers.swap(options, uploads.sources, uploads.references, target, output, job.advance)
            job.report = {"faces_swapped": report.faces_swapped, "frames": report.frames}
            job.done = report.frames  # an image reports no progress while it is swapped
            return output

        return jobs.submit(folder, options.model.name, uploads.kind, frames, work, names)

    async def create_job(request: Request) -> Response:
        job = await accept(request)
        return JSONResponse(_describe(job, jobs), status_code=202, headers={"Location": f"/api/jobs/{job.id}"})

    def find(request: Request) -> Job:
        job = jobs.get(request.path_params["job_id"])
        if job is None:
            raise HTTPException(404, f"no such job on this server (it keeps the newest {keep} results)")
        return job

    async def get_job(request: Request) -> Response:
        return JSONResponse(_describe(find(request), jobs))

    async def get_result(request: Request) -> Response:
        job = find(request)
        if job.state != "done" or job.result is None:
            raise HTTPException(409, job.error or f"the job is {job.state}: its result is not ready")
        download = request.query_params.get("download") in ("1", "true")
        return FileResponse(
            job.result, filename=_result_name(job), content_disposition_type="attachment" if download else "inline"
        )

    async def delete_job(request: Request) -> Response:
        job = find(request)
        if not job.finished.is_set():
            raise HTTPException(409, f"the job is {job.state}; it can be deleted once it has finished")
        await run_in_threadpool(jobs.remove, job)
        return Response(status_code=204)

    async def swap_now(request: Request) -> Response:
        job = await accept(request)
        while not job.finished.is_set():
            await anyio.sleep(0.05)
        if job.state == "failed" or job.result is None:
            await run_in_threadpool(jobs.remove, job)
            return _error(422, job.error or "the swap failed")
        return FileResponse(
            job.result,
            filename=_result_name(job),
            content_disposition_type="attachment",
            background=BackgroundTask(jobs.remove, job),
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            jobs.close()

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/models", list_models),
            Route("/api/jobs", create_job, methods=["POST"]),
            Route("/api/jobs/{job_id}", get_job),
            Route("/api/jobs/{job_id}", delete_job, methods=["DELETE"]),
            Route("/api/jobs/{job_id}/result", get_result),
            Route("/api/swap", swap_now, methods=["POST"]),
        ],
        exception_handlers={FacedancerError: _facedancer_error, HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.jobs = jobs
    app.add_middleware(BodyLimit, max_bytes=max_upload_bytes)
    return app


def _describe(job: Job, jobs: JobQueue) -> dict:
    """A job as the API shows it."""
    out: dict = {
        "id": job.id,
        "state": job.state,
        "kind": job.kind,
        "model": job.lane,
        "progress": {"done": job.done, "total": job.total},
        "ahead": jobs.ahead(job),
        "error": job.error,
    }
    if job.state == "done" and job.result is not None:
        label = read_label(job.result)
        out.update(
            result=f"/api/jobs/{job.id}/result",
            download=f"/api/jobs/{job.id}/result?download=1",
            filename=_result_name(job),
            label=asdict(label) if label else None,
            report=job.report,
        )
    return out


def _result_name(job: Job) -> str:
    """``<the user's target name>-swapped<suffix>``: the name a download is saved under."""
    assert job.result is not None
    target = next((name for path, name in job.names.items() if path.stem == "target"), "result")
    return f"{Path(target).stem}-swapped{job.result.suffix}"


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _facedancer_error(request: Request, exc: Exception) -> Response:
    return _error(413 if isinstance(exc, UploadTooLarge) else 400, str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, exc.detail)


class BodyLimit:
    """Refuse a request body above ``max_bytes``: at once by its Content-Length, or when the bytes
    received pass the limit (a chunked upload states no length)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = UploadTooLarge(f"the upload is larger than this server's limit of {self.max_bytes / 2**20:.4g} MiB")
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit():
            await _error(400, "the Content-Length header is not a number")(scope, receive, send)
            return
        if int(length) > self.max_bytes:
            await _error(413, str(too_large))(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise too_large
            return message

        await self.app(scope, counted, send)
