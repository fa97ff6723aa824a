"""``evtools eval CHECKPOINT --events CACHE...``: a student's scores on event caches."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evtools.cli.console import scores_table, stdout
from evtools.cache import location


def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="A student checkpoint (a run's best.pt or last.pt).")],
    events: Annotated[list[str], typer.Option("--events", help="Event caches to evaluate on (repeatable; folders or URLs).")],
    truth: Annotated[str, typer.Option(help="gt_labels, labels, a ground-truth file or folder; auto: gt_labels when all caches have it.")] = "auto",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Folder for metrics.json, metrics.md and pictures.")] = None,
    render: Annotated[int, typer.Option(help="Pictures to write: events, APS, truth, prediction.")] = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
) -> None:
    """Evaluate a student: pixel accuracy, mIoU in the three conventions, per-class IoU."""
    from evtools.evaluate import evaluate_checkpoint

    result = evaluate_checkpoint(checkpoint, [location(e) for e in events], truth, device=device, out_dir=output, render=render)
    stdout.print(scores_table(f"{checkpoint} on {result.windows} windows against {result.truth}", result.rows()))
    if output:
        stdout.print(f"wrote {output / 'metrics.json'} and {output / 'metrics.md'}")
