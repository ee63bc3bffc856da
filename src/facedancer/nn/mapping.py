"""The mapping network M: identity embedding z -> style w (PAPER.md §1.2).

``(depth - 1)`` x [Linear -> LeakyReLU(0.2)] then one linear Linear, no normalisation anywhere, fed the
raw embedding. Depth 0 means no mapping: ``w = z`` (what the author's own PyTorch port fell back to).
"""

from __future__ import annotations

from torch import Tensor, nn

from facedancer.nn.layers import LEAKY_SLOPE


class MappingNetwork(nn.Module):
    def __init__(self, in_dim: int, width: int, depth: int) -> None:
        super().__init__()
        if depth < 0:
            raise ValueError(f"mapping depth must be >= 0, got {depth}")
        layers: list[nn.Module] = []
        dim = in_dim
        for i in range(depth):
            layers.append(nn.Linear(dim, width))
            if i < depth - 1:
                layers.append(nn.LeakyReLU(LEAKY_SLOPE))
            dim = width
        self.layers = nn.Sequential(*layers)
        self.out_dim = dim

    def forward(self, z: Tensor) -> Tensor:
        return self.layers(z)
