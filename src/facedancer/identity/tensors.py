"""The identity encoder on training tensors: aligned [-1, 1] crops of any size in, embedding and blocks out.

Training, validation and the IFSR pre-study hold their faces as [-1, 1] tensors at the generator's size
(256 px, or 32 px in a test), aligned to the ArcFace template scaled to that size. :func:`encode_crops` is
the one way they reach an encoder: ``identity.prepare`` (to [0, 1], bilinear resize to the encoder's
input without antialias, as ``tf.image.resize`` in the official code, PAPER.md §1.1), then one pass that
gives the raw embedding and the named blocks (IFSR and the encoder-feature perceptual loss). The swap of
a photo takes another recipe (the source aligned straight to 112 px, the official inference path).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from facedancer.identity.base import IdentityEncoder, prepare


def encode_crops(
    encoder: IdentityEncoder, crops: Tensor, names: Sequence[str] = ()
) -> tuple[Tensor, dict[str, Tensor]]:
    """Raw embeddings (B, D) of aligned [-1, 1] crops (B, 3, S, S), and the blocks ``names`` from the same pass.

    Gradients flow to ``crops`` (the losses reach the swap through the frozen encoder); wrap the call in
    ``torch.no_grad()`` where none are needed.
    """
    return encoder.forward_with_features(prepare(crops.float(), encoder.input_size), names)
