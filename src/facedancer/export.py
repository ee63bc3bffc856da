"""ONNX export of the generator with a dynamic batch, for onnxruntime and other runtimes."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from facedancer.atomic import atomic_path
from facedancer.errors import ConfigError, FacedancerError, OutputError
from facedancer.io.failures import reason
from facedancer.nn import Generator

INPUT_NAMES = ("target", "identity")
OUTPUT_NAME = "swap"
#: the exporter writes opset 18 and converts upwards; below 18 it may silently keep 18
MIN_OPSET = 18


def _require_exporter() -> Callable[[], int]:
    """``onnx_opset_version``, once onnx and onnxscript (the dynamo exporter's) are both importable; the one
    message for a missing one names the extra of the distribution users install, ``facedancer-pytorch``."""
    try:
        import onnxscript  # noqa: F401
        from onnx.defs import onnx_opset_version
    except ImportError:
        raise FacedancerError(
            "ONNX export needs the 'export' extra: pip install 'facedancer-pytorch[export]'"
        ) from None
    return onnx_opset_version


def check_target(path: str | Path, opset: int) -> None:
    """Refuse a missing exporter, or an output or an opset that the export could not honour, before a model
    is loaded."""
    onnx_opset_version = _require_exporter()
    path = Path(path)
    if not MIN_OPSET <= opset <= onnx_opset_version():
        raise ConfigError(f"--opset {opset}: the exporter writes opsets {MIN_OPSET} to {onnx_opset_version()}")
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder")
    if path.suffix.lower() != ".onnx":
        raise OutputError(f"cannot write {path}: an ONNX model's file name ends in .onnx")


def export_onnx(generator: Generator, path: str | Path, opset: int = 18) -> Path:
    """Write ``generator`` as ONNX: inputs ``target`` (B,3,S,S) in [-1,1] and ``identity`` (B,D); output ``swap``.

    Uses the dynamo exporter (torch >= 2.9 default, needs onnxscript); the batch axis is dynamic and the
    weights are stored inside the file so that it is self-contained.
    """
    check_target(path, opset)
    cfg = generator.config
    generator = generator.eval()
    x = torch.zeros(2, 3, cfg.image_size, cfg.image_size)
    z = torch.zeros(2, cfg.identity_dim)
    batch = torch.export.Dim("batch", min=1, max=4096)
    path = Path(path)
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)  # the exporter logs about optional torchvision ops we never use
    try:
        with atomic_path(path) as tmp, warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                generator,
                (x, z),
                str(tmp),
                input_names=list(INPUT_NAMES),
                output_names=[OUTPUT_NAME],
                dynamic_shapes={"x": {0: batch}, "z": {0: batch}},
                opset_version=opset,
                external_data=False,
            )
    except OSError as e:
        raise OutputError(f"cannot write {path}: {reason(e)}") from None
    finally:
        onnx_log.setLevel(level)
    return path
