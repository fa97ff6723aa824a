"""Training-side loading benchmark: a dense voxel cache against a cache of windowed events
(``--repr events``) from which CacheDataset computes the voxel grid when read.

A generated MVSEC-layout recording (synthetic events, APS frames every 40 ms, 50 ms windows before
each frame) is converted both ways; the table gives each cache's bytes on disk and the samples
per second of a DataLoader (batch 8, shuffled, no augmentation) over it: dense reads, events
computed per item (in the loader's workers), and events computed per batch by
``CacheDataset.collate`` (on the GPU too when there is one). Usage:
python benchmarks/loading.py [--events N] [--batches N] [--workers N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from conversion import make_recording
from representations import cuda_available, machine
from rich.console import Console
from rich.table import Table

from evtools.cache import EVENTS_GROUP, disk_size
from evtools.convert import ConvertSpec, convert
from evtools.data import CacheDataset
from evtools.representations import VoxelGrid

BATCH = 8


def samples_per_second(dataset: CacheDataset, batches: int, workers: int, collate: bool) -> float:
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=workers, drop_last=True,
                                         collate_fn=dataset.collate if collate else None,
                                         generator=torch.Generator().manual_seed(0),
                                         # this process ran Numba's OpenMP threads (the conversions): no fork
                                         multiprocessing_context="spawn" if workers else None)
    iterator = iter(loader)
    next(iterator)  # workers started, kernels compiled
    started = time.perf_counter()
    done = 0
    for batch in iterator:
        batch["events"].sum().item()  # waits for a GPU batch to be computed
        done += 1
        if done == batches:
            break
    return done * BATCH / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "loading.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        recording = Path(folder) / "bench_data.hdf5"
        n_frames = make_recording(recording, args.events)
        dense = convert(recording, Path(folder) / "dense", ConvertSpec(representations=(VoxelGrid(),)))
        events = convert(recording, Path(folder) / "events", ConvertSpec(representations=(), events=True))
        sizes = {"dense": disk_size(dense.output / "repr"), "events": disk_size(events.output / EVENTS_GROUP)}
        settings = [("dense voxel cache", dense.output, None, 0), ("dense voxel cache", dense.output, None, args.workers),
                    ("events cache, voxel per item", events.output, None, 0),
                    ("events cache, voxel per item", events.output, None, args.workers),
                    ("events cache, voxel per batch (cpu)", events.output, "cpu", 0)]
        if cuda_available():
            settings.append(("events cache, voxel per batch (cuda)", events.output, "cuda", 0))
        for name, path, batch_device, workers in settings:
            dataset = CacheDataset(path, repr=VoxelGrid(), batch_device=batch_device)
            rate = samples_per_second(dataset, args.batches, workers, batch_device is not None)
            rows.append({"loader": name, "workers": workers, "samples_per_second": rate,
                         "cache": "dense" if path == dense.output else "events"})
    result = {"machine": machine(), "events": args.events, "windows": n_frames, "batch": BATCH,
              "bytes_on_disk": sizes, "conversion_seconds": {"dense": dense.seconds, "events": events.seconds},
              "loaders": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    table = Table(title=f"{args.events:,} synthetic events, {n_frames} windows of 50 ms -> 5-bin voxel grids, batches of {BATCH}")
    for column in ("loader", "workers", "samples/s", "cache on disk", "conversion"):
        table.add_column(column, justify="left" if column == "loader" else "right")
    for row in rows:
        kind = row["cache"]
        table.add_row(row["loader"], str(row["workers"]), f"{row['samples_per_second']:.0f}",
                      f"{sizes[kind] / 1e6:.1f} MB", f"{result['conversion_seconds'][kind]:.1f} s")
    console = Console()
    console.print(table)
    console.print(f"machine: {result['machine']}; JSON written to {args.json}")


if __name__ == "__main__":
    main()
