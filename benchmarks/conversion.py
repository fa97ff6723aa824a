"""Whole-conversion benchmark: a generated 20-million-event MVSEC-layout recording with APS
frames every 40 ms, converted to a 5-bin voxel cache (50 ms windows before each frame).

Reports, for each Blosc codec, events per second end to end (events in the file / wall time of the conversion, cache
finished on disk, in a fresh process), for zstd also a second conversion in a process that has converted once (the
rate once the start, loading the kernels, is paid, as it is once in a long recording), the conversion's peak RSS,
and as the floor the time just to read the events table with h5py. With ``--profile``, one more zstd conversion runs with the main thread under
cProfile, and the JSON gets where that thread's time went (reading events, kernels, waiting for
blocks to be stored, cutting windows, the rest) beside the process's CPU seconds: whether the
serial main thread or the compressors bound a conversion on the machine.
With ``--profile`` also a warm zstd conversion (a second in one process) with the busy and CPU
seconds of each thread's stage (reading, kernels, compressing, writing, recording progress) and
the process's CPU seconds: the stage busy for about the whole conversion is what bounds it, and a
process using fewer CPU seconds than its cores give is bound by a serial stage, not by the cores.
With ``--cores 1,2,...``, the zstd conversions again pinned to that many cores (the scaling curve).
Usage: python benchmarks/conversion.py [--events N] [--json PATH] [--profile] [--cores N,...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from representations import cuda_available, machine
from rich.console import Console
from rich.table import Table
from streams import driving_like_stream

from evtools.io.writers.mvsec import write_mvsec

WIDTH, HEIGHT, FRAME_PERIOD_US, CHUNK_ROWS = 346, 260, 40_000, 1 << 20

CODECS = ("zstd", "lz4")
CONVERT = """
import sys, time
from evtools.convert import convert, ConvertSpec, kernel_threads_sleep_between_calls, kernels_without_blas_check
kernel_threads_sleep_between_calls()  # as the command does
kernels_without_blas_check()
spec = ConvertSpec(codec=sys.argv[3], device=sys.argv[4])
if sys.argv[5] == "warm":  # a first conversion loads the kernels: the second runs at a long recording's rate
    convert(sys.argv[1], sys.argv[2] + "-first", spec)
started = time.perf_counter()
result = convert(sys.argv[1], sys.argv[2], spec)
seconds = time.perf_counter() - started
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(seconds, result.windows, result.bytes_on_disk, result.bytes_uncompressed, int(status["VmHWM"].split()[0]) * 1024)
"""

NUMBA_START = "load Numba (its first compiled function)"
# The main thread's functions a profile reports, by (file, function); the rest of its time is "other".
MAIN_THREAD_STEPS = {
    "cut the windows (one pass over the timestamps)": ("convert.py", "_cut_windows"),
    # the reader thread reads each block (h5py, the reader's passes, the selection) ahead of the kernels
    "wait for the next block's events (reader thread)": ("convert.py", "_read_ahead"),
    "kernels (the first call loads them)": ("representations.py", "batch"),
    "queue the encodings": ("convert.py", "_start_block"),
    # concurrent.futures.wait: a set of buffers is filled again once the compressors have read it
    "wait for the compressors to free a set of buffers": ("_base.py", "wait"),
    "wait for a block to be stored (writer)": ("convert.py", "_when_stored"),
    "finish the cache (consolidate, rename)": ("cache.py", "finish"),
}
PROFILED_CONVERT = """
import cProfile, json, pstats, resource, sys, time
import numpy as np
from evtools.convert import convert, ConvertSpec, kernel_threads_sleep_between_calls, kernels_without_blas_check
from evtools.kernels.launch import time_span
kernel_threads_sleep_between_calls()
kernels_without_blas_check()
steps = json.loads(sys.argv[3])
cpu_before = resource.getrusage(resource.RUSAGE_SELF)
started = time.perf_counter()
time_span(np.arange(2))  # Numba's start (its typing and target registries), which the first compiled call pays
cumulative = {sys.argv[4]: time.perf_counter() - started}
profile = cProfile.Profile()  # the main thread's calls only
profile.enable()
convert(sys.argv[1], sys.argv[2], ConvertSpec(codec="zstd"))
profile.disable()
seconds = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu_seconds = usage.ru_utime + usage.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime
for (path, _, name), (_, _, _, total, _) in pstats.Stats(profile).stats.items():
    for step, (file, function) in steps.items():
        if path.endswith("/" + file) and name == function:
            cumulative[step] = cumulative.get(step, 0.0) + total
