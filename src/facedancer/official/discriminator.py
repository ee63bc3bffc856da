"""An official FaceDancer Keras discriminator as :class:`facedancer.nn.Discriminator`, read by structure.

From the output back (PAPER.md §1.4): Reshape((1,)) <- Conv1x1 <- LReLU <- Conv4x4 (valid) <- residual
down blocks (IN -> LReLU -> Conv3x3 -> avg-pool -> IN -> LReLU -> Conv3x3, plus Conv1x1 -> avg-pool)
<- the stem Conv3x3 on the image input. Widths and image size come from the layers.
"""

from __future__ import annotations

from torch import Tensor

from facedancer.keras import KerasGraph, Layer, Matcher, conv_weights, input_shape, norm_weights, prefixed
from facedancer.nn import DiscriminatorConfig
from facedancer.nn.discriminator import HEAD_SIZE

WHAT = "a FaceDancer discriminator"


def _block(m: Matcher, add: Layer) -> tuple[Layer, int, dict[str, Tensor]]:
    """(input, width, weights) of one down block."""
    m.take(add, "Add", inputs=2)
    pooled = [b for b in add.inputs if b.kind == "AveragePooling2D"]
    if len(pooled) != 1:
        raise m.fail(f"layer {add!r} is not a discriminator block (a 3x3 main path plus a pooled 1x1 skip)")
    skip = m.conv(m.avg_pool(pooled[0]).inputs[0], 1)
    main = next(b for b in add.inputs if b is not pooled[0])
    conv2 = m.conv(main, 3)
    norm2 = m.instance_norm(m.leaky_relu(conv2.inputs[0]).inputs[0])
    conv1 = m.conv(m.avg_pool(norm2.inputs[0]).inputs[0], 3)
    norm1 = m.instance_norm(m.leaky_relu(conv1.inputs[0]).inputs[0])
    if norm1.inputs[0] is not skip.inputs[0]:
        raise m.fail(f"the main path and the skip of block {add!r} read different tensors")
    tensors = {
        **prefixed("norm1", norm_weights(norm1)),
        **prefixed("conv1", conv_weights(conv1)),
        **prefixed("norm2", norm_weights(norm2)),
        **prefixed("conv2", conv_weights(conv2)),
        **prefixed("skip", conv_weights(skip)),
    }
    return norm1.inputs[0], conv2.config["filters"], tensors


def match_discriminator(graph: KerasGraph) -> tuple[DiscriminatorConfig, dict[str, Tensor]]:
    """The configuration and the state dict (facedancer names, torch layout) of an official discriminator."""
    m = Matcher(graph, WHAT)
    if len(graph.inputs) != 1 or len(graph.outputs) != 1 or len(input_shape(graph.inputs[0])) != 4:
        raise m.fail(f"it has {len(graph.inputs)} input(s); a discriminator has one image input and one logit")
    reshape = m.take(graph.outputs[0], "Reshape")
    if list(reshape.config.get("target_shape", [])) != [1]:
        raise m.fail(f"layer {reshape!r} does not reshape to one logit per image")
    out = m.conv(reshape.inputs[0], 1)
    head = m.conv(m.leaky_relu(out.inputs[0]).inputs[0], HEAD_SIZE, padding="valid")
    blocks, node = [], head.inputs[0]
    while node.kind == "Add":
        node, width, tensors = _block(m, node)
        blocks.append((width, tensors))
    stem = m.conv(node, 3)
    if stem.inputs[0] is not graph.inputs[0]:
        raise m.fail(f"the first conv {stem!r} does not read the image input")
    m.finish()
    blocks = blocks[::-1]
    size = input_shape(graph.inputs[0])[1]
    widths = tuple(w for w, _ in blocks)
    try:
        config = DiscriminatorConfig(
            image_size=size, base_channels=stem.config["filters"], max_channels=max(widths, default=1)
        )
    except ValueError as e:
        raise m.fail(str(e)) from None
    if widths != config.widths or head.config["filters"] != widths[-1] or out.config["filters"] != 1:
        raise m.fail(f"its widths {widths} do not follow base x 2^k capped at the maximum ({config.widths})")
    tensors = prefixed("stem", conv_weights(stem)) | prefixed("head", conv_weights(head))
    tensors |= prefixed("out", conv_weights(out))
    for i, (_, block) in enumerate(blocks):
        tensors |= prefixed(f"blocks.{i}", block)
    return config, tensors
