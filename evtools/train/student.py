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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from evtools import __version__
from evtools.cache import Cache
from evtools.data import CacheDataset, ImageMaskFolder, RandomCrop, RandomHorizontalFlip
from evtools.errors import EvtoolsError
from evtools.metrics import miou, pixel_accuracy
from evtools.models.bmr import Generator, PatchDiscriminator
from evtools.models.checkpoint import load_checkpoint, save_checkpoint
from evtools.models.deeplab import DeepLabV3Plus
from evtools.train.common import TrainProgress, evaluate, poly_lr, seed_everything, to_device
from evtools.train.config import StudentConfig, to_toml
from evtools.train.losses import AffinityKD, DistributionKD, TaskLoss, lsgan_discriminator, lsgan_generator


@dataclass(frozen=True)
class StudentInputs:
    events: list[Path]  # caches of the target modality (events with aligned APS frames)
    images: Path | None = None  # labelled images (evdistill's source modality)
    teacher: Path | None = None  # kd-aps and evdistill


class Distributed:
    """The process group when run under torchrun (WORLD_SIZE > 1), else a single process."""

    def __init__(self, device: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device == "cuda" else "gloo")

    @property
    def writer(self) -> bool:
        return self.rank == 0

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        if self.world == 1 or not any(p.requires_grad for p in module.parameters()):
            return module
        return torch.nn.parallel.DistributedDataParallel(module, find_unused_parameters=True)

    def sampler(self, dataset, shuffle: bool, seed: int):
        if self.world == 1:
            return None
        return torch.utils.data.distributed.DistributedSampler(dataset, self.world, self.rank, shuffle=shuffle, seed=seed)

    def mean(self, value: float) -> float:
        if self.world == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor) / self.world


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

    def __init__(self, parts: list[tuple[Path, slice]], **options):
        self.dataset = CacheDataset([p for p, _ in parts], **options)
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


