"""Per-face generator latency: presets x batch x dtype x execution mode, median of several runs.

    python benchmarks/bench_generator.py                      # every preset, CPU, the full grid
    python benchmarks/bench_generator.py --presets facedancer facedancer-lite --batches 1 8 --modes eager
    python benchmarks/bench_generator.py --device cuda        # on a GPU

Ratios are against fp32 eager at the same preset and batch, measured in the same run. A cell whose
single call already exceeds ``--max-cell-seconds / repeats`` is reported as skipped instead of run
(bf16 convolutions on a CPU without native bf16 fall back to a path ~300x slower).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from rich.console import Console
from rich.table import Table

from facedancer.nn import Generator, parameter_count
from facedancer.presets import list_presets, load_preset

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def build(preset: str, mode: str, dtype: torch.dtype, device: torch.device) -> tuple[Callable, Generator]:
    g = Generator(load_preset(preset).generator).eval().to(device=device, dtype=dtype)
    if mode == "channels_last":
        g = g.to(memory_format=torch.channels_last)
    if mode == "compile":
        torch._dynamo.reset()  # each cell compiles afresh; otherwise the recompile limit silently falls back to eager
    model = torch.compile(g) if mode == "compile" else g
    return model, g


def measure(preset: str, mode: str, dtype_name: str, batch: int, args: argparse.Namespace) -> dict:
    device, dtype = torch.device(args.device), DTYPES[dtype_name]
    model, g = build(preset, mode, dtype, device)
    cfg = g.config
    x = torch.randn(batch, 3, cfg.image_size, cfg.image_size, device=device, dtype=dtype)
    z = torch.randn(batch, cfg.identity_dim, device=device, dtype=dtype)
    if mode == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        first = _timed(lambda: model(x, z), device)  # includes compilation for torch.compile
        probe = _timed(lambda: model(x, z), device)
        if probe * args.repeats > args.max_cell_seconds:
            return {"skipped": f"~{probe:.1f} s per call"}
        for _ in range(args.warmup):
            model(x, z)
        runs = [_timed(lambda: model(x, z), device) for _ in range(args.repeats)]
    median = statistics.median(runs)
    return {"ms_per_face": 1000 * median / batch, "first_call_s": first, "params": parameter_count(g)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=list_presets())
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=["fp32", "bf16"])
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=["eager", "channels_last", "compile"],
        default=["eager", "channels_last", "compile"],
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--max-cell-seconds", type=float, default=120.0)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    console = Console(width=150)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU x{torch.get_num_threads()}"
    table = Table(
        title=f"generator latency per face, {device_name}, torch {torch.__version__}, median of {args.repeats}"
    )
    for col in ("preset", "params", "batch", "dtype", "mode", "ms/face", "faces/s", "vs fp32 eager", "first call s"):
        table.add_column(col, justify="left" if col in ("preset", "dtype", "mode") else "right")
    for preset in args.presets:
        for batch in args.batches:
            baseline = None
            for dtype_name in args.dtypes:
                for mode in args.modes:
                    r = measure(preset, mode, dtype_name, batch, args)
                    console.log(f"{preset} batch {batch} {dtype_name} {mode}: {r}", highlight=False)
                    if "skipped" in r:
                        table.add_row(preset, "", str(batch), dtype_name, mode, "skipped", "", "", r["skipped"])
                        continue
                    if dtype_name == "fp32" and mode == "eager":
                        baseline = r["ms_per_face"]
                    ratio = f"{baseline / r['ms_per_face']:.2f}x" if baseline else "-"
                    table.add_row(
                        preset,
                        f"{r['params'] / 1e6:.1f}M",
                        str(batch),
                        dtype_name,
                        mode,
                        f"{r['ms_per_face']:.1f}",
                        f"{1000 / r['ms_per_face']:.1f}",
                        ratio,
                        f"{r['first_call_s']:.1f}",
                    )
    console.print(table)


if __name__ == "__main__":
    main()
