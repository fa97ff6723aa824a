"""Training the image teacher: DeepLabV3+ on labelled images (PNG pairs, or caches with APS frames
and labels), cross-entropy ignoring 255, SGD with the poly schedule, flips and random crops."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from evtools.data import CacheDataset, ImageMaskFolder, Loader, RandomCrop, RandomHorizontalFlip, training_loader
from evtools.errors import EvtoolsError, require, require_at_least
from evtools.locks import exclusive
from evtools.labels import IGNORE
from evtools.metrics import miou, pixel_accuracy
from evtools.models.checkpoint import save_checkpoint
from evtools.models.deeplab import DeepLabConfig, DeepLabV3Plus
from evtools.devices import check_device, check_processes
from evtools.progress import Progress, report
from evtools.train.common import (TRAINING_BUSY, autocast, check_precision, check_seed, evaluate, place, poly_lr,
                                  seed_everything, to_device)


@dataclass(frozen=True)
class TeacherTraining:
    model: DeepLabConfig = field(default_factory=lambda: DeepLabConfig(
        depth=18, width=0.5, in_channels=1, num_classes=6, aspp_channels=64, decoder_channels=64))
    epochs: int = 10
    batch_size: int = 8
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    crop: tuple[int, int] | None = (192, 256)  # random crop (height, width) for training; None: whole frames
    flip: bool = True
    seed: int = 0
    device: str = "cpu"
    workers: int = 0
    precision: str = "fp32"  # or bf16 (autocast)
    channels_last: bool = False

    def __post_init__(self) -> None:
        check_precision(self.precision)
        check_seed(self.seed)
        require_at_least(self, 1, ("epochs", "batch_size"))
        require_at_least(self, 0, ("weight_decay", "workers"))
        require(self.lr > 0, "lr", "above 0", self.lr)
        require(0 <= self.momentum < 1, "momentum", "in [0, 1)", self.momentum)
        require(self.crop is None or min(self.crop) >= 1, "crop", "none or a height and width of at least 1", self.crop)


def labelled_images(source: str | Path | list[str | Path], num_classes: int, transforms=()) -> torch.utils.data.Dataset:
    """A folder of PNG pairs, or one or more caches holding ``aps`` and ``labels``, for a network
    of ``num_classes`` classes (labels of another class are refused)."""
    paths = source if isinstance(source, list) else [source]
    if len(paths) == 1 and not (Path(paths[0]) / "zarr.json").exists():
        return ImageMaskFolder(paths[0], transforms, label_classes=num_classes)
    return CacheDataset(paths, repr=None, with_aps=True, with_labels=True, transforms=transforms, label_classes=num_classes)


@dataclass(frozen=True)
class TeacherResult:
    checkpoint: Path
    epochs: int
    final_loss: float
    seconds: float
    validation: list[dict]  # per epoch: miou, pixel_accuracy (when a validation set was given)


def train_teacher(
    train_source, output: str | Path, config: TeacherTraining = TeacherTraining(), val_source=None,
    progress: Progress | None = None, overwrite: bool = False,
) -> TeacherResult:
    """Trains the teacher and writes its checkpoint to ``output``, which must not exist unless
    ``overwrite``."""
    output = Path(output)
    with exclusive(output, TRAINING_BUSY):  # no other training writes the checkpoint meanwhile
        return _train_teacher(train_source, output, config, val_source, progress, overwrite)


def _train_teacher(train_source, output: Path, config: TeacherTraining, val_source, progress: Progress | None,
                   overwrite: bool) -> TeacherResult:
    if output.exists() and not overwrite:
        raise EvtoolsError(f"{output}: exists already: --overwrite replaces it")
    check_device(config.device)
    check_processes("--workers", config.workers, least=0)
    seed_everything(config.seed)
    augment = ([RandomHorizontalFlip()] if config.flip else []) + ([RandomCrop(*config.crop)] if config.crop else [])
    train_set = labelled_images(train_source, config.model.num_classes, augment)
    loader = training_loader(train_set, config.batch_size, "labelled training images", shuffle=True,
                             num_workers=config.workers, generator=torch.Generator().manual_seed(config.seed))
    val_loader = None
    if val_source is not None:
        val_loader = Loader(labelled_images(val_source, config.model.num_classes), batch_size=config.batch_size,
                            num_workers=config.workers)
    model = place(DeepLabV3Plus(config.model), config.device, config.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    total = config.epochs * len(loader)
    step, loss_value, started, history = 0, float("nan"), time.perf_counter(), []
    for epoch in range(config.epochs):
        model.train()
        for batch in loader:
            batch = to_device(batch, config.device, config.channels_last)
            for group in optimizer.param_groups:
                group["lr"] = poly_lr(config.lr, step, total)
            with autocast(config.device, config.precision):
                loss = F.cross_entropy(model(batch["aps"])["logits"], batch["labels"], ignore_index=IGNORE)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            loss_value = float(loss.detach())
            report(progress, step, total, loss=loss_value, rate=step * config.batch_size / (time.perf_counter() - started),
                   terms={"task": loss_value})
        if val_loader is not None:
            confusion = evaluate(model, val_loader, "aps", config.model.num_classes, config.device)
            history.append({"epoch": epoch + 1, "miou": miou(confusion), "pixel_accuracy": pixel_accuracy(confusion)})
    meta = {"trained_on": [str(p) for p in (train_source if isinstance(train_source, list) else [train_source])],
            "training": {k: v for k, v in asdict(config).items() if k != "model"}, "validation": history,
            "input": "aps", "input_scale": "[0, 1]"}
    path = save_checkpoint(output, model.cpu(), meta)
    return TeacherResult(path, config.epochs, loss_value, time.perf_counter() - started, history)
