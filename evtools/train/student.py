"""Training event students: ``supervised`` (the cache's pseudo-labels, Ev-SegNet's baseline),
``kd-aps`` (the teacher on each window's APS frame, the student matching it on the events) and
``evdistill`` (Wang et al. 2021: bidirectional modality reconstruction with task, distribution
and affinity-graph distillation losses; docs/evdistill.md).

A run folder holds ``config.toml`` (resolved), ``meta.json`` (version, git commit, inputs),
``metrics.jsonl`` (one line per epoch), ``last.pt`` and ``best.pt`` (student checkpoints that
``evtools eval`` loads) and ``state.pt`` (everything ``--resume`` needs). Under ``torchrun`` the
models are wrapped in DistributedDataParallel with a DistributedSampler, and only rank 0 writes.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
import torch.distributed as dist

from evtools import __version__
from evtools.cache import Cache, CacheArray, CacheError
from evtools.data import (CacheDataset, ImageMaskFolder, Loader, RandomCrop, RandomHorizontalFlip, set_torch_threads,
                          training_loader)
from evtools.devices import DeviceError, check_device, check_processes
from evtools.errors import EvtoolsError, InputError, first_line
from evtools.locks import exclusive
from evtools.metrics import miou, pixel_accuracy
from evtools.models.checkpoint import load_checkpoint, save_checkpoint
from evtools.models.deeplab import DeepLabConfig, DeepLabV3Plus
from evtools.progress import Progress, report
from evtools.tensors import require_channels, require_unstacked
from evtools.train.common import (TRAINING_BUSY, autocast, evaluate, ignore_untrusted_frames, place, poly_lr,
                                  seed_everything, to_device)
from evtools.train.config import StudentConfig, to_toml
from evtools.train.evdistill import EvDistill
from evtools.train.losses import DistributionKD, TaskLoss


@dataclass(frozen=True)
class StudentInputs:
    events: list[Path]  # caches of the target modality (events with aligned APS frames)
    images: Path | None = None  # labelled images (evdistill's source modality)
    teacher: Path | None = None  # kd-aps and evdistill


def process_rank() -> int:
    """This process's rank in a torchrun group (0 when run alone)."""
    return int(os.environ.get("RANK", "0"))


class Distributed:
    """The process group when run under torchrun (WORLD_SIZE > 1), else a single process; with
    ``--device cuda``, each process of the group on the GPU of its local rank."""

    def __init__(self, device: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = process_rank()
        self.device = process_device(device, self.world, int(os.environ.get("LOCAL_RANK", "0")))
        on_gpu = self.device.startswith("cuda")
        if on_gpu and self.world > 1:
            torch.cuda.set_device(self.device)  # NCCL's collectives use the current device
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if on_gpu else "gloo")

    @property
    def writer(self) -> bool:
        return self.rank == 0

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        if self.world == 1 or not any(p.requires_grad for p in module.parameters()):
            return module
        device_ids = [torch.device(self.device).index] if self.device.startswith("cuda") else None
        return torch.nn.parallel.DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=True)

    def sampler(self, dataset, shuffle: bool, seed: int):
        if self.world == 1:
            return None
        return torch.utils.data.distributed.DistributedSampler(dataset, self.world, self.rank, shuffle=shuffle, seed=seed)

    def mean(self, value: float) -> float:
        if self.world == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)  # NCCL reduces GPU tensors only
        dist.all_reduce(tensor)
        return float(tensor) / self.world


def process_device(device: str, world: int, local_rank: int) -> str:
    """The device of one process: ``device`` itself, but under torchrun (``world`` > 1) each
    process takes the GPU of its local rank for ``cuda`` (NCCL refuses two processes on one GPU),
    so an explicit ``cuda:N`` is refused there."""
    if world == 1 or not device.startswith("cuda"):
        return device
    if device != "cuda":
        raise DeviceError(f"--device {device} under torchrun: each process takes the GPU of its local rank; "
                          "give --device cuda")
    if local_rank >= torch.cuda.device_count():
        raise DeviceError(f"--device cuda under torchrun: the process of local rank {local_rank} needs GPU "
                          f"{local_rank}, torch sees {torch.cuda.device_count()} (start at most that many "
                          "processes a node)")
    return f"cuda:{local_rank}"


