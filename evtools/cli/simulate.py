"""``evtools simulate OUT``: labelled synthetic driving recordings; ``--preset demo`` for make demo."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import TextColumn

from evtools.cli.console import progress as console_progress
from evtools.cli.console import stdout
from evtools.cli.options import OptionError
from evtools.progress import ProgressUpdate


def simulate(
    ctx: typer.Context,
    out: Annotated[Path, typer.Argument(help="Output folder.")],
    preset: Annotated[str | None, typer.Option(help="demo: the embedded default dataset (images/, events/, test/).")] = None,
    sequences: Annotated[int, typer.Option(help="Recordings to simulate.")] = 1,
    seconds: Annotated[float, typer.Option(help="Length of each recording, at most 120 s (more as several --sequences).")] = 3.0,
    format: Annotated[str, typer.Option("--format", help="Layout: ddd17, mvsec or evtools.")] = "ddd17",
    seed: Annotated[int, typer.Option(help="Everything is reproducible from it.")] = 0,
    illumination: Annotated[str, typer.Option(help="day, dusk, high-contrast, or mixed (in turn).")] = "mixed",
    frame_rate: Annotated[float, typer.Option(help="APS frames per second, at most 200.")] = 25.0,
    aps_schedule: Annotated[str, typer.Option(
        help="APS conditions of consecutive 0.5 s segments, comma-separated, repeated: normal, night, overexposed, "
             "blur (they change the frames, never the events).")] = "normal",
    preview: Annotated[bool, typer.Option(help="Also write previews/NAME.png: frame, events, mask.")] = False,
) -> None:
    """Simulate labelled driving recordings (events, APS frames, ground-truth masks)."""
    from evtools.simulate import FORMATS, DemoPreset, SimulationSpec, make_demo, preview_picture, simulate_recordings
    from evtools.simulate.scene import ILLUMINATIONS
    from evtools.simulate.sensor import APS_CONDITIONS

    if preset is not None:  # the preset fixes every other option: one given beside it would be ignored
        if preset != "demo":
            raise OptionError(f"--preset: unknown preset '{preset}' (known: demo)")
        given = [name for name in ctx.params if name not in ("out", "preset")
                 and getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"]
        if given:
            raise OptionError(f"--preset {preset} fixes the simulation: --{given[0].replace('_', '-')} does not "
                              "combine with it")
    if format not in FORMATS:
        raise OptionError(f"--format: '{format}' is not one of {', '.join(FORMATS)}")
    if illumination != "mixed" and illumination not in ILLUMINATIONS:
        raise OptionError(f"--illumination: '{illumination}' is not one of {', '.join(ILLUMINATIONS)}, mixed")
    schedule = tuple(name.strip() for name in aps_schedule.split(","))
    unknown = [name for name in schedule if name not in APS_CONDITIONS]
    if unknown:
        raise OptionError(f"--aps-schedule: '{unknown[0]}' is not one of {', '.join(APS_CONDITIONS)}")
    spec = SimulationSpec(sequences, seconds, format, seed, illumination, frame_rate, aps_schedule=schedule)  # checks them
    started = time.perf_counter()
    with console_progress(TextColumn("{task.completed:.1f}/{task.total:.1f} s"), count=False) as bar:
        tasks: dict[str, int] = {}

        def progress(update: ProgressUpdate) -> None:
            if update.task not in tasks:
                tasks[update.task] = bar.add_task(update.task, total=update.total)
            bar.update(tasks[update.task], completed=update.done)

        if preset == "demo":
            manifest = make_demo(out, DemoPreset(), progress)
            summary = (f"{manifest['labelled_images']} labelled images, {len(manifest['events'])} event recordings, "
                       f"{len(manifest['test'])} test recordings")
        else:
            from evtools.io.images import write_picture

            def write_preview(name, sequence) -> None:
                (out / "previews").mkdir(parents=True, exist_ok=True)
                write_picture(out / "previews" / f"{name}.png", preview_picture(sequence, len(sequence.frames) // 2))

            paths = simulate_recordings(out, spec, progress, on_sequence=write_preview if preview else None)
            summary = f"{len(paths)} recordings in the {format} layout, ground truth in {out / 'ground_truth'}"
    stdout.print(f"wrote {summary} to {out} in {time.perf_counter() - started:.1f} s")
