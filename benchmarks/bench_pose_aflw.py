"""Pose estimators on AFLW2000-3D: MAE of yaw, pitch and roll against the data set's labels.

    python benchmarks/bench_pose_aflw.py                     # the 978 within-99-degree images (usual)
    python benchmarks/bench_pose_aflw.py --all               # all 1,000 images
    python benchmarks/bench_pose_aflw.py --limit 50          # a quick look

Two box sources: "detector" (YuNet, the face nearest the centre, each estimator's own crop rule: the
pipeline `facedancer eval` runs on swaps) and "landmarks" (each estimator's published protocol, cropped
from the data set's landmarks). Weights come from --weights (a folder laid out as ../shared/weights) or,
with --weights '', from the asset registry. On a busy CPU, --threads 1 is much faster. Published for
reference: FSA-Net 4.50 / 6.08 / 4.64 (paper), this FSA-Net export 4.64 / 6.10 / 4.79 (its README,
mean of the 1x1 and var models).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from _common import SHARED
from facedancer.eval import TDDFA, FSANet
from facedancer.eval.datasets import read_aflw2000
from facedancer.eval.validate import validate_pose
from facedancer.faces import YuNetDetector


def estimators(weights: Path | None) -> dict:
    if weights is None:
        return {"3ddfa": TDDFA.load(), "fsanet": FSANet()}
    t, f = weights / "3ddfa_v2_mb05", weights / "fsanet_headpose"
    return {
        "3ddfa": TDDFA.load(t / "mb05_120x120.pth", t / "param_mean_std_62d_120x120.pkl"),
        "fsanet": FSANet([f / "fsanet-1x1-iter-688590.onnx", f / "fsanet-var-iter-688590.onnx"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "aflw2000")
    parser.add_argument("--weights", type=Path, default=SHARED / "weights", help="folder of weights; '' = registry")
    parser.add_argument("--all", action="store_true", help="all images, not only the within-99-degree subset")
    parser.add_argument("--limit", type=int, default=0, help="first N images only (0 = all)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    samples = [s for s in read_aflw2000(args.data) if args.all or s.within_99deg]
    samples = samples[: args.limit] if args.limit else samples
    models = estimators(args.weights if str(args.weights) else None)
    table = Table(title=f"AFLW2000-3D head pose, {len(samples)} images ({'all' if args.all else 'within 99 deg'})")
    for col in ("boxes", "estimator", "faces", "missed", "yaw", "pitch", "roll", "mean MAE"):
        table.add_column(col, justify="left" if col in ("boxes", "estimator") else "right")
    for boxes in ("detector", "landmarks"):
        result = validate_pose(models, samples, boxes, YuNetDetector(), progress=True)
        for name, mae in result.mae.items():
            angles = [f"{mae[k]:.2f}" for k in ("yaw", "pitch", "roll", "mean")]
            table.add_row(boxes, name, str(result.faces), str(result.missed), *angles)
    Console().print(table)


if __name__ == "__main__":
    main()
