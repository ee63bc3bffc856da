"""FID's response on real photos: two disjoint halves of LFW against LFW and a blurred LFW.

    python benchmarks/bench_fid_lfw.py                       # 2 x 500 photos, blur sigma 1, 2, 3, 4
    python benchmarks/bench_fid_lfw.py --per-half 2475 --device cuda    # all of LFW on a GPU

FID is biased upwards on small sets (fewer images than the 2048 feature dimensions), so the halves are
not near zero here; what the instrument must show is that FID grows with the degradation while random
halves of the same photos stay close together.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from _common import SHARED
from facedancer.eval import InceptionFeatures, fid
from facedancer.eval.validate import blur
from facedancer.io import read_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "lfw")
    parser.add_argument("--per-half", type=int, default=500)
    parser.add_argument("--sigmas", type=float, nargs="+", default=[1.0, 2.0, 3.0, 4.0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    paths = sorted(args.data.glob("*/*.jpg"))
    chosen = np.random.default_rng(args.seed).choice(len(paths), 2 * args.per_half, replace=False)
    half_a, half_b = [paths[i] for i in chosen[: args.per_half]], [paths[i] for i in chosen[args.per_half :]]
    inception = InceptionFeatures(device=args.device)
    console = Console()
    with console.status("Inception features of the two halves"):
        feats_a = inception.features((read_image(p) for p in half_a), args.batch)
        images_b = [read_image(p) for p in half_b]
        feats_b = inception.features(iter(images_b), args.batch)
    table = Table(title=f"FID on LFW, {args.per_half} photos per set")
    table.add_column("half A against")
    table.add_column("FID", justify="right")
    table.add_row("half B", f"{fid(feats_a, feats_b):.2f}")
    for sigma in args.sigmas:
        with console.status(f"blurred half B, sigma {sigma}"):
            feats = inception.features((blur(im, sigma) for im in images_b), args.batch)
        table.add_row(f"half B blurred, sigma {sigma:g} px", f"{fid(feats_a, feats):.2f}")
    console.print(table)


if __name__ == "__main__":
    main()
