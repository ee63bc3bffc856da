"""Match Keras layers against what a torch module computes, and move their weights into torch's layout.

A converter walks a :class:`~facedancer.keras.h5.KerasGraph` from its output with a :class:`Matcher`:
each ``conv``/``instance_norm``/... call checks that the layer is of that class *and* has exactly the
hyper-parameters the torch block hard-codes (kernel size, stride, padding, activation, epsilon, affine,
slope), and marks it as mapped. :meth:`Matcher.finish` then refuses any layer the walk did not reach, so
nothing in a file is silently ignored. Every refusal is one line naming the layer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from facedancer.errors import ConversionError
from facedancer.keras.h5 import KerasGraph, Layer

LEAKY_SLOPE = 0.2
CHANNEL_AXES = (-1, 3, [-1], [3])


class Matcher:
    """Checks layers for one converter; ``what`` names the expected network in every error."""

    def __init__(self, graph: KerasGraph, what: str) -> None:
        self.graph, self.what = graph, what
        self.mapped: set[int] = set()

    def fail(self, message: str) -> ConversionError:
        return ConversionError(f"{self.graph.path.name} is not {self.what}: {message}")

    # --- structure ---------------------------------------------------------------------------
    def take(self, layer: Layer, kind: str | tuple[str, ...], inputs: int | None = 1) -> Layer:
        """``layer`` if it is of class ``kind`` with ``inputs`` inputs; marks it mapped."""
        kinds = (kind,) if isinstance(kind, str) else kind
        if layer.kind not in kinds:
            raise self.fail(f"expected {' or '.join(kinds)} at layer {layer!r}")
        if inputs is not None and len(layer.inputs) != inputs:
            raise self.fail(f"layer {layer!r} has {len(layer.inputs)} inputs, expected {inputs}")
        self.mapped.add(id(layer))
        return layer

    def finish(self) -> None:
        """Refuse the first layer no converter step accounted for."""
        for layer in self.graph.layers:
            if id(layer) not in self.mapped and layer.kind != "InputLayer":
                raise self.fail(f"layer {layer!r} has no counterpart in facedancer's network (unmapped)")

    def _check(self, layer: Layer, key: str, ok: bool, want: Any) -> None:
        if not ok:
            raise self.fail(f"layer {layer!r} has {key}={layer.config.get(key)!r}, facedancer's network needs {want}")

    def _channels_last(self, layer: Layer) -> None:
        fmt = layer.config.get("data_format", "channels_last")
        self._check(layer, "data_format", fmt in (None, "channels_last"), "channels_last")

    # --- layers ------------------------------------------------------------------------------
    def conv(
        self, layer: Layer, kernel: int, stride: int = 1, padding: str = "same", activation: str = "linear"
    ) -> Layer:
        """A Conv2D ``kernel`` x ``kernel`` with bias; padding only matters (and is checked) above 1x1."""
        self.take(layer, "Conv2D")
        c = layer.config
        self._check(layer, "kernel_size", list(c.get("kernel_size", [])) == [kernel, kernel], f"{kernel}x{kernel}")
        self._check(layer, "strides", list(c.get("strides", [1, 1])) == [stride, stride], f"stride {stride}")
        self._check(layer, "dilation_rate", list(c.get("dilation_rate", [1, 1])) == [1, 1], "no dilation")
        self._check(layer, "groups", c.get("groups", 1) == 1, "groups 1")
        self._check(layer, "use_bias", c.get("use_bias") is True, "a bias")
        self._check(layer, "activation", c.get("activation") == activation, repr(activation))
        if kernel > 1:
            self._check(layer, "padding", c.get("padding") == padding, repr(padding))
        self._channels_last(layer)
        return layer

    def instance_norm(self, layer: Layer, eps: float = 1e-3) -> Layer:
        """tensorflow_addons' InstanceNormalization: affine, per channel, ``eps``."""
        self.take(layer, "InstanceNormalization")
        c = layer.config
        channels = len(layer.weights.get("gamma", ()))
        self._check(layer, "epsilon", _close(c.get("epsilon"), eps), eps)
        self._check(layer, "center", c.get("center") is True, "a learnt beta")
        self._check(layer, "scale", c.get("scale") is True, "a learnt gamma")
        self._check(layer, "axis", c.get("axis") in CHANNEL_AXES, "the channel axis")
        self._check(layer, "groups", c.get("groups", -1) in (-1, channels), "one group per channel")
        return layer

    def batch_norm(self, layer: Layer, axis: int = 3) -> float:
        """A BatchNormalization over channels (``axis`` 3 for images, 1 after a Dense); returns its epsilon."""
        self.take(layer, "BatchNormalization")
        c = layer.config
        axes = (-1, axis, [-1], [axis])
        self._check(layer, "axis", c.get("axis") in axes, f"axis {axis}")
        self._check(layer, "center", c.get("center") is True, "a learnt beta")
        self._check(layer, "scale", c.get("scale") is True, "a learnt gamma")
        return float(c["epsilon"])

    def leaky_relu(self, layer: Layer) -> Layer:
        self.take(layer, "LeakyReLU")
        slope = layer.config.get("alpha", layer.config.get("negative_slope"))
        self._check(layer, "alpha", _close(slope, LEAKY_SLOPE), LEAKY_SLOPE)
        return layer

    def relu(self, layer: Layer) -> Layer:
        self.take(layer, "Activation")
        self._check(layer, "activation", layer.config.get("activation") == "relu", "'relu'")
        return layer

    def dense(self, layer: Layer) -> Layer:
        self.take(layer, "Dense")
        self._check(layer, "activation", layer.config.get("activation") == "linear", "'linear'")
        self._check(layer, "use_bias", layer.config.get("use_bias") is True, "a bias")
        return layer

    def avg_pool(self, layer: Layer) -> Layer:
        self.take(layer, "AveragePooling2D")
        self._pool(layer, 2, 2)
        return layer

    def max_pool(self, layer: Layer, size: int, stride: int) -> Layer:
        self.take(layer, "MaxPooling2D")
        self._pool(layer, size, stride)
        return layer

    def _pool(self, layer: Layer, size: int, stride: int) -> None:
        c = layer.config
        self._check(layer, "pool_size", list(c.get("pool_size", [])) == [size, size], f"{size}x{size}")
        self._check(layer, "strides", list(c.get("strides") or c["pool_size"]) == [stride, stride], f"stride {stride}")
        self._check(layer, "padding", c.get("padding") == "valid", "'valid'")
        self._channels_last(layer)

    def upsample(self, layer: Layer) -> Layer:
        self.take(layer, "UpSampling2D")
        c = layer.config
        self._check(layer, "size", list(c.get("size", [])) == [2, 2], "2x2")
        self._check(layer, "interpolation", c.get("interpolation") == "bilinear", "'bilinear'")
        self._channels_last(layer)
        return layer

    def zero_pad(self, layer: Layer) -> int:
        """A symmetric ZeroPadding2D; returns its width."""
        self.take(layer, "ZeroPadding2D")
        pad = layer.config.get("padding")
        flat = [p for pair in pad for p in pair] if isinstance(pad, list) and isinstance(pad[0], list) else None
        self._check(layer, "padding", flat is not None and len(set(flat)) == 1, "the same padding on every side")
        self._channels_last(layer)
        return int(flat[0])

    def concat(self, layer: Layer) -> Layer:
        self.take(layer, "Concatenate", inputs=2)
        self._check(layer, "axis", layer.config.get("axis") in CHANNEL_AXES, "the channel axis")
        return layer

    def multiply(self, layer: Layer) -> Layer:
        """``a * b``: a Multiply layer, or the TF op Keras records for ``*`` on two tensors."""
        self.take(layer, ("Multiply", "TFOpLambda"), inputs=2)
        if layer.kind == "TFOpLambda":
            fn = layer.config.get("function")
            self._check(layer, "function", fn == "math.multiply", "'math.multiply'")
        return layer