def split_validation(events: list[Path], fraction: float) -> tuple[list[tuple[Path, slice]], list[tuple[Path, slice]]]:
    """Training and validation windows of the events caches: whole caches at the end of the
    sorted list when there are several, else the last windows of the one cache."""
    events = sorted(events)
    if fraction <= 0:
        return [(p, slice(None)) for p in events], []
    if len(events) > 1:
        n_val = max(1, round(fraction * len(events)))
        return [(p, slice(None)) for p in events[:-n_val]], [(p, slice(None)) for p in events[-n_val:]]
    n = len(Cache(events[0]))
    cut = int(n * (1 - fraction))
    return [(events[0], slice(0, cut))], [(events[0], slice(cut, n))]


class _Windows(torch.utils.data.Dataset):
    """A CacheDataset restricted to a window range of each cache."""

    def __init__(self, parts: list[tuple[Path, slice]], model: DeepLabConfig, **options):
        self.dataset = CacheDataset([p for p, _ in parts], **options)
        for path in self.dataset.paths:
            cache = Cache(path)
            require_unstacked(cache, options["repr"])
            require_channels(cache, options["repr"], model.in_channels, "the student (model.in_channels)")
            if options.get("with_labels"):
                labelled = cache.array(CacheArray.LABELS).attrs.get("options", {}).get("num_classes") or 0
                if labelled > model.num_classes:
                    raise CacheError(cache.path, f"its pseudo-labels have {labelled} classes, the student "
                                                 f"{model.num_classes} (model.num_classes)")
        self.indices = []
        for position, (_, window_range) in enumerate(parts):
            self.indices += list(self.dataset.windows_of(position)[window_range])

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        return self.dataset[self.indices[index]]


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@dataclass
class _Run:
    """One training run, filled in by the steps of ``train_student``."""

    config: StudentConfig
    inputs: StudentInputs
    run_dir: Path
    world: Distributed
    uses_images: bool  # EvDistill with its modality reconstruction: labelled images come in
    loader: torch.utils.data.DataLoader | None = None
    sampler: torch.utils.data.Sampler | None = None
    images: torch.utils.data.DataLoader | None = None
    val_loader: torch.utils.data.DataLoader | None = None
    val_parts: list = field(default_factory=list)
    student: torch.nn.Module | None = None
    teacher: torch.nn.Module | None = None
    method: EvDistill | None = None
    trained_student: torch.nn.Module | None = None  # the student, wrapped for DDP when there are several processes
    trained_i2e: torch.nn.Module | None = None
    optimizers: dict = field(default_factory=dict)  # optimizer, i2e_optimizer, d_optimizer (None when unused)
    epoch: int = 0
    step: int = 0
    best: float = -1.0

    @property
    def device(self) -> str:
        return self.world.device


# what a run writes in its folder; a folder holding any of them holds a run
RUN_FILES = ("config.toml", "meta.json", "metrics.jsonl", "last.pt", "best.pt", "state.pt", "state.partial")


def train_student(config: StudentConfig, inputs: StudentInputs, run_dir: str | Path, resume: bool = False,
                  progress: Progress | None = None, overwrite: bool = False) -> dict:
    """Trains one student; returns the last epoch's metrics. A folder that holds a run already
    is refused unless the run is resumed or ``overwrite`` starts it again (its files removed)."""
    run_dir = Path(run_dir)
    # the first process alone (under torchrun, rank 0, which alone writes) keeps other trainings out
    with exclusive(run_dir, TRAINING_BUSY) if process_rank() == 0 else nullcontext():
        return _train_student(config, inputs, run_dir, resume, progress, overwrite)


def _train_student(config: StudentConfig, inputs: StudentInputs, run_dir: Path, resume: bool,
                   progress: Progress | None, overwrite: bool) -> dict:
    if not resume and not overwrite and any((run_dir / name).exists() for name in RUN_FILES):
        raise EvtoolsError(f"{run_dir}: holds a run already: --resume continues it, --overwrite starts it again")
    run = start_run(config, inputs, run_dir)
    _load_data(run)
    build_run(run)
    _resume_or_record(run, resume)
    metrics: dict = {}
    started = time.perf_counter()
    for epoch in range(run.epoch, config.training.epochs):
        sums, steps = _train_epoch(run, epoch, started, progress)
        metrics = _epoch_metrics(run, epoch, sums, steps, started)
        _save(run, epoch, metrics)
    if run.world.world > 1:
        dist.barrier()
    return metrics


