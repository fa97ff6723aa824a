"""Events per second of the representation kernels, side by side with the references, in one run.

Rows, for each of the five representations: the evtools CPU kernels run as conversion runs them
(blocks of 16 windows filling one reused output buffer), as one call returning a new (K, C, H, W)
array, and one window a call as a user's DataLoader calls them; a floor for each calling pattern,
a kernel that only reads every event of each window and clears the representation's output,
which bounds what any scatter kernel can reach on the machine ("of the floor" is a row's rate
over its floor's); the evtools CUDA kernels when a GPU is present (grids copied back to pinned
host memory, or left on the GPU as training would use them; the events' copy to the GPU is
always included); and for the voxel grid and the histogram the evtools numpy references, Tonic's
to_voxel_grid_numpy and to_frame_numpy and evlib's create_voxel_grid (with densify_voxel_grid, to
get the same dense tensor). Each is timed over every 50 ms window of a synthetic stream; Numba
compilation is done before timing. Usage: python benchmarks/representations.py [--events N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np
from rich.console import Console
from rich.table import Table
from streams import driving_like_stream, fixed_windows

from evtools.kernels import reference
from evtools.kernels.launch import host_buffer, staged_parts
from evtools.representations import EvImage, EvSegNet, Histogram, TimeSurface, VoxelGrid

WIDTH, HEIGHT, BINS, WINDOW_US = 346, 260, 5, 50_000
BLOCK_WINDOWS = 16


def best_of(repeats: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def per_window(windows: np.ndarray, compute: Callable[[slice], object]) -> Callable[[], None]:
    def run() -> None:
        for start, stop in windows:
            if stop > start:
                compute(slice(start, stop))

    return run


@numba.njit(parallel=True, cache=True)
def _read_and_clear(t, x, y, p, windows, grids):
    flat = grids.reshape(grids.shape[0], -1)
    for k in numba.prange(windows.shape[0]):
        flat[k, :] = 0
        total = 0.0
        for i in range(windows[k, 0], windows[k, 1]):
            total += t[i] + x[i] + y[i] + p[i]
        flat[k, 0] = total


def floor_in_blocks(rep, columns, windows) -> Callable[[], None]:
    buffer = np.empty((BLOCK_WINDOWS, *rep.shape(WIDTH, HEIGHT)), rep.dtype)

    def run() -> None:
        for first in range(0, len(windows), BLOCK_WINDOWS):
            block = windows[first : first + BLOCK_WINDOWS]
            _read_and_clear(*columns, block, buffer[: len(block)])

    return run


def floor_per_window(rep, columns, windows) -> Callable[[], None]:
    """The floor one window a call, as a user's DataLoader calls a representation."""
    buffer = np.empty((1, *rep.shape(WIDTH, HEIGHT)), rep.dtype)
    return per_window(windows, lambda s: _read_and_clear(*columns, np.array([[s.start, s.stop]]), buffer))


def in_blocks(rep, columns, windows, device="cpu", on_gpu=False) -> Callable[[], None]:
    """Blocks of windows into one reused buffer, the way conversion feeds the cache (pinned host
    memory for CUDA), or with ``on_gpu`` a device buffer: the grids never come back."""
    shape = (BLOCK_WINDOWS, *rep.shape(WIDTH, HEIGHT))
    buffer = numba.cuda.device_array(shape, rep.dtype) if on_gpu else host_buffer(shape, rep.dtype, device)

    def run() -> None:
        for first in range(0, len(windows), BLOCK_WINDOWS):
            block = windows[first : first + BLOCK_WINDOWS]
            rep.batch(*columns, block, WIDTH, HEIGHT, device, out=buffer[: len(block)])

    return run


