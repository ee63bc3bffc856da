"""An official FaceDancer Keras generator as :class:`facedancer.nn.Generator`, read by structure.

The walk starts at the output and follows the official blocks backwards (PAPER.md §1.3): every decoder
stage is a ResUp (IN -> AdaIN(w) -> LReLU -> Conv3x3 [-> x2] plus Conv1x1 [-> x2]) whose input tells the
fusion: another ResUp's output is ``none`` (the official ``no_skip``), an ``AdaptiveAttention`` is AFFA
(``affa``), two chained ones are ``d_affa``, a mask that is a product of two masks is ``do_affa``, a
``Concatenate`` is ``concat`` and a plain ``Add`` is ``add``. Below the first ResUp lies the encoder
(ResDown blocks down to the stem conv on the image input), and behind the AdaIN style input the mapping
network (Dense, LeakyReLU, ..., Dense on the identity input). Nothing depends on Keras' auto-numbered
layer names; the configuration (image size, widths, fusion per stage, mapping, identity size) is read
off the layers, and every layer the walk does not reach is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from facedancer.keras import (
    KerasGraph,
    Layer,
    Matcher,
    conv_weights,
    dense_weights,
    input_shape,
    norm_weights,
    prefixed,
    sublayers,
)
from facedancer.nn import GeneratorConfig

WHAT = "a FaceDancer generator"


@dataclass
class Block:
    """A matched residual block: its input, the style it reads (ResUp), whether it resamples, its weights."""

    x: Layer
    filters: int
    resample: bool
    tensors: dict[str, Tensor]
    w: Layer | None = None


@dataclass
class Stage:
    kind: str
    skip: Layer | None
    up: Block
    tensors: dict[str, Tensor] = field(default_factory=dict)


def _conv_under(layer: Layer, resample: str) -> Layer:
    """The conv below an optional resampling layer (for recognising blocks without marking anything)."""
    return layer.inputs[0] if layer.kind == resample and layer.inputs else layer


def _kernel(layer: Layer) -> int | None:
    return layer.config.get("kernel_size", [None])[0] if layer.kind == "Conv2D" else None


def _is_block(layer: Layer, resample: str, modulation: str) -> bool:
    """Is ``layer`` the sum of a residual block (ResUp: ``modulation`` AdaIN; ResDown: InstanceNormalization)?"""
    if layer.kind != "Add" or len(layer.inputs) != 2:
        return False
    for branch in layer.inputs:
        conv = _conv_under(branch, resample)
        if _kernel(conv) == 3 and conv.inputs and conv.inputs[0].kind == "LeakyReLU":
            below = conv.inputs[0].inputs
            return bool(below) and below[0].kind == modulation
    return False


def is_res_up(layer: Layer) -> bool:
    return _is_block(layer, "UpSampling2D", "AdaIN")


def is_res_down(layer: Layer) -> bool:
    return _is_block(layer, "AveragePooling2D", "InstanceNormalization")


def _branches(m: Matcher, add: Layer, resample: str) -> tuple[Layer, Layer, bool]:
    """(3x3 conv, 1x1 conv, resampled) of a residual block's sum."""
    m.take(add, "Add", inputs=2)
    convs = {_kernel(_conv_under(b, resample)): b for b in add.inputs}
    if set(convs) != {1, 3}:
        raise m.fail(f"layer {add!r} is not a residual block (a 3x3 main path plus a 1x1 skip)")
    resampled = [convs[k].kind == resample for k in (3, 1)]
    if resampled[0] != resampled[1]:
        raise m.fail(f"the main path and the skip of block {add!r} do not resample alike")
    resize = m.upsample if resample == "UpSampling2D" else m.avg_pool
    for k in (3, 1):
        if resampled[0]:
            resize(convs[k])
    main, skip = (_conv_under(convs[k], resample) for k in (3, 1))
    return m.conv(main, 3), m.conv(skip, 1), resampled[0]


def res_up(m: Matcher, add: Layer) -> Block:
    """ResUp: IN -> AdaIN(w) -> LReLU -> Conv3x3 [-> up x2], plus Conv1x1 [-> up x2]."""
    if not is_res_up(add):
        raise m.fail(f"expected a decoder block (IN -> AdaIN -> LeakyReLU -> Conv3x3, plus a 1x1 skip) at {add!r}")
    conv, skip, resample = _branches(m, add, "UpSampling2D")
    adain = m.take(m.leaky_relu(conv.inputs[0]).inputs[0], "AdaIN", inputs=2)
    norm = m.instance_norm(adain.inputs[0])
    _same_input(m, add, norm, skip)
    scale, bias = _adain_parts(m, adain)
    tensors = {
        **prefixed("norm", norm_weights(norm)),
        **prefixed("adain.scale", dense_weights(adain, scale)),
        **prefixed("adain.bias", dense_weights(adain, bias)),
        **prefixed("conv", conv_weights(conv)),
        **prefixed("skip", conv_weights(skip)),
    }
    return Block(norm.inputs[0], conv.config["filters"], resample, tensors, w=adain.inputs[1])


