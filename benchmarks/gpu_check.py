"""make gpu-check: everything that needs a real NVIDIA GPU, in one run of at most 8 minutes, summed
up in one Markdown table (benchmarks/results/gpu-check.md, and printed).

First the checks, side by side (their speed is not measured):
- the representation tests on real CUDA (NUMBA_ENABLE_CUDASIM=0);
- tests/test_gpu.py: every command with --device cuda on the demo data in miniature;
- make demo DEVICE=cuda with 2 teacher epochs and 1 per student: the whole demo chain on the GPU,
  and its report.
Then the benchmarks, one after another, while time is left (a step starts only with its time
limit left, and is stopped at it), first those that need a machine of many cores:
- the conversion benchmark with --device cpu and --device cuda, with where its main thread's time
  goes (--profile), and again pinned to 1, 2, 4 and 8 of the cores (--cores);
- the cluster benchmark (with the local cluster's run split by phase);
- the kernel benchmark with its CUDA rows (evtools' rows only where Tonic and evlib are missing);
- the training step of the paper configuration, fp32 and bf16, 40 steps each and 5 under torch's
  profiler (benchmarks/training.py; 100 steps and the profiles outran the step's 100 s on an H200);
- the loading benchmark.

Usage: python benchmarks/gpu_check.py [--quick] [--budget SECONDS] [--only STEP,...], with this project importable
(the Makefile's gpu-check target sets PYTHONPATH).
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
BENCHMARKS = ROOT / "benchmarks"
REAL_CUDA = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0", "PYTHONUNBUFFERED": "1"}
PYTHON = sys.executable


def demo_environment() -> Path:
    """A folder the Makefile takes for its venv (VENV=): bin/python and bin/evtools run this
    interpreter, with this process's environment (a GPU machine's python with torch and
    numba-cuda, the carried wheels on PYTHONPATH), and the install stamp is there."""
    venv = ROOT / "build" / "gpu-check-venv"
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    for name, command in (("python", f'exec "{PYTHON}" "$@"'), ("evtools", f'exec "{PYTHON}" -m evtools "$@"')):
        path = venv / "bin" / name
        path.write_text(f"#!/bin/sh\n{command}\n")
        path.chmod(0o755)
    (venv / ".installed").touch()
    return venv


class Step:
    """One command of the check, its output kept in benchmarks/results/gpu-check-NAME.log."""

    def __init__(self, name: str, command: list[str], limit_s: int, env: dict | None = None, cwd: Path = ROOT):
        self.name, self.command, self.limit_s, self.env, self.cwd = name, command, limit_s, env or REAL_CUDA, cwd
        self.status, self.seconds, self.output = "not run: out of time", 0.0, ""

    def start(self) -> None:
        self.log = open(RESULTS / f"gpu-check-{self.name}.log", "w")
        self.started = time.perf_counter()
        self.process = subprocess.Popen(self.command, cwd=self.cwd, env=self.env, stdout=self.log,
                                        stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def wait(self) -> None:
        try:
            code = self.process.wait(timeout=max(1.0, self.limit_s - (time.perf_counter() - self.started)))
            self.status = "passed" if code == 0 else f"failed (exit {code})"
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait()
            self.status = f"stopped after {self.limit_s} s"
        self.seconds = time.perf_counter() - self.started
        self.log.close()
        self.output = (RESULTS / f"gpu-check-{self.name}.log").read_text(errors="replace")
        print(f"{self.name}: {self.status} in {self.seconds:.0f} s", flush=True)


def pytest_summary(output: str) -> str:
    lines = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|skipped|error)", line)]
    return lines[-1].strip("= ") if lines else ""


def figures(step: Step) -> str:
    """The step's headline numbers, from its JSON (or log)."""
    def load(name: str):
        path = RESULTS / name
        return json.loads(path.read_text()) if step.status != "not run: out of time" and path.exists() else None

    if step.name.endswith("tests"):
        return pytest_summary(step.output)
    if step.name == "kernel-bench" and (data := load("gpu-representations.json")):
        return "; ".join(f"{r['representation']} {r['implementation']}: {r['events_per_second'] / 1e6:.0f} M ev/s"
                         for r in data["rows"] if "cuda" in r["implementation"] or "threads, blocks" in r["implementation"]
                         or r["representation"] == "(copy)")
    if step.name == "training-bench" and (data := load("gpu-training.json")):
        return "; ".join(f"{r['precision']}: {r['images_per_second']:.1f} images/s, one DDD17 epoch "
                         f"{r['ddd17_epoch_minutes']:.1f} min" for r in data["rows"])
    if step.name.startswith("conversion") and (data := load(f"gpu-{step.name.removesuffix('-bench')}.json")):
        main_thread = "; main thread under cProfile: " + ", ".join(
            f"{step.split(' (')[0]} {seconds:.2f} s" for step, seconds in data["profile"]["main_thread"].items()
        ) if "profile" in data else ""
        return "; ".join(f"{r['codec']} {r['device']} {r['process']} {r['cores']} core{'s' * (r['cores'] > 1)}: {r['seconds']:.2f} s, "
                         f"{r['events_per_second'] / 1e6:.1f} M ev/s" for r in data["conversions"]) + main_thread
    if step.name == "cluster-bench" and (data := load("gpu-cluster.json")):
        split = data.get("split")
        phases = (f"; by phase: start {split['start_seconds']:.2f} s, conversion {split['conversion_seconds']:.2f} s "
                  f"(first tasks {split['first_task_seconds']}, later {split['later_task_seconds']}), close "
                  f"{split['close_seconds']:.2f} s") if split else ""
        return "; ".join(f"jobs {r['jobs']}: {r['seconds']:.1f} s, {r['events_per_second'] / 1e6:.1f} M ev/s"
                         for r in data["runs"]) + phases
    if step.name == "loading-bench" and (data := load("gpu-loading.json")):
        return "; ".join(f"{r['loader']}, {r['workers']} workers: {r['samples_per_second']:.0f} samples/s"
                         for r in data["loaders"])
    if step.name == "demo" and (ROOT / "runs/gpu-demo/report.md").exists():
        report = (ROOT / "runs/gpu-demo/report.md").read_text()
        return " ".join(line for line in report.splitlines() if line.startswith("EvDistill "))
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="2 M events, a small training model and no demo: a check of this script on any machine.")
    parser.add_argument("--budget", type=float, default=480.0, help="seconds for the whole check")
    parser.add_argument("--only", default="", help="comma-separated step names: run only these (a rerun)")
    args = parser.parse_args()
    deadline = time.perf_counter() + args.budget
    events = ["--events", "2000000"] if args.quick else []
    RESULTS.mkdir(parents=True, exist_ok=True)
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA GPU"
    references = all(importlib.util.find_spec(name) for name in ("tonic", "evlib"))
    checks = [
        Step("representation-tests", [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                      "tests/test_representations.py"], 200),
        Step("gpu-tests", [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_gpu.py"], 200,
             {**REAL_CUDA, "EVTOOLS_GPU_TESTS": "1"}),
    ]
    if not args.quick:
        # the whole chain with fewer epochs (2 for the teacher, 1 per student): the full demo's training
        # alone took about 5 minutes on an H200, more than this check's share
        checks.append(Step("demo", ["make", "demo", "DEVICE=cuda", f"VENV={demo_environment()}", "TEACHER_EPOCHS=2",
                                    "STUDENT_EPOCHS=1", "DEMO_DIR=build/gpu-demo", "RUN_DIR=runs/gpu-demo"], 300))
    small_model = ["--set", "model.depth=18", "--set", "model.width=0.25", "--set", "training.crop=[64,128]",
                   "--steps", "3"] if args.quick else ["--steps", "40", "--profile"]
    benchmarks = [
        # --profile: where the main thread's time goes, to tell a serial main thread from busy compressors;
        # --cores: the same conversion pinned to fewer of the machine's cores, the scaling curve
        Step("conversion-bench", [PYTHON, "conversion.py", *events, "--profile", "--cores", "1,2,4,8", "--json",
                                  str(RESULTS / "gpu-conversion.json")], 150, cwd=BENCHMARKS),
        Step("cluster-bench", [PYTHON, "cluster.py", "--jobs", "8", "--recordings", "8", "--split", "--json",
                               str(RESULTS / "gpu-cluster.json")], 70, cwd=BENCHMARKS),
        Step("kernel-bench", [PYTHON, "representations.py", *events, "--json", str(RESULTS / "gpu-representations.json"),
                              *([] if references else ["--no-references"])], 110, cwd=BENCHMARKS),
        Step("training-bench", [PYTHON, "training.py", *small_model, "--json", str(RESULTS / "gpu-training.json")], 100,
             cwd=BENCHMARKS),
        Step("loading-bench", [PYTHON, "loading.py", *events, "--json", str(RESULTS / "gpu-loading.json")], 60,
             cwd=BENCHMARKS),
    ]
    if args.only:
        chosen = set(args.only.split(","))
        checks, benchmarks = ([s for s in steps if s.name in chosen] for steps in (checks, benchmarks))
    for step in checks:
        step.start()
    for step in checks:
        step.wait()
    for step in benchmarks:
        if deadline - time.perf_counter() >= step.limit_s:
            step.start()
            step.wait()
    lines = [f"# make gpu-check on {device}", "", f"CPU side: {os.cpu_count()} cores. Each step's log: "
             "benchmarks/results/gpu-check-STEP.log.", "", "| step | result | seconds | figures |", "| --- | --- | ---: | --- |"]
    lines += [f"| {s.name} | {s.status} | {s.seconds:.0f} | {figures(s)} |" for s in checks + benchmarks]
    table = "\n".join(lines) + "\n"
    (RESULTS / "gpu-check.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
