"""Identity retrieval with the evaluation recogniser on real LFW photos: is the instrument sound?

    python benchmarks/bench_retrieval_lfw.py                  # all people of ../shared/data/lfw (610)
    python benchmarks/bench_retrieval_lfw.py --people 100     # a seeded subset of people

Probe = one seeded photo per person, gallery = all their other photos (LFW deep-funneled, faces found by
YuNet, the one nearest the centre). Top-1 = the nearest gallery photo by cosine belongs to the probe's
person. The swap evaluation trusts this recogniser only because this number is high (>= 95%).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from rich.console import Console

from _common import SHARED
from facedancer.eval import DlibRecogniser
from facedancer.eval.datasets import identity_folders
from facedancer.eval.validate import validate_retrieval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "lfw")
    parser.add_argument("--people", type=int, default=0, help="a seeded subset of N people (0 = all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    people = identity_folders(args.data, min_images=2)
    if args.people:
        names = sorted(np.random.default_rng(args.seed).choice(sorted(people), args.people, replace=False))
        people = {n: people[n] for n in names}
    r = validate_retrieval(DlibRecogniser(), people, seed=args.seed, progress=True)
    Console().print(
        f"LFW retrieval (dlib ResNet): {r.people} probes, gallery {r.gallery} photos, {r.missed} without a face\n"
        f"top-1 {100 * r.top1:.2f}%   mean cosine probe-gallery: same person {r.mean_cosine_same:.3f}, "
        f"others {r.mean_cosine_other:.3f}"
    )


if __name__ == "__main__":
    main()
