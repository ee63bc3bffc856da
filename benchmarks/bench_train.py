"""Training throughput (samples/s, from the median step time) and peak memory per preset: full FaceDancer steps
on real crops.

    python benchmarks/bench_train.py --data LFW_CROPS                                # CPU, default presets
    python benchmarks/bench_train.py --data LFW_CROPS --presets tiny-64 --batch 4 --steps 3   # a quick check
    python benchmarks/bench_train.py --data LFW_CROPS --presets facedancer-lite --size 128 --batch 8  # issue 12's step
    python benchmarks/bench_train.py --data LFW_CROPS --device cuda --precision bf16 --batch 10

``LFW_CROPS`` is a folder made by ``facedancer prepare``. Each preset runs in its own process, so the
peak resident memory (CPU) is that preset's; on CUDA the peak is ``torch.cuda.max_memory_allocated``.
A step is the whole official step: encoder passes, G, D three times, R1, cycle, IFSR, both Adam updates.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from queue import Empty

from rich.console import Console
from rich.table import Table

DEFAULT_PRESETS = ["tiny-64", "facedancer-lite", "facedancer-sface"]


def measure(preset_name: str, args: argparse.Namespace) -> dict:
    import torch

    from facedancer.nn import parameter_count
    from facedancer.presets import load_preset
    from facedancer.train.run import resolve_perceptual
    from facedancer.train.trainer import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    preset = resolve_perceptual(load_preset(preset_name))
    if args.size:
        preset = at_size(preset, args.size)
    overrides = {"tensorboard": False, "device": args.device, "precision": args.precision, "compile": args.compile}
    if args.batch:
        overrides["batch_size"] = args.batch
    preset = replace(
        preset,
        data=replace(preset.data, root=str(args.data), workers=args.workers, val_pairs=0),
        train=replace(preset.train, **overrides),
    )
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(preset, Path(run_dir))
        device = trainer.device
        try:
            for _ in range(args.warmup):
                trainer.train_step()
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            times = []
            for _ in range(args.steps):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                trainer.train_step()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
        finally:
            trainer.close()
        peak = (
            torch.cuda.max_memory_allocated() / 2**20
            if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        )
        return {
            "params_g": parameter_count(trainer.generator),
            "batch": preset.train.batch_size,
            "size": preset.generator.image_size,
            "samples_per_s": preset.train.batch_size / statistics.median(times),
            "s_per_step": statistics.median(times),
            "peak_mib": peak,
            "device": str(device),
            "threads": torch.get_num_threads(),
        }


def at_size(preset, size: int):
    """The preset at another image size, its fusion layout scaled with it (AFFA at 32/64/128 px and concat at
    256 px become AFFA at 16/32/64 and concat at 128 at half the size)."""
    g = preset.generator
    fusion = {r * size // g.image_size: kind for r, kind in g.fusion.items()}
    return replace(
        preset,
        generator=replace(g, image_size=size, fusion=fusion),
        discriminator=replace(preset.discriminator, image_size=size),
    )


def _child(preset: str, args: argparse.Namespace, queue) -> None:
    try:
        queue.put(measure(preset, args))
    except Exception as e:  # report, keep benchmarking the other presets
        queue.put({"error": f"{type(e).__name__}: {e}"})


def _result(proc, queue) -> dict:
    """The child's measurement, or why there is none: a child killed outright (the OOM killer on a large
    preset) sends nothing, and waiting on the queue alone would hang."""
    while True:
        try:
            result = queue.get(timeout=5)
            break
        except Empty:
            if not proc.is_alive():
                result = {"error": f"the measuring process died (exit code {proc.exitcode})"}
                break
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a folder made by `facedancer prepare`")
    parser.add_argument("--presets", nargs="+", default=DEFAULT_PRESETS)
    parser.add_argument("--batch", type=int, default=0, help="images per step (0 = the preset's)")
    parser.add_argument("--size", type=int, default=0, help="image size in px (0 = the preset's, 256)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = default)")
    args = parser.parse_args()

    console = Console(width=150)
    load = os.getloadavg()[0]
    table = Table(
        title=f"training throughput, {args.device}, median of {args.steps} steps after {args.warmup} warm-up, "
        f"1-min load average {load:.1f} at the start"
    )
    first = args.presets[0]
    baseline = None  # samples/s of the first preset, the ratio's baseline
    for col in ("preset", "G params", "px", "batch", "samples/s", f"x {first}", "s/step", "peak MiB", "device"):
        table.add_column(col, justify="left" if col in ("preset", "device") else "right")
    ctx = multiprocessing.get_context("spawn")
    for preset in args.presets:
        queue = ctx.Queue()
        proc = ctx.Process(target=_child, args=(preset, args, queue))
        proc.start()
        r = _result(proc, queue)
        console.log(f"{preset}: {r}", highlight=False)
        if "error" in r:
            table.add_row(preset, "", "", "", "failed", "", "", "", r["error"][:60])
            continue
        if preset == first:
            baseline = r["samples_per_s"]
        table.add_row(
            preset,
            f"{r['params_g'] / 1e6:.2f}M",
            str(r["size"]),
            str(r["batch"]),
            f"{r['samples_per_s']:.2f}",
            f"{r['samples_per_s'] / baseline:.3f}" if baseline else "",
            f"{r['s_per_step']:.2f}",
            f"{r['peak_mib']:.0f}",
            f"{r['device']} x{r['threads']}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
