"""End-to-end video swap speed: frames/s and where the time goes (decode, detect, align, generate, blend, encode).

    python benchmarks/bench_swap.py                          # CPU, default clips and models
    python benchmarks/bench_swap.py --device cuda --precision bf16 --models facedancer-lite-random
    python benchmarks/bench_swap.py --backend eager --precision fp32   # the swap as it ran before --backend auto
    python benchmarks/bench_swap.py --clips video_retalking/5.mp4 --max-frames 60 --repeats 1

Models: "classical" (no network), or a generator built from a preset with random weights
("<preset>-random"): speed does not depend on what the weights learned. Each configuration runs
``--repeats`` times; the table shows the median run, its speed as a multiple of the first model's on the
same clip, and the stage split of that run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from _common import SHARED
from facedancer.nn import Generator
from facedancer.presets import load_preset
from facedancer.swap import FaceSwapper
from facedancer.swap.swapper import default_batch_size

STAGES = ("decode", "detect", "align", "generate", "blend", "encode")
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
    args = parser.parse_args()

    console = Console(width=160)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU x{torch.get_num_threads()}"
    batch = args.batch_size or default_batch_size(torch.device(args.device))
    table = Table(
        title=f"video swap, {device}, backend {'compile' if args.compile else args.backend}, precision "
        f"{args.precision}, batch {batch}, "
        f"first {args.max_frames} frames, median of {args.repeats}"
    )
    first = args.models[0]
    for col in ("clip", "model", "frames", "faces", "frames/s", f"x {first}", *(f"{s} %" for s in STAGES)):
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
                runs = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    report = swapper.swap_video(
                        source, DATA / "videos" / clip, Path(tmp) / "out.mp4", max_frames=args.max_frames
                    )
                    runs.append((time.perf_counter() - start, report))
                    console.log(f"{spec} {clip}: {report.frames / runs[-1][0]:.2f} frames/s", highlight=False)
                wall, report = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
                total, fps = sum(report.seconds.values()), report.frames / wall
                baseline.setdefault(clip, fps)
                table.add_row(
                    clip,
                    spec,
                    str(report.frames),
                    str(report.faces_swapped),
                    f"{fps:.2f}",
                    f"{fps / baseline[clip]:.2f}",
                    *(f"{100 * report.seconds.get(s, 0) / total:.0f}" for s in STAGES),
                )
    console.print(table)


if __name__ == "__main__":
    main()
