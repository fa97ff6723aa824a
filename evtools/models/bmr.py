"""Bidirectional modality reconstruction.

- E2I, ``ImageHead``: an image-reconstruction head on the student's decoder features (the
  released EvDistill code's ``DeepLab_Dual`` reconstructs on the task network's own encoder).
- I2E, ``FramePairToEvents``: the event tensor of a window from the two APS frames around it. One
  still image cannot say which way its edges moved, so the sign and timing of events are not
  predictable from it; two consecutive frames give the log-intensity change, from which the
  generator starts (``event_prior``, the sensor model's crossings spread evenly over the bins)
  and learns the rest as a residual.
- ``PatchDiscriminator`` for the optional adversarial term on I2E's output.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.InstanceNorm2d(cout, affine=True),
                         nn.LeakyReLU(0.2, inplace=True))


class Residual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(_block(channels, channels), nn.Conv2d(channels, channels, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Generator(nn.Module):
    """Two stride-2 downsamplings, residual blocks, two upsamplings; unbounded output."""

    def __init__(self, in_channels: int, out_channels: int, width: int = 32, residual_blocks: int = 2):
        super().__init__()
        self.encoder = nn.Sequential(_block(in_channels, width), _block(width, 2 * width, 2), _block(2 * width, 4 * width, 2))
        self.middle = nn.Sequential(*[Residual(4 * width) for _ in range(residual_blocks)])
        self.decoder = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), _block(4 * width, 2 * width),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), _block(2 * width, width),
            nn.Conv2d(width, out_channels, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        out = self.decoder(self.middle(self.encoder(x)))
        if out.shape[-2:] != size:  # sizes not divisible by 4
            out = nn.functional.interpolate(out, size=size, mode="bilinear", align_corners=False)
        return out


GAMMA = 2.2  # APS frames are gamma-encoded (the simulator's and most DAVIS pipelines' 1/2.2)
LOG_EPS = 1e-3
CONTRAST_THRESHOLD = 0.25  # a typical DAVIS contrast threshold (log intensity per event)


def event_prior(previous: torch.Tensor, current: torch.Tensor, channels: int) -> torch.Tensor:
    """(B, channels, H, W): the signed number of whole threshold crossings between two
    gamma-encoded frames in [0, 1], sign(d) floor(|d| / C) with d = log(I_1) - log(I_0), spread
    evenly over the channels (the bins of a voxel grid share a window's events). Changes below
    one threshold, frame noise mostly, make no event, as on the sensor."""
    change = torch.log(current.clamp(0, 1) ** GAMMA + LOG_EPS) - torch.log(previous.clamp(0, 1) ** GAMMA + LOG_EPS)
    crossings = torch.sign(change) * torch.floor(change.abs() / CONTRAST_THRESHOLD)
    return (crossings / channels).expand(-1, channels, -1, -1)


class FramePairToEvents(nn.Module):
    """I2E: (previous frame, frame) -> the event tensor of the window ending at the frame, as
    ``event_prior`` plus a learned residual (which also learns what noise to ignore)."""

    def __init__(self, channels: int, width: int = 16):
        super().__init__()
        self.channels = channels
        self.residual = Generator(2 + channels, channels, width)
        last = self.residual.decoder[-1]
        nn.init.zeros_(last.weight)  # I2E starts as the prior
        nn.init.zeros_(last.bias)

    def forward(self, previous: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        prior = event_prior(previous, current, self.channels)
        return prior + self.residual(torch.cat([previous, current, prior], dim=1))


class ImageHead(nn.Module):
    """E2I on a task network: its stride-4 decoder features -> an image in [0, 1] at ``size``."""

    def __init__(self, in_channels: int, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                                 nn.ReLU(inplace=True), nn.Conv2d(width, 1, 1))

    def forward(self, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        out = nn.functional.interpolate(self.net(features), size=size, mode="bilinear", align_corners=False)
        return torch.sigmoid(out)


class PatchDiscriminator(nn.Module):
    def __init__(self, in_channels: int, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(_block(in_channels, width, 2), _block(width, 2 * width, 2), _block(2 * width, 4 * width, 2),
                                 nn.Conv2d(4 * width, 1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
