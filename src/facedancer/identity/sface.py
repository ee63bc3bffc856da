"""SFace (OpenCV Zoo, 2021dec) as a native torch module, loaded from its ONNX file.

The network is a MobileFaceNet-style stack without residuals: a 3x3 conv, then 13 depthwise-separable
pairs (3x3 depthwise, 1x1 pointwise), every conv followed by BatchNorm and PReLU; the head is
BN -> Flatten -> Linear(1024*7*7, 128) -> BN1d. Module names follow the ONNX layer names
(``conv_2_dw`` is the unit of nodes ``conv_2_dw_conv2d``, ``conv_2_dw_batchnorm``, ``conv_2_dw_relu``),
so each initializer maps onto one parameter by name, and the features IFSR can use are the outputs of
these units (after their PReLU), named ``conv_1`` ... ``conv_14``.

Channel order: the graph takes RGB in 0..255. OpenCV's ``FaceRecognizerSF.feature``, the reference
consumer of this file, calls ``blobFromImage(..., swapRB=true)`` on the BGR crop it is given;
tests/identity pin our module to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import Tensor, nn

from facedancer.errors import CheckpointError
from facedancer.identity.base import IdentityEncoder, Stage
from facedancer.identity.onnx_weights import constant_tensors, load_graph

#: (out_channels, depthwise stride) of the depthwise-separable pairs conv_2 ... conv_14
SEPARABLE = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)
STEM_CHANNELS = 32
#: spatial side of the last block's output at 112 input (four stride-2 convs)
FINAL_SIDE = 7
#: ops that carry no weights of their own: folded into constants or shape-only (Dropout: eval no-op)
_STRUCTURAL = {"DequantizeLinear", "Reshape", "Constant", "Dropout", "Flatten"}


class ConvUnit(nn.Module):
    """Conv (no bias) -> BatchNorm -> PReLU, named as the ONNX nodes' suffixes."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv2d = nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, groups=groups, bias=False)
        self.batchnorm = nn.BatchNorm2d(cout, eps=1e-3)
        self.relu = nn.PReLU(cout)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.batchnorm(self.conv2d(x)))


class SFace(IdentityEncoder):
    """SFace MobileFaceNet, 128-d raw embedding. Build it with :meth:`from_onnx`."""

    name = "sface"
    embedding_dim = 128

    def __init__(self) -> None:
        super().__init__()
        units = {"conv_1": ConvUnit(3, STEM_CHANNELS, 3)}
        cin = STEM_CHANNELS
        for i, (cout, stride) in enumerate(SEPARABLE, start=2):
            units[f"conv_{i}_dw"] = ConvUnit(cin, cin, 3, stride, groups=cin)
            units[f"conv_{i}"] = ConvUnit(cin, cout, 1)
            cin = cout
        self.units = nn.ModuleDict(units)
        self.bn1 = nn.BatchNorm2d(cin, eps=2e-5)
        self.pre_fc1 = nn.Linear(cin * FINAL_SIDE * FINAL_SIDE, self.embedding_dim)
        self.fc1 = nn.BatchNorm1d(self.embedding_dim, eps=2e-5)
        # the graph's own input normalisation (its Sub and Mul nodes): (pixel - offset) * scale
        self.register_buffer("pixel_offset", torch.tensor([127.5]))
        self.register_buffer("pixel_scale", torch.tensor([1 / 128]))
        self.feature_names = tuple(self.units)

    def normalise(self, x: Tensor) -> Tensor:
        return (x * 255 - self.pixel_offset) * self.pixel_scale

    def stages(self) -> Iterator[tuple[str, Stage]]:
        yield from self.units.items()

    def head(self, h: Tensor) -> Tensor:
        return self.fc1(self.pre_fc1(torch.flatten(self.bn1(h), 1)))

    def onnx_layers(self) -> dict[str, nn.Module]:
        """Module of each weighted ONNX node, by node name."""
        layers = {f"{unit}_{part}": m for unit, mod in self.units.items() for part, m in mod.named_children()}
        return {**layers, "bn1": self.bn1, "pre_fc1": self.pre_fc1, "fc1": self.fc1}

    @classmethod
    def from_onnx(cls, path: str | Path) -> SFace:
        """Parse the ONNX file once, dequantise its weights in numpy and map them by name; frozen."""
        model = load_graph(path)
        values = constant_tensors(model)
        net = cls()
        # weighted layers by node name; the input normalisation's two constants by op type
        targets: dict[str, nn.Module | Tensor] = {**net.onnx_layers(), "Sub": net.pixel_offset, "Mul": net.pixel_scale}
        for node in model.graph.node:
            if node.op_type in _STRUCTURAL:
                continue
            target = targets.pop(node.op_type if node.op_type in ("Sub", "Mul") else node.name, None)
            if target is None:
                raise CheckpointError(f"{path}: unexpected {node.op_type} node {node.name!r}; not an SFace graph")
            if isinstance(target, Tensor):
                _copy(target, _value(values, node, 1, path), f"{node.op_type} constant", path)
            else:
                _load_layer(target, node, values, path)
        if targets:
            raise CheckpointError(f"{path}: SFace layers missing from the graph: {', '.join(targets)}")
        return net.freeze()


def _value(values: dict[str, np.ndarray], node: onnx.NodeProto, index: int, path: str | Path) -> np.ndarray:
    name = node.input[index] if index < len(node.input) else ""
    if name not in values:
        raise CheckpointError(f"{path}: input {index} of node {node.name!r} is not a constant weight")
    return values[name]


def _copy(target: Tensor, value: np.ndarray, what: str, path: str | Path) -> None:
    if tuple(value.shape) != tuple(target.shape):
        raise CheckpointError(f"{path}: {what} has shape {tuple(value.shape)}, SFace expects {tuple(target.shape)}")
    with torch.no_grad():
        target.copy_(torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))


def _load_layer(layer: nn.Module, node: onnx.NodeProto, values: dict[str, np.ndarray], path: str | Path) -> None:
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    def w(i: int) -> np.ndarray:
        return _value(values, node, i, path)

    where = f"{node.op_type} {node.name!r}"
    if isinstance(layer, nn.Conv2d) and node.op_type == "Conv":
        geometry = (list(attrs.get("strides", [1, 1])), attrs.get("group", 1), list(attrs.get("pads", [0] * 4)))
        expected = (list(layer.stride), layer.groups, list(layer.padding) * 2)
        if geometry != expected or len(node.input) > 2:
            raise CheckpointError(f"{path}: {where} has (strides, group, pads) {geometry}, SFace expects {expected}")
        _copy(layer.weight, w(1), f"{where} weight", path)
    elif isinstance(layer, nn.modules.batchnorm._BatchNorm) and node.op_type == "BatchNormalization":
        for i, target in enumerate((layer.weight, layer.bias, layer.running_mean, layer.running_var), start=1):
            _copy(target, w(i), f"{where} input {i}", path)
        layer.eps = float(attrs.get("epsilon", 1e-5))
    elif isinstance(layer, nn.PReLU) and node.op_type == "PRelu":
        _copy(layer.weight, w(1).reshape(-1), f"{where} slope", path)
    elif isinstance(layer, nn.Linear) and node.op_type == "Gemm":
        if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0 or attrs.get("transA", 0):
            raise CheckpointError(f"{path}: {where} is not a plain fully connected layer ({attrs})")
        weight = w(1) if attrs.get("transB", 0) else w(1).T
        _copy(layer.weight, weight, f"{where} weight", path)
        _copy(layer.bias, w(2), f"{where} bias", path)
    else:
        raise CheckpointError(f"{path}: {where} does not fit SFace's {type(layer).__name__}")