print(json.dumps({"seconds": seconds, "process_cpu_seconds": cpu_seconds, "main_thread": cumulative}))
"""


# Where a warm conversion's threads spend their time, from wrappers around the functions each stage
# runs: a stage busy for about the whole conversion bounds it (the rest wait for it). Busy is wall
# time, a thread waiting for a core included; CPU is the thread's own (time.thread_time), so a
# stage whose CPU is far below its busy time waits for cores, the GIL or the disk.
STAGES = {
    "reader thread: read blocks (the table, the reader's passes, the selection)": "read",
    "main thread: kernels (waiting for the parallel-code lock included)": "compute",
    "main thread: waiting for the parallel-code lock (the reader's passes hold it)": "compute lock wait",
    "compressing threads: encode windows (summed; its share is of all of them)": "encode",
    "writer thread: assemble shards and write files": "write",
    "recorder thread: record progress in the partial cache": "record",
}
STAGED_CONVERT = """
import json, sys, threading, time
import evtools.kernels.parallel as parallel
lock, busy, totals = parallel.PARALLEL_LAUNCH_LOCK, threading.Lock(), {}

def add(stage, seconds, cpu_seconds):
    with busy:
        before = totals.get(stage, (0.0, 0.0))
        totals[stage] = (before[0] + seconds, before[1] + cpu_seconds)

class TimedLock:  # the lock every parallel launch takes, its waits counted on the main thread
    def __enter__(self):
        started, cpu_started = time.perf_counter(), time.thread_time()
        lock.acquire()
        if threading.current_thread() is threading.main_thread():
            add("compute lock wait", time.perf_counter() - started, time.thread_time() - cpu_started)
    def __exit__(self, *exc):
        lock.release()

parallel.PARALLEL_LAUNCH_LOCK = TimedLock()  # before the modules that take it are imported
from evtools import cache, convert as convert_module
from evtools.convert import convert, ConvertSpec, kernel_threads_sleep_between_calls, kernels_without_blas_check

def timed(stage, function):
    def run(*args, **kwargs):
        started, cpu_started = time.perf_counter(), time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            add(stage, time.perf_counter() - started, time.thread_time() - cpu_started)
    return run

class TimedEncoder:
    def __init__(self, encoder):
        self.encoder, self.encode = encoder, timed("encode", encoder.encode)
    def get_config(self):
        return self.encoder.get_config()

kernel_threads_sleep_between_calls()
kernels_without_blas_check()
convert(sys.argv[1], sys.argv[2] + "-first", ConvertSpec(codec="zstd"))  # the kernels loaded: a warm run
encoder = cache._encoder
cache._encoder = lambda array: TimedEncoder(encoder(array))
convert_module._read_block = timed("read", convert_module._read_block)
convert_module._compute_block = timed("compute", convert_module._compute_block)
cache._write_file = timed("write", cache._write_file)
cache._shard_bytes = timed("write", cache._shard_bytes)
cache.mark_progress = timed("record", cache.mark_progress)
started, cpu_started = time.perf_counter(), time.process_time()
convert(sys.argv[1], sys.argv[2], ConvertSpec(codec="zstd"))
print(json.dumps({"seconds": time.perf_counter() - started, "process_cpu_seconds": time.process_time() - cpu_started,
                  "stages": totals}))
"""


def staged_conversion(recording: Path, output: Path) -> dict:
    """A warm zstd conversion (a second in one process) with each stage's busy and CPU seconds
    (STAGES) and the process's CPU seconds."""
    found = json.loads(subprocess.run([sys.executable, "-c", STAGED_CONVERT, str(recording), str(output)], check=True,
                                      capture_output=True, text=True).stdout.splitlines()[-1])
    return {"seconds": found["seconds"], "process_cpu_seconds": found["process_cpu_seconds"],
            "stages": {stage: dict(zip(("busy_seconds", "cpu_seconds"), found["stages"].get(key, (0.0, 0.0))))
                       for stage, key in STAGES.items()}}


