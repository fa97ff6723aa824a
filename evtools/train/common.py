"""What every training method shares: the poly schedule, seeding, batches on a device, and
evaluation into a confusion matrix."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

import numpy as np
import torch

from evtools.metrics import confusion_matrix

# progress(step done, steps in total, loss, samples per second, the loss terms by name)
TrainProgress = Callable[[int, int, float, float, dict[str, float]], None]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def poly_lr(base_lr: float, step: int, total_steps: int, power: float = 0.9) -> float:
    """The poly schedule of DeepLab: base_lr (1 - step / total)^power."""
    return base_lr * (1 - min(step, total_steps) / max(total_steps, 1)) ** power


def to_device(batch: dict[str, torch.Tensor], device: str) -> dict[str, torch.Tensor]:
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: Iterable[dict], input_key: str, num_classes: int, device: str = "cpu") -> np.ndarray:
    """The confusion matrix of ``model``'s argmax over ``batches`` (whose ``labels`` are the truth)."""
    model.eval()
    confusion = np.zeros((num_classes, num_classes), np.int64)
    for batch in batches:
        batch = to_device(batch, device)
        prediction = model(batch[input_key])["logits"].argmax(1)
        confusion += confusion_matrix(prediction.cpu().numpy(), batch["labels"].cpu().numpy(), num_classes)
    return confusion
