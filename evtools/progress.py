"""The one way long operations report how far they are: a ``Progress`` callback receiving a
``ProgressUpdate``. The library calls it; the CLI draws it as a rich progress bar; tests pass
nothing or collect the updates."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ProgressUpdate:
    """``done`` of ``total`` units (windows, events, simulated seconds, training steps) of the
    task ``task`` (an input's position or a sequence's name, when there are several), with the
    figures that go with it (events done, loss, samples per second, loss terms)."""

    done: float
    total: float | None
    task: int | str | None = None
    figures: Mapping[str, object] = field(default_factory=dict)


Progress = Callable[[ProgressUpdate], None]


def report(progress: Progress | None, done: float, total: float | None, task: int | str | None = None,
           **figures: object) -> None:
    """Sends an update to ``progress`` when there is one."""
    if progress is not None:
        progress(ProgressUpdate(done, total, task, figures))
