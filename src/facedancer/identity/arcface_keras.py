"""The official FaceDancer identity encoder, ``ArcFace-Res50.h5``, as a native torch module (PAPER.md §1.1).

The Keras file is an outer model whose backbone is a stock ``keras.applications`` ResNet50 (v1
bottleneck blocks: the stride sits on the first 1x1 conv and on the 1x1 shortcut, every conv has a bias,
BatchNorm epsilon 1.001e-5; the stem is ``conv1_pad`` + 7x7/2 valid conv, i.e. padding 3, then
``pool1_pad`` + 3x3/2 max-pool) followed by the embedding head BN -> Dropout -> Flatten -> Dense -> BN.
Keras flattens NHWC, so the head flattens channels-last too. The input is RGB in [0, 1] at 112 px with
no further normalisation, and the raw (not L2-normalised) output is what the official generators'
mapping networks were trained on.

Features carry Keras' own names (``conv1_relu``, ``conv2_block1_out`` ... ``conv5_block3_out``), so the
official IFSR block set and margins (PAPER.md §2.2) apply unchanged. :meth:`KerasResNet.from_keras`
reads the ``.h5`` without TensorFlow by walking its graph (layer class and connectivity; depths, widths,
strides and every epsilon read from the file); :meth:`save` / :meth:`from_directory` keep the converted
module as ``config.json`` + ``model.safetensors``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn

from facedancer.atomic import atomic_path
from facedancer.config import from_dict, to_dict
from facedancer.errors import CheckpointError, ConfigError
from facedancer.identity.base import INPUT_SIZE, IdentityEncoder, Stage
from facedancer.keras import (
    KerasGraph,
    Layer,
    Matcher,
    conv_weights,
    dense_weights,
    input_shape,
    norm_weights,
    prefixed,
    read_keras,
)
from facedancer.weights_io import load_strict, read_state_dict

NAME = "arcface-keras-r50"
WHAT = "a Keras ArcFace ResNet (ArcFace-Res50.h5)"
#: Keras' stem: ZeroPadding2D(3) + 7x7/2 valid conv, ZeroPadding2D(1) + 3x3/2 max-pool
STEM_KERNEL, STEM_PAD, POOL_PAD = 7, 3, 1
EXPANSION = 4
CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"


@dataclass
class KerasResNetConfig:
    """Everything the file decides; the defaults are ArcFace-Res50's."""

    stem_channels: int = 64
    #: bottleneck width per stage (its output is 4x wider) and blocks per stage: ResNet50's 3-4-6-3
    filters: tuple[int, ...] = (64, 128, 256, 512)
    blocks: tuple[int, ...] = (3, 4, 6, 3)
    strides: tuple[int, ...] = (1, 2, 2, 2)
    embedding_dim: int = 512
    backbone_eps: float = 1.001e-5
    #: epsilons of the head's BatchNorm on the feature map and of the final BatchNorm on the embedding
    head_eps: tuple[float, float] = (1e-5, 1e-5)

    def __post_init__(self) -> None:
        if not len(self.filters) == len(self.blocks) == len(self.strides) or min(self.blocks, default=0) < 1:
            raise ValueError("filters, blocks and strides must have one entry per stage, each stage >= 1 block")

    def final_side(self, size: int = INPUT_SIZE) -> int:
        """Spatial side of the last stage's output for a ``size`` input."""
        side = (size + 2 * STEM_PAD - STEM_KERNEL) // 2 + 1
        side = (side + 2 * POOL_PAD - 3) // 2 + 1
        for stride in self.strides:
            side = (side - 1) // stride + 1
        return side


class Bottleneck(nn.Module):
    """keras.applications ``block1``: 1x1 (stride) -> 3x3 -> 1x1 (x4), each BN, ReLU; shortcut 1x1 (stride) + BN."""

    def __init__(self, cin: int, filters: int, stride: int, shortcut: bool, eps: float) -> None:
        super().__init__()
        out = EXPANSION * filters
        self.conv1 = nn.Conv2d(cin, filters, 1, stride)
        self.bn1 = nn.BatchNorm2d(filters, eps=eps)
        self.conv2 = nn.Conv2d(filters, filters, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(filters, eps=eps)
        self.conv3 = nn.Conv2d(filters, out, 1)
        self.bn3 = nn.BatchNorm2d(out, eps=eps)
        self.shortcut = None
        if shortcut:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, out, 1, stride), nn.BatchNorm2d(out, eps=eps))

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        return F.relu(h + (x if self.shortcut is None else self.shortcut(x)))


