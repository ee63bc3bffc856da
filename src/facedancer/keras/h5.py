"""Read a Keras 2 HDF5 file as a graph of layers with their weights, without TensorFlow (h5py only).

A Keras ``.h5`` holds the architecture as JSON (the ``model_config`` attribute of a full-model file, or
the separate ``model.to_json()`` file beside a weights-only checkpoint) and one HDF5 group of arrays per
top-level layer. :func:`read_keras` turns both into :class:`Layer` objects linked by their real inputs,
with nested models (a ResNet inside ArcFace) flattened into one graph, so that converters can match
blocks by layer class and connectivity instead of by Keras' auto-numbered names. Nothing here knows
any particular network; nothing is ever executed from the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from facedancer.errors import ConversionError

#: class names of a functional (sub)model across Keras versions
MODEL_CLASSES = ("Functional", "Model")
#: package prefixes that Keras writes before a registered custom class name
_PREFIXES = ("Addons>",)


@dataclass(eq=False)
class Layer:
    """One Keras layer: its class (package prefix removed), config, input layers and weights.

    ``weights`` maps the weight's name below the layer (``kernel``, ``bias``, ``gamma``, ``moving_mean``;
    ``dense/kernel`` for a layer holding sublayers) to its array, in the file's order.
    """

    name: str
    kind: str
    config: dict[str, Any]
    inputs: list[Layer] = field(default_factory=list)
    weights: dict[str, np.ndarray] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"'{self.name}' ({self.kind})"


@dataclass
class KerasGraph:
    """A model as a flat graph: its input and output layers, and every layer in file order."""

    path: Path
    inputs: list[Layer]
    outputs: list[Layer]
    layers: list[Layer]

    def error(self, message: str) -> ConversionError:
        return ConversionError(f"{self.path}: {message}")


def read_keras(path: str | Path, model_json: str | Path | None = None) -> KerasGraph:
    """The graph of a full-model ``.h5`` or of a weights-only ``.h5`` plus its model JSON.

    Every problem (not HDF5, truncated, no architecture, an unreadable array) is one
    :class:`~facedancer.errors.ConversionError` line naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{path} does not exist")
    try:
        with h5py.File(path, "r") as f:
            spec = _model_spec(f, path, model_json)
            arrays = _read_arrays(f.get("model_weights", f))
    except OSError as e:
        raise ConversionError(
            f"{path} is not a readable HDF5 file (truncated, or another format): {_reason(e)}"
        ) from None
    return _build(path, spec, arrays)


def _reason(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text.removeprefix("Unable to synchronously open file ").removeprefix("Unable to open file ")


def _model_spec(f: h5py.File, path: Path, model_json: str | Path | None) -> dict[str, Any]:
    if model_json is not None:
        try:
            text = Path(model_json).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConversionError(f"cannot read the model JSON {model_json}: {e}") from None
        source = str(model_json)
    elif "model_config" in f.attrs:
        raw = f.attrs["model_config"]
        text, source = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw), f"{path} (model_config)"
    else:
        raise ConversionError(
            f"{path} holds weights only: give the model JSON that the official train.py wrote beside it "
            "(--json gen.json)"
        )
    try:
        spec = json.loads(text)
    except ValueError as e:
        raise ConversionError(f"{source} is not JSON: {e}") from None
    if not isinstance(spec, dict) or spec.get("class_name") not in MODEL_CLASSES:
        kind = spec.get("class_name") if isinstance(spec, dict) else type(spec).__name__
        raise ConversionError(f"{source} does not describe a Keras functional model (found {kind!r})")
    return spec


def _read_arrays(root: h5py.Group) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Per top-level layer group: (weight name, array) in the file's order."""
    out: dict[str, list[tuple[str, np.ndarray]]] = {}
    for group_name in _strings(root.attrs.get("layer_names", [])):
        group = root[group_name]
        out[group_name] = [(name, np.asarray(group[name])) for name in _strings(group.attrs.get("weight_names", []))]
    return out


def _strings(values: Any) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def _build(path: Path, spec: dict[str, Any], arrays: dict[str, list[tuple[str, np.ndarray]]]) -> KerasGraph:
    graph = KerasGraph(path, [], [], [])
    try:
        graph.inputs, graph.outputs = _flatten(graph, spec, arrays, group=None, bound={})
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise graph.error(f"the model JSON is not in the Keras 2 functional format ({type(e).__name__}: {e})") from None
    return graph


