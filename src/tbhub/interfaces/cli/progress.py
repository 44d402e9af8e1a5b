"""A rich progress bar for scans, shown only on a terminal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from tbhub.core.inventory import Progress as ProgressCallback
from tbhub.core.models import EndpointSpec

__all__ = ["scan_progress"]


@contextmanager
def scan_progress(
    console: Console, *, enabled: bool
) -> Iterator[Callable[[EndpointSpec], ProgressCallback | None] | None]:
    """Yields a factory of per-endpoint progress callbacks (or ``None`` when disabled)."""
    if not enabled:
        yield None
        return
    with Progress(
        TextColumn("scanning {task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:

        def factory(spec: EndpointSpec) -> ProgressCallback:
            task = bar.add_task(spec.name, total=None)

            def update(done: int, total: int) -> None:
                bar.update(task, completed=done, total=max(total, 1))

            return update

        yield factory
