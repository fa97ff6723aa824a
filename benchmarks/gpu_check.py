"""make gpu-check: everything that needs a real NVIDIA GPU, in one run of at most about 8 minutes,
summed up in one Markdown table (benchmarks/results/gpu-check.md, and printed).

Steps, each with its own time limit so that one slow step cannot eat the others' time:
1. the representation tests on real CUDA (NUMBA_ENABLE_CUDASIM=0);
2. tests/test_gpu.py: every command with --device cuda on the demo data in miniature;
3. the kernel benchmark with its CUDA rows (evtools' rows only where Tonic and evlib are missing);
4. the conversion benchmark: the 20 M-event recording converted with --device cpu and --device cuda;
5. make demo DEVICE=cuda, the whole demo chain on the GPU, and its report.

Usage: python benchmarks/gpu_check.py [--venv DIR] (the Makefile's gpu-check target makes DIR).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
REAL_CUDA = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0", "PYTHONUNBUFFERED": "1"}


def step(name: str, command: list[str], limit_s: int, env: dict | None = None, cwd: Path = ROOT) -> dict:
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=cwd, env=env or REAL_CUDA, capture_output=True, text=True, timeout=limit_s)
        output, status = done.stdout + done.stderr, "passed" if done.returncode == 0 else f"failed (exit {done.returncode})"
    except subprocess.TimeoutExpired as err:
        output, status = (err.stdout or b"").decode() + (err.stderr or b"").decode(), f"stopped after {limit_s} s"
    seconds = time.perf_counter() - started
    (RESULTS / f"gpu-check-{name}.log").write_text(output)
    print(f"{name}: {status} in {seconds:.0f} s", flush=True)
    return {"step": name, "status": status, "seconds": seconds, "output": output}


def pytest_summary(output: str) -> str:
    lines = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|skipped|error)", line)]
    return lines[-1].strip("= ") if lines else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=Path(sys.executable).parent.parent)
    parser.add_argument("--quick", action="store_true",
                        help="2 M events in the benchmarks and no demo: a check of this script on any machine.")
    args = parser.parse_args()
    events = ["--events", "2000000"] if args.quick else []
    RESULTS.mkdir(parents=True, exist_ok=True)
    python = str(args.venv / "bin" / "python")
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA GPU"
    references = all(importlib.util.find_spec(name) for name in ("tonic", "evlib"))
    steps = [
        step("representation-tests", [python, "-m", "pytest", "-q", "tests/test_representations.py"], 120),
        step("gpu-tests", [python, "-m", "pytest", "-q", "tests/test_gpu.py"], 150,
             {**REAL_CUDA, "EVTOOLS_GPU_TESTS": "1"}),
        step("kernel-bench", [python, "representations.py", *events, "--json", str(RESULTS / "gpu-representations.json"),
                              *([] if references else ["--no-references"])], 120, cwd=ROOT / "benchmarks"),
        step("conversion-bench", [python, "conversion.py", *events, "--json", str(RESULTS / "gpu-conversion.json")], 120,
             cwd=ROOT / "benchmarks"),
        # the same conversion on 2 of the machine's cores: the scaling from 2 cores to all of them
        step("conversion-bench-2-cores", ["taskset", "-c", "0,1", python, "conversion.py", *events, "--json",
                                          str(RESULTS / "gpu-conversion-2-cores.json")], 120,
             {**REAL_CUDA, "NUMBA_NUM_THREADS": "2"}, cwd=ROOT / "benchmarks"),
        step("cluster-bench", [python, "cluster.py", "--jobs", "8", "--recordings", "8", "--json",
                               str(RESULTS / "gpu-cluster.json")], 150, cwd=ROOT / "benchmarks"),
        step("loading-bench", [python, "loading.py", *events, "--json", str(RESULTS / "gpu-loading.json")], 120,
             cwd=ROOT / "benchmarks"),
    ]
    if not args.quick:
        steps.append(step("demo", ["make", "demo", "DEVICE=cuda", f"VENV={args.venv}", "DEMO_DIR=build/gpu-demo",
                                   "RUN_DIR=runs/gpu-demo"], 300))
    lines = [f"# make gpu-check on {device}", "", f"CPU side: {os.cpu_count()} cores. Each step's log: "
             "benchmarks/results/gpu-check-STEP.log.", "", "| step | result | seconds | figures |", "| --- | --- | ---: | --- |"]
    for entry in steps:
        figures = ""
        if entry["step"].endswith("tests"):
            figures = pytest_summary(entry["output"])
        elif entry["step"] == "kernel-bench" and (RESULTS / "gpu-representations.json").exists():
            rows = json.loads((RESULTS / "gpu-representations.json").read_text())["rows"]
            figures = "; ".join(f"{r['representation']} {r['implementation']}: {r['events_per_second'] / 1e6:.0f} M ev/s"
                                for r in rows if "evtools" in r["implementation"] or "floor" in r["implementation"])
        elif entry["step"] == "conversion-bench" and (RESULTS / "gpu-conversion.json").exists():
            runs = json.loads((RESULTS / "gpu-conversion.json").read_text())["conversions"]
            figures = "; ".join(f"{r['codec']} {r.get('device', 'cpu')}: {r['seconds']:.2f} s, "
                                f"{r['events_per_second'] / 1e6:.1f} M ev/s" for r in runs)
        elif entry["step"] == "conversion-bench-2-cores" and (RESULTS / "gpu-conversion-2-cores.json").exists():
            runs = json.loads((RESULTS / "gpu-conversion-2-cores.json").read_text())["conversions"]
            figures = "; ".join(f"{r['codec']}: {r['events_per_second'] / 1e6:.1f} M ev/s" for r in runs)
        elif entry["step"] == "cluster-bench" and (RESULTS / "gpu-cluster.json").exists():
            runs = json.loads((RESULTS / "gpu-cluster.json").read_text())["runs"]
            figures = "; ".join(f"jobs {r['jobs']}: {r['seconds']:.1f} s, {r['events_per_second'] / 1e6:.1f} M ev/s" for r in runs)
        elif entry["step"] == "loading-bench" and (RESULTS / "gpu-loading.json").exists():
            loading = json.loads((RESULTS / "gpu-loading.json").read_text())
            figures = "; ".join(f"{r['loader']}, {r['workers']} workers: {r['samples_per_second']:.0f} samples/s"
                                for r in loading["loaders"])
        elif entry["step"] == "demo" and (ROOT / "runs/gpu-demo/report.md").exists():
            report = (ROOT / "runs/gpu-demo/report.md").read_text()
            figures = " ".join(line for line in report.splitlines() if line.startswith("EvDistill "))
        lines.append(f"| {entry['step']} | {entry['status']} | {entry['seconds']:.0f} | {figures} |")
    table = "\n".join(lines) + "\n"
    (RESULTS / "gpu-check.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
