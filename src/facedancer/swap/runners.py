"""The generator on each backend: torch (eager or ``torch.compile``), ONNX Runtime or OpenVINO, and which of
the runtimes are installed. Which one runs, in which precision, is chosen in :mod:`facedancer.swap.backends`."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import ModuleType
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from facedancer.nn import Generator

#: the precisions each backend can run the generator in (ONNX Runtime's CPU kernels have no bf16 convolution)
PRECISIONS: dict[str, tuple[str, ...]] = {
    "eager": ("fp32", "bf16", "fp16"),
    "compile": ("fp32", "bf16", "fp16"),
    "onnxruntime": ("fp32",),
    "openvino": ("fp32", "bf16"),
}
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
#: the Python package each backend needs
PACKAGES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}


class Runner(Protocol):
    """``G(x, z)`` on one backend and precision: fp32 tensors in, the fp32 output out."""

    backend: str
    precision: str

    def __call__(self, x: Tensor, z: Tensor) -> Tensor: ...


# --- what this machine has ---------------------------------------------------------------------------
def import_openvino() -> ModuleType:
    """OpenVINO's runtime without its model-conversion tools.

    ``import openvino`` also imports ``openvino.tools.ovc``, which on import sends a usage event to
    Intel's telemetry (and writes a client id under ``~/intel``) unless the user opted out. facedancer
    needs only the runtime and must not reach the network, so the tools are kept out of this import (the
    package itself skips them when they fail to import); a later explicit import of them still works.
    """
    if "openvino" in sys.modules:
        return sys.modules["openvino"]
    tools = "openvino.tools.ovc"
    blocked = tools not in sys.modules
    if blocked:
        sys.modules[tools] = None  # type: ignore[assignment]  # makes `import openvino.tools.ovc` fail
    try:
        import openvino
    finally:
        if blocked:
            del sys.modules[tools]
    return openvino


def installed(backend: str) -> bool:
    """Whether a backend can run here (torch always can; the runtimes if their package imports)."""
    if backend not in PACKAGES:
        return True
    try:
        import_openvino() if backend == "openvino" else import_module(PACKAGES[backend])
    except ImportError:
        return False
    return True


def runtime_version(backend: str) -> str:
    try:
        return version(PACKAGES.get(backend, "torch"))
    except PackageNotFoundError:  # a source build without metadata
        return "unknown"


# --- runners ------------------------------------------------------------------------------------------
class TorchRunner:
    """The generator itself, optionally through ``torch.compile`` (eager again, with a warning, if that fails)."""

    def __init__(self, generator: Generator, device: torch.device, precision: str, compile: bool = False) -> None:
        self.backend = "compile" if compile else "eager"
        self.precision = precision
        self.device = device
        self.dtype = DTYPES[precision]
        # channels_last measured 1.0-1.15x faster in fp32 and 1.7-1.9x in bf16 on CPU (bench_generator.py)
        self.generator = generator.eval().to(device=device, dtype=self.dtype, memory_format=torch.channels_last)
        self._forward = torch.compile(self.generator, dynamic=False) if compile else self.generator

    @torch.inference_mode()
    def __call__(self, x: Tensor, z: Tensor) -> Tensor:
        x = x.to(self.device, self.dtype).contiguous(memory_format=torch.channels_last)
        z = z.to(self.device, self.dtype)
        try:
            return self._forward(x, z).float()
        except Exception as e:  # compilation failed (no C++ compiler, unsupported backend): run eagerly
            if self._forward is self.generator:
                raise
            why = (str(e).splitlines() or [type(e).__name__])[0]
            warnings.warn(f"torch.compile failed, running the generator eagerly: {why}", stacklevel=2)
            self._forward = self.generator
            return self.generator(x, z).float()


class OnnxRuntimeRunner:
    """The exported graph in ONNX Runtime's CPU provider (fp32 only)."""

    backend = "onnxruntime"
    precision = "fp32"

    def __init__(self, graph: Path, precision: str = "fp32") -> None:
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"])

    def __call__(self, x: Tensor, z: Tensor) -> Tensor:
        out = self.session.run(None, {"target": _numpy(x), "identity": _numpy(z)})[0]
        return torch.from_numpy(out)


class OpenVINORunner:
    """The exported graph in OpenVINO's CPU plugin, compiled for each batch size it meets (static shapes run
    faster than a dynamic batch; compiling takes well under a second)."""

    backend = "openvino"

    def __init__(self, graph: Path, precision: str) -> None:
        self.precision = precision
        self.core = import_openvino().Core()
        self.model = self.core.read_model(str(graph))
        # OpenVINO runs in bf16 by default on bf16 hardware: fp32 must be asked for
        self.config = {
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            "PERFORMANCE_HINT": "LATENCY",
        }
        self._compiled: dict[int, object] = {}

    def _for_batch(self, batch: int):
        if batch not in self._compiled:
            model, shapes = self.model.clone(), {}
            for node in self.model.inputs:
                shapes[node.get_any_name()] = shape = node.get_partial_shape()
                shape[0] = batch
            model.reshape(shapes)
            self._compiled[batch] = self.core.compile_model(model, "CPU", self.config)
        return self._compiled[batch]

    def __call__(self, x: Tensor, z: Tensor) -> Tensor:
        out = self._for_batch(x.shape[0])({"target": _numpy(x), "identity": _numpy(z)})
        return torch.from_numpy(np.array(out[0]))


def _numpy(t: Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().float().cpu().numpy())


GRAPH_RUNNERS: dict[str, Callable[[Path, str], Runner]] = {
    "onnxruntime": OnnxRuntimeRunner,
    "openvino": OpenVINORunner,
}
