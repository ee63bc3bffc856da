"""The IFSR pre-study (PAPER.md §2.1): how far does a face swap move each identity-encoder block?

For (target, source, changed) triplets, where "changed" is a face swap of the source's identity onto the
target, measure per block the cosine distances target-changed (t2c), changed-source (c2s) and
target-source (t2s). A block's **margin is the mean t2c distance**: how far a working swap legitimately
moves that block. Blocks where the swap stays clearly closer to its target than to its source carry
pose, expression, lighting and occlusion rather than identity; those are the blocks IFSR regularises.
We select them by the equal error rate between the t2c and c2s distributions (``eer_max``, default
0.05, i.e. nearly separable, the paper's "c2t and c2s are completely separable until block 14"); the
official ArcFace set (conv2_block3 ... conv4_block6) was picked by hand from the same kind of analysis.

Triplets come from a folder (``target/``, ``source/``, ``changed/`` with matching file names: aligned
crops of any size), or are made from a prepared dataset by a reference swapper: the classical
landmark-warp + Poisson swap (``faces.classical_swap``, parameter-free) or any facedancer generator
checkpoint. The paper measured SimSwap/FaceShifter swaps; a classical swap moves expression with the
source's face, so its margins are looser than a learned swapper's: prefer a trained checkpoint once
you have one.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from facedancer.errors import InputError
from facedancer.faces.align import alignment_matrix, transform_points
from facedancer.faces.classical_swap import classical_swap
from facedancer.identity import encode_crops
from facedancer.io.image import read_image
from facedancer.train.data import CropIndex, seeded, to_tensor
from facedancer.train.dataset_format import MANIFEST, read_manifest, row_landmarks
from facedancer.train.ifsr import Margins, cosine_distance

KINDS = ("target_changed", "changed_source", "target_source")
LABELS = {
    "target_changed": "target - changed",
    "changed_source": "changed - source",
    "target_source": "target - source",
}

#: per block and kind, the distances of every triplet
Distances = dict[str, dict[str, np.ndarray]]


@dataclass
class Triplet:
    target: np.ndarray  # RGB uint8 aligned crops, all the same size
    source: np.ndarray
    changed: np.ndarray


def folder_triplets(root: Path) -> Iterator[Triplet]:
    """``root/{target,source,changed}/NAME``: the triplets a user made with any swapper."""
    names = sorted(p.name for p in (root / "changed").iterdir() if p.is_file())
    if not names:
        raise InputError(f"{root}/changed holds no images")
    for name in names:
        images = []
        for part in ("target", "source", "changed"):
            try:
                images.append(read_image(root / part / name))
            except InputError as e:
                raise InputError(f"missing or unreadable {part} image: {e}") from None
        if len({im.shape for im in images}) != 1:
            raise InputError(f"{name}: target, source and changed differ in size")
        yield Triplet(*images)


def cross_pairs(crops: CropIndex, count: int, seed: int) -> list[tuple[int, int]]:
    """``count`` random (target, source) pairs of different identities, reproducible from ``seed``."""
    if len(set(crops.labels)) < 2:
        raise InputError("the reference swapper needs at least two identities")
    gen = seeded(seed, 0xCA1)
    pairs: list[tuple[int, int]] = []
    while len(pairs) < count:
        t, s = torch.randint(len(crops), (2,), generator=gen).tolist()
        if crops.labels[t] != crops.labels[s]:
            pairs.append((t, s))
    return pairs


def crop_points(row: dict[str, str], size: int) -> np.ndarray:
    """A manifest row's landmarks mapped into its aligned crop."""
    points = row_landmarks(row)
    return transform_points(points, alignment_matrix(points, size))


def classical_triplets(root: Path, count: int, seed: int) -> Iterator[Triplet]:
    crops = CropIndex.open(root)
    rows = read_manifest(root)
    for t, s in cross_pairs(crops, count, seed):
        target, source = crops.load(t, 256), crops.load(s, 256)
        changed = classical_swap(target, crop_points(rows[t], 256), source, crop_points(rows[s], 256))
        yield Triplet(target, source, changed)