def _flatten(
    graph: KerasGraph,
    spec: dict[str, Any],
    arrays: dict[str, list[tuple[str, np.ndarray]]],
    group: str | None,
    bound: dict[str, Layer],
) -> tuple[list[Layer], list[Layer]]:
    """Add a (sub)model's layers to ``graph``; returns its inputs and outputs.

    ``group`` is the top-level weight group holding a nested model's arrays; ``bound`` maps a nested
    model's input names to the outer layers that feed them.
    """
    config = spec["config"]
    by_name: dict[str, Layer] = {}
    for entry in config["layers"]:
        name, kind = entry.get("name") or entry["config"]["name"], _kind(entry["class_name"])
        if kind == "InputLayer":
            by_name[name] = bound.get(name) or _add(graph, Layer(name, kind, entry["config"]))
            continue
        nodes = entry.get("inbound_nodes", [])
        if len(nodes) != 1:
            raise graph.error(f"layer '{name}' ({kind}) is called {len(nodes)} times; only single calls are supported")
        inputs = [by_name[ref] for ref in _references(nodes[0])]
        if kind in MODEL_CLASSES:
            inner_inputs = [ref[0] for ref in entry["config"]["input_layers"]]
            if len(inner_inputs) != len(inputs):
                raise graph.error(f"nested model '{name}' takes {len(inner_inputs)} inputs but is given {len(inputs)}")
            _, outs = _flatten(graph, entry, arrays, group or name, dict(zip(inner_inputs, inputs, strict=True)))
            if len(outs) != 1:
                raise graph.error(f"nested model '{name}' has {len(outs)} outputs; only one is supported")
            by_name[name] = outs[0]
            continue
        weights = _weights_of(name, arrays.get(group or name, []), whole=group is None)
        by_name[name] = _add(graph, Layer(name, kind, entry["config"], inputs, weights))
    ins = [by_name[ref[0]] for ref in config["input_layers"]]
    outs = [by_name[ref[0]] for ref in config["output_layers"]]
    return ins, outs


def _add(graph: KerasGraph, layer: Layer) -> Layer:
    graph.layers.append(layer)
    return layer


def _kind(class_name: str) -> str:
    for prefix in _PREFIXES:
        class_name = class_name.removeprefix(prefix)
    return class_name


def _references(node: list[Any]) -> list[str]:
    """Names of the layers one call reads, positional inputs first, then tensors passed as keywords.

    Keras writes a call as a list of ``[name, node_index, tensor_index, kwargs]``, or, for a TF op
    called on a single tensor (``TFOpLambda``), as that one entry itself.
    """
    entries = [node] if node and isinstance(node[0], str) else node
    names = []
    for name, _node_index, tensor_index, *rest in entries:
        if tensor_index != 0:
            raise ValueError(f"layer '{name}' is read at output {tensor_index}; only single-output layers are read")
        names.append(name)
        kwargs = rest[0] if rest else {}
        names += [v[0] for v in kwargs.values() if isinstance(v, list) and v and isinstance(v[0], str)]
    return names


def _weights_of(name: str, entries: list[tuple[str, np.ndarray]], whole: bool) -> dict[str, np.ndarray]:
    """The arrays of layer ``name`` from its top-level group, keyed by their path below the layer.

    A top-level layer owns its whole group; a layer inside a nested model owns the entries whose path
    has ``name`` as a component (``conv1_conv/kernel:0``, or ``resnet50/conv1_conv/kernel:0``). Paths
    that do not name the layer keep their sublayer part (``dense_5/kernel``), unless one prefix is common
    to all of them; two weights never share a key.
    """
    paths = []
    for full, array in entries:
        parts = full.split(":")[0].split("/")
        if name in parts[:-1]:
            paths.append((parts[parts.index(name) + 1 :], array))
        elif whole:
            paths.append((parts, array))
    if len(paths) > 0 and all(len(p) > 1 for p, _ in paths) and len({p[0] for p, _ in paths}) == 1:
        paths = [(p[1:], array) for p, array in paths]
    out: dict[str, np.ndarray] = {}
    for parts, array in paths:
        key = "/".join(parts)
        if key in out:
            raise ConversionError(f"layer '{name}' holds two weights named {key!r}")
        out[key] = array
    return out