class KerasResNet(IdentityEncoder):
    """The official Keras ArcFace ResNet; build it with :meth:`from_keras` or :meth:`from_directory`."""

    name = NAME

    def __init__(self, config: KerasResNetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or KerasResNetConfig()
        self.embedding_dim = cfg.embedding_dim
        eps = cfg.backbone_eps
        self.stem_conv = nn.Conv2d(3, cfg.stem_channels, STEM_KERNEL, 2)
        self.stem_bn = nn.BatchNorm2d(cfg.stem_channels, eps=eps)
        cin, stages = cfg.stem_channels, []
        for filters, blocks, stride in zip(cfg.filters, cfg.blocks, cfg.strides, strict=True):
            stage = [Bottleneck(cin, filters, stride, True, eps)]
            stage += [Bottleneck(EXPANSION * filters, filters, 1, False, eps) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
            cin = EXPANSION * filters
        self.stages_ = nn.ModuleList(stages)
        self.head_bn = nn.BatchNorm2d(cin, eps=cfg.head_eps[0])
        self.fc = nn.Linear(cin * cfg.final_side() ** 2, cfg.embedding_dim)
        self.embedding_bn = nn.BatchNorm1d(cfg.embedding_dim, eps=cfg.head_eps[1])
        self.feature_names = ("conv1_relu", *(name for name, _ in self._blocks()))

    def _blocks(self) -> Iterator[tuple[str, nn.Module]]:
        for s, stage in enumerate(self.stages_):
            for b, block in enumerate(stage):
                yield f"conv{s + 2}_block{b + 1}_out", block

    def _stem(self, x: Tensor) -> Tensor:
        return F.relu(self.stem_bn(self.stem_conv(F.pad(x, (STEM_PAD,) * 4))))

    def normalise(self, x: Tensor) -> Tensor:
        return x  # the official encoder takes RGB in [0, 1] as it is

    def stages(self) -> Iterator[tuple[str, Stage]]:
        yield "conv1_relu", self._stem
        for i, (name, block) in enumerate(self._blocks()):
            yield name, (lambda h, first=block: first(self._pool(h))) if i == 0 else block

    @staticmethod
    def _pool(h: Tensor) -> Tensor:
        """Keras' ``pool1_pad`` (zeros) + 3x3/2 max-pool; after a ReLU the zeros never win a max wrongly."""
        return F.max_pool2d(F.pad(h, (POOL_PAD,) * 4), 3, 2)

    def head(self, h: Tensor) -> Tensor:
        h = self.head_bn(h).permute(0, 2, 3, 1).flatten(1)  # Dropout is inactive; Keras flattens NHWC
        return self.embedding_bn(self.fc(h))

    # --- files ---------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """``config.json`` + ``model.safetensors`` (fp32), read back by :meth:`from_directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        with atomic_path(directory / WEIGHTS_NAME) as tmp:
            save_file(tensors, str(tmp), metadata={"format": "pt"})
        with atomic_path(directory / CONFIG_NAME) as tmp:
            tmp.write_text(json.dumps({"encoder": NAME, **to_dict(self.config)}, indent=2) + "\n", encoding="utf-8")
        return directory

    @classmethod
    def from_directory(cls, directory: str | Path) -> KerasResNet:
        directory = Path(directory)
        try:
            doc = json.loads((directory / CONFIG_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{directory} is not a converted {NAME} encoder: {e}") from None
        tensors = read_state_dict(directory / WEIGHTS_NAME, f"converted {NAME} encoder")
        if not isinstance(doc, dict) or doc.pop("encoder", None) != NAME:
            raise CheckpointError(f"{directory}/{CONFIG_NAME} does not describe a {NAME} encoder")
        try:
            config = from_dict(KerasResNetConfig, doc)
        except ConfigError as e:
            raise CheckpointError(f"{directory}/{CONFIG_NAME}: {e}") from None
        return cls.from_state(config, tensors, directory)

    @classmethod
    def from_keras(cls, h5_path: str | Path) -> KerasResNet:
        """Convert ``ArcFace-Res50.h5`` (or any Keras ResNet v1 of this layout) without TensorFlow; frozen."""
        return cls.from_graph(read_keras(h5_path), h5_path)

    @classmethod
    def from_graph(cls, graph: KerasGraph, source: str | Path) -> KerasResNet:
        """:meth:`from_keras` for a file already read (convert-official reads it once, for its hints too)."""
        return cls.from_state(*match_arcface(graph), source)

    @classmethod
    def from_state(cls, config: KerasResNetConfig, tensors: dict[str, Tensor], source: str | Path) -> KerasResNet:
        """The frozen fp32 encoder holding ``tensors`` (whatever their float dtype); a :class:`CheckpointError`
        naming any misfit."""
        with torch.device("meta"):  # no random init: every tensor comes from the file
            net = cls(config)
        return load_strict(net, tensors, source, NAME).freeze()

    @classmethod
    def load(cls, path: str | Path) -> KerasResNet:
        """A converted directory or the Keras ``.h5`` itself (the asset registry's user-supplied file)."""
        return cls.from_directory(path) if Path(path).is_dir() else cls.from_keras(path)


# --- reading the Keras graph ----------------------------------------------------------------------
def _is_main(layer: Layer) -> bool:
    """Is ``layer`` the end of a bottleneck's main path (BN <- 1x1 <- ReLU <- BN <- 3x3)?"""
    chain = ["BatchNormalization", "Conv2D", "Activation", "BatchNormalization", "Conv2D"]
    for kind in chain:
        if layer.kind != kind:
            return False
        layer = layer.inputs[0] if layer.inputs else layer
    return True


def _bottleneck(m: Matcher, out: Layer) -> tuple[Layer, int, int, bool, list[float], dict[str, Tensor]]:
    """(input, filters, stride, conv shortcut?, BN epsilons, weights) of the block ending at ``out``."""
    add = m.take(m.relu(out).inputs[0], "Add", inputs=2)
    mains = [b for b in add.inputs if _is_main(b)]
    if len(mains) != 1:
        raise m.fail(f"layer {add!r} is not a ResNet bottleneck sum")
    bn3 = mains[0]
    eps = [m.batch_norm(bn3)]
    conv3 = m.conv(bn3.inputs[0], 1)
    bn2 = m.relu(conv3.inputs[0]).inputs[0]
    eps.append(m.batch_norm(bn2))
    conv2 = m.conv(bn2.inputs[0], 3)
    bn1 = m.relu(conv2.inputs[0]).inputs[0]
    eps.append(m.batch_norm(bn1))
    stride = bn1.inputs[0].config.get("strides", [1])[0]
    conv1 = m.conv(bn1.inputs[0], 1, stride=stride)
    x, filters = conv1.inputs[0], conv1.config["filters"]
    if conv3.config["filters"] != EXPANSION * filters:
        raise m.fail(f"block {add!r} widens {filters} to {conv3.config['filters']} channels, not x{EXPANSION}")
    tensors = {}
    for i, (conv, bn) in enumerate(((conv1, bn1), (conv2, bn2), (conv3, bn3)), start=1):
        tensors |= prefixed(f"conv{i}", conv_weights(conv)) | prefixed(f"bn{i}", norm_weights(bn))
    shortcut = next(b for b in add.inputs if b is not bn3)
    if shortcut is not x:
        eps.append(m.batch_norm(shortcut))
        conv0 = m.conv(shortcut.inputs[0], 1, stride=stride)
        if conv0.inputs[0] is not x or conv0.config["filters"] != EXPANSION * filters:
            raise m.fail(f"the shortcut of block {add!r} is not a 1x1 conv of the block's input to its width")
        tensors |= prefixed("shortcut.0", conv_weights(conv0)) | prefixed("shortcut.1", norm_weights(shortcut))
    elif stride != 1:
        raise m.fail(f"block {add!r} strides without a conv shortcut")
    return x, filters, stride, shortcut is not x, eps, tensors


def match_arcface(graph: KerasGraph) -> tuple[KerasResNetConfig, dict[str, Tensor]]:
    """The configuration and state dict (torch layout) of a Keras ArcFace ResNet."""
    m = Matcher(graph, WHAT)
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise m.fail(f"it has {len(graph.inputs)} input(s) and {len(graph.outputs)} output(s); ArcFace has one of each")
    shape = input_shape(graph.inputs[0])
    if tuple(shape[1:]) != (INPUT_SIZE, INPUT_SIZE, 3):
        raise m.fail(f"it takes images of shape {shape[1:]}; ArcFace takes 112x112 RGB")
    # head: BN(embedding) <- Dense <- Flatten (channels-last) <- Dropout <- BN(feature map)
    emb_bn = graph.outputs[0]
    emb_eps = m.batch_norm(emb_bn, axis=1)
    dense = m.dense(emb_bn.inputs[0])
    flatten = m.take(dense.inputs[0], "Flatten")
    if flatten.config.get("data_format") not in (None, "channels_last"):
        raise m.fail(f"layer {flatten!r} does not flatten channels-last")
    head_bn = flatten.inputs[0]
    if head_bn.kind == "Dropout":
        head_bn = m.take(head_bn, "Dropout").inputs[0]
    head_eps = m.batch_norm(head_bn, axis=3)
    # backbone, from the last block back to the stem
    blocks, node = [], head_bn.inputs[0]
    while node.kind == "Activation" and node.inputs and node.inputs[0].kind == "Add":
        blocks.append(_bottleneck(m, node))
        node = blocks[-1][0]
    pool_pad = m.max_pool(node, 3, 2).inputs[0]
    pads = [m.zero_pad(pool_pad)]
    stem_bn = m.relu(pool_pad.inputs[0]).inputs[0]
    stem_eps = m.batch_norm(stem_bn)
    stem = m.conv(stem_bn.inputs[0], STEM_KERNEL, stride=2, padding="valid")
    pads.insert(0, m.zero_pad(stem.inputs[0]))
    if pads != [STEM_PAD, POOL_PAD] or stem.inputs[0].inputs[0] is not graph.inputs[0]:
        raise m.fail("its stem is not ZeroPadding(3) + 7x7/2 conv + BN + ReLU + ZeroPadding(1) + 3x3/2 max-pool")
    m.finish()
    config = _config(m, blocks[::-1], stem, dense, stem_eps, head_eps, emb_eps)
    tensors = prefixed("stem_conv", conv_weights(stem)) | prefixed("stem_bn", norm_weights(stem_bn))
    tensors |= prefixed("head_bn", norm_weights(head_bn)) | prefixed("fc", dense_weights(dense))
    tensors |= prefixed("embedding_bn", norm_weights(emb_bn))
    for s, stage in enumerate(_stages(m, blocks[::-1])):
        for b, block in enumerate(stage):
            tensors |= prefixed(f"stages_.{s}.{b}", block[5])
    return config, tensors


def _stages(m: Matcher, blocks: list[tuple]) -> list[list[tuple]]:
    """Blocks (first to last) grouped into stages: a conv-shortcut block, then identity blocks of its width."""
    stages: list[list[tuple]] = []
    for block in blocks:
        _, filters, stride, conv_shortcut, _, _ = block
        if conv_shortcut:
            stages.append([])
        elif not stages or stride != 1 or filters != stages[-1][0][1]:
            raise m.fail("its blocks do not form ResNet stages (a conv-shortcut block, then identity blocks)")
        stages[-1].append(block)
    return stages


def _config(
    m: Matcher, blocks: list[tuple], stem: Layer, dense: Layer, stem_eps: float, head_eps: float, emb_eps: float
) -> KerasResNetConfig:
    stages = _stages(m, blocks)
    eps = {e for block in blocks for e in block[4]} | {stem_eps}
    if len(eps) != 1:
        raise m.fail(f"its backbone mixes BatchNorm epsilons {sorted(eps)}")
    try:
        return KerasResNetConfig(
            stem_channels=stem.config["filters"],
            filters=tuple(s[0][1] for s in stages),
            blocks=tuple(len(s) for s in stages),
            strides=tuple(s[0][2] for s in stages),
            embedding_dim=dense.config["units"],
            backbone_eps=eps.pop(),
            head_eps=(head_eps, emb_eps),
        )
    except ValueError as e:
        raise m.fail(str(e)) from None
