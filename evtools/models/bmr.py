"""Bidirectional modality reconstruction: light encoder-decoder generators between event tensors
and images (E2I: events -> image in [0, 1]; I2E: image -> event tensor), and small patch
discriminators for the optional adversarial term."""

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
    """Two stride-2 downsamplings, residual blocks, two upsamplings; ``image_output`` squashes
    to [0, 1] with a sigmoid (images), otherwise the output is unbounded (event tensors)."""

    def __init__(self, in_channels: int, out_channels: int, width: int = 32, residual_blocks: int = 2,
                 image_output: bool = False):
        super().__init__()
        self.encoder = nn.Sequential(_block(in_channels, width), _block(width, 2 * width, 2), _block(2 * width, 4 * width, 2))
        self.middle = nn.Sequential(*[Residual(4 * width) for _ in range(residual_blocks)])
        self.decoder = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), _block(4 * width, 2 * width),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), _block(2 * width, width),
            nn.Conv2d(width, out_channels, 3, 1, 1),
        )
        self.image_output = image_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        out = self.decoder(self.middle(self.encoder(x)))
        if out.shape[-2:] != size:  # sizes not divisible by 4
            out = nn.functional.interpolate(out, size=size, mode="bilinear", align_corners=False)
        return torch.sigmoid(out) if self.image_output else out


class PatchDiscriminator(nn.Module):
    def __init__(self, in_channels: int, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(_block(in_channels, width, 2), _block(width, 2 * width, 2), _block(2 * width, 4 * width, 2),
                                 nn.Conv2d(4 * width, 1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