class GeneratorReference:
    """A facedancer generator checkpoint as the pre-study's reference swapper, on aligned crop pairs.

    Not the swap pipeline's ``swap.models.GeneratorSwapper``: the source is already an aligned crop here,
    so its embedding comes from that crop as in training (:func:`~facedancer.identity.encode_crops`), and
    the generator runs in fp32 on the CPU.
    """

    def __init__(self, model_dir: Path) -> None:
        from facedancer.identity import load_model_encoder
        from facedancer.nn import Generator
        from facedancer.nn.pretrained import read_meta

        self.generator = Generator.from_pretrained(model_dir).eval()
        name = read_meta(model_dir).get("identity_encoder")
        if not name:
            raise InputError(f"{model_dir} does not say which identity encoder it was trained with")
        self.encoder = load_model_encoder(model_dir, name)

    @torch.no_grad()
    def __call__(self, target: np.ndarray, source: np.ndarray) -> np.ndarray:
        size = self.generator.config.image_size
        x_t, x_s = (
            to_tensor(cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA))[None] for im in (target, source)
        )
        z, _ = encode_crops(self.encoder, x_s)
        y = self.generator(x_t, z).clamp(-1, 1)
        return ((y[0].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)


def generator_triplets(root: Path, model_dir: Path, count: int, seed: int) -> Iterator[Triplet]:
    swapper = GeneratorReference(model_dir)
    crops = CropIndex.open(root)
    for t, s in cross_pairs(crops, count, seed):
        target, source = crops.load(t, 256), crops.load(s, 256)
        yield Triplet(target, source, cv2.resize(swapper(target, source), (256, 256), interpolation=cv2.INTER_LINEAR))


@torch.no_grad()
def measure(encoder: nn.Module, triplets: Iterator[Triplet], batch_size: int = 8, progress=None) -> Distances:
    """Cosine distances of every block for the three pairings, over all triplets."""
    names = list(encoder.feature_names)
    found: dict[str, dict[str, list[Tensor]]] = {n: {k: [] for k in KINDS} for n in names}

    def flush(batch: list[Triplet]) -> None:
        feats = {}
        for part in ("target", "source", "changed"):
            x = torch.stack([to_tensor(getattr(t, part)) for t in batch])
            _, found_part = encode_crops(encoder, x, names)
            feats[part] = {n: f.double() for n, f in found_part.items()}
        for n in names:
            found[n]["target_changed"].append(cosine_distance(feats["target"][n], feats["changed"][n]))
            found[n]["changed_source"].append(cosine_distance(feats["changed"][n], feats["source"][n]))
            found[n]["target_source"].append(cosine_distance(feats["target"][n], feats["source"][n]))
        if progress is not None:
            progress(len(batch))

    batch: list[Triplet] = []
    for triplet in triplets:
        batch.append(triplet)
        if len(batch) == batch_size:
            flush(batch)
            batch = []
    if batch:
        flush(batch)
    return {n: {k: torch.cat(v).numpy() for k, v in kinds.items()} for n, kinds in found.items()}


def equal_error_rate(close: np.ndarray, far: np.ndarray) -> float:
    """EER of telling ``close`` (should be small) from ``far`` by a threshold; 0 = fully separable."""
    thresholds = np.unique(np.concatenate([close, far]))
    miss = (close[None] > thresholds[:, None]).mean(1)  # close pairs above the threshold
    false = (far[None] <= thresholds[:, None]).mean(1)  # far pairs at or below it
    i = int(np.argmin(np.abs(miss - false)))
    return float((miss[i] + false[i]) / 2)


def summarise(
    encoder_name: str,
    distances: Distances,
    eer_max: float = 0.05,
    blocks: list[str] | None = None,
    provenance: dict | None = None,
) -> Margins:
    """Mean/std per block and kind, EER(t2c vs c2s), and the margins of the selected blocks."""
    stats = {}
    for name, kinds in distances.items():
        stats[name] = {k: {"mean": float(v.mean()), "std": float(v.std())} for k, v in kinds.items()}
        stats[name]["eer"] = equal_error_rate(kinds["target_changed"], kinds["changed_source"])
    if blocks:
        unknown = sorted(set(blocks) - set(distances))
        if unknown:
            raise InputError(f"unknown blocks {unknown}; the encoder has {list(distances)}")
        chosen = [n for n in distances if n in blocks]
    else:
        chosen = [n for n in distances if stats[n]["eer"] <= eer_max]
    if not chosen:
        raise InputError(f"no block has a t2c/c2s equal error rate <= {eer_max}; raise --eer-max or name --blocks")
    margins = {n: stats[n]["target_changed"]["mean"] for n in chosen}
    return Margins(encoder_name, margins, stats, provenance or {})


def plot(margins: Margins, path: Path) -> Path:
    """Per-block mean +- std of the three distance distributions (selected blocks shaded), and the EER."""
    try:
        import matplotlib
    except ImportError:
        raise InputError("the distance plot needs matplotlib: pip install 'facedancer-pytorch[train]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from facedancer.atomic import atomic_path

    names = list(margins.statistics)
    x = np.arange(len(names))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(8, 0.45 * len(names)), 7), sharex=True, height_ratios=(3, 1))
    for i, name in enumerate(names):
        if name in margins.margins:
            for ax in (top, bottom):
                ax.axvspan(i - 0.5, i + 0.5, color="0.92", zorder=0)
    for kind in KINDS:
        mean = np.array([margins.statistics[n][kind]["mean"] for n in names])
        std = np.array([margins.statistics[n][kind]["std"] for n in names])
        top.plot(x, mean, marker="o", ms=3, label=LABELS[kind])
        top.fill_between(x, mean - std, mean + std, alpha=0.2)
    top.set_ylabel("cosine distance")
    top.set_title(f"IFSR pre-study, {margins.encoder}: per-block distances (shaded: blocks given margins)")
    top.legend()
    bottom.bar(x, [margins.statistics[n]["eer"] for n in names], color="tab:gray")
    bottom.set_ylabel("EER t2c/c2s")
    bottom.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path


