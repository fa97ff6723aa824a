"""Training throughput: images per second of EvDistill's training step in a student configuration
(by default the paper's, pipelines/configs/student-paper.toml: DeepLabV3+ over ResNet-101,
256x512 crops, batch 8), in fp32 and in bf16 autocast with channels-last.

It times ``train_step``, the step ``evtools train student`` runs (student, teacher, E2I, I2E and
the optimisers), on synthetic batches already in memory: the models' cost without data loading.
EvDistill's gates start closed and open as the reconstructions improve; here they are held open,
so that every term is computed (the step's cost late in training). The teacher has random weights
(its cost does not depend on them). Usage:
python benchmarks/training.py [--config PATH] [--steps N] [--device cuda] [--json PATH] [--profile]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from representations import machine
from rich.console import Console
from rich.table import Table

from evtools.models.checkpoint import save_checkpoint
from evtools.models.deeplab import DeepLabV3Plus
from evtools.train.config import load_config
from evtools.train.losses import DistributionKD, TaskLoss
from evtools.train.student import BaselineLosses, StudentInputs, build_run, start_run, train_step

ROOT = Path(__file__).resolve().parent.parent
# Ev-SegNet's DDD17 segmentation split, which EvDistill trains on: 15,950 training windows (the
# Ev-SegNet paper's count, not recounted here).
DDD17_TRAINING_WINDOWS = 15_950


def synthetic_batches(config, generator: torch.Generator) -> tuple[dict, dict]:
    """A batch of event windows (voxel-like: zero where no event fell, APS frames a teacher trusts)
    and a batch of labelled images, at the configuration's crop and batch size."""
    n, (height, width) = config.training.batch_size, config.training.crop
    channels, classes = config.model.in_channels, config.model.num_classes
    events = torch.randn(n, channels, height, width, generator=generator)
    events *= torch.rand(n, channels, height, width, generator=generator) < 0.1

    def frames() -> torch.Tensor:
        return torch.rand(n, 1, height, width, generator=generator) * 0.8 + 0.1

    batch = {"events": events, "aps": frames(), "aps_previous": frames()}
    labels = torch.randint(0, classes, (n, height, width), generator=generator)
    return batch, {"aps": frames(), "aps_previous": frames(), "labels": labels}


def images_per_second(config, teacher_path: Path, steps: int, warmup: int, profile: Path | None = None) -> float:
    """The step's rate after ``warmup`` steps; with ``profile``, then 5 more steps under torch's
    profiler, whose operators by total time (the device's, on a GPU) go to that file."""
    run = start_run(config, StudentInputs(events=[], images=Path("synthetic"), teacher=teacher_path), Path("unused"))
    build_run(run)
    run.method.gates = lambda: {"e2i_gate": 1.0, "i2e_gate": 1.0}  # every term computed (see the docstring)
    run.student.train()
    run.method.train()
    batch, image_batch = synthetic_batches(config, torch.Generator().manual_seed(0))
    losses = BaselineLosses(TaskLoss(), DistributionKD(config.training.temperature))
    on_gpu = config.training.device.startswith("cuda")
    for step in range(warmup + steps):
        if step == warmup:
            if on_gpu:
                torch.cuda.synchronize()
            started = time.perf_counter()
        loss, _ = train_step(run, batch, image_batch, losses)
    float(loss.detach())  # waits for the last step
    rate = steps * config.training.batch_size / (time.perf_counter() - started)
    if profile is not None:
        activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if on_gpu else [])
        with torch.profiler.profile(activities=activities) as profiler:
            for _ in range(5):
                loss, _ = train_step(run, batch, image_batch, losses)
            float(loss.detach())
        sort_by = "cuda_time_total" if on_gpu else "cpu_time_total"
        profile.write_text(profiler.key_averages().table(sort_by=sort_by, row_limit=30) + "\n")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "pipelines" / "configs" / "student-paper.toml")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="section.key=value, as evtools train student --set (a smaller model on a CPU)")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "training.json")
    parser.add_argument("--profile", action="store_true",
                        help="5 more steps of each precision under torch's profiler; tables beside the JSON")
    args = parser.parse_args()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    base = load_config(args.config, [*args.overrides, f"training.device={args.device!r}"])
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        teacher_path = save_checkpoint(Path(folder) / "teacher.pt",
                                       DeepLabV3Plus(replace(base.model, in_channels=1)), {"input": "aps"})
        for precision, channels_last in (("fp32", False), ("bf16", True)):
            config = replace(base, training=replace(base.training, precision=precision, channels_last=channels_last))
            profile = args.json.with_name(f"{args.json.stem}-profile-{precision}.txt") if args.profile else None
            rate = images_per_second(config, teacher_path, args.steps, args.warmup, profile)
            rows.append({"precision": precision, "channels_last": channels_last, "images_per_second": rate,
                         "ddd17_epoch_minutes": DDD17_TRAINING_WINDOWS / rate / 60})
    model = base.model
    result = {"machine": machine(), "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu",
              "config": str(args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config),
              "overrides": args.overrides, "method": base.method, "depth": model.depth, "crop": base.training.crop,
              "batch_size": base.training.batch_size, "steps": args.steps, "rows": rows}
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    table = Table(title=f"{base.method} training step, ResNet-{model.depth}, {base.training.crop}, batch "
                        f"{base.training.batch_size}, on {result['device']} (synthetic batches)")
    for column in ("precision", "images/s", f"one DDD17 epoch ({DDD17_TRAINING_WINDOWS} windows)"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["precision"] + (", channels-last" if row["channels_last"] else ""),
                      f"{row['images_per_second']:.1f}", f"{row['ddd17_epoch_minutes']:.1f} min")
    Console().print(table)


if __name__ == "__main__":
    main()
