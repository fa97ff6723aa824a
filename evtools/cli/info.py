"""``evtools info PATH``: what a recording holds."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from typing import Annotated

import typer
from rich.table import Table

from evtools.cli.console import progress_bar, stdout, warn
from evtools.cli.options import CAMERA_HELP, sensor_size
from evtools.io import FORMATS, ReadOptions, open_recording
from evtools.summary import CacheSummary, RecordingSummary, summarize, summarize_cache


def info(
    path: Annotated[str, typer.Argument(help="A recording (file or ess_ddd17 directory), or a cache (a folder, or a URL such as s3://bucket/rec.zarr).")],
    format: Annotated[
        str | None, typer.Option("--format", help=f"Skip detection: one of {', '.join(FORMATS)}.")
    ] = None,
    camera: Annotated[str, typer.Option(help=CAMERA_HELP)] = "left",
    sensor: Annotated[str | None, typer.Option("--sensor-size", help="WxH, e.g. 640x480, for formats that do not store it (DSEC, DAT, N-MNIST, EVT without a geometry line).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    verify: Annotated[bool, typer.Option("--verify", help="Caches: read every chunk of every array and check the counts.")] = False,
) -> None:
    """Show format, sensor, event and frame counts, rates and timestamps of a recording or cache."""
    from evtools.cache import is_remote, location
    from evtools.errors import InputError

    path = location(path)
    # exists() raises what the store answers (no credentials, say), where is_file() says False
    if is_remote(path) and not path.exists():
        raise InputError(path, "no evtools cache there (recordings are read from local files)")
    if is_remote(path) or (path / "zarr.json").is_file():
        if verify:
            from evtools.cache import Cache, CacheError

            problems = Cache(path).verify()
            if problems:
                raise CacheError(path, f"{len(problems)} problem(s): " + "; ".join(problems))
            stdout.print(f"{path}: every chunk of every array is present and decodes; the counts agree", soft_wrap=True)
            return
        cache = summarize_cache(path)
        if as_json:
            stdout.print_json(json.dumps(dataclasses.asdict(cache)))
        else:
            stdout.print(_cache_table(cache))
        return
    options = ReadOptions(camera=camera, sensor_size=sensor_size("--sensor-size", sensor) if sensor else None)
    with open_recording(path, format, options) as recording:
        with progress_bar(f"reading {path.name}") as progress:
            summary = summarize(recording, progress)
    if as_json:
        stdout.print_json(json.dumps(dataclasses.asdict(summary) | {"positive_fraction": summary.positive_fraction}))
    else:
        stdout.print(_table(summary))
    if summary.n_outside_sensor:
        warn(f"{path}: {summary.n_outside_sensor} events outside the {summary.width}x{summary.height} sensor were dropped")
    if summary.n_backwards:
        warn(f"{path}: {summary.n_backwards} timestamps go backwards (kept in file order, not reordered)")
    if summary.truncated_packets:
        warn(f"{path}: the last packet is incomplete (a recording cut off) and was left out")


def _clock(t_us: int) -> str:
    """An absolute microsecond time, shown as a UTC date when it looks like one."""
    if 10**15 < t_us < 4_102_444_800 * 10**6:  # 2001-09-09 to 2100 in Unix microseconds
        stamp = datetime.fromtimestamp(t_us / 1e6, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
        return f"{t_us} us ({stamp})"
    return f"{t_us} us"


def _table(s: RecordingSummary) -> Table:
    table = Table(title=s.path, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("format", s.format),
        ("sensor", f"{s.width} x {s.height}"),
        ("events", f"{s.n_events:,}"),
        ("duration", f"{s.duration_s:.6f} s"),
        ("event rate", f"{s.event_rate_hz / 1e6:.3f} M ev/s"),
        ("polarity", f"{s.n_positive:,} positive / {s.n_negative:,} negative ({100 * s.positive_fraction:.1f}% positive)"),
        ("x, y ranges", f"x {s.x_range[0]}..{s.x_range[1]}, y {s.y_range[0]}..{s.y_range[1]}" if s.x_range else "no events"),
        ("first event", _clock(s.t_first_us)),
        ("last event", _clock(s.t_last_us)),
        ("frames", f"{s.n_frames:,}" + (f" at {s.frame_rate_hz:.2f} Hz" if s.frame_rate_hz else "")),
    ]
    if s.n_frames:
        rows += [("first frame", _clock(s.first_frame_t_us)), ("last frame", _clock(s.last_frame_t_us))]
    if s.n_labels:
        rows.append(("label masks", f"{s.n_labels:,}"))
    rows.append(("signals", _signals(s.signals, s.signal_samples)))
    for name, value in rows:
        table.add_row(name, value)
    return table


def _signals(names: tuple[str, ...], samples: tuple[int, ...]) -> str:
    """Each signal with its sample count; a family sharing a prefix (imu_...) on one line."""
    families: dict[str, list[tuple[str, int]]] = {}
    for name, n in zip(names, samples):
        families.setdefault(name.split("_")[0] if name.startswith("imu_") else name, []).append((name, n))
    parts = []
    for family, members in families.items():
        counts = {n for _, n in members}
        if len(members) > 1 and len(counts) == 1:
            parts.append(f"{family} ({len(members)} channels, {counts.pop():,} samples)")
        else:
            parts += [f"{name} ({n:,})" for name, n in members]
    return ", ".join(parts) or "none"


def _cache_table(s: CacheSummary) -> Table:
    table = Table(title=s.path, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    window = ", ".join(f"{k}={v}" for k, v in s.window.items() if k != "mode")
    rows = [
        ("format", f"evtools cache, schema {s.schema} (evtools {s.evtools_version})" + ("" if s.complete else ", INCOMPLETE")),
        ("source", f"{s.source['path']} ({s.source['format']}, {s.source['size']:,} bytes)"),
        ("sensor", f"{s.sensor['width']} x {s.sensor['height']}" + (f" (rows {s.crop[0]}:{s.crop[1]})" if s.crop else "")),
        ("window", f"{s.window['mode']}" + (f" {window}" if window else "")),
        ("windows", f"{s.n_windows:,} ({s.empty_windows:,} empty)"),
        ("events", f"{s.n_events:,}"),
    ]
    for name, info in s.representations.items():
        params = ", ".join(f"{k}={v}" for k, v in info["params"].items())
        rows.append((f"repr/{name}", f"{tuple(info['shape'])} {info['dtype']}" + (f" ({params})" if params else "")))
    if s.stored_events:
        rows.append(("events/", "the windows' events (" + ", ".join(f"{k}={v}" for k, v in s.stored_events.items())
                     + "): any representation is computed from them when read"))
    rows += [
        ("aps", "yes" if s.has_aps else "no"),
        ("labels", _histogram(s.label_counts) if s.label_counts else
         f"unfinished: {s.labels_windows_done} of {s.n_windows} windows (run evtools pseudolabel again)"
         if s.labels_windows_done is not None else "no"),
        ("gt_labels", "yes" if s.has_gt_labels else "no"),
        ("size", f"{s.bytes_on_disk / 1e6:.1f} MB on disk, {s.bytes_uncompressed / max(s.bytes_on_disk, 1):.1f}x compressed"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _histogram(counts: dict) -> str:
    total = sum(counts.values())
    return ", ".join(f"{name}: {100 * n / total:.1f}%" for name, n in counts.items())
