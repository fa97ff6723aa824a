"""What every training method shares: the poly schedule, seeding, batches on a device, and
evaluation into a confusion matrix."""

from __future__ import annotations

import random
from collections.abc import Iterable

import numpy as np
import torch

from evtools.errors import EvtoolsError, require
from evtools.metrics import confusion_matrix



# what a training refuses a second one writing its checkpoint or run folder meanwhile (locks.exclusive)
TRAINING_BUSY = "another evtools command is training into it now; wait for it to finish"

# numpy's global seed takes 0 to 2^32 - 1; runs add the process's rank, and 1 for a second stream
MAX_SEED = 2**31 - 1


def check_seed(seed: int) -> None:
    require(0 <= seed <= MAX_SEED, "seed", f"from 0 to {MAX_SEED}", seed)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def poly_lr(base_lr: float, step: int, total_steps: int, power: float = 0.9) -> float:
    """The poly schedule of DeepLab: base_lr (1 - step / total)^power."""
    return base_lr * (1 - min(step, total_steps) / max(total_steps, 1)) ** power


def _ramp(value: torch.Tensor, low: float, high: float) -> torch.Tensor:
    return ((value - low) / (high - low)).clamp(0, 1)


def frame_trust(aps: torch.Tensor) -> torch.Tensor:
    """(B,) in [0, 1]: how far each APS frame of (B, 1, H, W) in [0, 1] is exposed well enough for
    a teacher to read it, judged from the frame alone: 1 for a mean brightness within [0.15, 0.85]
    and a contrast (standard deviation) of at least 0.08, falling linearly to 0 at a mean of 0.08
    or 0.92 and at a contrast of 0.03. Dark (night), saturated (glare) and flat frames fail;
    motion blur is not detected."""
    mean, contrast = aps.mean((1, 2, 3)), aps.std((1, 2, 3))
    return _ramp(mean, 0.08, 0.15) * _ramp(1 - mean, 0.08, 0.15) * _ramp(contrast, 0.03, 0.08)


def ignore_untrusted_frames(sample: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A transform for validation against pseudo-labels: a window whose APS frame is not trusted
    (``frame_trust`` below 0.5) has pseudo-labels made from a failed frame; ignore them."""
    if float(frame_trust(sample["aps"][None])[0]) < 0.5:
        sample = {**sample, "labels": torch.full_like(sample["labels"], 255)}
    return sample


PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise EvtoolsError(f"--precision: '{precision}' is not one of {', '.join(PRECISIONS)}")
    return precision


def autocast(device: str, precision: str):
    """The forward passes' precision: bf16 autocast (matrix products and convolutions in bfloat16,
    reductions and losses in float32) or plain fp32."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")


def place(model: torch.nn.Module, device: str, channels_last: bool = False) -> torch.nn.Module:
    """The model on ``device``, its convolution weights channels-last when asked (faster on GPUs)."""
    return model.to(device, memory_format=torch.channels_last) if channels_last else model.to(device)


def to_device(batch: dict[str, torch.Tensor], device: str, channels_last: bool = False) -> dict[str, torch.Tensor]:
    """A batch on ``device``; images and event tensors (4-D) channels-last when asked."""
    def moved(value: torch.Tensor) -> torch.Tensor:
        value = value.to(device, non_blocking=True)
        return value.contiguous(memory_format=torch.channels_last) if channels_last and value.dim() == 4 else value

    return {key: moved(value) for key, value in batch.items()}


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