def train_student(config: StudentConfig, inputs: StudentInputs, run_dir: str | Path, resume: bool = False,
                  progress: TrainProgress | None = None) -> dict:
    """Trains one student; returns the last epoch's metrics."""
    run_dir = Path(run_dir)
    cfg, parts, weights = config.training, config.parts, config.weights
    world = Distributed(cfg.device)
    seed_everything(cfg.seed + world.rank)
    needs_teacher = config.method != "supervised"
    if needs_teacher and inputs.teacher is None:
        raise EvtoolsError(f"--method {config.method} needs --teacher")
    uses_images = config.method == "evdistill" and parts.bmr
    if uses_images and inputs.images is None:
        raise EvtoolsError("--method evdistill needs --images (labelled images) unless BMR is off (--no-bmr)")
    augment = ([RandomHorizontalFlip()] if cfg.flip else []) + ([RandomCrop(*cfg.crop)] if cfg.crop else [])
    train_parts, val_parts = split_validation(inputs.events, cfg.validation_fraction)
    train_set = _Windows(train_parts, repr=config.repr, with_aps=True, with_labels=config.method == "supervised",
                         transforms=augment)
    train_sampler = world.sampler(train_set, True, cfg.seed)
    loader = torch.utils.data.DataLoader(train_set, batch_size=cfg.batch_size, shuffle=train_sampler is None,
                                         sampler=train_sampler, drop_last=True, num_workers=cfg.workers,
                                         generator=torch.Generator().manual_seed(cfg.seed))
    if len(loader) == 0:
        raise EvtoolsError(f"{len(train_set)} training windows make no batch of {cfg.batch_size}")
    images = None
    if uses_images:
        image_set = ImageMaskFolder(inputs.images, augment)
        image_sampler = world.sampler(image_set, True, cfg.seed + 1)
        images = torch.utils.data.DataLoader(image_set, batch_size=cfg.batch_size, shuffle=image_sampler is None,
                                             sampler=image_sampler, drop_last=True, num_workers=cfg.workers,
                                             generator=torch.Generator().manual_seed(cfg.seed + 1))
    val_loader = None
    if val_parts and all(Cache(p).has("labels") for p, _ in val_parts):
        val_set = _Windows(val_parts, repr=config.repr, with_labels=True)  # pseudo-labels: no test data here
        val_loader = torch.utils.data.DataLoader(val_set, batch_size=cfg.batch_size, num_workers=cfg.workers)

    device = cfg.device
    student = DeepLabV3Plus(config.model).to(device)
    teacher = None
    if needs_teacher:
        teacher, _ = load_checkpoint(inputs.teacher, device)
        teacher.requires_grad_(False).eval()
    channels = config.model.in_channels
    e2i = i2e = d_image = d_events = None
    trainable = [student]
    if config.method == "evdistill" and parts.bmr:
        e2i = Generator(channels, 1, cfg.generator_width, image_output=True).to(device)
        i2e = Generator(1, channels, cfg.generator_width).to(device)
        trainable += [e2i, i2e]
    optimizer = torch.optim.Adam([p for m in trainable for p in m.parameters()], lr=cfg.lr, weight_decay=cfg.weight_decay)
    d_optimizer = None
    if e2i is not None and weights.adversarial > 0:
        d_image, d_events = PatchDiscriminator(1).to(device), PatchDiscriminator(channels).to(device)
        d_optimizer = torch.optim.Adam(list(d_image.parameters()) + list(d_events.parameters()), lr=cfg.lr, betas=(0.5, 0.999))

    start_epoch, step, best = 0, 0, -1.0
    state_path = run_dir / "state.pt"
    if resume:
        if not state_path.exists():
            raise EvtoolsError(f"{run_dir}: nothing to resume (no state.pt)")
        state = torch.load(state_path, map_location=device, weights_only=True)
        for name, module in (("student", student), ("e2i", e2i), ("i2e", i2e), ("d_image", d_image), ("d_events", d_events),
                             ("optimizer", optimizer), ("d_optimizer", d_optimizer)):
            if module is not None:
                module.load_state_dict(state[name])
        start_epoch, step, best = state["epoch"], state["step"], state["best"]
    elif world.writer:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.toml").write_text(to_toml(config.as_dict()))
        (run_dir / "meta.json").write_text(json.dumps({
            "evtools_version": __version__, "git_commit": _git_commit(), "method": config.method,
            "events": [str(p) for p in inputs.events], "images": str(inputs.images) if inputs.images else None,
            "teacher": str(inputs.teacher) if inputs.teacher else None, "world_size": world.world,
            "validation": [f"{p}[{s.start}:{s.stop}]" for p, s in val_parts],
        }, indent=2) + "\n")
        (run_dir / "metrics.jsonl").write_text("")

    s_model, e2i_model, i2e_model = world.wrap(student), world.wrap(e2i) if e2i else None, world.wrap(i2e) if i2e else None
    task, distribution = TaskLoss(), DistributionKD(cfg.temperature)
    affinity = AffinityKD(cfg.affinity_nodes)
    total_steps = cfg.epochs * len(loader)
    started = time.perf_counter()
    metrics: dict = {}
    for epoch in range(start_epoch, cfg.epochs):
        if train_sampler is not None:
            train_sampler.set_epoch(epoch)
        for module in trainable:
            module.train()
        sums: dict[str, float] = {}
        image_batches = itertools.cycle(images) if images is not None else itertools.repeat(None)
        for batch, image_batch in zip(loader, image_batches):
            for group in optimizer.param_groups:
                group["lr"] = poly_lr(cfg.lr, step, total_steps)
            batch = to_device(batch, device)
            terms = _losses(config, batch, to_device(image_batch, device) if image_batch else None, s_model, teacher,
                            e2i_model, i2e_model, d_image, d_events, task, distribution, affinity)
            loss = sum(terms.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if d_optimizer is not None:
                _discriminator_step(batch, image_batch, e2i, i2e, d_image, d_events, d_optimizer, device)
            step += 1
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach())
            if progress:
                progress(step, total_steps, float(loss.detach()),
                         step * cfg.batch_size * world.world / (time.perf_counter() - started),
                         {name: float(value.detach()) for name, value in terms.items()})
        metrics = {"epoch": epoch + 1, "step": step, "seconds": time.perf_counter() - started,
                   **{f"loss_{k}": world.mean(v / len(loader)) for k, v in sums.items()}}
        if val_loader is not None:
            confusion = evaluate(student, val_loader, "events", config.model.num_classes, device)
            metrics.update(val_miou=miou(confusion), val_pixel_accuracy=pixel_accuracy(confusion))
        score = metrics.get("val_miou", float(epoch))  # without validation labels, the latest is the best
        if world.writer:
            meta = {"method": config.method, "repr": config.repr, "epoch": epoch + 1, "metrics": metrics,
                    "input": "events"}
            save_checkpoint(run_dir / "last.pt", student, meta)
            if score >= best:
                best = score
                save_checkpoint(run_dir / "best.pt", student, meta)
            with open(run_dir / "metrics.jsonl", "a") as log:
                log.write(json.dumps(metrics) + "\n")
            state = {"student": student.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
                     "step": step, "best": best}
            for name, module in (("e2i", e2i), ("i2e", i2e), ("d_image", d_image), ("d_events", d_events),
                                 ("d_optimizer", d_optimizer)):
                if module is not None:
                    state[name] = module.state_dict()
            torch.save(state, run_dir / "state.partial")
            (run_dir / "state.partial").replace(state_path)
    if world.world > 1:
        dist.barrier()
    return metrics


