"""Weights out of an ONNX graph, as float32 numpy arrays, without running the graph.

Quantised files (such as SFace int8 "block-quantised") store each weight as ``DequantizeLinear`` (+
``Reshape``) over int8 initializers. We evaluate exactly those constant sub-graphs in numpy, so every
layer's weight input resolves to the float tensor onnxruntime would feed it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from facedancer.errors import CheckpointError


def dequantize_linear(
    x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None = None, axis: int = 1, block_size: int = 0
) -> np.ndarray:
    """ONNX ``DequantizeLinear`` (opset 21): ``(x - zero_point) * scale``, float32.

    The quantisation parameters are a scalar (per tensor), a 1-D vector along ``axis`` (per axis) or,
    with ``block_size`` > 0, a tensor shaped like ``x`` except along ``axis``, where element ``i`` of
    ``x`` uses entry ``i // block_size``.
    """
    zero_point = np.zeros_like(scale, dtype=x.dtype) if zero_point is None else zero_point
    axis = axis % x.ndim if x.ndim else 0
    if block_size > 0:
        block = np.arange(x.shape[axis]) // block_size
        scale, zero_point = scale.take(block, axis), zero_point.take(block, axis)
    elif scale.ndim == 1 and scale.size > 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    shifted = x.astype(np.int32) - zero_point.astype(np.int32)
    return shifted.astype(np.float32) * scale.astype(np.float32)


def _attributes(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def load_graph(path: str | Path) -> onnx.ModelProto:
    """The parsed model; a truncated or foreign file is a :class:`CheckpointError`."""
    try:
        return onnx.load(str(path))
    except (OSError, DecodeError) as e:
        raise CheckpointError(f"{path} is not a readable ONNX model ({type(e).__name__}: {e})") from None


def constant_tensors(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every initializer, plus the outputs of constant ``DequantizeLinear`` / ``Reshape`` nodes."""
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type not in ("DequantizeLinear", "Reshape") or not all(i in values for i in node.input if i):
            continue
        args = [values[i] if i else None for i in node.input]
        if node.op_type == "Reshape":  # a 0 copies the input dimension (allowzero=0, the default)
            out = args[0].reshape([args[0].shape[i] if d == 0 else d for i, d in enumerate(args[1])])
        else:
            out = dequantize_linear(*args[:3], **_attributes(node))
        values[node.output[0]] = out
    return values
