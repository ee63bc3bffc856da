"""The official blocks' arithmetic written out in numpy, loop by loop, for value tests that counts cannot replace.

Nothing here calls torch: each step is the formula of the official Keras code (PAPER.md §1.3-1.4), so a test
comparing a block with it checks the order of operations (conv before upsampling, IN before AdaIN, conv
before pooling), the constants (eps 1e-3, slope 0.2) and the conventions (half-pixel bilinear, no "+1").
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

EPS = 1e-3
SLOPE = 0.2


def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (O, H, W): a 'same' convolution with zero padding (cross-correlation, as Keras and torch)."""
    o, _, k, _ = weight.shape
    pad = k // 2
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    h, w = x.shape[1:]
    out = np.empty((o, h, w))
    for oc in range(o):
        for i in range(h):
            for j in range(w):
                out[oc, i, j] = np.sum(padded[:, i : i + k, j : j + k] * weight[oc]) + bias[oc]
    return out


def avg_pool2(x: np.ndarray) -> np.ndarray:
    c, h, w = x.shape
    return x.reshape(c, h // 2, 2, w // 2, 2).mean(axis=(2, 4))


def instance_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Per channel over the pixels: biased variance, eps 1e-3 inside the root, then the learned affine."""
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = ((x - mean) ** 2).mean(axis=(1, 2), keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * gamma[:, None, None] + beta[:, None, None]


def leaky_relu(x: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, x, SLOPE * x)


def bilinear_weights(n: int) -> np.ndarray:
    """(2n, n) matrix of Keras' bilinear UpSampling2D: output pixel i samples input (i + 0.5) / 2 - 0.5."""
    u = np.zeros((2 * n, n))
    for i in range(2 * n):
        src = max((i + 0.5) / 2 - 0.5, 0.0)
        lo = min(int(np.floor(src)), n - 1)
        hi = min(lo + 1, n - 1)
        frac = src - lo
        u[i, lo] += 1 - frac
        u[i, hi] += frac
    return u


def upsample2(x: np.ndarray) -> np.ndarray:
    rows, cols = bilinear_weights(x.shape[1]), bilinear_weights(x.shape[2])
    return np.stack([rows @ channel @ cols.T for channel in x])


def adain(x: np.ndarray, style: np.ndarray, scale: tuple, shift: tuple) -> np.ndarray:
    """``(W_s w + b_s) * x + (W_b w + b_b)``: the official modulation, no "+1" on the scale."""
    s = scale[0] @ style + scale[1]
    t = shift[0] @ style + shift[1]
    return s[:, None, None] * x + t[:, None, None]


@pytest.fixture(scope="session")
def ref() -> SimpleNamespace:
    return SimpleNamespace(
        conv2d=conv2d,
        avg_pool2=avg_pool2,
        instance_norm=instance_norm,
        leaky_relu=leaky_relu,
        bilinear_weights=bilinear_weights,
        upsample2=upsample2,
        adain=adain,
    )
