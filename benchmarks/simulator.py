"""Simulator speed at 346x260: simulated seconds per wall second and events per second, per
illumination, with APS frames at 25 Hz (compilation done before timing).
Usage: python benchmarks/simulator.py [--seconds S] [--json PATH]"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from representations import machine
from rich.console import Console
from rich.table import Table

from evtools.simulate.scene import ILLUMINATIONS, SceneConfig
from evtools.simulate.sequence import SequenceConfig, simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "simulator.json")
    args = parser.parse_args()
    simulate(SequenceConfig(seconds=0.08))  # compile (or load the cache)
    rows = []
    for index, illumination in enumerate(ILLUMINATIONS):
        started = time.perf_counter()
        sequence = simulate(SequenceConfig(scene=SceneConfig(seed=100 + index, illumination=illumination), seconds=args.seconds))
        wall = time.perf_counter() - started
        rows.append({"illumination": illumination, "simulated_seconds": args.seconds, "wall_seconds": wall,
                     "events": len(sequence.events), "renders": sequence.renders,
                     "simulated_seconds_per_wall_second": args.seconds / wall, "events_per_wall_second": len(sequence.events) / wall})
    result = {"machine": machine(), "sensor": [346, 260], "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    table = Table(title=f"simulator, 346x260, {args.seconds:g} s per sequence, APS at 25 Hz")
    for column in ("illumination", "wall s", "sim s / wall s", "events", "M events / wall s", "renders / sim s"):
        table.add_column(column, justify="left" if column == "illumination" else "right")
    for r in rows:
        table.add_row(r["illumination"], f"{r['wall_seconds']:.1f}", f"{r['simulated_seconds_per_wall_second']:.2f}",
                      f"{r['events']:,}", f"{r['events_per_wall_second'] / 1e6:.2f}", f"{r['renders'] / args.seconds:.0f}")
    console = Console()
    console.print(table)
    console.print(f"machine: {result['machine']}; JSON written to {args.json}")


if __name__ == "__main__":
    main()