def res_down(m: Matcher, add: Layer) -> Block:
    """ResDown: IN -> LReLU -> Conv3x3 [-> avg-pool], plus Conv1x1 [-> avg-pool]."""
    conv, skip, resample = _branches(m, add, "AveragePooling2D")
    norm = m.instance_norm(m.leaky_relu(conv.inputs[0]).inputs[0])
    _same_input(m, add, norm, skip)
    tensors = {
        **prefixed("norm", norm_weights(norm)),
        **prefixed("conv", conv_weights(conv)),
        **prefixed("skip", conv_weights(skip)),
    }
    return Block(norm.inputs[0], conv.config["filters"], resample, tensors)


def _same_input(m: Matcher, add: Layer, norm: Layer, skip: Layer) -> None:
    if norm.inputs[0] is not skip.inputs[0]:
        raise m.fail(f"the main path and the skip of block {add!r} read different tensors")


def _adain_parts(m: Matcher, adain: Layer) -> tuple[str, str]:
    """AdaIN's two Dense sublayers: scale first, then bias (the order the official layer builds them)."""
    parts = sublayers(adain)
    if len(parts) != 2:
        raise m.fail(f"AdaIN layer {adain!r} holds {len(parts)} Dense sublayers, expected 2 (scale, bias)")
    return parts[0], parts[1]


# --- fusions ----------------------------------------------------------------------------------------
def _mask_branch(m: Matcher, mask: Layer, skip: Layer, h: Layer) -> tuple[dict[str, Tensor], int]:
    """One AFFA mask: Concat([skip, h]) -> Conv3x3 -> LReLU -> IN -> Conv1x1 -> sigmoid; (weights, outputs)."""
    m.conv(mask, 1, activation="sigmoid")
    norm = m.instance_norm(mask.inputs[0])
    conv = m.conv(m.leaky_relu(norm.inputs[0]).inputs[0], 3)
    cat = m.concat(conv.inputs[0])
    if cat.inputs[0] is not skip or cat.inputs[1] is not h:
        raise m.fail(f"attention mask {mask!r} does not read Concatenate([encoder feature, decoder feature])")
    tensors = {
        **prefixed("conv1", conv_weights(conv)),
        **prefixed("norm", norm_weights(norm)),
        **prefixed("conv2", conv_weights(mask)),
    }
    return tensors, mask.config["filters"]


def _attention(m: Matcher, node: Layer) -> tuple[Layer, Layer, Layer]:
    """(mask, skip, h) of ``(1 - m) * skip + m * h``."""
    mask, skip, h = m.take(node, "AdaptiveAttention", inputs=3).inputs
    return mask, skip, h


def fusion(m: Matcher, x: Layer) -> tuple[str, Layer | None, Layer, dict[str, Tensor]]:
    """(fusion type, encoder feature, decoder feature, weights under the fusion module's names) of ``x``."""
    if is_res_up(x):
        return "none", None, x, {}
    if x.kind == "Concatenate":
        skip, h = m.concat(x).inputs
        return "concat", skip, h, {}
    if x.kind == "Add":
        skip, h = m.take(x, "Add", inputs=2).inputs
        return "add", skip, h, {}
    if x.kind != "AdaptiveAttention":
        raise m.fail(f"layer {x!r} is not one of the official fusions (none, add, concat, affa, d_affa, do_affa)")
    mask, skip, h = _attention(m, x)
    if h.kind == "AdaptiveAttention":  # d_affa: a second AFFA fuses the skip with the first one's output
        first_mask, first_skip, first_h = _attention(m, h)
        if first_skip is not skip:
            raise m.fail(f"the two attentions {h!r} and {x!r} do not fuse the same encoder feature")
        first, _ = _mask_branch(m, first_mask, skip, first_h)
        second, _ = _mask_branch(m, mask, skip, h)
        return "d_affa", skip, first_h, {**prefixed("first", first), **prefixed("second", second)}
    if mask.kind in ("Multiply", "TFOpLambda"):  # do_affa: a C-channel mask times a 1-channel mask
        branches = [_mask_branch(m, b, skip, h) for b in m.multiply(mask).inputs]
        by_outputs = {outputs: tensors for tensors, outputs in branches}
        if 1 not in by_outputs or len(by_outputs) != 2:
            raise m.fail(f"mask product {mask!r} is not a channel mask times a 1-channel spatial mask")
        channel = next(t for o, t in by_outputs.items() if o != 1)
        return "do_affa", skip, h, {**channel, **prefixed("spatial", by_outputs[1])}
    tensors, _ = _mask_branch(m, mask, skip, h)
    return "affa", skip, h, tensors


