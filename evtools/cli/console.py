"""Rendering shared by the commands: consoles, the progress bar, warnings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evtools.progress import Progress as ProgressCallback
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

# No markup: what the commands print holds paths, and rich would read "[a]" in "rec [a].h5" as a
# style and drop it, and "[/x]" as a closing tag and fail; the few styled words are marked up
# where they are printed, with the text around them escaped.
stdout = Console(highlight=False, markup=False)
# soft_wrap keeps every error and warning on one line, however narrow the terminal.
stderr = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def progress(*columns: ProgressColumn, count: bool = True, transient: bool = False) -> Progress:
    """A rich progress display on stderr: the task's name, a bar, done of total (``count``), the
    given columns, elapsed and remaining time. Shown only on a terminal: piped or logged output
    gets no partial lines."""
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),  # a file's name
        BarColumn(),
        *([MofNCompleteColumn()] if count else []),
        *columns,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=transient,
        disable=not stderr.is_terminal,
    )


@contextmanager
def progress_bar(description: str, unit: str = "events") -> Iterator[ProgressCallback]:
    """A transient progress bar of one task, handed out as a library ``Progress`` callback."""
    with progress(TextColumn(unit), transient=True) as bar:
        task = bar.add_task(description, total=None)
        yield lambda update: bar.update(task, completed=update.done, total=update.total)


def warn(message: str) -> None:
    stderr.print(f"[yellow]warning:[/yellow] {escape(message)}", markup=True)


def error(message: str) -> None:
    stderr.print(f"[red]error:[/red] {escape(message)}", markup=True)


def scores_table(title: str, rows: list[tuple[str, str]]) -> Table:
    """A two-column table of (metric, value) rows."""
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for metric, value in rows:
        table.add_row(metric, value)
    return table
