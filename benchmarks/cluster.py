"""Conversion of several recordings: one after another in one process (all its cores) against a
local Dask cluster of N worker processes (``evtools convert ... --jobs N``), side by side.

Generated MVSEC-layout recordings (synthetic events, APS frames every 40 ms), 5-bin voxel caches
with 50 ms windows. With ``--split``, one more run on the local cluster, timed by phase: the
cluster's start, the conversion (with each task's time from Dask's task stream: a worker's first
task pays its imports and kernel loading) and the close.
Many small recordings (``--recordings 200 --events 100000``) are converted whole, one task each;
larger ones (the default 5 M events) as ranges of windows.
Usage: python benchmarks/cluster.py [--recordings N] [--events N] [--jobs N] [--json PATH] [--split]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from conversion import make_recording
from representations import machine
from rich.console import Console
from rich.table import Table

from evtools.cluster import convert_all, convert_on_cluster, local_cluster
from evtools.convert import ConvertSpec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=4)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "cluster.json")
    parser.add_argument("--split", action="store_true", help="One more cluster run, timed by phase.")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        inputs = [Path(folder) / f"rec{k}_data.hdf5" for k in range(args.recordings)]
        for path in inputs:
            make_recording(path, args.events)
        for jobs in (1, args.jobs):
            outputs = [Path(folder) / f"jobs{jobs}" / f"{p.stem}.zarr" for p in inputs]
            started = time.perf_counter()
            results = convert_all(inputs, outputs, ConvertSpec(), jobs=jobs)
            seconds = time.perf_counter() - started
            assert all(not isinstance(r, Exception) for r in results), results
            rows.append({"jobs": jobs, "seconds": seconds, "events_per_second": args.recordings * args.events / seconds})
        split = phases(inputs, [Path(folder) / "split" / f"{p.stem}.zarr" for p in inputs], args.jobs) if args.split else None
    result = {"machine": machine(), "recordings": args.recordings, "events_each": args.events, "runs": rows,
              **({"split": split} if split else {})}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    table = Table(title=f"{args.recordings} recordings of {args.events:,} synthetic events -> 5-bin voxel caches")
    for column in ("conversion", "seconds", "M events/s"):
        table.add_column(column, justify="left" if column == "conversion" else "right")
    for row in rows:
        name = "one after another, in process" if row["jobs"] == 1 else f"--jobs {row['jobs']} (local Dask cluster)"
        table.add_row(name, f"{row['seconds']:.1f}", f"{row['events_per_second'] / 1e6:.1f}")
    Console().print(table)
    if split:
        print(f"--jobs {args.jobs} by phase: start {split['start_seconds']:.2f} s, conversion "
              f"{split['conversion_seconds']:.2f} s (each worker's first task {split['first_task_seconds']}, "
              f"later tasks {_spread(split['later_task_seconds'])}), close {split['close_seconds']:.2f} s; the client's "
              f"CPU {split['client_cpu_seconds']:.2f} s, {split['client_cpu_seconds'] / args.recordings * 1e3:.1f} ms a recording")
    print(f"machine: {result['machine']}; cluster start included; JSON written to {args.json}")


def _spread(seconds: list[float]) -> str:
    """Task times: all of a few, the range and median of many."""
    if len(seconds) <= 8:
        return str(seconds)
    return f"{len(seconds)} from {min(seconds)} to {max(seconds)}, median {sorted(seconds)[len(seconds) // 2]}"


def phases(inputs: list[Path], outputs: list[Path], jobs: int) -> dict:
    """The local cluster's run (as convert_all makes it) timed by phase, with each task's seconds."""
    from distributed import Client, get_task_stream

    started = time.perf_counter()
    cluster = local_cluster(jobs)
    client = Client(cluster)
    converting, client_cpu = time.perf_counter(), time.process_time()
    with get_task_stream(client) as stream:
        results = convert_on_cluster(client, inputs, outputs, ConvertSpec())
    closing, client_cpu = time.perf_counter(), time.process_time() - client_cpu
    assert all(not isinstance(r, Exception) for r in results), results
    client.close()
    cluster.close()
    closed = time.perf_counter()
    tasks: dict[str, list[tuple[float, float]]] = {}
    for task in stream.data:
        for step in task["startstops"]:
            if step["action"] == "compute":
                tasks.setdefault(task["worker"], []).append((step["start"], step["stop"] - step["start"]))
    ordered = [sorted(times) for times in tasks.values()]
    return {"start_seconds": converting - started, "conversion_seconds": closing - converting,
            "close_seconds": closed - closing,
            # the client's process, the local scheduler's thread included: what bounds the
            # recordings a second however many workers there are
            "client_cpu_seconds": client_cpu,
            "first_task_seconds": [round(times[0][1], 2) for times in ordered],
            "later_task_seconds": [round(seconds, 2) for times in ordered for _, seconds in times[1:]]}


if __name__ == "__main__":
    main()
