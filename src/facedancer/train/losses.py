"""The generator and discriminator losses, one class each (PAPER.md §3.1-3.2; IFSR is in ``ifsr.py``).

    L_G = adv + 5 rec + 10 id + 1 cyc + 0.2 p + 1 IFSR        L_D = adv_D + R1

Identity encoders are duck-typed (``facedancer.identity.IdentityEncoder``): ``prepare(crop)`` maps an
aligned [-1, 1] crop of any size to the encoder input ((x + 1) / 2, bilinear resize to 112 without
antialias, as ``tf.image.resize`` in the official code, PAPER.md §1.1), ``forward`` gives the raw
embedding and ``features(x, names)`` the named intermediate blocks. The encoder is frozen; gradients
flow through it into the swap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FeatureFn = Callable[[Tensor], Sequence[Tensor]]


def same_pair_mean(per_sample: Tensor, same: Tensor, official: bool = False) -> Tensor:
    """Mean of ``per_sample`` over same pairs; 0 when the batch has none.

    ``official`` divides by ``sum(flags) + 1e-3`` as the official code does (a hair below the plain mean).
    """
    flags = same.to(per_sample.dtype)
    total = (per_sample * flags).sum()
    return total / (flags.sum() + 1e-3) if official else total / flags.sum().clamp(min=1.0)


class AdversarialLoss(nn.Module):
    """Both players' terms from D's logits: ``generator(fake)`` and ``discriminator(real, fake)``."""

    def generator(self, fake: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def discriminator(self, real: Tensor, fake: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class LogisticLoss(AdversarialLoss):
    """The official non-saturating logistic loss: G ``softplus(-D(Y))``, D ``softplus(D(Y)) + softplus(-D(X))``."""

    def generator(self, fake: Tensor) -> Tensor:
        return F.softplus(-fake).mean()

    def discriminator(self, real: Tensor, fake: Tensor) -> Tensor:
        return F.softplus(fake).mean() + F.softplus(-real).mean()


class HingeLoss(AdversarialLoss):
    """The paper's hinge loss: G ``-D(Y)``, D ``relu(1 - D(X)) + relu(1 + D(Y))``."""

    def generator(self, fake: Tensor) -> Tensor:
        return -fake.mean()

    def discriminator(self, real: Tensor, fake: Tensor) -> Tensor:
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def make_adversarial(kind: Literal["logistic", "hinge"]) -> AdversarialLoss:
    return {"logistic": LogisticLoss, "hinge": HingeLoss}[kind]()


class R1Penalty(nn.Module):
    """``gamma / 2 * mean_b ||grad_x D(x)||^2`` on real images (official: gamma 10, every step).

    Takes D's logits and the images they came from (with ``requires_grad``). ``scale`` is the fp16
    GradScaler's scale: the gradient is taken of the scaled logits and unscaled, so it cannot underflow.
    """

    def __init__(self, gamma: float = 10.0) -> None:
        super().__init__()
        self.gamma = gamma

    def forward(self, real_logits: Tensor, real_images: Tensor, scale: float = 1.0) -> Tensor:
        (grad,) = torch.autograd.grad(real_logits.sum() * scale, real_images, create_graph=True)
        grad = grad.float() / scale
        return 0.5 * self.gamma * grad.square().flatten(1).sum(1).mean()


class IdentityLoss(nn.Module):
    """``mean_b 1 - cos(z_s, E(Y))``: the swap must carry the source's identity (lambda_id = 10)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, swap: Tensor, source_embedding: Tensor) -> Tensor:
        embedding = self.encoder(self.encoder.prepare(swap))
        return (1.0 - F.cosine_similarity(embedding.float(), source_embedding.float(), dim=1)).mean()


class ReconstructionLoss(nn.Module):
    """L1 between swap and target on same pairs (source = target), where the right output is known.

    ``plain``: the mean L1 over same pairs. ``official``: 0.5 x the masked mean, clipped to [0, 5]
    (PAPER.md §3.1); with weight 5 that is an effective 2.5 x L1, half the plain form's.
    """

    def __init__(self, mode: Literal["plain", "official"] = "plain") -> None:
        super().__init__()
        self.mode = mode

    def forward(self, swap: Tensor, target: Tensor, same: Tensor) -> Tensor:
        l1 = (swap - target).abs().flatten(1).mean(1)
        if self.mode == "plain":
            return same_pair_mean(l1, same)
        return (0.5 * same_pair_mean(l1, same, official=True)).clamp(0.0, 5.0)


class PerceptualLoss(nn.Module):
    """Sum over feature blocks of ``mean |s f(X_t) - s f(Y)|`` on same pairs (s = 0.85 officially).

    ``features`` maps images in [-1, 1] to a list of blocks: VGG16 pool1-pool5 (:class:`VGG16Features`,
    the official choice) or the identity encoder's early blocks (:class:`EncoderFeatures`, the offline
    default when no VGG16 weights were supplied). Target features carry no gradient.
    """

    def __init__(self, features: FeatureFn, scale: float = 0.85, official: bool = False) -> None:
        super().__init__()
        self.features, self.scale, self.official = features, scale, official

    def forward(self, swap: Tensor, target: Tensor, same: Tensor) -> Tensor:
        if not bool(same.any()):
            return swap.new_zeros(())
        with torch.no_grad():
            real = self.features(target)
        total = swap.new_zeros((), dtype=torch.float32)
        for a, b in zip(real, self.features(swap), strict=True):
            per_sample = (self.scale * (a.float() - b.float())).abs().flatten(1).mean(1)
            total = total + same_pair_mean(per_sample, same, self.official)
        return total


class EncoderFeatures(nn.Module):
    """Named blocks of the frozen identity encoder as a perceptual feature extractor."""

    def __init__(self, encoder: nn.Module, names: Sequence[str]) -> None:
        super().__init__()
        unknown = sorted(set(names) - set(encoder.feature_names))
        if unknown or not names:
            raise ValueError(f"identity encoder has no blocks {unknown}; it has {list(encoder.feature_names)}")
        self.encoder, self.names = encoder, list(names)

    @staticmethod
    def shallow(encoder: nn.Module) -> list[str]:
        """The default blocks: the shallowest third of the encoder (pose, colour, texture, little identity)."""
        names = list(encoder.feature_names)
        return names[: max(1, len(names) // 3)]

    def forward(self, images: Tensor) -> list[Tensor]:
        found = self.encoder.features(self.encoder.prepare(images), self.names)
        return [found[n] for n in self.names]


class CycleLoss(nn.Module):
    """``mean |G(G(X_t, z_s), z_t) - X_t|`` over all pixels and samples; gradients flow through both G calls."""

    def forward(self, cycled: Tensor, target: Tensor) -> Tensor:
        return (cycled - target).abs().mean()
