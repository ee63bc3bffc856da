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
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from _common import SHARED
from facedancer.faces import align
from facedancer.io import VideoReader
from facedancer.nn import Generator
from facedancer.presets import load_preset
from facedancer.swap import FaceSwapper, Source
from facedancer.swap.report import STAGES
from facedancer.swap.swapper import default_batch_size

DATA = SHARED / "data"


def model_dir(spec: str, root: Path) -> str:
    """A model directory for ``<preset>-random`` (random weights), else ``spec`` itself."""
    if not spec.endswith("-random"):
        return spec
    preset = load_preset(spec.removesuffix("-random"))
    path = root / spec
    torch.manual_seed(0)
    Generator(preset.generator).save_pretrained(path, meta={"identity_encoder": preset.identity.encoder})
    return str(path)


def generator_ms_per_face(swapper: FaceSwapper, source: Source, clip: Path, calls: int) -> float:
    """The generator alone on the clip's own aligned faces, in the swap's batches: median ms per face."""
    crops = []
    with VideoReader(clip, max_frames=16) as reader:
        for frame in reader:
            for points in swapper.detector.detect(frame).landmarks:
                crops.append(align(frame, points, swapper.swapper.crop_size)[0])
    batch = min(swapper.batch_size, len(crops))
    times = []
    for i in range(calls + 2):  # two warm-up calls
        chunk = np.stack([crops[(i * batch + j) % len(crops)] for j in range(batch)])
        start = time.perf_counter()
        swapper.swapper.swap(chunk, [source.state] * batch)
        times.append((time.perf_counter() - start) / batch)
    return 1000 * statistics.median(times[2:])


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
    table = Table(
        title=f"video swap, {device}, backend {'compile' if args.compile else args.backend}, precision "
        f"{args.precision}, batch {batch}, first {args.max_frames} frames, median of {args.repeats}; "
        "stages: busy ms per frame"
    )
    first = args.models[0]
    columns = ("clip", "model", "frames", "faces", "frames/s", f"x {first}", "ms/frame", "gen ms/face", "x gen")
    for col in (*columns, *STAGES, "gen busy"):
        table.add_column(col, justify="left" if col in ("clip", "model") else "right")
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
                gen_ms = generator_ms_per_face(swapper, source, path, args.generator_calls)
                runs = []
                for _ in range(args.repeats):
                    report = swapper.swap_video(source, path, Path(tmp) / "out.mp4", max_frames=args.max_frames)
                    runs.append(report)
                    console.log(f"{spec} {clip}: {report.frames / report.elapsed:.2f} frames/s", highlight=False)
                report = sorted(runs, key=lambda r: r.elapsed)[len(runs) // 2]
                wall, frames = report.elapsed, report.frames
                fps = frames / wall
                baseline.setdefault(clip, fps)
                table.add_row(
                    clip,
                    spec,
                    str(frames),
                    str(report.faces_swapped),
                    f"{fps:.2f}",
                    f"{fps / baseline[clip]:.2f}",
                    f"{1000 * wall / frames:.1f}",
                    f"{gen_ms:.1f}",
                    f"{1000 * wall / (gen_ms * max(report.faces_swapped, 1)):.2f}",
                    *(f"{1000 * report.seconds.get(s, 0) / frames:.1f}" for s in STAGES),
                    f"{100 * report.seconds.get('generate', 0) / wall:.0f}%",
                )
    console.print(table)


if __name__ == "__main__":
    main()
