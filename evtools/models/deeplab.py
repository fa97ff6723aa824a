"""DeepLabV3+ (Chen et al. 2018) over a ResNet backbone (He et al. 2016), built from scratch.

Configurable depth (18, 34: basic blocks; 50, 101: bottlenecks), width (a multiplier of the
64 base channels), input channels (1 or 3 for images, any number for event tensors), classes,
and output stride (16: the last stage dilated; 8: the last two). The ASPP uses dilations 6/12/18
at output stride 16 (doubled at 8) and image pooling; the decoder takes the stride-4 features.

``forward`` returns a dict: ``logits`` (B, K, H, W) at the input size, and the features the
distillation losses need: ``encoder`` (the ASPP output, stride 16) and ``decoder`` (the decoder
features before the classifier, stride 4). No weights are ever downloaded: models start from
random initialisation or a checkpoint file.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from evtools.errors import require, require_at_least
from evtools.labels import CLASS_COUNTS, MAX_CLASSES

LAYERS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
MAX_WIDTH = 4.0  # of the ResNet
MAX_HEAD_CHANNELS = 4096  # of ASPP and the decoder (DeepLabV3+'s own: 256)


@dataclass(frozen=True)
class DeepLabConfig:
    depth: int = 101
    width: float = 1.0
    in_channels: int = 3
    num_classes: int = 6
    output_stride: int = 16
    aspp_channels: int = 256
    decoder_channels: int = 256

    def __post_init__(self) -> None:
        require(self.depth in LAYERS, "depth", f"one of {sorted(LAYERS)} (the ResNet's)", self.depth)
        require(self.output_stride in (8, 16), "output_stride", "8 or 16", self.output_stride)
        # 4 makes a ResNet-101 of 680 M weights; 1e9 had torch try to allocate 63 TB
        require(0 < self.width <= MAX_WIDTH, "width", f"above 0 and at most {MAX_WIDTH}", self.width)
        require_at_least(self, 1, ("in_channels",))
        for name in ("aspp_channels", "decoder_channels"):
            require(1 <= getattr(self, name) <= MAX_HEAD_CHANNELS, name, f"from 1 to {MAX_HEAD_CHANNELS}", getattr(self, name))
        require(2 <= self.num_classes <= MAX_CLASSES, "num_classes", CLASS_COUNTS, self.num_classes)


def _conv_bn_relu(cin: int, cout: int, kernel: int = 3, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=dilation * (kernel // 2), dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, dilation: int):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, cout, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x), inplace=True)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, dilation: int):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        return F.relu(self.bn3(self.conv3(out)) + self.shortcut(x), inplace=True)


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class ResNet(nn.Module):
    """The backbone: returns the stride-4 features (layer 1) and the last stage's output."""

    def __init__(self, config: DeepLabConfig):
        super().__init__()
        block = BasicBlock if config.depth < 50 else Bottleneck
        base = max(8, round(64 * config.width))
        self.stem = nn.Sequential(
            nn.Conv2d(config.in_channels, base, 7, 2, 3, bias=False), nn.BatchNorm2d(base), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        # output stride 16 dilates the last stage, 8 the last two, instead of striding
        strides = (1, 2, 2, 1) if config.output_stride == 16 else (1, 2, 1, 1)
        dilations = (1, 1, 1, 2) if config.output_stride == 16 else (1, 1, 2, 4)
        cin, stages = base, []
        for index, (blocks, stride, dilation) in enumerate(zip(LAYERS[config.depth], strides, dilations)):
            planes = base * 2**index
            layers = []
            for k in range(blocks):
                layers.append(block(cin, planes, stride if k == 0 else 1, dilation))
                cin = planes * block.expansion
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.low_channels = base * block.expansion
        self.out_channels = cin

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.layer1(self.stem(x))
        return low, self.layer4(self.layer3(self.layer2(low)))


class ASPP(nn.Module):
    def __init__(self, cin: int, cout: int, rates: tuple[int, ...]):
        super().__init__()
        self.branches = nn.ModuleList([_conv_bn_relu(cin, cout, 1)] + [_conv_bn_relu(cin, cout, 3, r) for r in rates])
        self.pooling = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.ReLU(inplace=True))
        self.project = nn.Sequential(_conv_bn_relu(cout * (len(rates) + 2), cout, 1), nn.Dropout(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.interpolate(self.pooling(x), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.project(torch.cat([branch(x) for branch in self.branches] + [pooled], dim=1))


class DeepLabV3Plus(nn.Module):
    def __init__(self, config: DeepLabConfig):
        super().__init__()
        self.config = config
        self.backbone = ResNet(config)
        rates = (6, 12, 18) if config.output_stride == 16 else (12, 24, 36)
        self.aspp = ASPP(self.backbone.out_channels, config.aspp_channels, rates)
        self.reduce_low = _conv_bn_relu(self.backbone.low_channels, 48, 1)
        self.decoder = nn.Sequential(
            _conv_bn_relu(config.aspp_channels + 48, config.decoder_channels),
            _conv_bn_relu(config.decoder_channels, config.decoder_channels),
        )
        self.classifier = nn.Conv2d(config.decoder_channels, config.num_classes, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        low, high = self.backbone(x)
        encoder = self.aspp(high)
        upsampled = F.interpolate(encoder, size=low.shape[-2:], mode="bilinear", align_corners=False)
        decoder = self.decoder(torch.cat([upsampled, self.reduce_low(low)], dim=1))
        logits = F.interpolate(self.classifier(decoder), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return {"logits": logits, "encoder": encoder, "decoder": decoder}
