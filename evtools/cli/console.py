"""Rendering shared by the commands: consoles, the progress bar, warnings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evtools.progress import Progress as ProgressCallback, ProgressUpdate
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


# More inputs than this: a bar for each only while it is worked on, under one counting them all
# (a bar each for thousands of recordings or caches would fill the terminal and take the
# process's time to draw).
MAX_BARS = 8


def inputs_progress() -> Progress:
    """The progress display of a command over several inputs (``bars_per_input``): after done of
    total, each bar's ``unit`` and ``figures`` fields."""
    return progress(TextColumn("{task.fields[unit]} {task.fields[figures]}", markup=False))


@contextmanager
def bars_per_input(bar: Progress, names: list[str], unit: str, inputs: str,
                   figures: Callable[[int, ProgressUpdate], str] = lambda task, update: "") -> Iterator[ProgressCallback]:
    """Updates of the work on input ``update.task`` (the only one when None), counted in
    ``unit``, on its bar of ``bar`` (an ``inputs_progress``), with ``figures(bar's task id,
    update)`` beside it: a bar for each input, or with more than MAX_BARS inputs, a bar for each
    while it is worked on (until an update says it is done) under one counting them all, named
    ``inputs`` (recordings, caches)."""
    many = len(names) > MAX_BARS
    tasks = {} if many else {i: bar.add_task(name, total=None, unit=unit, figures="") for i, name in enumerate(names)}
    overall = bar.add_task(inputs, total=len(names), unit="", figures="") if many else None
    finished = set()

    def show(update: ProgressUpdate) -> None:
        i = update.task or 0
        if i in finished:
            return
        if i not in tasks:
            tasks[i] = bar.add_task(names[i], total=None, unit=unit, figures="")
        bar.update(tasks[i], completed=update.done, total=update.total, figures=figures(tasks[i], update))
        if many and update.done == update.total:
            finished.add(i)
            bar.remove_task(tasks.pop(i))
            bar.advance(overall)

    yield show
    if many:  # the ones up to date or failed had no bar
        bar.update(overall, completed=len(names))


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