def profiled_conversion(recording: Path, output: Path) -> dict:
    """One zstd conversion in a fresh process, its main thread under cProfile (its time a little
    longer for it): seconds, the process's CPU seconds, and the main thread's seconds loading
    Numba, in each of MAIN_THREAD_STEPS and in the rest ("other")."""
    found = json.loads(subprocess.run([sys.executable, "-c", PROFILED_CONVERT, str(recording), str(output),
                                       json.dumps(MAIN_THREAD_STEPS), NUMBA_START], check=True, capture_output=True,
                                      text=True).stdout.splitlines()[-1])
    steps = {step: found["main_thread"].get(step, 0.0) for step in (NUMBA_START, *MAIN_THREAD_STEPS)}
    steps["other"] = max(found["seconds"] - sum(steps.values()), 0.0)
    return {"seconds": found["seconds"], "process_cpu_seconds": found["process_cpu_seconds"], "main_thread": steps}


def make_recording(path: Path, n_events: int) -> int:
    events = driving_like_stream(n_events, WIDTH, HEIGHT)
    frame_t = np.arange(FRAME_PERIOD_US, int(events.t[-1]), FRAME_PERIOD_US, dtype=np.int64)
    gradient = np.add.outer(np.arange(HEIGHT), np.arange(WIDTH)).astype(np.int64)
    images = ((gradient[None] + 3 * np.arange(len(frame_t))[:, None, None]) % 256).astype(np.uint8)
    # contiguous, as MVSEC's own files store the table
    write_mvsec(path, (events[i : i + CHUNK_ROWS] for i in range(0, n_events, CHUNK_ROWS)), t0_us=1_504_645_177_410_000,
                images=images, images_t_us=frame_t, n_events=n_events)
    return len(frame_t)


