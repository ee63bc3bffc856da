"""Progress of a long swap: a terminal bar, or the caller's own callback (a web page's bar)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text

#: ``progress=True`` draws a bar on the terminal; a callable is told how many more frames are done instead
FrameProgress = bool | Callable[[int], object]


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.1f}/s" if task.speed else "-/s")


@contextlib.contextmanager
def progress_bar(progress: FrameProgress, total: int | None, what: str) -> Iterator[Callable[[int], object]]:
    """A rich progress bar with items/s and ETA, the caller's own callback, or a no-op; yields ``advance(n)``."""
    if callable(progress):
        yield progress
        return
    if not progress:
        yield lambda n: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(), TimeRemainingColumn())
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(what, total=total or None)
        yield lambda n: bar.advance(task, n)
