"""Building blocks of the FaceDancer generator and discriminator (PAPER.md §1.3-1.4).

Every choice here mirrors the official Keras code, because the paper's numbers were produced by it:
InstanceNorm with a learnable affine and eps 1e-3 (tensorflow_addons), AdaIN *without* the usual
"1 +" on the scale, convolution *before* bilinear upsampling, residual sums without 1/sqrt(2).
"""

from __future__ import annotations

import hashlib

import torch.nn.functional as F
from torch import Tensor, nn

LEAKY_SLOPE = 0.2
IN_EPS = 1e-3


def instance_norm(channels: int) -> nn.InstanceNorm2d:
    """tensorflow_addons.InstanceNormalization: per-sample, per-channel, affine, eps 1e-3."""
    return nn.InstanceNorm2d(channels, affine=True, eps=IN_EPS)


def conv_pool2x(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``avg_pool2d(conv(x), 2)``, the official order, computed the cheap way; equal in exact arithmetic.

    Both operations are linear, so a 1x1 convolution commutes with the pool: pooling first convolves a
    quarter of the pixels. A 3x3 convolution (padding 1) followed by the 2x2 mean is one 4x4 convolution
    of stride 2 whose kernel is the 3x3 kernel box-filtered (zero padding agrees): 2.25x fewer
    multiply-adds. Forward + backward at batch 8 on a CPU core run 2-3.5x faster (PAPER.md §1.3's blocks,
    weights unchanged: the parameters stay the 3x3 and 1x1 kernels of the official model).
    """
    plain = conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
    if plain and conv.kernel_size == (1, 1) and conv.padding == (0, 0):
        return conv(F.avg_pool2d(x, 2))
    if plain and conv.kernel_size == (3, 3) and conv.padding == (1, 1):
        w = conv.weight
        k = 0.25 * (F.pad(w, (0, 1, 0, 1)) + F.pad(w, (1, 0, 0, 1)) + F.pad(w, (0, 1, 1, 0)) + F.pad(w, (1, 0, 1, 0)))
        return F.conv2d(x, k, conv.bias, stride=2, padding=1)
    return F.avg_pool2d(conv(x), 2)


def upsample2x(x: Tensor) -> Tensor:
    """Keras UpSampling2D(interpolation='bilinear'): half-pixel centres, i.e. align_corners=False."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class AdaIN(nn.Module):
    """Style modulation as the official code has it: ``Linear_s(w) * x + Linear_b(w)``.

    It does not normalise (the InstanceNorm in front of it does) and has no "+1" on the scale, so at
    initialisation the scale is a random, roughly zero-mean vector (PAPER.md §5 row 6).
    """

    def __init__(self, channels: int, style_dim: int) -> None:
        super().__init__()
        self.scale = nn.Linear(style_dim, channels)
        self.bias = nn.Linear(style_dim, channels)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        return self.scale(w)[:, :, None, None] * x + self.bias(w)[:, :, None, None]


def modulated_instance_norm(x: Tensor, norm: nn.InstanceNorm2d, adain: AdaIN, w: Tensor) -> Tensor:
    """``adain(norm(x), w)`` as one normalisation kernel: ``s (g x^ + b) + t = (s g) x^ + (s b + t)`` is a
    per-sample, per-channel affine, which batch_norm over the (1, B*C) view applies in the same pass that
    computes the statistics (F.instance_norm itself is that view). Training uses it: forward and backward
    skip AdaIN's two elementwise passes over the feature map, equal to the plain chain within fp32 round-off.
    Inference keeps the plain chain, which the exported graphs carry and the runtimes fuse themselves."""
    b, c, h, wd = x.shape
    scale, shift = adain.scale(w), adain.bias(w)
    weight = (scale * norm.weight).reshape(-1)
    bias = (scale * norm.bias + shift).reshape(-1)
    flat = x.reshape(1, b * c, h, wd)
    return F.batch_norm(flat, None, None, weight, bias, training=True, eps=norm.eps).view(b, c, h, wd)


class ResDown(nn.Module):
    """Encoder block: IN -> LReLU -> Conv3x3 -> AvgPool, plus a Conv1x1 -> AvgPool skip."""

    def __init__(self, in_channels: int, out_channels: int, resample: bool = True) -> None:
        super().__init__()
        self.resample = resample
        self.norm = instance_norm(in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = F.leaky_relu(self.norm(x), LEAKY_SLOPE)
        if self.resample:  # conv -> AvgPool on both paths
            return conv_pool2x(self.conv, h) + conv_pool2x(self.skip, x)
        return self.conv(h) + self.skip(x)


class ResUp(nn.Module):
    """Decoder block: IN -> AdaIN(w) -> LReLU -> Conv3x3 -> bilinear x2, plus Conv1x1 -> x2 skip."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int, resample: bool = True) -> None:
        super().__init__()
        self.resample = resample
        self.norm = instance_norm(in_channels)
        self.adain = AdaIN(in_channels, style_dim)
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        styled = modulated_instance_norm(x, self.norm, self.adain, w) if self.training else self.adain(self.norm(x), w)
        main = self.conv(F.leaky_relu(styled, LEAKY_SLOPE))
        skip = self.skip(x)
        if self.resample:
            main, skip = upsample2x(main), upsample2x(skip)
        return main + skip


def keras_init_(module: nn.Module) -> None:
    """Keras defaults for every Conv/Linear below ``module``: glorot-uniform weights, zero biases.

    PAPER.md §7.3 suggests the author's own PyTorch port may have failed for want of this.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def weights_digest(module: nn.Module) -> str:
    """sha256 of a module's weights (names and bytes): data-parallel replicas are checked against it, and
    exported inference graphs are cached under it."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


__all__ = [
    "AdaIN",
    "ResDown",
    "ResUp",
    "conv_pool2x",
    "instance_norm",
    "keras_init_",
    "modulated_instance_norm",
    "parameter_count",
    "upsample2x",
    "weights_digest",
]
