"""Where the generator runs: torch (eager or ``torch.compile``), ONNX Runtime or OpenVINO, in fp32 or bf16.

``auto`` (the default) takes the first installed backend of :data:`AUTO_ORDER` whose output matches torch
fp32 within :data:`PARITY_TOLERANCE` on a probe, and bf16 only where the hardware has it natively and the
model's bf16 output stays within :data:`BF16_MIN_PSNR` of its fp32 output on the first faces it swaps.

Why a fixed order and not a per-machine timing: the ranking measured for the paper generator
(``benchmarks/bench_backends.py`` on an idle 2-core AMD EPYC with AVX512-BF16, ms per face in fp32:
OpenVINO 94, ONNX Runtime 109, torch.compile 136, torch eager 293; bf16: OpenVINO 48, torch.compile 69,
torch eager 123) separates the runtimes from torch by more than a timing on a busy machine could resolve,
puts OpenVINO ahead of ONNX Runtime in fp32, and only OpenVINO has bf16; timing every backend on a user's
first run would cost more (an export per runtime, 19-25 s of ``torch.compile`` with an empty cache) than
the differences it could find. ``torch.compile`` is never chosen by ``auto``: it is slower than both
runtimes and its first call takes tens of seconds until inductor's disk cache holds the model. What must be
checked per model is exactness, so that is probed, for every backend but torch eager itself (the
reference).

Exported graphs are cached in the user cache (:func:`facedancer.assets.store.cache_dir`, honouring
``$FACEDANCER_HOME``) under the model's weight digest, its input shapes and the exporter's version; the
probes' verdicts are kept beside them per runtime version, so a second run is ready, its first call made, in about
2 s for the paper generator (8 s the first time).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from facedancer.assets.store import cache_dir
from facedancer.atomic import atomic_path
from facedancer.config import to_dict
from facedancer.errors import ConfigError, FacedancerError
from facedancer.export import export_onnx
from facedancer.nn import Generator, weights_digest
from facedancer.swap.runners import (
    DTYPES,
    GRAPH_RUNNERS,
    PACKAGES,
    PRECISIONS,
    Runner,
    TorchRunner,
    import_openvino,
    installed,
    runtime_version,
)

log = logging.getLogger(__name__)

Backend = Literal["auto", "eager", "compile", "onnxruntime", "openvino"]
Precision = Literal["auto", "fp32", "fp16", "bf16"]
BACKENDS: tuple[str, ...] = ("eager", "compile", "onnxruntime", "openvino")
#: ``auto``'s preference on a CPU, fastest first (see the module docstring); other devices run torch eager
AUTO_ORDER: tuple[str, ...] = ("openvino", "onnxruntime", "eager")
#: largest |difference| from torch fp32 (output in [-1, 1]) for a backend to count as exact
PARITY_TOLERANCE = 1e-4
#: bf16 output must stay this close to fp32 (PSNR over the crop, dB) for ``auto`` to keep bf16
BF16_MIN_PSNR = 40.0
#: the bf16 instructions that make bf16 convolutions fast on x86 (without them they are emulated, ~290x slower)
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


# --- what this machine has ----------------------------------------------------------------------------
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def native_bf16(device: torch.device) -> bool:
    """bf16 runs in hardware: a CUDA GPU that supports it, or a CPU with AVX512-BF16 or AMX.

    Off Linux the CPU's flags come from OpenVINO's capability list, where OpenVINO is installed.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    flags = cpu_flags()
    if flags:
        return bool(flags & NATIVE_BF16_FLAGS)
    if installed("openvino"):
        return "BF16" in import_openvino().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return False


# --- the cache ----------------------------------------------------------------------------------------
class GraphCache:
    """One model's exported ONNX graph and the verdicts of its probes, in the user cache."""

    def __init__(self, generator: Generator) -> None:
        cfg = generator.config
        key = json.dumps(
            {
                "weights": weights_digest(generator),
                "config": to_dict(cfg),
                "inputs": [[3, cfg.image_size, cfg.image_size], [cfg.identity_dim]],
                "exporter": f"torch {torch.__version__}",
            },
            sort_keys=True,
        )
        self.folder = cache_dir() / "graphs" / hashlib.sha256(key.encode()).hexdigest()[:24]
        self.generator = generator

    @property
    def onnx(self) -> Path:
        """The exported graph, exported on first use (and the cost said: the paper generator takes ~10 s)."""
        path = self.folder / "generator.onnx"
        if not path.is_file():
            log.info("exporting the generator to ONNX (once per model; cached in %s) ...", self.folder)
            start = time.perf_counter()
            export_onnx(copy.deepcopy(self.generator).float().cpu(), path)
            log.info("exported in %.1f s", time.perf_counter() - start)
        return path

    def _verdicts(self) -> dict:
        try:
            return json.loads((self.folder / "verdicts.json").read_text())
        except (OSError, ValueError):
            return {}

    def verdict(self, key: str) -> dict | None:
        return self._verdicts().get(key)

    def record(self, key: str, value: dict) -> None:
        verdicts = {**self._verdicts(), key: value}
        with atomic_path(self.folder / "verdicts.json") as tmp:
            tmp.write_text(json.dumps(verdicts, indent=2, sort_keys=True) + "\n")