def tonic_rows(events, windows):
    import tonic.functional as tonic_f

    structured = np.empty(len(events), np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", bool)]))
    structured["x"], structured["y"], structured["t"], structured["p"] = events.x, events.y, events.t, events.p > 0
    sensor = (WIDTH, HEIGHT, 2)
    return {
        "voxel": per_window(windows, lambda s: tonic_f.to_voxel_grid_numpy(structured[s], sensor, BINS)),
        "histogram": per_window(windows, lambda s: tonic_f.to_frame_numpy(structured[s], sensor, n_time_bins=BINS)),
    }


def evlib_voxel(events, windows):
    import evlib.representations as evlib_r
    import polars as pl

    frame = pl.DataFrame(
        {
            "t": pl.Series(events.t).cast(pl.Duration("us")),
            "x": events.x.astype(np.int16),
            "y": events.y.astype(np.int16),
            "polarity": events.p,
        }
    )
    return per_window(
        windows,
        lambda s: evlib_r.densify_voxel_grid(
            evlib_r.create_voxel_grid(frame[s.start : s.stop], HEIGHT, WIDTH, BINS), BINS, HEIGHT, WIDTH
        ),
    )


def floor_rate(rows: list[dict], row: dict) -> float | None:
    """The floor's events/s for a CPU row of the same representation and calling pattern."""
    if "cpu" not in row["implementation"]:
        return None
    pattern = "one window a call" if "one window a call" in row["implementation"] else "blocks of"
    return next((r["events_per_second"] for r in rows if r["representation"] == row["representation"]
                 and r["implementation"].startswith("floor") and pattern in r["implementation"]), None)


def machine() -> str:
    """The CPU model and the cores Numba may use, plus the GPU when one runs the CUDA rows."""
    model = platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        model = names[0] if names else model
    description = f"{model}, {numba.config.NUMBA_NUM_THREADS} cores"
    if cuda_available():
        name = numba.cuda.get_current_device().name  # bytes in older numba, str in numba-cuda
        description += f", {name.decode() if isinstance(name, bytes) else name}"
    return description


def cuda_available() -> bool:
    try:
        return bool(numba.cuda.is_available()) and not numba.config.ENABLE_CUDASIM
    except Exception:  # noqa: BLE001 - no driver, no toolkit: no CUDA row
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "representations.json")
    parser.add_argument("--no-references", dest="references", action="store_false",
                        help="Only evtools' rows (where Tonic and evlib are not installed, as on a bare GPU machine).")
    args = parser.parse_args()

    events = driving_like_stream(args.events, WIDTH, HEIGHT)
    windows = fixed_windows(events.t, WINDOW_US)
    columns = (events.t, events.x, events.y, events.p)
    reps = {"voxel": VoxelGrid(bins=BINS), "histogram": Histogram(bins=BINS), "evimage": EvImage(),
            "evsegnet": EvSegNet(), "timesurface": TimeSurface()}
    refs = {"voxel": reference.voxel_grid, "histogram": reference.histogram}
    rows: list[dict] = []

    def record(representation: str, implementation: str, seconds: float) -> None:
        rows.append(
            {
                "representation": representation,
                "implementation": implementation,
                "seconds": seconds,
                "events_per_second": len(events) / seconds,
            }
        )

    tonic = tonic_rows(events, windows) if args.references else {}
    threads = numba.get_num_threads()
    for name, rep in reps.items():
        rep.batch(*columns, windows[:2], WIDTH, HEIGHT)  # compile (or load the cache) before timing
        for floor in (floor_in_blocks(rep, columns, windows), floor_per_window(rep, columns, windows)):
            floor()
        record(name, f"floor: read events, clear output, blocks of {BLOCK_WINDOWS}",
               best_of(3, floor_in_blocks(rep, columns, windows)))
        record(name, f"evtools cpu, {threads} threads, blocks of {BLOCK_WINDOWS} windows",
               best_of(3, in_blocks(rep, columns, windows)))
        record(name, f"evtools cpu, {threads} threads, one new array",
               best_of(3, lambda: rep.batch(*columns, windows, WIDTH, HEIGHT)))
        record(name, "floor: read events, clear output, one window a call",
               best_of(3, floor_per_window(rep, columns, windows)))
        record(name, "evtools cpu, one window a call (a new array each)",
               best_of(3, per_window(windows, lambda s: rep(*(c[s] for c in columns), WIDTH, HEIGHT))))
        if cuda_available():
            rep.batch(*columns, windows[:2], WIDTH, HEIGHT, device="cuda")
            record(name, f"evtools cuda, blocks of {BLOCK_WINDOWS} windows, grids copied back",
                   best_of(3, in_blocks(rep, columns, windows, "cuda")))
            record(name, f"evtools cuda, blocks of {BLOCK_WINDOWS} windows, grids left on the GPU",
                   best_of(3, in_blocks(rep, columns, windows, "cuda", on_gpu=True)))
            everything = numba.cuda.device_array((len(windows), *rep.shape(WIDTH, HEIGHT)), rep.dtype)
            record(name, "evtools cuda, all windows in one call, grids left on the GPU",
                   best_of(3, lambda: rep.batch(*columns, windows, WIDTH, HEIGHT, "cuda", out=everything)))
            del everything
        if args.references and name in refs:
            ref = refs[name]
            record(name, "evtools numpy reference", best_of(1, per_window(
                windows, lambda s: ref(events.t[s], events.x[s], events.y[s], events.p[s], WIDTH, HEIGHT, bins=BINS))))
            record(name, "tonic " + ("to_voxel_grid_numpy" if name == "voxel" else "to_frame_numpy"),
                   best_of(1, tonic[name]))
    if args.references:
        record("voxel", "evlib create_voxel_grid + densify", best_of(1, evlib_voxel(events, windows)))
    if cuda_available():
        # what the CUDA rows were bound by before their copies went through page-locked buffers
        record("(copy)", "the event columns to the GPU from pageable memory, no kernel",
               best_of(3, lambda: [numba.cuda.to_device(c) for c in columns]))
        # what the all-windows rows spend before any kernel: the parts staged and copied, nothing launched
        record("(copy)", "the event columns to the GPU in staged parts (page-locked), no kernel",
               best_of(3, lambda: [None for _ in staged_parts(columns, windows)]))

    result = {
        "machine": machine(),
        "events": len(events),
        "windows": len(windows),
        "window_us": WINDOW_US,
        "sensor": [WIDTH, HEIGHT],
        "bins": BINS,
        "rows": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")

    table = Table(title=f"{len(events):,} synthetic events, {len(windows)} windows of 50 ms, {WIDTH}x{HEIGHT}, {BINS} bins")
    for column in ("representation", "implementation", "seconds", "M events/s", "of the floor", "vs tonic"):
        table.add_column(column, justify="left" if column in ("representation", "implementation") else "right")
    tonic_rate = {r["representation"]: r["events_per_second"] for r in rows if r["implementation"].startswith("tonic")}
    for row in rows:
        tonic_speed = tonic_rate.get(row["representation"])
        floor = floor_rate(rows, row)
        table.add_row(row["representation"], row["implementation"], f"{row['seconds']:.3f}",
                      f"{row['events_per_second'] / 1e6:.1f}",
                      f"{row['events_per_second'] / floor:.2f}" if floor and "floor" not in row["implementation"] else "",
                      f"{row['events_per_second'] / tonic_speed:.1f}x"
                      if tonic_speed and "floor" not in row["implementation"] else "")
    console = Console()
    console.print(table)
    console.print(f"machine: {result['machine']}; JSON written to {args.json}")


if __name__ == "__main__":
    main()
