"""Identity encoder on LFW: same- vs different-person ROC AUC, and per-face latency.

    python benchmarks/bench_identity_lfw.py                         # SFace, 100 seeded LFW identities
    python benchmarks/bench_identity_lfw.py --identities 50 --seed 1
    python benchmarks/bench_identity_lfw.py --encoder arcface-iresnet50 --weights backbone.pth

Faces are found with YuNet (the face nearest the photo's centre), aligned to the 112 px ArcFace template
and embedded; scores are cosine similarities of the raw embeddings. Pairs: every same-person pair within
the chosen identities, plus as many seeded random different-person pairs. LFW comes from
``$FACEDANCER_TEST_DATA/data/lfw`` (default ``../shared`` beside the repository); it is research data
and never enters the repository.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import track
from rich.table import Table

from _common import SHARED
from facedancer.faces import YuNetDetector, align
from facedancer.identity import EMBEDDING_DIMS, IdentityEncoder, from_uint8, load_encoder
from facedancer.io import read_image


def lfw_root() -> Path:
    return SHARED / "data" / "lfw"


def aligned_faces(people: list[Path]) -> tuple[np.ndarray, np.ndarray, int]:
    """112 px crops of the central face of every photo of ``people``, their labels, and the photo count."""
    detector = YuNetDetector()
    files = [(label, f) for label, person in enumerate(people) for f in sorted(person.glob("*.jpg"))]
    crops, labels = [], []
    for label, file in track(files, description="detect + align"):
        image = read_image(file)
        found = detector.detect(image)
        if len(found) == 0:
            continue
        centres = (found.boxes[:, :2] + found.boxes[:, 2:]) / 2
        nearest = np.argmin(np.linalg.norm(centres - np.array(image.shape[1::-1]) / 2, axis=1))
        crops.append(align(image, found.landmarks[nearest], 112)[0])
        labels.append(label)
    return np.stack(crops), np.array(labels), len(files)


def embed(encoder: IdentityEncoder, crops: np.ndarray, device: torch.device, batch: int = 64) -> np.ndarray:
    with torch.no_grad():
        out = [encoder(from_uint8(crops[i : i + batch]).to(device)).cpu() for i in range(0, len(crops), batch)]
    return torch.nn.functional.normalize(torch.cat(out), dim=1).numpy()


def pairs(labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """All same-label index pairs, and as many distinct random different-label pairs."""
    i, j = np.triu_indices(len(labels), 1)
    same = labels[i] == labels[j]
    different = np.flatnonzero(~same)
    chosen = rng.choice(different, size=min(same.sum(), len(different)), replace=False)
    return np.stack([i[same], j[same]], 1), np.stack([i[chosen], j[chosen]], 1)


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counting one half (the Mann-Whitney statistic)."""
    negative = np.sort(negative)
    below = np.searchsorted(negative, positive, "left")
    tied = np.searchsorted(negative, positive, "right") - below
    return float((below + 0.5 * tied).sum() / (len(positive) * len(negative)))


def latency_ms(encoder: IdentityEncoder, batch: int, device: torch.device, runs: int) -> float:
    """Median per-face milliseconds of a forward pass at ``batch``."""
    x = torch.rand(batch, 3, 112, 112, device=device)
    times = []
    with torch.no_grad():
        for _ in range(runs + 2):  # two warm-up runs
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            encoder(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return statistics.median(times[2:]) / batch * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoder", default="sface", choices=sorted(EMBEDDING_DIMS))
    parser.add_argument("--weights", type=Path, help="weights file (default: the registry's copy)")
    parser.add_argument("--identities", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--runs", type=int, default=10, help="timed runs per batch size")
    args = parser.parse_args()

    device = torch.device(args.device)
    encoder = load_encoder(args.encoder, args.weights).to(device)
    rng = np.random.default_rng(args.seed)
    people = sorted(p for p in lfw_root().iterdir() if p.is_dir())
    chosen = [people[k] for k in sorted(rng.choice(len(people), args.identities, replace=False))]
    crops, labels, photos = aligned_faces(chosen)
    embeddings = embed(encoder, crops, device)
    same, different = pairs(labels, rng)
    positive, negative = (np.einsum("nd,nd->n", embeddings[p[:, 0]], embeddings[p[:, 1]]) for p in (same, different))

    console = Console(width=max(Console().width, 100))
    table = Table(title=f"{encoder.name} on LFW (seed {args.seed})")
    columns = ("identities", "faces / photos", "same pairs", "different pairs", "ROC AUC", "cos same", "cos diff")
    for column in columns:
        table.add_column(column, justify="right")
    table.add_row(
        str(len(set(labels))),
        f"{len(crops)} / {photos}",
        str(len(positive)),
        str(len(negative)),
        f"{roc_auc(positive, negative):.4f}",
        f"{positive.mean():.3f}",
        f"{negative.mean():.3f}",
    )
    console.print(table)

    speed = Table(title=f"latency, {device}, {torch.get_num_threads()} threads")
    speed.add_column("batch", justify="right")
    speed.add_column("ms / face (median)", justify="right")
    for batch in args.batches:
        speed.add_row(str(batch), f"{latency_ms(encoder, batch, device, args.runs):.2f}")
    console.print(speed)


if __name__ == "__main__":
    main()