# --- choosing -----------------------------------------------------------------------------------------
def psnr(reference: Tensor, other: Tensor) -> float:
    """PSNR in dB between two generator outputs as images: clipped to [-1, 1], peak-to-peak 2."""
    mse = (reference.clamp(-1, 1) - other.clamp(-1, 1)).double().pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(4 / mse)


def probe_inputs(generator: Generator, batch: int = 1) -> tuple[Tensor, Tensor]:
    """A fixed input for the parity probe: any input exercises every operation of the graph."""
    cfg = generator.config
    rng = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, cfg.image_size, cfg.image_size, generator=rng) * 2 - 1
    return x, torch.randn(batch, cfg.identity_dim, generator=rng)


def max_error(runner: Runner, reference: Generator, x: Tensor, z: Tensor) -> float:
    """Largest |runner - torch fp32|, relative to the output's scale when that exceeds 1 (random weights)."""
    with torch.inference_mode():
        want = reference(x, z).float()
    got = runner(x, z).float().cpu()
    return (got - want).abs().max().item() / max(1.0, want.abs().max().item())


class GeneratorRunner:
    """Runs the generator on the backend and precision asked for, resolving ``auto`` for each.

    ``precision="auto"`` is fp32 unless bf16 is native here and the backend has it. Then the first batch
    runs in torch fp32 and in the backend's bf16, and bf16 is kept if its output is within
    :data:`BF16_MIN_PSNR` of fp32 (that batch returns the fp32 result). The verdict is cached per model and
    runtime, so later runs decide at once.
    """

    def __init__(
        self, generator: Generator, device: torch.device, backend: Backend = "auto", precision: Precision = "auto"
    ) -> None:
        if backend != "auto" and backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}; choose auto, {', '.join(BACKENDS)}")
        if precision != "auto" and precision not in DTYPES:
            raise ConfigError(f"unknown precision {precision!r}; choose auto, {', '.join(DTYPES)}")
        self.device = device
        self.reference = generator.eval().float()  # torch fp32 on the CPU: what every backend must match
        self._cache: GraphCache | None = None
        self.runner: Runner | None = None
        #: a bf16 runner to try on the first batch, and how to make the fp32 one if bf16 loses
        self._trial: tuple[Runner, Callable[[], Runner]] | None = None
        self._choose(backend, precision)
        log.info("generator: %s", self.description)

    @property
    def cache(self) -> GraphCache:
        if self._cache is None:
            self._cache = GraphCache(self.reference)
        return self._cache

    @property
    def description(self) -> str:
        """e.g. ``openvino bf16``, or what the first batch will decide."""
        if self._trial is not None:
            return f"{self._trial[0].backend} bf16 if it is within {BF16_MIN_PSNR:.0f} dB of fp32 on the first faces"
        return f"{self.runner.backend} {self.runner.precision}"

    def _choose(self, backend: str, precision: str) -> None:
        if self.device.type != "cpu" and backend in GRAPH_RUNNERS:
            raise ConfigError(f"--backend {backend} runs on the CPU only; on {self.device.type} use eager or compile")
        if backend != "auto":
            if not installed(backend):
                package = PACKAGES[backend]
                raise ConfigError(f"--backend {backend} needs the {package} package: pip install {package}")
            if precision != "auto" and precision not in PRECISIONS[backend]:
                raise ConfigError(
                    f"{backend} runs the generator in {' or '.join(PRECISIONS[backend])}, not {precision}"
                )
            if precision == "bf16" and self.device.type == "cpu" and not native_bf16(self.device):
                warnings.warn(
                    "bf16 is emulated on this CPU (no AVX512-BF16 or AMX): expect it to be slow", stacklevel=4
                )
            self._build(backend, precision, must_match=False)
            return
        runtimes = [b for b in AUTO_ORDER if b in GRAPH_RUNNERS] if self.device.type == "cpu" else []
        for name in runtimes:
            if not installed(name) or (precision != "auto" and precision not in PRECISIONS[name]):
                continue
            try:
                self._build(name, precision, must_match=True)
                return
            except _NotExact as e:
                warnings.warn(f"{name} is not exact for this model ({e}); trying the next backend", stacklevel=4)
            except Exception as e:  # an export or a runtime that fails on this model: the next one may not
                why = (str(e).splitlines() or [type(e).__name__])[0]
                warnings.warn(f"{name} cannot run this model ({why}); trying the next backend", stacklevel=4)
        self._build("eager", precision, must_match=False)  # the reference itself: always there, always exact

    def _build(self, backend: str, precision: str, must_match: bool) -> None:
        """Set the runner for ``backend``; anything but torch eager is first checked against torch fp32 eager
        (torch.compile too: inductor in torch 2.13 miscomputes instance_norm(leaky_relu(conv)) for some shapes,
        e.g. a 4-channel conv at 128 px, the AFFA gate of a small generator: off by 6 on outputs of 6)."""
        if backend != "eager" and precision in ("fp32", "auto"):  # bf16/fp16 cannot be within 1e-4 anyway
            self._check_parity(backend, must_match)
        if precision != "auto":
            self.runner = self._make(backend, precision)
            return
        if "bf16" in PRECISIONS[backend] and native_bf16(self.device):
            verdict = self.cache.verdict(self._bf16_key(backend))
            if verdict is None:
                self._trial = (self._make(backend, "bf16"), lambda: self._make(backend, "fp32"))
                return
            if verdict["psnr_db"] >= BF16_MIN_PSNR:
                self.runner = self._make(backend, "bf16")
                return
        self.runner = self._make(backend, "fp32")

    def _make(self, backend: str, precision: str) -> Runner:
        if backend in GRAPH_RUNNERS:
            return GRAPH_RUNNERS[backend](self.cache.onnx, precision)
        own = precision == "fp32" and self.device.type == "cpu"  # the reference itself; otherwise a cast copy
        return TorchRunner(
            self.reference if own else copy.deepcopy(self.reference), self.device, precision, backend == "compile"
        )

    def _check_parity(self, backend: str, must_match: bool) -> None:
        key = f"{backend} {runtime_version(backend)} {self.device.type} fp32"
        verdict = self.cache.verdict(key)
        if verdict is None:
            runner = self._make(backend, "fp32")
            start = time.perf_counter()
            error = max_error(runner, self.reference, *probe_inputs(self.reference))
            verdict = {"max_error": error, "exact": error <= PARITY_TOLERANCE}
            self.cache.record(key, verdict)
            log.info(
                "%s differs from torch fp32 by at most %.1e (checked once, in %.1f s)",
                backend,
                error,
                time.perf_counter() - start,
            )
        if not verdict["exact"]:
            message = f"its output differs from torch fp32 by {verdict['max_error']:.1e} > {PARITY_TOLERANCE:.0e}"
            if must_match:
                raise _NotExact(message)
            warnings.warn(f"--backend {backend}: {message}", stacklevel=5)

    def _bf16_key(self, backend: str) -> str:
        """Per device type: a verdict measured on a GPU says nothing about the CPU's bf16, and back."""
        return f"{backend} {runtime_version(backend)} {self.device.type} bf16"

    def __call__(self, x: Tensor, z: Tensor) -> Tensor:
        """(B, 3, S, S) fp32 images in [-1, 1] and (B, D) embeddings on the CPU -> the fp32 output."""
        if self._trial is None:
            return self.runner(x, z)
        bf16, make_fp32 = self._trial
        with torch.inference_mode():
            out = self.reference(x, z).float()
        score = psnr(out, bf16(x, z))
        self.cache.record(self._bf16_key(bf16.backend), {"psnr_db": min(score, 999.0)})
        keep = score >= BF16_MIN_PSNR
        log.info("bf16 is %.1f dB from fp32 on the first faces: %s", score, "using bf16" if keep else "staying in fp32")
        self.runner, self._trial = (bf16 if keep else make_fp32()), None
        return out


class _NotExact(FacedancerError):
    pass


__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "BF16_MIN_PSNR",
    "PARITY_TOLERANCE",
    "PRECISIONS",
    "Backend",
    "GeneratorRunner",
    "Precision",
    "native_bf16",
]
