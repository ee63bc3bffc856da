"""The discriminator (PAPER.md §1.4): StarGAN-v2-like residual avg-pool blocks, a 4x4 conv head.

Unlike StarGAN-v2 the official code keeps InstanceNorm inside the blocks and emits one logit per image.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from facedancer.nn.layers import LEAKY_SLOPE, conv_pool2x, instance_norm, keras_init_
from facedancer.nn.pretrained import Pretrained

HEAD_SIZE = 4


@dataclass
class DiscriminatorConfig:
    image_size: int = 256
    base_channels: int = 64
    max_channels: int = 512
    keras_init: bool = True

    def __post_init__(self) -> None:
        if min(self.base_channels, self.max_channels) < 1:
            raise ValueError("base_channels and max_channels must be >= 1")
        n = self.image_size // HEAD_SIZE
        if self.image_size % HEAD_SIZE or n < 2 or n & (n - 1):
            raise ValueError(f"image_size {self.image_size} must be 4 times a power of two >= 2")

    @property
    def widths(self) -> tuple[int, ...]:
        """Output width of each down block: 128, 256, 512, 512, ... at 256 px."""
        blocks = (self.image_size // HEAD_SIZE).bit_length() - 1
        return tuple(min(self.base_channels * 2 ** (i + 1), self.max_channels) for i in range(blocks))


class DiscriminatorBlock(nn.Module):
    """skip = Conv1x1 -> AvgPool; main = IN -> LReLU -> Conv3x3 -> AvgPool -> IN -> LReLU -> Conv3x3."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = instance_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = instance_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        main = conv_pool2x(self.conv1, F.leaky_relu(self.norm1(x), LEAKY_SLOPE))
        main = self.conv2(F.leaky_relu(self.norm2(main), LEAKY_SLOPE))
        return main + conv_pool2x(self.skip, x)


class Discriminator(Pretrained):
    """``D(x) -> (B,)`` logits for images in [-1, 1]."""

    config_class = DiscriminatorConfig

    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or DiscriminatorConfig()
        self.stem = nn.Conv2d(3, cfg.base_channels, 3, padding=1)
        widths = (cfg.base_channels, *cfg.widths)
        self.blocks = nn.Sequential(*(DiscriminatorBlock(a, b) for a, b in itertools.pairwise(widths)))
        self.head = nn.Conv2d(widths[-1], widths[-1], HEAD_SIZE)
        self.out = nn.Conv2d(widths[-1], 1, 1)
        if cfg.keras_init:
            keras_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        h = self.head(self.blocks(self.stem(x)))
        return self.out(F.leaky_relu(h, LEAKY_SLOPE)).flatten(1).squeeze(1)
