"""The losses of the training methods, each a small module.

- ``TaskLoss``: cross-entropy ignoring 255.
- ``DistributionKD``: temperature-scaled per-pixel KL(teacher || student) of the class
  distributions, times T^2 (Hinton et al. 2015), averaged over pixels.
- ``AffinityKD``: the L1 distance between the cosine-similarity matrices of teacher and student
  features over spatial positions, after average pooling to at most ``max_nodes`` positions.
- ``lsgan_generator`` and ``lsgan_discriminator`` for BMR's optional least-squares adversarial term.

The KD losses take optional per-sample ``weights`` (B,): the mean over samples of weight x loss,
so that a batch of untrusted samples contributes little.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from evtools.labels import IGNORE



class TaskLoss(nn.Module):
    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels, ignore_index=IGNORE)


class DistributionKD(nn.Module):
    def __init__(self, temperature: float = 2.0):
        super().__init__()
        self.temperature = temperature

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                weights: torch.Tensor | None = None) -> torch.Tensor:
        t = self.temperature
        teacher_log = F.log_softmax(teacher_logits / t, dim=1)
        student_log = F.log_softmax(student_logits / t, dim=1)
        per_pixel = (teacher_log.exp() * (teacher_log - student_log)).sum(1)
        return weighted_mean(per_pixel.flatten(1).mean(1), weights) * t * t


def pooled_grid(height: int, width: int, max_nodes: int) -> tuple[int, int]:
    """The largest grid of the features' aspect ratio with at most ``max_nodes`` positions."""
    if height * width <= max_nodes:
        return height, width
    scale = math.sqrt(max_nodes / (height * width))
    return max(1, int(height * scale)), max(1, int(width * scale))


def affinity(features: torch.Tensor, max_nodes: int) -> torch.Tensor:
    """(B, N, N) cosine similarities between the (pooled) spatial positions of (B, C, H, W) features."""
    grid = pooled_grid(*features.shape[-2:], max_nodes)
    pooled = F.adaptive_avg_pool2d(features, grid).flatten(2)  # (B, C, N)
    normalized = F.normalize(pooled, dim=1)
    return normalized.transpose(1, 2) @ normalized


class AffinityKD(nn.Module):
    def __init__(self, max_nodes: int = 1024):
        super().__init__()
        self.max_nodes = max_nodes

    def forward(self, student_features: torch.Tensor, teacher_features: torch.Tensor,
                weights: torch.Tensor | None = None) -> torch.Tensor:
        if student_features.shape[-2:] != teacher_features.shape[-2:]:
            student_features = F.interpolate(student_features, size=teacher_features.shape[-2:], mode="bilinear",
                                             align_corners=False)
        difference = affinity(student_features, self.max_nodes) - affinity(teacher_features, self.max_nodes)
        return weighted_mean(difference.abs().mean((1, 2)), weights)


def weighted_mean(per_sample: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """The plain mean, or the mean of weight x value over the samples."""
    return per_sample.mean() if weights is None else (per_sample * weights).mean()


def lsgan_generator(fake_scores: torch.Tensor) -> torch.Tensor:
    """Least-squares GAN: the generator wants the discriminator to say 1 on its outputs."""
    return ((fake_scores - 1) ** 2).mean()


def lsgan_discriminator(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    return 0.5 * (((real_scores - 1) ** 2).mean() + (fake_scores**2).mean())