def start_run(config: StudentConfig, inputs: StudentInputs, run_dir: Path) -> _Run:
    """The device, threads, process group and seed; the inputs the method needs."""
    cfg = config.training
    check_device(cfg.device)
    check_processes("training.workers", cfg.workers, least=0)
    if cfg.threads > 0:
        set_torch_threads(cfg.threads)
    world = Distributed(cfg.device)
    seed_everything(cfg.seed + world.rank)
    if config.method != "supervised" and inputs.teacher is None:
        raise EvtoolsError(f"--method {config.method} needs --teacher")
    uses_images = config.method == "evdistill" and config.parts.bmr
    if uses_images and inputs.images is None:
        raise EvtoolsError("--method evdistill needs --images (labelled images) unless BMR is off (--no-bmr)")
    return _Run(config, inputs, run_dir, world, uses_images)


def _load_data(run: _Run) -> None:
    """Training windows (and labelled images), and validation windows with pseudo-labels."""
    config, cfg, world = run.config, run.config.training, run.world
    augment = ([RandomHorizontalFlip()] if cfg.flip else []) + ([RandomCrop(*cfg.crop)] if cfg.crop else [])
    train_parts, run.val_parts = split_validation(run.inputs.events, cfg.validation_fraction)
    train_set = _Windows(train_parts, config.model, repr=config.repr, with_aps=True, with_labels=config.method == "supervised",
                         with_previous_aps=run.uses_images, transforms=augment, label_classes=config.model.num_classes)
    run.sampler = world.sampler(train_set, True, cfg.seed)
    run.loader = training_loader(train_set, cfg.batch_size, "training windows", shuffle=run.sampler is None,
                                 sampler=run.sampler, num_workers=cfg.workers,
                                 generator=torch.Generator().manual_seed(cfg.seed))
    if run.uses_images:
        image_set = ImageMaskFolder(run.inputs.images, augment, with_previous=True, label_classes=config.model.num_classes)
        image_sampler = world.sampler(image_set, True, cfg.seed + 1)
        run.images = training_loader(image_set, cfg.batch_size, "labelled images (--images)",
                                     shuffle=image_sampler is None, sampler=image_sampler, num_workers=cfg.workers,
                                     generator=torch.Generator().manual_seed(cfg.seed + 1))
    if run.val_parts and all(Cache(p).has(CacheArray.LABELS) for p, _ in run.val_parts):
        # pseudo-labels (no test data here), ignored where the APS frame they were made from failed
        val_set = _Windows(run.val_parts, config.model, repr=config.repr, with_aps=True, with_labels=True,
                           transforms=[ignore_untrusted_frames], label_classes=config.model.num_classes)
        run.val_loader = Loader(val_set, batch_size=cfg.batch_size, num_workers=cfg.workers)


def build_run(run: _Run) -> None:
    """The models and their optimisers: the student's also trains E2I, the image head on the
    student's own decoder; I2E and the discriminator have their own."""
    cfg, parts = run.config.training, run.config.parts
    run.student, run.teacher, run.method = build_models(run.config, run.inputs.teacher, run.device)
    head = [run.method.e2i] if run.method is not None and parts.bmr else []
    optimizer = torch.optim.Adam([p for m in [run.student, *head] for p in m.parameters()], lr=cfg.lr,
                                 weight_decay=cfg.weight_decay)
    i2e_optimizer = d_optimizer = None
    if run.uses_images:
        i2e_optimizer = torch.optim.Adam(run.method.i2e.parameters(), lr=cfg.generator_lr, betas=(0.5, 0.999))
        if run.method.d_events is not None:
            d_optimizer = torch.optim.Adam(run.method.d_events.parameters(), lr=cfg.generator_lr, betas=(0.5, 0.999))
    run.optimizers = {"optimizer": optimizer, "i2e_optimizer": i2e_optimizer, "d_optimizer": d_optimizer}
    run.trained_student = run.world.wrap(run.student)
    run.trained_i2e = run.world.wrap(run.method.i2e) if run.uses_images else None


