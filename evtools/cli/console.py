"""Rendering shared by the commands: consoles, the progress bar, warnings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

stdout = Console(highlight=False)
# soft_wrap keeps every error and warning on one line, however narrow the terminal.
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def progress_bar(description: str, unit: str = "events") -> Iterator[Callable[[int, int], None]]:
    """A transient rich progress bar on stderr, handed out as a ``progress(done, total)`` callback.

    Shown only on a terminal: piped or logged output gets no partial lines.
    """
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def warn(message: str) -> None:
    stderr.print(f"[yellow]warning:[/yellow] {message}", markup=True)
