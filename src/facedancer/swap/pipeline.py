"""Stages in threads joined by bounded queues, so that a slow stage (the generator) never waits on the others.

A video swap runs decode, detection (+ tracking, selection, alignment), the generator and the blend each in
a thread of its own while the caller encodes, so each stage works on a later frame as soon as it has handed
the earlier one on. Threads (not processes) suffice: PyAV, OpenCV, torch, OpenVINO and ONNX Runtime release
the GIL while they compute, and frames cross stages without being copied.

Guarantees the swap relies on:

- **order**: each stage is one thread reading one FIFO queue, so items leave in the order they came;
- **bounded memory**: every queue holds at most ``depth`` items (and the caller may bound more, e.g. frames);
- **errors**: the first exception raised in any stage stops every stage and is re-raised, the same object,
  in the caller's thread (a one-line :class:`~facedancer.errors.FacedancerError` stays one line);
- **no hung threads**: leaving the ``with`` block, normally, by an error, Ctrl-C or SIGTERM in the caller,
  stops and joins every stage (each waits on its queues in short slices and watches the stop flag).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

#: how often a waiting stage looks at the stop flag (seconds): bounds how long stopping takes
POLL_SECONDS = 0.05
#: items each queue between two stages may hold
DEFAULT_DEPTH = 2

_END = object()  # after a stage's last item


class Stopped(Exception):
    """Raised inside a stage that waits while the pipeline is stopping: unwinds it quietly."""


class Pipeline:
    """Start stages with :meth:`stage`, consume the last one with :meth:`results` in the calling thread.

    A stage is a function from an iterator of inputs to an iterator of outputs (so it may batch, split or
    drop items), run in its own daemon thread::

        with Pipeline() as pipe:
            frames = pipe.stage("decode", lambda _: iter(reader))
            swapped = pipe.stage("swap", swap_each, frames)
            for frame in pipe.results(swapped):
                writer.write(frame)
    """

    def __init__(self, depth: int = DEFAULT_DEPTH) -> None:
        self.depth = depth
        self.stopping = threading.Event()
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def stage(
        self, name: str, work: Callable[[Iterator[Any]], Iterable[Any]], inbox: queue.Queue | None = None
    ) -> queue.Queue:
        """Run ``work`` over the items of ``inbox`` (nothing, for a first stage) in a new thread; returns the
        queue its outputs go to."""
        outbox: queue.Queue = queue.Queue(self.depth)
        thread = threading.Thread(target=self._run, args=(work, inbox, outbox), name=f"facedancer-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()
        return outbox

    def results(self, inbox: queue.Queue) -> Iterator[Any]:
        """The last stage's outputs, in order, in the calling thread; a stage's error is raised here."""
        yield from self._items(inbox, caller=True)
        self._raise()

    def wait(self, acquire: Callable[[float], bool]) -> None:
        """Block on ``acquire(timeout)`` (e.g. a semaphore's) until it succeeds or the pipeline stops."""
        while not acquire(POLL_SECONDS):
            if self.stopping.is_set():
                raise Stopped

    def close(self) -> None:
        """Stop every stage and wait for its thread to end."""
        self.stopping.set()
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        if exc[1] is None:
            self._raise()

    # --- internals ----------------------------------------------------------------------------
    def _run(self, work: Callable, inbox: queue.Queue | None, outbox: queue.Queue) -> None:
        try:
            for item in work(iter(()) if inbox is None else self._items(inbox)):
                self._put(outbox, item)
            self._put(outbox, _END)
        except Stopped:
            pass
        except BaseException as e:  # handed to the caller, which re-raises it
            with self._lock:
                if self._error is None:
                    self._error = e
            self.stopping.set()

    def _items(self, inbox: queue.Queue, caller: bool = False) -> Iterator[Any]:
        while True:
            if caller:
                self._raise()  # at once, not after the items still queued
            try:
                item = inbox.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if self.stopping.is_set():
                    if caller:
                        self._raise()
                    raise Stopped("the pipeline was stopped") from None
                continue
            if item is _END:
                return
            yield item

    def _put(self, outbox: queue.Queue, item: object) -> None:
        while True:
            try:
                outbox.put(item, timeout=POLL_SECONDS)
                return
            except queue.Full:
                if self.stopping.is_set():
                    raise Stopped from None

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error