def _resume_or_record(run: _Run, resume: bool) -> None:
    """Loads ``state.pt`` to resume; else writes the run's config and provenance."""
    config, inputs, world = run.config, run.inputs, run.world
    state_path = run.run_dir / "state.pt"
    if resume:
        if not state_path.exists():
            raise EvtoolsError(f"{run.run_dir}: nothing to resume (no state.pt)")
        try:
            state = torch.load(state_path, map_location=run.device, weights_only=True)
            for name, module in (("student", run.student), ("evdistill", run.method), *run.optimizers.items()):
                if module is not None:
                    module.load_state_dict(state[name])
            run.epoch, run.step, run.best = int(state["epoch"]), int(state["step"]), float(state["best"])
        except Exception as err:  # noqa: BLE001 - torch and the modules raise many kinds for a damaged state
            raise InputError(state_path, f"cannot resume from it ({type(err).__name__}: {first_line(err)})") from err
    elif world.writer:
        run.run_dir.mkdir(parents=True, exist_ok=True)
        for name in RUN_FILES:  # an overwritten run's: none of its checkpoints may pass for the new one's
            (run.run_dir / name).unlink(missing_ok=True)
        (run.run_dir / "config.toml").write_text(to_toml(config.as_dict()))
        (run.run_dir / "meta.json").write_text(json.dumps({
            "evtools_version": __version__, "git_commit": _git_commit(), "method": config.method,
            "events": [str(p) for p in inputs.events], "images": str(inputs.images) if inputs.images else None,
            "teacher": str(inputs.teacher) if inputs.teacher else None, "world_size": world.world,
            "validation": [f"{p}[{s.start}:{s.stop}]" for p, s in run.val_parts],
        }, indent=2) + "\n")
        (run.run_dir / "metrics.jsonl").write_text("")


def _train_epoch(run: _Run, epoch: int, started: float, progress: Progress | None) -> tuple[dict[str, float], int]:
    """One epoch: every training window and every labelled image, the shorter stream repeated.
    Returns the loss terms summed over its steps, and the number of steps."""
    cfg = run.config.training
    losses = BaselineLosses(TaskLoss(), DistributionKD(cfg.temperature))
    steps = max(len(run.loader), len(run.images) if run.images is not None else 0)
    total_steps = cfg.epochs * steps
    if run.sampler is not None:
        run.sampler.set_epoch(epoch)
    for module in (run.student, run.method):
        if module is not None:
            module.train()
    sums: dict[str, float] = {}
    image_batches = _repeated(run.images) if run.images is not None else itertools.repeat(None)
    for batch, image_batch in itertools.islice(zip(_repeated(run.loader), image_batches), steps):
        for group in run.optimizers["optimizer"].param_groups:
            group["lr"] = poly_lr(cfg.lr, run.step, total_steps)
        loss, terms = train_step(run, batch, image_batch, losses)
        run.step += 1
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + float(value.detach())
        report(progress, run.step, total_steps, loss=float(loss.detach()),
               rate=run.step * cfg.batch_size * run.world.world / (time.perf_counter() - started),
               terms={name: float(value.detach()) for name, value in terms.items()})
    return sums, steps


class BaselineLosses(NamedTuple):
    """The baselines' loss modules, made once per epoch."""

    task: TaskLoss
    distribution: DistributionKD