def _close(value: Any, want: float) -> bool:
    return isinstance(value, (int, float)) and math.isclose(float(value), want, rel_tol=1e-6)


# --- weights, Keras layout -> torch layout ------------------------------------------------------
def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _array(layer: Layer, key: str) -> np.ndarray:
    if key not in layer.weights:
        raise ConversionError(f"layer {layer!r} has no weight {key!r} in the file (found {', '.join(layer.weights)})")
    return layer.weights[key]


def conv_weights(layer: Layer) -> dict[str, torch.Tensor]:
    """Conv2D kernel (kh, kw, in, out) -> (out, in, kh, kw)."""
    return {"weight": _tensor(_array(layer, "kernel").transpose(3, 2, 0, 1)), "bias": _tensor(_array(layer, "bias"))}


def dense_weights(layer: Layer, below: str = "") -> dict[str, torch.Tensor]:
    """Dense kernel (in, out) -> Linear weight (out, in); ``below`` selects a sublayer's arrays."""
    prefix = f"{below}/" if below else ""
    return {"weight": _tensor(_array(layer, f"{prefix}kernel").T), "bias": _tensor(_array(layer, f"{prefix}bias"))}


def norm_weights(layer: Layer) -> dict[str, torch.Tensor]:
    """InstanceNormalization / BatchNormalization gamma, beta (and moving statistics) for torch's norms."""
    out = {"weight": _tensor(_array(layer, "gamma")), "bias": _tensor(_array(layer, "beta"))}
    if layer.kind == "BatchNormalization":
        out |= {
            "running_mean": _tensor(_array(layer, "moving_mean")),
            "running_var": _tensor(_array(layer, "moving_variance")),
            "num_batches_tracked": torch.tensor(0, dtype=torch.long),
        }
    return out


def sublayers(layer: Layer) -> list[str]:
    """Names of the sublayers holding a layer's weights (AdaIN's two Dense), in the file's order."""
    return list(dict.fromkeys(name.split("/")[0] for name in layer.weights if "/" in name))


def prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in tensors.items()}


def input_shape(layer: Layer) -> tuple[int | None, ...]:
    """The shape an InputLayer declares, batch axis first."""
    shape = layer.config.get("batch_input_shape") or layer.config.get("batch_shape")
    if not shape:
        raise ConversionError(f"input layer {layer!r} declares no shape")
    return tuple(shape)
