"""The generator and discriminator losses, one class each (PAPER.md §3.1-3.2; IFSR is in ``ifsr.py``).

    L_G = adv + 5 rec + 10 id + 1 cyc + 0.2 p + 1 IFSR        L_D = adv_D + R1

Identity encoders are :class:`facedancer.identity.IdentityEncoder`, reached through
:func:`facedancer.identity.encode_crops`: an aligned [-1, 1] crop of any size in (mapped to the encoder
input as the official code does, PAPER.md §1.1), the raw embedding and the named intermediate blocks out.
The encoder is frozen; gradients flow through it into the swap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facedancer.identity import encode_crops


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

    def forward(self, real_logits: Tensor, real_images: Tensor, scale: float | Tensor = 1.0) -> Tensor:
        (grad,) = torch.autograd.grad(real_logits.sum() * scale, real_images, create_graph=True)
        grad = grad.float() / scale
        return 0.5 * self.gamma * grad.square().flatten(1).sum(1).mean()


class EncoderPass(nn.Module):
    """:func:`~facedancer.identity.encode_crops` bound to the encoder and the blocks the losses read.

    The identity loss, IFSR and the encoder-feature perceptual loss all read the swap's encoder
    features; one shared pass per image batch keeps the encoder, which dominates a small model's step on
    CPU, to three passes per step (source, target, swap). Unknown block names are refused here, when
    the losses are built, rather than at the first step.
    """

    def __init__(self, encoder: nn.Module, names: Sequence[str] = ()) -> None:
        super().__init__()
        unknown = sorted(set(names) - set(encoder.feature_names))
        if unknown:
            raise ValueError(f"identity encoder has no blocks {unknown}; it has {list(encoder.feature_names)}")
        self.encoder, self.names = encoder, list(dict.fromkeys(names))

    def forward(self, crops: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return encode_crops(self.encoder, crops, self.names)


def shallow_blocks(encoder: nn.Module) -> list[str]:
    """Default blocks of the encoder-feature perceptual loss: the shallowest third of the encoder
    (pose, colour and texture, little identity)."""
    names = list(encoder.feature_names)
    return names[: max(1, len(names) // 3)]


class IdentityLoss(nn.Module):
    """``mean_b 1 - cos(z_s, E(Y))``: the swap must carry the source's identity (lambda_id = 10).

    Takes the swap's embedding from :class:`EncoderPass` (so the encoder input is exactly PAPER.md §1.1's).
    """

    def forward(self, swap_embedding: Tensor, source_embedding: Tensor) -> Tensor:
        return self.per_sample(swap_embedding, source_embedding).mean()

    @staticmethod
    def per_sample(swap_embedding: Tensor, source_embedding: Tensor) -> Tensor:
        return 1.0 - F.cosine_similarity(swap_embedding.float(), source_embedding.float(), dim=1)


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

    The features are VGG16 pool1-pool5 (:class:`~facedancer.train.vgg.VGG16Features`, the official
    choice, when the user supplied its weights) or the identity encoder's shallow blocks (the offline
    default; :func:`shallow_blocks`), computed by the caller: target features without gradient.
    """

    def __init__(self, scale: float = 0.85, official: bool = False) -> None:
        super().__init__()
        self.scale, self.official = scale, official

    def forward(self, target_features: Sequence[Tensor], swap_features: Sequence[Tensor], same: Tensor) -> Tensor:
        total = same.new_zeros((), dtype=torch.float32)
        for a, b in zip(target_features, swap_features, strict=True):
            per_sample = (self.scale * (a.float() - b.float())).abs().flatten(1).mean(1)
            total = total + same_pair_mean(per_sample, same, self.official)
        return total


class CycleLoss(nn.Module):
    """``mean |G(G(X_t, z_s), z_t) - X_t|`` over all pixels and samples; gradients flow through both G calls."""

    def forward(self, cycled: Tensor, target: Tensor) -> Tensor:
        return (cycled - target).abs().mean()
