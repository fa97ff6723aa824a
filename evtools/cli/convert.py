"""``evtools convert INPUT... -o OUT``: recordings into Zarr caches of event tensors."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from evtools.cli.console import bars_per_input, error, inputs_progress, stdout, warn
from evtools.cli.options import CAMERA_HELP, OptionError, duration_us, row_range, sensor_size
from evtools.cache import CODECS, location
from evtools.cluster import convert_all
from evtools.convert import (ConvertResult, ConvertSpec, kernel_threads_sleep_between_calls, kernels_without_blas_check,
                             output_names)
from evtools.devices import check_device, check_processes
from evtools.errors import EvtoolsError
from evtools.io import FORMATS, ReadOptions
from evtools.representations import REPRESENTATIONS, Representation
from evtools.windows import (MAX_STACK, MAX_WINDOW_EVENTS, AtTimes, BeforeFrame, BetweenFrames, EventsBeforeFrame, Every,
                             WindowSpec, read_times)


def _representation(name: str, **options) -> Representation:
    if name not in REPRESENTATIONS:
        raise OptionError(f"--repr: unknown representation '{name}' (known: {', '.join(REPRESENTATIONS)}, events)")
    try:
        return REPRESENTATIONS[name].from_options(**options)
    except ValueError as err:  # parameters out of range: --bins 0, --cutoff -1, ...
        raise OptionError(f"--repr {name}: {err}") from None


def _float16(dtype: str) -> bool:
    if dtype not in ("float32", "float16"):
        raise OptionError(f"--dtype: '{dtype}' is not float32 or float16")
    return dtype == "float16"


def _window(window: str | None, window_events: int | None, between_frames: bool, every: str | None,
            at: Path | None = None, at_relative: bool = False) -> WindowSpec | None:
    given = [name for name, value in (("--window", window), ("--window-events", window_events),
                                      ("--between-frames", between_frames or None), ("--every", every)) if value is not None]
    if at is not None:
        if given not in (["--window"], ["--window-events"]):
            raise OptionError("--at: give the windows' length with --window (a duration) or --window-events (a count)")
        _check_count(window_events)
        return AtTimes(read_times(at), at_relative, duration_us("--window", window) if window is not None else None,
                       window_events)
    if at_relative:
        raise OptionError("--at-relative: goes with --at FILE")
    if len(given) > 1:
        raise OptionError(f"give one window mode, not {' and '.join(given)}")
    if window is not None:
        return BeforeFrame(duration_us("--window", window))
    if window_events is not None:
        _check_count(window_events)
        return EventsBeforeFrame(window_events)
    if between_frames:
        return BetweenFrames()
    if every is not None:
        return Every(duration_us("--every", every))
    return None


def _check_count(window_events: int | None) -> None:
    if window_events is not None and not 0 < window_events <= MAX_WINDOW_EVENTS:
        raise OptionError(f"--window-events: give a number of events from 1 to {MAX_WINDOW_EVENTS:,}")


def _stacked(window: WindowSpec | None, stack: int) -> WindowSpec | None:
    if not 0 < stack <= MAX_STACK:
        raise OptionError(f"--stack: give a number of sub-windows from 1 to {MAX_STACK:,}")
    if stack == 1:
        return window
    return dataclasses.replace(window if window is not None else BeforeFrame(), stack=stack)


def convert(
    inputs: Annotated[list[Path], typer.Argument(help="Recordings (files or ess_ddd17 directories).")],
    output: Annotated[str, typer.Option("--output", "-o", help="The cache (OUT.zarr); with several inputs, a folder of caches. A URL (s3://bucket/caches/rec) writes to that fsspec store.")],
    representation: Annotated[list[str], typer.Option("--repr", help=f"Representation, repeatable: {', '.join(REPRESENTATIONS)}, or events (the windows' events, from which training computes any representation).")] = ["voxel"],  # noqa: B006
    bins: Annotated[int, typer.Option(help="Time bins of voxel and histogram.")] = 5,
    normalize: Annotated[bool, typer.Option(help="Voxel: standardise the nonzero entries.")] = False,
    separate_polarity: Annotated[bool, typer.Option(help="Voxel: 2 x bins channels, positive then negative.")] = False,
    cutoff: Annotated[int, typer.Option(help="Histogram: clip counts here (0: at 255).")] = 10,
    tau: Annotated[str, typer.Option(help="Time surface decay, e.g. 50ms.")] = "50ms",
    window: Annotated[str | None, typer.Option(help="Events in this span before each APS frame (the default, 50ms).")] = None,
    window_events: Annotated[int | None, typer.Option(help="The N events before each APS frame.")] = None,
    between_frames: Annotated[bool, typer.Option(help="The events between consecutive APS frames.")] = False,
    every: Annotated[str | None, typer.Option(help="Consecutive fixed windows, e.g. 50ms (recordings without frames).")] = None,
    at: Annotated[Path | None, typer.Option(help="Windows ending at the times in this file (whole microseconds, one a line, on the recording's clock: DSEC's and MVSEC's timestamps), as long as --window or --window-events says.")] = None,
    at_relative: Annotated[bool, typer.Option(help="--at: the times count from the recording's first event.")] = False,
    stack: Annotated[int, typer.Option(help="Each window as a stack of this many consecutive sub-windows, stored (K, S, C, H, W): equal spans of --window/--every/--between-frames, or --window-events events each.")] = 1,
    crop_rows: Annotated[str | None, typer.Option(help="Keep rows A..B-1 of events and frames, e.g. 0:200 for DDD17.")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    jobs: Annotated[int, typer.Option(help="Worker processes of a local Dask cluster; ranges of windows and whole recordings run on them.")] = 1,
    scheduler: Annotated[str | None, typer.Option(help="A running Dask scheduler (tcp://HOST:8786) to convert on; its workers must see the same paths.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing cache instead of refusing or resuming.")] = False,
    codec: Annotated[str, typer.Option(help="Blosc compressor of the cache: zstd (smaller) or lz4 (faster).")] = "zstd",
    dtype: Annotated[str, typer.Option(help="float32, or float16: the float representations in half precision (half the bytes, 11 significant bits).")] = "float32",
    ground_truth: Annotated[Path | None, typer.Option(help="Masks for gt_labels: a simulator ground-truth file, or a folder of them named like the inputs.")] = None,
    format: Annotated[str | None, typer.Option("--format", help=f"Skip detection: one of {', '.join(FORMATS)}.")] = None,
    camera: Annotated[str, typer.Option(help=CAMERA_HELP)] = "left",
    rotate180: Annotated[bool, typer.Option(help="DDD17: turn events and frames as the DDD17 tools do.")] = False,
    sensor: Annotated[str | None, typer.Option("--sensor-size", help="WxH, e.g. 640x480, for formats that do not store it (DSEC, DAT, N-MNIST, EVT without a geometry line); events outside are dropped and counted.")] = None,
) -> None:
    """Convert recordings into Zarr caches of event representations, windowed on APS frames."""
    kernel_threads_sleep_between_calls()
    kernels_without_blas_check()
    tau_us = duration_us("--tau", tau)
    if len(set(representation)) != len(representation):
        raise OptionError(f"--repr: give each representation once (got {', '.join(representation)})")
    spec = ConvertSpec(
        representations=tuple(_representation(n, bins=bins, normalize=normalize, separate_polarity=separate_polarity,
                                              cutoff=cutoff, tau_us=float(tau_us))
                              for n in representation if n != "events"),
        events="events" in representation,
        window=_stacked(_window(window, window_events, between_frames, every, at, at_relative), stack),
        crop_rows=row_range("--crop-rows", crop_rows) if crop_rows else None,
        device=device,
        format=format,
        read_options=ReadOptions(camera=camera, rotate180=rotate180,
                                 sensor_size=sensor_size("--sensor-size", sensor) if sensor else None),
        overwrite=overwrite,
        codec=codec,
        float16=_float16(dtype),
        ground_truth=ground_truth,
    )
    check_device(device, kernels=True)
    if codec not in CODECS:
        raise OptionError(f"--codec: '{codec}' is not one of {', '.join(CODECS)}")
    check_processes("--jobs", jobs)
    output = location(output)
    if len(inputs) == 1:
        # one input: OUT is the cache, unless OUT is an existing folder, which then receives it
        outputs = output_names(inputs, output) if output.is_dir() and output.suffix != ".zarr" else [output]
    else:
        outputs = output_names(inputs, output)
        output.mkdir(parents=True, exist_ok=True)
    with inputs_progress() as bar, _shown(bar, inputs) as shown:
        results = convert_all(inputs, outputs, spec, jobs, scheduler, shown)
    failures = [r for r in results if isinstance(r, EvtoolsError)]
    done = [r for r in results if isinstance(r, ConvertResult)]
    if done:
        stdout.print(_summary(done))
    for result in done:
        if result.dropped_outside_sensor:
            warn(f"{result.output}: {result.dropped_outside_sensor} events outside the sensor were dropped")
        if result.events_after_last_window:
            after = "the last of the --at times" if at is not None else "the last frame: use --every or --at to cover them"
            warn(f"{result.output}: the {result.events_after_last_window} events after the last window's end are in no "
                 f"window (after {after})")
    for failure in failures:
        error(str(failure))
    if failures:
        raise typer.Exit(2)


def _shown(bar: Progress, inputs: list[Path]):
    """The inputs' bars (``bars_per_input``), each with its events and their rate."""
    return bars_per_input(bar, [path.name for path in inputs], "windows", "recordings",
                          lambda task, update: _rate(bar, task, update.figures["events"]))


def _rate(bar: Progress, task, events: int) -> str:
    elapsed = next(t.elapsed for t in bar.tasks if t.id == task) or 0  # ids, not places: bars come and go
    return f"{events / 1e6:.1f} M events" + (f", {events / elapsed / 1e6:.1f} M ev/s" if elapsed > 0 else "")


def _summary(results: list[ConvertResult]) -> Table:
    table = Table(title="conversion", title_justify="left")
    for column in ("cache", "windows", "events", "seconds", "M ev/s", "size", "compression"):
        table.add_column(column, justify="left" if column == "cache" else "right")
    for r in results:
        if r.up_to_date:
            table.add_row(str(r.output), f"{r.windows:,}", f"{r.events:,}", "up to date", "", _size(r.bytes_on_disk), "")
            continue
        note = f" (resumed at {r.resumed_from})" if r.resumed_from else ""
        table.add_row(
            str(r.output) + note, f"{r.windows:,}", f"{r.events:,}", f"{r.seconds:.1f}",
            f"{r.events / r.seconds / 1e6:.1f}" if r.seconds > 0 else "", _size(r.bytes_on_disk),
            f"{r.bytes_uncompressed / max(r.bytes_on_disk, 1):.1f}x",
        )
    return table


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
