"""Generator ms per face on each backend and precision the swap can use, and what ``--backend auto`` picks.

    python benchmarks/bench_backends.py                                  # paper generator, 256 px, batch 1
    python benchmarks/bench_backends.py --official-ms 163.4              # first row: the official TF graph
    python benchmarks/bench_backends.py --preset facedancer-lite --paths eager-fp32 openvino-fp32 auto

Every path runs the swap's own :class:`~facedancer.swap.backends.GeneratorRunner` on the same generator
(random weights at the preset's size: speed does not depend on what the weights learned) and the same
input. Paths are timed round-robin, one call each per round, so that a load that comes and goes on the
machine falls on all of them alike; the table shows the median of the rounds. "first call s" is what a
user waits the very first time (export, compilation, checks), each path with an empty cache of its own;
"max error" is the largest |difference| from torch fp32 eager on that input (output in [-1, 1] units) and
"PSNR dB" the same difference as an image.

The official TensorFlow graph cannot be a dependency of this project. ``--official-ms`` puts its time in
the first row, so every ratio is against it; measure it in a side virtual environment with TF 2.15 and the
official repository (felixrosberg/FaceDancer), on the same machine and input size, as the median of
repeated calls of the generator's ``tf.function`` at batch 1 after two warm-up calls (a random
``target`` 1x256x256x3 in [-1, 1] and a random 512-d ``identity``): ``tools/official_parity.py make``
does exactly this and records it as ``official_tf_graph_ms_per_face`` in its manifest. Measure both on
an idle machine: the TF graph slows more than ours under load. Without it, ratios are against the first
measured path.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
from rich.console import Console
from rich.table import Table

from facedancer.nn import Generator, parameter_count
from facedancer.presets import load_preset
from facedancer.swap.backends import GeneratorRunner, installed, native_bf16, probe_inputs, psnr

#: between two paths' calls: a call timed right after a torch path ran 10-30% slower while torch's OpenMP
#: threads still spun (facedancer-lite OpenVINO bf16: 18.6 ms after compile-bf16, 13.9-14.7 ms alone)
PAUSE_S = 0.2

#: name -> (backend, precision), in the issue's order
PATHS: dict[str, tuple[str, str]] = {
    "eager-fp32": ("eager", "fp32"),
    "compile-fp32": ("compile", "fp32"),
    "onnxruntime-fp32": ("onnxruntime", "fp32"),
    "openvino-fp32": ("openvino", "fp32"),
    "eager-bf16": ("eager", "bf16"),
    "compile-bf16": ("compile", "bf16"),
    "openvino-bf16": ("openvino", "bf16"),
    "auto": ("auto", "auto"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="facedancer", help="generator size (default: the paper's, 24.5 M)")
    parser.add_argument("--paths", nargs="+", choices=list(PATHS), default=list(PATHS))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--official-ms", type=float, default=None, help="the official TF graph's ms per face")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    console = Console(width=150)
    torch.manual_seed(0)
    generator = Generator(load_preset(args.preset).generator).eval()
    x, z = probe_inputs(generator, args.batch)
    with torch.inference_mode():
        want = generator(x, z)

    runners, first_call, errors = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.paths:
            backend, precision = PATHS[name]
            if backend in ("onnxruntime", "openvino") and not installed(backend):
                console.log(f"{name}: {backend} is not installed, skipped")
                continue
            if precision == "bf16" and not native_bf16(torch.device("cpu")):
                console.log(f"{name}: this CPU has no native bf16 (it would be emulated, ~300x slower), skipped")
                continue
            os.environ["FACEDANCER_HOME"] = os.path.join(tmp, name)  # an empty cache each: a first run's cost
            start = time.perf_counter()
            runner = GeneratorRunner(generator, torch.device("cpu"), backend, precision)
            runner(x, z)
            first_call[name] = time.perf_counter() - start
            out = runner(x, z)  # after auto's first batch has decided
            errors[name] = ((out - want).abs().max().item(), psnr(want, out))
            runners[name] = runner
            console.log(f"{name}: {runner.description}, first call {first_call[name]:.1f} s", highlight=False)
        if "auto" in runners:  # a second run: the graph and the verdicts come from the cache
            start = time.perf_counter()
            GeneratorRunner(generator, torch.device("cpu"))(x, z)
            console.log(f"auto, second run: ready and first call done in {time.perf_counter() - start:.1f} s")

        for runner in runners.values():
            for _ in range(args.warmup):
                runner(x, z)
        times: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(args.rounds):
            for name, runner in runners.items():
                time.sleep(PAUSE_S)  # the previous path's threads (OpenMP spins after a parallel region) go idle
                start = time.perf_counter()
                runner(x, z)
                times[name].append(time.perf_counter() - start)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    table = Table(
        title=f"{args.preset} generator ({parameter_count(generator) / 1e6:.1f} M), {generator.config.image_size} px, "
        f"batch {args.batch}, CPU x{torch.get_num_threads()}, torch {torch.__version__}, median of {args.rounds} "
        f"round-robin rounds, 1-min load average {load:.1f}"
    )
    for col in ("path", "runs as", "ms/face", "vs first row", "first call s", "max error", "PSNR dB"):
        table.add_column(col, justify="left" if col in ("path", "runs as") else "right")
    rows = [(name, runners[name].description, 1000 * statistics.median(times[name]) / args.batch) for name in runners]
    if args.official_ms:
        rows.insert(0, ("official TF graph (--official-ms)", "TF tf.function fp32", args.official_ms))
    baseline = rows[0][2]
    for name, how, ms in rows:
        error, db = errors.get(name, (None, None))
        table.add_row(
            name,
            how,
            f"{ms:.1f}",
            f"{baseline / ms:.2f}x",
            f"{first_call[name]:.1f}" if name in first_call else "",
            f"{error:.1e}" if error is not None else "",
            f"{db:.1f}" if db is not None else "",
        )
    console.print(table)


if __name__ == "__main__":
    main()