def read_floor(path: Path) -> float:
    started = time.perf_counter()
    with h5py.File(path) as h5:
        table = h5["davis/left/events"]
        for start in range(0, table.shape[0], CHUNK_ROWS):
            table[start : start + CHUNK_ROWS]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "conversion.json")
    parser.add_argument("--profile", action="store_true", help="Also where the main thread's time goes (cProfile).")
    parser.add_argument("--cores", type=lambda text: [int(n) for n in text.split(",")], default=[],
                        help="Comma-separated core counts: zstd again pinned to the first N cores (taskset), fresh and warm.")
    args = parser.parse_args()
    affinity = sorted(os.sched_getaffinity(0))  # the cores this process may use
    if skipped := [n for n in args.cores if not 1 <= n <= len(affinity)]:
        print(f"--cores: {', '.join(map(str, skipped))} skipped: 1 to {len(affinity)} cores here")
    args.cores = [n for n in args.cores if n not in skipped]
    with tempfile.TemporaryDirectory() as folder:
        recording = Path(folder) / "bench_data.hdf5"
        n_frames = make_recording(recording, args.events)
        os.sync()  # the new recording's 690 MB written back now, not during the timed conversions
        floor = min(read_floor(recording) for _ in range(2))
        runs = []
        # every codec on the CPU from a fresh process; zstd again in a process that has converted once (the
        # rate once the start is paid, as in a long recording); zstd on the GPU too when there is one
        # (codec, device, process, cores: None for all of them); --cores: zstd fresh and warm again on fewer
        settings = ([(codec, "cpu", "fresh", None) for codec in CODECS] + [("zstd", "cpu", "warm", None)]
                    + ([("zstd", "cuda", "fresh", None)] if cuda_available() else [])
                    + [("zstd", "cpu", process, cores) for cores in args.cores for process in ("fresh", "warm")])
        # a small conversion first on each device: on a machine where Numba's cache of the kernels is
        # cold (the first run after a checkout), compiling them is not the first timed conversion's
        warm_up = Path(folder) / "warm_up_data.hdf5"
        make_recording(warm_up, 200_000)
        for device in sorted({device for _, device, _, _ in settings}):
            subprocess.run([sys.executable, "-c", CONVERT, str(warm_up), str(Path(folder) / f"warm-up-{device}"), "zstd",
                            device, "fresh"], check=True, capture_output=True)
        for codec, device, process, cores in settings:
            # taskset: Numba's threads and the compressors follow the process's affinity
            pinned = ["taskset", "-c", ",".join(map(str, affinity[:cores]))] if cores else []
            output = subprocess.run([*pinned, sys.executable, "-c", CONVERT, str(recording),
                                     str(Path(folder) / f"{codec}-{device}-{process}-{cores}"), codec, device, process],
                                    check=True, capture_output=True, text=True).stdout.split()
            seconds, windows, on_disk, uncompressed, peak = float(output[0]), *map(int, output[1:])
            runs.append({
                "codec": codec,
                "device": device,
                "process": process,
                "cores": cores or len(affinity),
                "windows": windows,
                "seconds": seconds,
                "events_per_second": args.events / seconds,
                "peak_rss_bytes": peak,
                "cache_bytes": on_disk,
                "compression_ratio": uncompressed / on_disk,
            })
        profile = profiled_conversion(recording, Path(folder) / "profiled") if args.profile else None
        stages = staged_conversion(recording, Path(folder) / "staged") if args.profile else None
    result = {
        "machine": machine(),
        "events": args.events,
        "frames": n_frames,
        "read_floor_seconds": floor,
        "read_floor_events_per_second": args.events / floor,
        "conversions": runs,
        **({"profile": profile, "stages": stages} if profile else {}),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    table = Table(title=f"{args.events:,} synthetic events, MVSEC layout, {n_frames} frames every 40 ms -> 5-bin voxel cache")
    for column in ("step", "seconds", "M events/s", "peak RSS", "cache"):
        table.add_column(column, justify="left" if column == "step" else "right")
    table.add_row("read the events table with h5py (floor)", f"{floor:.2f}", f"{args.events / floor / 1e6:.1f}", "", "")
    for run in runs:
        process = {"fresh": "end to end", "warm": "its second in one process"}.get(run["process"], run["process"])
        table.add_row(f"evtools convert --codec {run['codec']} --device {run['device']}, {process}, {run['cores']} core{'s' * (run['cores'] > 1)}",
                      f"{run['seconds']:.2f}",
                      f"{run['events_per_second'] / 1e6:.1f}", f"{run['peak_rss_bytes'] / 2**20:.0f} MiB",
                      f"{run['cache_bytes'] / 1e6:.0f} MB ({run['compression_ratio']:.1f}x)")
    console = Console()
    console.print(table)
    if profile:
        steps = Table(title=f"where the main thread's time goes (zstd, under cProfile: {profile['seconds']:.2f} s, "
                            f"{profile['process_cpu_seconds']:.2f} CPU seconds in all threads)")
        steps.add_column("main thread")
        steps.add_column("seconds", justify="right")
        for step, seconds in profile["main_thread"].items():
            steps.add_row(step, f"{seconds:.2f}")
        console.print(steps)
        cores_seconds = stages["seconds"] * len(affinity)
        busy = Table(title=f"where each thread's time goes (zstd, a warm conversion: {stages['seconds']:.2f} s on "
                           f"{len(affinity)} cores, {stages['process_cpu_seconds']:.2f} CPU seconds in all threads: "
                           f"{stages['process_cpu_seconds'] / cores_seconds:.0%} of what the cores give)")
        busy.add_column("stage")
        busy.add_column("busy seconds", justify="right")
        busy.add_column("CPU seconds", justify="right")
        busy.add_column("busy, of the conversion", justify="right")
        for stage, seconds in stages["stages"].items():
            threads = len(affinity) if STAGES[stage] == "encode" else 1  # one compressing thread a core
            busy.add_row(stage, f"{seconds['busy_seconds']:.2f}", f"{seconds['cpu_seconds']:.2f}",
                         f"{seconds['busy_seconds'] / stages['seconds'] / threads:.0%}")
        console.print(busy)
    console.print(f"machine: {result['machine']}; JSON written to {args.json}")


if __name__ == "__main__":
    main()