def _check_options(data: Path, out: Path, pairs: int, eer_max: float, plot_path: str | Path | None) -> None:
    """Before minutes of measuring: numbers in range, and outputs that overwrite no input nor each other."""
    if pairs < 1:
        raise InputError(f"--pairs must be >= 1, got {pairs}")
    if not 0 <= eer_max <= 1:
        raise InputError(f"--eer-max must be in [0, 1], got {eer_max}")
    outputs = [out, *([Path(plot_path)] if plot_path else [])]
    for path in outputs:
        if data.resolve() in path.resolve().parents:
            raise InputError(f"{path} is inside the data folder {data}: write the margins and the plot elsewhere")
        if path.is_dir():
            raise InputError(f"{path} is a folder: give a file name")
    if len(outputs) == 2 and outputs[0].resolve() == outputs[1].resolve():
        raise InputError("--out and --plot are the same file")


def calibrate(
    data: str | Path,
    out: str | Path,
    encoder: str = "sface",
    swapper: str = "classical",
    pairs: int = 500,
    seed: int = 0,
    eer_max: float = 0.05,
    blocks: list[str] | None = None,
    plot_path: str | Path | None = None,
    batch_size: int = 8,
    command: str = "",
) -> Margins:
    """The whole pre-study: triplets -> distances -> margins JSON (+ PNG plot); ``command`` is recorded."""
    from rich.progress import Progress

    from facedancer.identity import load_encoder

    data = Path(data)
    _check_options(data, Path(out), pairs, eer_max, plot_path)
    if (data / MANIFEST).is_file():
        source = "prepared dataset"
        if swapper == "classical":
            triplets, total = classical_triplets(data, pairs, seed), pairs
        else:
            triplets, total = generator_triplets(data, Path(swapper), pairs, seed), pairs
    elif (data / "changed").is_dir():
        source, swapper = "triplet folder", "given"
        triplets, total = folder_triplets(data), len(list((data / "changed").iterdir()))
    else:
        raise InputError(f"{data} is neither a prepared dataset ({MANIFEST}) nor a triplet folder (changed/)")
    net = load_encoder(encoder)
    with Progress() as bar:
        task = bar.add_task(f"measuring {encoder} blocks", total=total)
        distances = measure(net, triplets, batch_size, progress=lambda n: bar.advance(task, n))
    provenance = {
        "command": command,
        "data": str(data),
        "data_kind": source,
        "swapper": swapper,
        "triplets": len(next(iter(distances.values()))["target_changed"]),
        "seed": seed,
        "selection": f"blocks {blocks}" if blocks else f"EER(t2c, c2s) <= {eer_max}",
        "date": datetime.date.today().isoformat(),
    }
    margins = summarise(encoder, distances, eer_max, blocks, provenance)
    margins.save(out)
    if plot_path:
        plot(margins, Path(plot_path))
    return margins
