"""End-to-end video swap speed against the generator's own speed, and each stage's busy time.

    python benchmarks/bench_swap.py                          # CPU, default clips and models
    python benchmarks/bench_swap.py --device cuda --precision bf16 --models facedancer-lite-random
    python benchmarks/bench_swap.py --backend eager --precision fp32   # the swap as it ran before --backend auto
    python benchmarks/bench_swap.py --clips video_retalking/5.mp4 --max-frames 60 --repeats 1

Models: "classical" (no network), or a generator built from a preset with random weights
("<preset>-random"): speed does not depend on what the weights learned. Each configuration runs
``--repeats`` times after a warm-up swap (the backend's one-off export, checks and bf16 trial); the table
shows the median run: frames/s, its speed as a multiple of the first model's on the same clip, ms per frame,
the generator's own ms per face (the same crops through the model alone, nothing else running: median of
``--generator-calls`` calls), and **x gen**, the swap's wall-clock time over what its generator calls alone
would take (1.00 = the rest of the swap costs nothing; issue 12's target is 1.15). Then each stage's busy
ms per frame: the stages run at the same time in threads (``facedancer.swap.video``), so they add up to
more than the wall-clock time; "gen busy" is the share of that time the generator was working.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from _common import SHARED
from facedancer.faces import align, blend_face
from facedancer.io import VideoReader, VideoWriter
from facedancer.nn import Generator
from facedancer.presets import load_preset
from facedancer.swap import FaceSwapper, Source
from facedancer.swap.report import STAGES
from facedancer.swap.swapper import default_batch_size

DATA = SHARED / "data"
T = TypeVar("T")


def model_dir(spec: str, root: Path) -> str:
    """A model directory for ``<preset>-random`` (random weights), else ``spec`` itself."""
    if not spec.endswith("-random"):
        return spec
    preset = load_preset(spec.removesuffix("-random"))
    path = root / spec
    torch.manual_seed(0)
    Generator(preset.generator).save_pretrained(path, meta={"identity_encoder": preset.identity.encoder})
    return str(path)


def cpu_seconds() -> float:
    """CPU time of this process, every thread (the runtimes' own threads too)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def in_a_thread(fn: Callable[[], T]) -> T:
    """``fn()`` in a new thread, as the video pipeline runs its stages (the generator measured ~1.6x slower
    from the main thread on the 2-core development machine, its torch and OpenVINO threads competing)."""
    out: list = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join()
    return out[0]


def one_stage_at_a_time(
    swapper: FaceSwapper, source: Source, clip: Path, frames: int, calls: int, tmp: Path
) -> dict[str, tuple[float, float]]:
    """Each stage alone on the clip's first ``frames`` frames, nothing else running: (wall, CPU) ms per frame;
    "generator" is ms per face, the median of ``calls`` calls at the swap's batch size."""
    costs: dict[str, tuple[float, float]] = {}

    def timed(stage: str, fn: Callable[[], T], per: int) -> T:
        wall, cpu = time.perf_counter(), cpu_seconds()
        out = in_a_thread(fn)
        costs[stage] = (1000 * (time.perf_counter() - wall) / per, 1000 * (cpu_seconds() - cpu) / per)
        return out

    def decode() -> tuple[list[np.ndarray], Fraction]:
        with VideoReader(clip, max_frames=frames) as reader:
            return list(reader), reader.fps

    pixels, fps = timed("decode", decode, frames)
    n = len(pixels)
    found = timed("detect", lambda: [swapper.detector.detect(f).landmarks for f in pixels], n)
    size = swapper.swapper.crop_size
    aligned = timed(
        "align", lambda: [[align(f, p, size) for p in points] for f, points in zip(pixels, found, strict=True)], n
    )
    crops = [crop for row in aligned for crop, _ in row]
    batch = min(swapper.batch_size, len(crops))

    def generate() -> tuple[list[np.ndarray], float, float]:
        out, walls, cpus = [], [], []
        for i in range(calls + 2):  # two warm-up calls
            chunk = [crops[(i * batch + j) % len(crops)] for j in range(batch)]
            wall, cpu = time.perf_counter(), cpu_seconds()
            out.extend(swapper.swapper.swap(np.stack(chunk), [source.state] * batch))
            walls.append((time.perf_counter() - wall) / batch)
            cpus.append((cpu_seconds() - cpu) / batch)
        return out, 1000 * statistics.median(walls[2:]), 1000 * statistics.median(cpus[2:])

    swapped, wall, cpu = in_a_thread(generate)
    costs["generate"] = (wall, cpu)  # per face

    def blend() -> list[np.ndarray]:
        out, k = [], 0
        for frame, row, points in zip(pixels, aligned, found, strict=True):
            for j, ((crop, m), p) in enumerate(zip(row, points, strict=True)):
                frame = blend_face(frame, swapped[k % len(swapped)], m, p, swapper.blend, inplace=j > 0, target=crop)
                k += 1
            out.append(frame)
        return out

    blended = timed("blend", blend, n)

    def encode() -> None:
        with VideoWriter(tmp / "alone.mp4", None, fps=fps) as writer:
            for frame in blended:
                writer.write(frame)

    timed("encode", encode, n)
    costs["faces per frame"] = (len(crops) / n, len(crops) / n)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", nargs="+", default=["video_retalking/5.mp4", "ghost/dirtydancing.mp4"])
    parser.add_argument(
        "--models", nargs="+", default=["classical", "facedancer-lite-random", "facedancer-sface-random"]
    )
    parser.add_argument("--source", default=str(DATA / "lfw/Aaron_Peirsol/Aaron_Peirsol_0001.jpg"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    parser.add_argument("--backend", default="auto", choices=["auto", "eager", "compile", "onnxruntime", "openvino"])
    parser.add_argument("--compile", action="store_true", help="same as --backend compile")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the swapper's (1 on CPU, 8 on GPU)")
    parser.add_argument("--max-frames", type=int, default=90)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--generator-calls", type=int, default=15)
    args = parser.parse_args()

    console = Console(width=200)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU x{torch.get_num_threads()}"
    batch = args.batch_size or default_batch_size(torch.device(args.device))
    setting = (
        f"{device}, backend {'compile' if args.compile else args.backend}, precision {args.precision}, batch {batch}, "
        f"first {args.max_frames} frames"
    )
    swaps = Table(title=f"video swap, {setting}, median of {args.repeats}; stages: busy ms per frame")
    first = args.models[0]
    columns = ("clip", "model", "frames", "faces", "frames/s", f"x {first}", "ms/frame", "CPU ms/frame")
    for col in (*columns, "gen ms/face", "x gen", *STAGES, "gen busy"):
        swaps.add_column(col, justify="left" if col in ("clip", "model") else "right")
    alone = Table(
        title=f"one stage at a time, {setting}: wall / CPU ms per frame (generate: per face)", caption=ALONE_CAPTION
    )
    for col in ("clip", "model", *STAGES, "CPU bound x gen", "cores for the rest"):
        alone.add_column(col, justify="left" if col in ("clip", "model") else "right")
    baseline: dict[str, float] = {}  # clip -> frames/s of the first model, the ratio's baseline
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.models:
            swapper = FaceSwapper.from_pretrained(
                model_dir(spec, Path(tmp)),
                device=args.device,
                precision=args.precision,
                compile=args.compile,
                backend=args.backend,
                batch_size=args.batch_size,
            )
            source = swapper.source(args.source)
            for clip in args.clips:
                path = DATA / "videos" / clip
                swapper.swap_video(source, path, Path(tmp) / "out.mp4", max_frames=8)  # warm-up, one-off costs
                costs = one_stage_at_a_time(swapper, source, path, args.max_frames, args.generator_calls, Path(tmp))
                gen_ms = costs["generate"][0]
                runs = []
                for _ in range(args.repeats):
                    cpu = cpu_seconds()
                    report = swapper.swap_video(source, path, Path(tmp) / "out.mp4", max_frames=args.max_frames)
                    runs.append((report, cpu_seconds() - cpu))
                    console.log(f"{spec} {clip}: {report.frames / report.elapsed:.2f} frames/s", highlight=False)
                report, cpu = sorted(runs, key=lambda r: r[0].elapsed)[len(runs) // 2]
                wall, frames = report.elapsed, report.frames
                fps = frames / wall
                baseline.setdefault(clip, fps)
                swaps.add_row(
                    clip,
                    spec,
                    str(frames),
                    str(report.faces_swapped),
                    f"{fps:.2f}",
                    f"{fps / baseline[clip]:.2f}",
                    f"{1000 * wall / frames:.1f}",
                    f"{1000 * cpu / frames:.1f}",
                    f"{gen_ms:.1f}",
                    f"{1000 * wall / (gen_ms * max(report.faces_swapped, 1)):.2f}",
                    *(f"{1000 * report.seconds.get(s, 0) / frames:.1f}" for s in STAGES),
                    f"{100 * report.seconds.get('generate', 0) / wall:.0f}%",
                )
                per_frame = costs["faces per frame"][0]
                gen_cpu = costs["generate"][1] * per_frame
                rest_cpu = sum(costs[s][1] for s in STAGES if s != "generate")
                alone.add_row(
                    clip,
                    spec,
                    *(f"{costs[s][0]:.1f} / {costs[s][1]:.1f}" for s in STAGES),
                    f"{(gen_cpu + rest_cpu) / gen_cpu:.2f}",
                    f"{rest_cpu / (gen_ms * per_frame):.1f}",
                )
    console.print(swaps)
    console.print(alone)


ALONE_CAPTION = (
    "CPU bound x gen: (CPU of every stage) / (CPU of the generator) per frame, the least 'x gen' can be where the "
    "generator alone keeps every core busy; cores for the rest: CPU ms of the other stages per generator ms, "
    "the cores they need beside the generator's for the pipeline to keep it fed"
)


if __name__ == "__main__":
    main()