# --- the whole generator -------------------------------------------------------------------------------
def _inputs(m: Matcher, graph: KerasGraph) -> tuple[Layer, Layer]:
    """(image input, identity input)."""
    if len(graph.inputs) != 2 or len(graph.outputs) != 1:
        raise m.fail(
            f"it has {len(graph.inputs)} input(s) and {len(graph.outputs)} output(s); a generator has two inputs "
            "(target image, identity vector) and one output"
        )
    by_rank = {len(input_shape(layer)): layer for layer in graph.inputs}
    if set(by_rank) != {2, 4}:
        raise m.fail("its inputs are not an image (B, H, W, 3) and a vector (B, D)")
    return by_rank[4], by_rank[2]


def _mapping(m: Matcher, w: Layer, identity: Layer) -> list[Layer]:
    """The mapping network's Dense layers, first to last: Dense (-> LReLU -> Dense)* ending at ``w``."""
    denses, node = [], w
    while node is not identity:
        dense = m.dense(node)
        denses.append(dense)
        node = dense.inputs[0]
        if node is not identity:
            node = m.leaky_relu(node).inputs[0]
    return denses[::-1]


def match_generator(graph: KerasGraph) -> tuple[GeneratorConfig, dict[str, Tensor]]:
    """The configuration and the state dict (facedancer names, torch layout) of an official generator."""
    m = Matcher(graph, WHAT)
    image, identity = _inputs(m, graph)
    # decoder, from the output stage back to the bottleneck's ResUp
    stages: list[Stage] = []
    up = res_up(m, graph.outputs[0])
    while not is_res_down(up.x):
        kind, skip, h, tensors = fusion(m, up.x)
        stages.append(Stage(kind, skip, up, tensors))
        up = res_up(m, h)
    bottleneck_up, stages = up, stages[::-1]  # deepest stage first
    # encoder, from the bottleneck back to the stem conv on the image
    bottleneck = res_down(m, bottleneck_up.x)
    downs, features, node = [], [], bottleneck.x
    while is_res_down(node):
        features.append(node)
        downs.append(res_down(m, node))
        node = downs[-1].x
    stem = m.conv(node, 3)
    if stem.inputs[0] is not image:
        raise m.fail(f"the encoder's first conv {stem!r} does not read the image input")
    features.append(stem)  # deepest first, like the stages
    downs = downs[::-1]  # full resolution first, like Generator.down
    _check_resampling(m, bottleneck, downs, bottleneck_up, stages)
    if len(stages) != len(features):
        raise m.fail(f"its decoder has {len(stages)} fusing stages but its encoder {len(features)} resolutions")
    ups = [bottleneck_up, *(s.up for s in stages)]
    styles = {id(u.w) for u in ups}
    if len(styles) != 1:
        raise m.fail("its AdaIN layers do not all read the same style vector")
    denses = _mapping(m, bottleneck_up.w, identity)
    m.finish()

    size, dim = input_shape(image)[1], input_shape(identity)[1]
    widths = [stem.config["filters"], *(d.filters for d in downs)]  # full resolution first
    resolutions = [size >> i for i in range(len(widths))]
    fusion_at = {r: s.kind for r, s in zip(resolutions[::-1], stages, strict=True) if s.kind != "none"}
    for r, s, feature in zip(resolutions[::-1], stages, features, strict=True):
        if s.skip is not None and s.skip is not feature:
            raise m.fail(f"the stage fusing at {r} px reads {s.skip!r}, not the encoder feature of {r} px")
    try:
        config = GeneratorConfig(
            image_size=size,
            identity_dim=dim,
            mapping_depth=len(denses),
            mapping_width=denses[0].config["units"] if denses else dim,
            base_channels=widths[0],
            max_channels=max(widths),
            bottom_size=resolutions[-1],
            fusion=fusion_at,
        )
    except ValueError as e:
        raise m.fail(str(e)) from None
    expected = [config.channels_at(r) for r in resolutions]
    if widths != expected or bottleneck.filters != widths[-1]:
        raise m.fail(f"its encoder widths {widths} are not base x 2^k capped at the maximum ({expected})")

    tensors: dict[str, Tensor] = {**prefixed("stem", conv_weights(stem))}
    for i, dense in enumerate(denses):
        tensors |= prefixed(f"mapping.layers.{2 * i}", dense_weights(dense))
    for i, d in enumerate(downs):
        tensors |= prefixed(f"down.{i}", d.tensors)
    tensors |= prefixed("bottleneck", bottleneck.tensors) | prefixed("bottleneck_up", bottleneck_up.tensors)
    for i, s in enumerate(stages):
        tensors |= prefixed(f"fuse.{i}", s.tensors) | prefixed(f"up.{i}", s.up.tensors)
    return config, tensors


def _check_resampling(m: Matcher, bottleneck: Block, downs: list[Block], up: Block, stages: list[Stage]) -> None:
    """Only the bottleneck pair and the output stage keep their resolution, as in the official layout."""
    if bottleneck.resample or up.resample:
        raise m.fail("its bottleneck blocks change the resolution")
    if not all(d.resample for d in downs):
        raise m.fail("its encoder blocks do not each halve the resolution")
    ups = [s.up.resample for s in stages]
    if not ups or ups[-1] or not all(ups[:-1]):
        raise m.fail("its decoder stages do not each double the resolution up to a same-size output stage")
