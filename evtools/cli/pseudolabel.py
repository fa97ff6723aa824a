"""``evtools pseudolabel CACHE... --teacher T`` and ``evtools score``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from evtools.cli.console import bars_per_input, inputs_progress, scores_table, stdout
from evtools.cache import CacheArray, location
from evtools.cli.options import OptionError
from evtools.progress import ProgressUpdate


def _floats(option: str, text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise OptionError(f"{option}: '{text}' is not a comma-separated list of numbers") from None


def pseudolabel(
    caches: Annotated[list[str], typer.Argument(help="Caches with APS frames (folders or URLs).")],
    teacher: Annotated[Path, typer.Option(help="An evtools checkpoint or a TorchScript file (B, C, H, W) -> (B, K, H, W) logits.")],
    in_channels: Annotated[int | None, typer.Option(help="TorchScript teachers: input channels (the frame is repeated).")] = None,
    mean: Annotated[str | None, typer.Option(help="Per-channel mean to subtract from [0, 1] frames, e.g. 0.485,0.456,0.406.")] = None,
    std: Annotated[str | None, typer.Option(help="Per-channel standard deviation to divide by.")] = None,
    class_map: Annotated[str | None, typer.Option(help="cityscapes19-to-ddd17, or a JSON list (as it is, or a file of one): teacher class -> class or 255.")] = None,
    scales: Annotated[str, typer.Option(help="Test-time scales, each from 0.1 to 4.")] = "0.75,1.0,1.5",
    flip: Annotated[bool, typer.Option(help="Average with the flipped frame.")] = True,
    min_confidence: Annotated[float, typer.Option(help="Below this probability (0 to 1) a pixel becomes 255.")] = 0.0,
    batch_size: Annotated[int, typer.Option()] = 8,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    overwrite: Annotated[bool, typer.Option(help="Replace labels from another teacher or options.")] = False,
) -> None:
    """Label each window's APS frame with a teacher network; writes labels into the caches."""
    from evtools.models.teacher import Teacher
    from evtools.pseudolabel import PseudolabelSpec, pseudolabel as run

    spec = PseudolabelSpec(teacher=teacher, in_channels=in_channels, mean=_floats("--mean", mean), std=_floats("--std", std),
                           class_map=class_map, scales=_floats("--scales", scales), flip=flip, min_confidence=min_confidence,
                           batch_size=batch_size, device=device, overwrite=overwrite)
    loaded = Teacher(spec)
    table = Table(title="pseudo-labels", title_justify="left")
    for column in ("cache", "windows", "", "labelled pixels", "ignored"):
        table.add_column(column)
    paths = [location(cache) for cache in caches]
    with inputs_progress() as bar, bars_per_input(bar, [path.name for path in paths], "windows", "caches") as shown:
        for i, path in enumerate(paths):
            result = run(path, spec, lambda update, i=i: shown(dataclasses.replace(update, task=i)), loaded)
            shown(ProgressUpdate(result.windows, result.windows, i))  # done, also when it was up to date
            note = "up to date" if result.up_to_date else (f"resumed at {result.resumed_from}" if result.resumed_from else "")
            table.add_row(str(result.cache), str(result.windows), note, f"{sum(result.class_counts[:-1]):,}",
                          f"{result.class_counts[-1]:,}")
    stdout.print(table)


def score(
    caches: Annotated[list[str], typer.Argument(help="Caches holding both label arrays (folders or URLs).")],
    prediction: Annotated[str, typer.Option(help="The labels to score.")] = CacheArray.LABELS.value,
    truth: Annotated[str, typer.Option(help="The reference labels.")] = CacheArray.GT_LABELS.value,
    classes: Annotated[int, typer.Option()] = 6,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the scores to this JSON file.")] = None,
) -> None:
    """Score one label array against another (pseudo-labels against ground truth): mIoU under each convention."""
    from evtools.evaluate import score as run
    from evtools.metrics import Scores

    paths = [location(c) for c in caches]
    confusion, abstained = run(paths, prediction, truth, classes)
    scores = Scores.of(confusion)
    rows = scores.rows()
    rows.insert(1, ("abstained (255), left out", f"{100 * abstained:.2f}% of labelled pixels"))
    stdout.print(scores_table(f"{prediction} against {truth}, {len(caches)} caches", rows))
    if json_path is not None:
        import json
        from dataclasses import asdict

        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"caches": [str(c) for c in paths], "prediction": prediction, "truth": truth,
                                         "abstained": abstained, **asdict(scores)}, indent=2) + "\n")