def train_step(run: _Run, batch: dict, image_batch: dict | None, losses: BaselineLosses
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One optimisation step of every trained model on a batch of windows (and of labelled images
    for EvDistill's BMR): the batches go to the run's device, the forward passes run under the
    configured precision. Returns the loss and its weighted terms (benchmarks/training.py times
    this same step)."""
    config, cfg, method = run.config, run.config.training, run.method
    optimizer, i2e_optimizer, d_optimizer = (run.optimizers[k] for k in ("optimizer", "i2e_optimizer", "d_optimizer"))
    batch = to_device(batch, run.device, cfg.channels_last)
    image_batch = to_device(image_batch, run.device, cfg.channels_last) if image_batch is not None else None
    with autocast(run.device, cfg.precision):
        if method is not None:
            terms = method.losses(batch, image_batch, run.trained_student, run.trained_i2e)
        else:
            terms = _baseline_losses(config, batch, run.trained_student, run.teacher, *losses)
    loss = sum(terms.values())
    for opt in run.optimizers.values():
        if opt is not None:
            opt.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if i2e_optimizer is not None:
        i2e_optimizer.step()
    if d_optimizer is not None:
        method.discriminator_step(batch, image_batch, method.i2e, d_optimizer)
    return loss, terms


def _epoch_metrics(run: _Run, epoch: int, sums: dict[str, float], steps: int, started: float) -> dict:
    """The epoch's mean losses, the method's diagnostics and the validation scores."""
    metrics = {"epoch": epoch + 1, "step": run.step, "seconds": time.perf_counter() - started,
               **{f"loss_{k}": run.world.mean(v / steps) for k, v in sums.items()}}
    if run.method is not None:
        metrics.update(run.method.diagnostics())
    if run.val_loader is not None:
        confusion = evaluate(run.student, run.val_loader, "events", run.config.model.num_classes, run.device)
        metrics.update(val_miou=miou(confusion), val_pixel_accuracy=pixel_accuracy(confusion))
    return metrics


def _save(run: _Run, epoch: int, metrics: dict) -> None:
    """last.pt, best.pt (by validation mIoU; without validation labels, the latest), the metrics
    log and state.pt (written under another name, then renamed)."""
    score = metrics.get("val_miou", float(epoch))
    if not run.world.writer:
        return
    meta = {"method": run.config.method, "repr": run.config.repr, "epoch": epoch + 1, "metrics": metrics,
            "input": "events"}
    save_checkpoint(run.run_dir / "last.pt", run.student, meta)
    if score >= run.best:
        run.best = score
        save_checkpoint(run.run_dir / "best.pt", run.student, meta)
    with open(run.run_dir / "metrics.jsonl", "a") as log:
        log.write(json.dumps(metrics) + "\n")
    state = {"student": run.student.state_dict(), "epoch": epoch + 1, "step": run.step, "best": run.best}
    for name, module in (("evdistill", run.method), *run.optimizers.items()):
        if module is not None:
            state[name] = module.state_dict()
    torch.save(state, run.run_dir / "state.partial")
    (run.run_dir / "state.partial").replace(run.run_dir / "state.pt")


def build_models(config: StudentConfig, teacher_path: Path | None, device: str):
    """(student, teacher or None, EvDistill or None): every model a run trains or consults, on
    ``device``, channels-last when configured; the teacher frozen and in eval mode."""
    channels_last = config.training.channels_last
    student = place(DeepLabV3Plus(config.model), device, channels_last)
    teacher = None
    if config.method != "supervised":
        teacher, meta = load_checkpoint(teacher_path, device)
        if teacher.config.in_channels != 1:  # it labels the APS frames, one grey channel
            made_by = " (a student of events: give a teacher that evtools train teacher wrote)" if meta.get("input") == "events" else ""
            raise EvtoolsError(f"{teacher_path}: the teacher takes {teacher.config.in_channels} input channels, the APS "
                               f"frames it is given 1{made_by}")
        if teacher.config.num_classes != config.model.num_classes:
            raise EvtoolsError(f"{teacher_path}: the teacher has {teacher.config.num_classes} classes, the student "
                               f"{config.model.num_classes} (model.num_classes)")
        teacher = place(teacher, device, channels_last).requires_grad_(False).eval()
    method = place(EvDistill(config, teacher), device, channels_last) if config.method == "evdistill" else None
    return student, teacher, method


def _repeated(loader):
    """The loader's batches, pass after pass (each pass reshuffled)."""
    while True:
        yield from loader


def _baseline_losses(config, batch, student, teacher, task, distribution) -> dict[str, torch.Tensor]:
    """supervised: the cache's pseudo-labels; kd-aps: the teacher on each window's APS frame."""
    events = batch["events"]
    if config.method == "supervised":
        return {"task": config.weights.task * task(student(events)["logits"], batch["labels"])}
    with torch.no_grad():
        t_out = teacher(batch["aps"])
    return {"distribution": config.weights.distribution * distribution(student(events)["logits"], t_out["logits"])}