def _losses(config, batch, image_batch, student, teacher, e2i, i2e, d_image, d_events, task, distribution, affinity):
    """The weighted loss terms of one step, by name."""
    weights, parts = config.weights, config.parts
    events = batch["events"]
    if config.method == "supervised":
        return {"task": weights.task * task(student(events)["logits"], batch["labels"])}
    if config.method == "kd-aps" or not parts.bmr:
        # the teacher on the aligned APS frame, the student on the events of the same window
        with torch.no_grad():
            t_out = teacher(batch["aps"])
        s_out = student(events)
        terms = {}
        if config.method == "kd-aps" or parts.distribution:
            terms["distribution"] = weights.distribution * distribution(s_out["logits"], t_out["logits"])
        if config.method == "evdistill" and parts.affinity:
            terms["affinity"] = weights.affinity * affinity(s_out["decoder"], t_out["decoder"])
        return terms
    images, image_labels = image_batch["aps"], image_batch["labels"]
    fake_images = e2i(events)  # crafted pair 1: (events, E2I(events))
    fake_events = i2e(images)  # crafted pair 2: (I2E(image), image)
    s_events, s_fake = student(events), student(fake_events)
    t_fake = teacher(fake_images)  # the frozen teacher passes gradients on to E2I
    with torch.no_grad():
        t_images = teacher(images)
    terms = {"task": weights.task * task(s_fake["logits"], image_labels)}
    if parts.distribution:
        terms["distribution"] = weights.distribution * (distribution(s_events["logits"], t_fake["logits"])
                                                        + distribution(s_fake["logits"], t_images["logits"]))
    if parts.affinity:
        terms["affinity"] = weights.affinity * (affinity(s_events["decoder"], t_fake["decoder"])
                                                + affinity(s_fake["decoder"], t_images["decoder"]))
    terms["reconstruction"] = weights.reconstruction * F.l1_loss(fake_images, batch["aps"])
    terms["cycle"] = weights.cycle * (F.l1_loss(i2e(fake_images), events) + F.l1_loss(e2i(fake_events), images))
    if d_image is not None:
        terms["adversarial"] = weights.adversarial * (lsgan_generator(d_image(fake_images))
                                                      + lsgan_generator(d_events(fake_events)))
    return terms


def _discriminator_step(batch, image_batch, e2i, i2e, d_image, d_events, optimizer, device) -> None:
    with torch.no_grad():
        fake_images = e2i(batch["events"])
        fake_events = i2e(image_batch["aps"].to(device))
    loss = (lsgan_discriminator(d_image(batch["aps"]), d_image(fake_images))
            + lsgan_discriminator(d_events(batch["events"]), d_events(fake_events)))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
